"""Prepare, step 3: the context and its memory. `ctx = "auto"` is the largest context that fits
the memory budget, capped at what the RoPE settings reach; a fixed ctx is checked against it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ggufrope.model_facts import ModelFacts
from ggufrope.presets import memory
from ggufrope.presets.checks import Finding
from ggufrope.presets.preset import Preset


@dataclass(frozen=True)
class MemoryInputs:
    """What sizing a context needs besides the preset and the model."""
    bud: memory.Budget
    on_gpu: bool
    flash_attn: bool
    remote: tuple = ()          # memory.Device of RPC workers


def memory_at(p: Preset, m: ModelFacts, inp: MemoryInputs) -> Callable[[int], memory.MemoryPlan]:
    ub = memory.DEFAULT_UBATCH if p.ubatch == "auto" else int(p.ubatch)
    frac = memory.gpu_fraction(p.n_gpu_layers, m.info.n_layer)
    shape = memory.Shape(m.n_vocab, m.n_ff)
    n_seq, unified = p.sequences()

    def mem_at(n: int) -> memory.MemoryPlan:
        return memory.plan(m.info, shape, m.weights_bytes, n, p.cache_type_k, p.cache_type_v,
                           flash_attn=inp.flash_attn, n_ubatch=ub, bud=inp.bud, on_gpu=inp.on_gpu,
                           gpu_fraction=frac, headroom=p.headroom_mib * memory.MiB, remote=inp.remote,
                           n_seq=n_seq, unified=unified, swa_full=p.swa_full,
                           n_outputs=n_seq if p.engine == "server" else None)
    return mem_at


def choose_context(p: Preset, m: ModelFacts, reach: int, inp: MemoryInputs, strict_memory: bool = True
                   ) -> tuple[int, memory.MemoryPlan, list[Finding]]:
    """(n_ctx, its memory plan, findings)."""
    mem_at = memory_at(p, m, inp)
    findings: list[Finding] = []
    if p.ctx == "auto":
        best = memory.largest_fitting(mem_at, reach)
        if best is None:
            smallest = mem_at(memory.CTX_PAD)
            findings.append(Finding("error", "ctx", f"not even {memory.CTX_PAD} tokens fit: {smallest.summary()}"))
            return smallest.n_ctx, smallest, findings
        if best.n_ctx < reach:
            findings.append(Finding("note", "ctx", f"auto -> {best.n_ctx}: the largest context that fits "
                                                   f"(the RoPE settings reach {reach})"))
        return best.n_ctx, best, findings
    n_ctx = int(p.ctx)
    mp = mem_at(n_ctx)
    if not mp.fits:
        best = memory.largest_fitting(mem_at, n_ctx)
        more = f"; the largest that fits is {best.n_ctx} (or set ctx = \"auto\", or a smaller cache type)" \
            if best else "; nothing fits (a smaller model or cache type?)"
        findings.append(Finding("error" if strict_memory else "warning", "ctx",
                                f"ctx {n_ctx} does not fit: {mp.summary()}{more}"))
    return n_ctx, mp, findings
