"""Checks before launch, as data. Each returns Findings; an error stops the launch, a warning
is printed and the launch goes on. Every finding names the field (and so, through the
resolved preset, the file and line) to change.

1. the model is given, exists and is GGUF                (model_path.resolve_model, prepare)
2. quantized K/V cache: the block size divides the head dims (llama.cpp refuses otherwise:
   "K cache type q8_0 with block size 32 does not divide n_embd_head_k")
3. a quantized V cache has flash attention               (llama.cpp: "quantized V cache requires
   flash_attn to be enabled")
4. on CUDA, the build has flash-attention kernels for the K/V pair (BuildSpec.has_fa_pair;
   without them llama.cpp silently falls back to a slow path)
5. a context beyond the trained context without RoPE scaling (or beyond the scaled context)
6. the memory plan fits free RAM / VRAM                   (memory.py; ctx = "auto" picks)
6b. a quantized K cache whose measured KL divergence is large at this length (kv_measured.json)
6c. sequences: parallel on an engine that decodes one, slots that split the context, and -np /
    -kvu / --swa-full in extra arguments (the memory plan would not see them)
7. apply = "patched" on a split model, longrope without its factor tensors, the python engine
   without llama-cpp-python
"""
from __future__ import annotations

from dataclasses import dataclass

from ggufrope.presets.preset import Preset
from ggufrope.settings import KV_CACHE_TYPES, ModelInfo, RopeSettings

QUANTIZED = {t for t, (blk, _) in KV_CACHE_TYPES.items() if blk > 1}
FA_KERNEL_TYPES = ("f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0")   # ggufrope.build.spec.FA_TYPES


@dataclass(frozen=True)
class Finding:
    level: str          # error, warning, note
    field: str | None   # the preset field to change
    message: str

    def render(self, p: Preset) -> str:
        return f"{p.res.at(self.field)}: {self.message}" if self.field else self.message


def resolved_flash_attn(p: Preset) -> tuple[str, list[Finding]]:
    """What -fa will be: a quantized V cache turns auto into on (llama.cpp would too)."""
    if p.cache_type_v in QUANTIZED:
        if p.flash_attn == "off":
            return "off", [Finding("error", "flash_attn",
                                   f"cache_type_v {p.cache_type_v} is quantized, and llama.cpp needs flash attention "
                                   f"for a quantized V cache (\"quantized V cache requires flash_attn to be "
                                   f"enabled\"); set flash_attn = \"on\" or cache_type_v = \"f16\"")]
        if p.flash_attn == "auto":
            return "on", [Finding("note", "flash_attn",
                                  f"auto -> on: a quantized V cache ({p.cache_type_v}) needs flash attention")]
    return p.flash_attn, []


def head_dims(p: Preset, info: ModelInfo) -> list[Finding]:
    out = []
    for which, t, hd, fld in (("K", p.cache_type_k, info.head_dim_k, "cache_type_k"),
                              ("V", p.cache_type_v, info.head_dim_v, "cache_type_v")):
        blk = KV_CACHE_TYPES[t][0]
        if blk > 1 and hd % blk:
            suffix = "k" if which == "K" else "v"
            out.append(Finding("error", fld,
                               f"{which} cache type {t} with block size {blk} does not divide n_embd_head_{suffix}={hd} "
                               f"(llama.cpp refuses to create the context); use f16, or a type whose block divides {hd}"))
    return out


def cuda_fa_pair(p: Preset, fa: str) -> list[Finding]:
    if p.build.backend != "cuda" or fa == "off":
        return []
    k, v = p.cache_type_k, p.cache_type_v
    if k not in QUANTIZED and v not in QUANTIZED:
        return []
    for t, fld in ((k, "cache_type_k"), (v, "cache_type_v")):
        if t not in FA_KERNEL_TYPES:
            return [Finding("error", fld, f"CUDA has no flash-attention kernel for {t}; "
                                          f"use one of {', '.join(FA_KERNEL_TYPES)}")]
    spec = p.build_spec()
    if not spec.has_fa_pair(k, v):
        return [Finding("error", "build.kv_pairs",
                        f"the CUDA build this preset asks for has no flash-attention kernels for K {k} / V {v} "
                        f"(compiled pairs: {', '.join(spec.fa_pairs) if isinstance(spec.fa_pairs, tuple) else 'all'}); "
                        f"llama.cpp would fall back to a slow path. Add build.kv_pairs = [\"{k}-{v}\"], "
                        f"then `ggufrope build --for-preset {p.name}`")]
    return []


