"""The memory plan: weights + KV cache + compute buffer, against free RAM (and VRAM where a GPU
is present), and `ctx = "auto"`: the largest context that fits.

KV cache and recurrent state (exact, checked against llama.cpp's own `llama_kv_cache: size = ...`
and `llama_memory_recurrent: size = ...` lines in tests/test_kv_model.py): the per-family model in
ggufrope/kv_model.py (sliding-window layers get their own small cache, MLA caches K only, recurrent
models a fixed state per sequence). An architecture whose rule is not modelled is planned as
llama-shaped (every layer, n_ctx cells) and the summary says so.

Compute buffer (an estimate, see compute_bytes): the largest graph llama.cpp reserves is a
prompt batch of n_ubatch tokens attending to every cell; its peak is either the logits or the
attention (scores and mask; with flash attention only the f16 mask).
The world (meminfo text, the nvidia-smi runner) is injected.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable, Mapping

from ggufrope.childproc import Runner
from ggufrope import kv_model
from ggufrope.kv_model import KvPlan, KvUnknown
from ggufrope.settings import ModelInfo

MiB = 1 << 20
CTX_PAD = 256               # llama.cpp pads n_ctx to this
DEFAULT_UBATCH = 512        # llama.cpp's default -ub


def pad_ctx(n: int) -> int:
    return (n + CTX_PAD - 1) // CTX_PAD * CTX_PAD


@dataclass(frozen=True)
class Shape:
    """What the compute-buffer estimate needs beyond ModelInfo."""

    n_vocab: int
    n_ff: int


def compute_bytes(info: ModelInfo, shape: Shape, n_ctx: int, n_ubatch: int, flash_attn: bool,
                  n_seq: int = 1, unified: bool = False, n_outputs: int | None = None) -> int:
    """The CPU compute buffer llama.cpp reserves (sched_reserve), as the larger of its two peaks
    for a batch of u = n_ubatch tokens over n cells (padded n_ctx; with n_seq sequences in
    separate streams, not unified, the cells of one stream: each token attends to its own) and
    o outputs (llama-cli, llama-completion and llama-cpp-python reserve logits for every token of
    the batch, o = u; llama-server only for one token per slot, o = n_seq: n_outputs_max,
    tools/server/server-context.cpp l.995 and common/speculative.cpp l.2480):
      logits peak:    o x 4 x n_vocab + u x 4 x 3 n_embd     (f32 logits and the last hidden states)
      attention peak: flash attention on:  n x u x 2 (f16 mask) + u x 4 x (3 n_ff + 4 n_embd)
                      flash attention off: n x u x 4 x (n_head + 1) (f32 scores and mask)
                                           + u x 4 x (2 n_ff + n_embd / 2)
    plus the host output buffer, one row of logits per sequence. Fitted to llama.cpp 0c1e570's
    `CPU compute buffer size` lines for SmolLM2 at 4K-32K (within 0.5%; llama-fit-params
    --fit-print's compute column agrees, tests/test_presets_memory.py), and llama-server's with
    -np 1/2/3/4, split and unified, flash attention on and off (within 1%)."""
    total, n = kv_model.ctx_cells(n_ctx, n_seq, unified)
    u = max(1, min(n_ubatch, total))
    o = u if n_outputs is None else max(1, min(n_outputs, u))
    n_head = max(info.n_head) if info.n_head else 1
    n_ff = max(shape.n_ff, info.n_embd)
    logits = o * 4 * shape.n_vocab + u * 4 * 3 * info.n_embd
    if flash_attn:
        attn = n * u * 2 + u * 4 * (3 * n_ff + 4 * info.n_embd)
    else:
        attn = n * u * 4 * (n_head + 1) + u * 4 * (2 * n_ff + info.n_embd // 2)
    output = shape.n_vocab * 4 * max(1, n_seq)
    return max(logits, attn) + output


@dataclass(frozen=True)
class Budget:
    """Memory the plan may use: free RAM, and free VRAM per GPU (empty without a GPU)."""

    ram_available: int | None
    ram_source: str
    vram_free: tuple[int, ...] = ()
    vram_source: str = ""

    @property
    def has_gpu(self) -> bool:
        return bool(self.vram_free)


@dataclass(frozen=True)
class Device:
    """A device the offloaded layers are spread over: an RPC worker's device or a local GPU."""

    name: str                # "rpc 10.0.0.2:50052" (device index added when a worker has several), "GPU 0"
    free: int
    share: float = 0.0       # of the offloaded layers (tensor split); 0 = by free memory


@dataclass(frozen=True)
class DeviceLoad:
    name: str
    need: int                # its share of the offloaded weights and KV cache
    free: int

    @property
    def fits(self) -> bool:
        """A worker lends what it reports (its owner keeps memory back with `ggufrope worker --mem`),
        so no headroom is taken off it."""
        return self.need <= self.free


def spread(devices: tuple[Device, ...], amount: int) -> tuple[DeviceLoad, ...]:
    """Split `amount` like llama.cpp splits layers: by the tensor split when one is given, else
    in proportion to each device's free memory (src/llama-model.cpp, load_tensors)."""
    if not devices:
        return ()
    weights = [d.share for d in devices] if any(d.share for d in devices) else [float(d.free) for d in devices]
    tot = sum(weights) or 1.0
    return tuple(DeviceLoad(d.name, int(amount * w / tot), d.free) for d, w in zip(devices, weights))


@dataclass(frozen=True)
class MemoryPlan:
    n_ctx: int
    kv_cells: int
    type_k: str
    type_v: str
    weights: int
    kv: int
    compute: int
    device: str           # "RAM" or "VRAM"
    available: int | None
    headroom: int
    offload: tuple[DeviceLoad, ...] = ()   # RPC workers (and local GPUs beside them)
    kv_detail: KvPlan | KvUnknown | None = None   # per cache (full / SWA / recurrent), or why unknown
    sequences: str = ""   # "4 sequences, unified" when more than one (-np), else ""

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.compute

    @property
    def local(self) -> int:
        """What stays in this machine's RAM/VRAM: the total less what the workers hold."""
        return self.total - sum(d.need for d in self.offload)

    @property
    def fits(self) -> bool:
        local_ok = self.available is None or self.local + self.headroom <= self.available
        return local_ok and all(d.fits for d in self.offload)

    def summary(self) -> str:
        hb = mib
        s = (f"ctx {self.n_ctx}: weights {hb(self.weights)} + KV cache {self.kv_text()} "
             f"+ compute ~{hb(self.compute)} = {hb(self.total)}")
        if self.offload:
            s += "; spread over " + ", ".join(f"{d.name} {hb(d.need)} of {hb(d.free)} free" for d in self.offload)
            s += f"; here {hb(self.local)}"
        if self.available is not None:
            s += f" of {hb(self.available)} free {self.device} ({hb(self.headroom)} kept free)"
        return s


    def kv_text(self) -> str:
        """The KV figure with its caches: "12.0 MiB (f16/f16, 4096 cells)", "111.0 MiB (f16/f16,
        3 layers x 32768 cells + 15 SWA layers x 1024)", or the unknown rule said as such."""
        d = self.kv_detail
        seqs = f", {self.sequences}" if self.sequences else ""
        if isinstance(d, KvUnknown):
            return f"unknown ({d.reason}; counted as full attention: {mib(self.kv)}{seqs})"
        if d is None or len(d.caches) == 1 and d.caches[0].name == "kv":
            return f"{mib(self.kv)} ({self.type_k}/{self.type_v}, {self.kv_cells} cells{seqs})"
        parts = []
        for c in d.caches:
            cells = c.cells * c.streams
            if c.name == "recurrent":
                parts.append(f"{c.layers} recurrent layers x {c.cells} seqs (f32 state)")
            else:
                parts.append(f"{c.layers} {'SWA ' if c.name == 'kv swa' else ''}layers x {cells} cells")
        return f"{mib(self.kv)} ({self.type_k}/{self.type_v}, {' + '.join(parts)}{seqs})"


def read_meminfo(env: Mapping[str, str]) -> tuple[int | None, str]:
    """MemAvailable in bytes from /proc/meminfo (GGUFROPE_MEMINFO names another file: tests)."""
    path = env.get("GGUFROPE_MEMINFO") or "/proc/meminfo"
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, f"{path} unreadable"
    return parse_meminfo(text), f"MemAvailable in {path}"


def parse_meminfo(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            mult = {"kB": 1024, "mB": MiB, "B": 1}.get(parts[2] if len(parts) > 2 else "kB", 1024)
            return int(parts[1]) * mult
    return None


def read_vram(runner: Runner | None = None, which: Callable[[str], str | None] = shutil.which) -> tuple[tuple[int, ...], str]:
    """Free VRAM per NVIDIA GPU from nvidia-smi, if it exists."""
    exe = which("nvidia-smi")
    if exe is None:
        return (), "no nvidia-smi"
    try:
        r = (runner or subprocess.run)([exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                                       capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return (), "nvidia-smi failed"
    out = r.stdout if r.returncode == 0 else ""
    free = tuple(int(float(x.strip())) * MiB for x in out.splitlines() if x.strip())
    return free, "nvidia-smi memory.free"


def budget(env: Mapping[str, str], runner: Runner | None = None,
           which: Callable[[str], str | None] = shutil.which) -> Budget:
    ram, src = read_meminfo(env)
    vram, vsrc = read_vram(runner, which)
    return Budget(ram, src, vram, vsrc)


def plan(info: ModelInfo, shape: Shape, weights: int, n_ctx: int, type_k: str, type_v: str, *,
         flash_attn: bool, n_ubatch: int, bud: Budget, on_gpu: bool, gpu_fraction: float,
         headroom: int, remote: tuple[Device, ...] = (), n_seq: int = 1, unified: bool = False,
         swa_full: bool = False, n_outputs: int | None = None) -> MemoryPlan:
    """The plan at n_ctx. On a GPU the offloaded share of weights and the KV cache count against
    VRAM (the larger constraint); otherwise everything counts against RAM. With RPC workers
    (`remote`) the offloaded share is spread over them (and local GPUs, listed in `remote` by the
    caller) and the rest, with the compute buffer, stays in local RAM."""
    cells = pad_ctx(n_ctx)
    kw = dict(n_seq=n_seq, unified=unified, swa_full=swa_full, n_ubatch=n_ubatch, flash_attn=flash_attn)
    detail = info.kv_memory(cells, type_k, type_v, **kw)
    kv = info.kv_cache_bytes(cells, type_k, type_v, **kw)
    comp = compute_bytes(info, shape, n_ctx, n_ubatch, flash_attn, n_seq, unified, n_outputs)
    more = dict(kv_detail=detail, sequences=f"{n_seq} sequences{', unified' if unified else ''}" if n_seq > 1 else "")
    if remote:
        off = spread(remote, int((weights + kv) * gpu_fraction))
        return MemoryPlan(n_ctx, cells, type_k, type_v, weights, kv, comp, "RAM", bud.ram_available, headroom, off,
                          **more)
    if on_gpu and bud.has_gpu:
        w = int(weights * gpu_fraction)
        return MemoryPlan(n_ctx, cells, type_k, type_v, w, int(kv * gpu_fraction), comp, "VRAM",
                          sum(bud.vram_free), headroom, **more)
    return MemoryPlan(n_ctx, cells, type_k, type_v, weights, kv, comp, "RAM", bud.ram_available, headroom, **more)


def largest_fitting(make: Callable[[int], MemoryPlan], cap: int, floor: int = CTX_PAD) -> MemoryPlan | None:
    """The plan with the largest ctx (a multiple of 256, at most cap) that fits; None if not even floor."""
    cap = max(cap, 1)
    top = make(cap)
    if top.fits:
        return top
    lo, hi = 0, cap // CTX_PAD          # in units of 256 tokens; lo fits (0 = nothing), hi does not
    if hi * CTX_PAD >= cap:
        hi = max(0, (cap - 1) // CTX_PAD) + 1
    best = None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        p = make(mid * CTX_PAD)
        if p.fits:
            lo, best = mid, p
        else:
            hi = mid
    if best is None and lo == 0:
        p = make(min(floor, cap))
        return p if p.fits else None
    return best


def gpu_fraction(n_gpu_layers: int | str, n_layer: int) -> float:
    if n_gpu_layers in ("auto", "all"):
        return 1.0
    n = int(n_gpu_layers)
    if n < 0:
        return 1.0
    return min(1.0, n / max(1, n_layer + 1))


def shape_from_header(h) -> Shape:
    arch = h.get("general.architecture") or ""
    toks = h.fields.get("tokenizer.ggml.tokens")
    n_vocab = int(getattr(toks, "count", 0) or 0) if toks is not None else 0
    if not n_vocab:
        n_vocab = int(h.get(f"{arch}.vocab_size") or 32000)
    ff = h.get(f"{arch}.feed_forward_length")
    n_ff = int(max(ff) if isinstance(ff, list) and ff else (ff or 0))
    return Shape(n_vocab=n_vocab, n_ff=n_ff)


def mib(n: float) -> str:
    return f"{n / MiB:,.1f} MiB" if n < 10 * 1024 * MiB else f"{n / 1024 / MiB:,.2f} GiB"