def context(p: Preset, n_ctx: int, trained: int, cap: int, rope: RopeSettings, file_rope: RopeSettings) -> list[Finding]:
    fld = "ctx"
    eff_type = rope.scaling_type or file_rope.effective_type
    eff_factor = rope.factor if (rope.scaling_factor is not None or rope.scale_linear is not None) else file_rope.factor
    scaled = eff_type != "none" and eff_factor != 1.0
    base_changed = rope.freq_base is not None and rope.freq_base != file_rope.freq_base
    if n_ctx > trained and not scaled and not base_changed:
        return [Finding("warning", fld,
                        f"ctx {n_ctx} is beyond the trained context {trained} and no RoPE scaling is set: "
                        f"positions past {trained} were never seen in training and output degrades; "
                        f"add rope.plan = \"yarn:{n_ctx}\" (or use ctx <= {trained})")]
    if n_ctx > cap:
        return [Finding("warning", fld, f"ctx {n_ctx} is beyond the {cap} tokens the RoPE scaling reaches")]
    return []


def kv_quality(p: Preset, n_ctx: int, data: dict | None = None) -> list[Finding]:
    """A warning, citing the measurement, when the K cache type was measured (kv_measured.json, an
    `eval kv` baseline) to move the next-token distribution by more than its warn_mean_kld at the
    measured length nearest below n_ctx."""
    if p.cache_type_k not in QUANTIZED:
        return []
    from ggufrope.presets import kv_measured
    data = kv_measured.load() if data is None else data
    row = kv_measured.lookup(p.cache_type_k, p.cache_type_v, n_ctx, data)
    limit = data.get("warn_mean_kld")
    if row is None or limit is None or row["kld_mean"] <= limit:
        return []
    return [Finding("warning", "cache_type_k",
                    f"cache_type_k {p.cache_type_k} at ctx {n_ctx}: measured {kv_measured.describe(row, data.get('model'))} "
                    f"(above {limit}; {data.get('source', 'ggufrope eval kv')}); q8_0 K costs far less")]


# llama.cpp options the memory plan reads from preset fields instead (common/arg.cpp)
SEQUENCE_OPTIONS = {"-np": "parallel", "--parallel": "parallel", "-kvu": "kv_unified", "--kv-unified": "kv_unified",
                    "-no-kvu": "kv_unified", "--no-kv-unified": "kv_unified", "--swa-full": "swa_full"}


def sequences(p: Preset, n_ctx: int, extra: tuple[str, ...] | list[str] = ()) -> list[Finding]:
    """How the context is shared: parallel that the engine ignores, slots that each get a share of
    n_ctx (no unified buffer), and sequence options given as extra arguments."""
    out: list[Finding] = []
    for args, fld, where in ((p.extra_args, "extra_args", "in extra_args"), (extra, None, "after --")):
        for a in args:
            name = SEQUENCE_OPTIONS.get(a.partition("=")[0])
            if name:
                out.append(Finding("warning", fld, f"{a} {where}: the memory plan does not see it; "
                                                   f"set {name} instead"))
    if p.engine != "server" and p.parallel not in ("auto", 1):
        out.append(Finding("note", "parallel", f"parallel {p.parallel} applies to llama-server (`ggufrope serve`); "
                                               f"engine {p.engine} decodes one sequence"))
    n, unified = p.sequences()
    if n > 1 and not unified:
        out.append(Finding("note", "kv_unified", f"{n} slots without a unified KV buffer: each gets "
                                                 f"{n_ctx // n} of the {n_ctx} tokens"))
    return out
