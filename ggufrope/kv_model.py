"""llama.cpp's KV cache and recurrent state, per architecture family: how many cells and bytes it
allocates for K, V and the recurrent R/S state at a given n_ctx, n_seq (-np), n_ubatch, K/V types,
--swa-full and --kv-unified.

Read from the metadata the same way llama.cpp 0c1e570 does (paths inside vendor/llama.cpp of
llama-cpp-python 0.3.36); `KvShape.from_metadata` is fed the `{arch}.*` keys ModelFacts already
read, so this adds no header read. An architecture whose rule is not written here gets
`KvShape.family == "unknown"`, and `kv_plan` then returns `KvUnknown` instead of a number.
Pure Python: the planner and `inspect` import it without numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

# bytes per element of a KV cache type: ggml block size / bytes (ggml/src/ggml.c type_traits)
KV_CACHE_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18),
    "q4_1": (32, 20), "iq4_nl": (32, 18), "q5_0": (32, 22), "q5_1": (32, 24),
}
CTX_PAD = 256               # src/llama-context.cpp l.290: n_ctx = GGML_PAD(n_ctx, 256)
SWA_PAD = 256               # src/llama-kv-cache-iswa.cpp: "the SWA cache is always padded to 256"

# Architectures whose memory is one plain llama_kv_cache (src/llama-model.cpp create_memory,
# default branch: not recurrent, not hybrid, swa_type NONE, no layer reuse): checked by hand.
STANDARD = frozenset({
    "llama", "qwen2", "qwen3", "qwen2moe", "qwen3moe", "gemma", "granite", "granitemoe", "olmo",
    "stablelm", "internlm2", "phi2", "starcoder2", "deepseek", "mistral3", "smollm3", "exaone",
    "command-r", "baichuan", "orion", "minicpm", "gptneox", "falcon", "starcoder", "refact", "bloom",
    # phi3: a file's sliding_window is read and switched off (src/models/phi3.cpp l.13-23: swa_type
    # NONE, pattern 1), so every layer gets n_ctx cells
    "phi3",
    # each load_arch_hparams read by hand (src/models/<arch>.cpp): no SWA, no recurrent layers, no KV reuse,
    # no MLA keys; hunyuan-dense and ernie4_5-moe reuse hunyuan-vl's and ernie4_5's (models.h l.1978, l.2107).
    # nextn_predict_layers (glm4moe, bailingmoe2 ...): the MTP layers get no cells (create_memory
    # l.2795-2803 filters il < n_layer()), which _common's n_layer already leaves out
    "glm4", "glm4moe", "qwen2vl", "qwen3vl", "qwen3vlmoe", "ernie4_5", "ernie4_5-moe", "seed_oss",
    "minimax-m2", "olmoe", "phimoe", "hunyuan-moe", "hunyuan-dense", "dots1", "grok", "dbrx", "arcee",
    "apertus", "bailingmoe2", "graniteswitch",
})
# graniteswitch (src/models/granite-switch.cpp l.57-71): one more attention layer after the last, for the
# adapter router, with 1 K/V head of the model's head size; it is not an MTP layer (router_layer >= 0), so
# create_memory (l.2795) gives it cells like any other
ROUTER_LAYER = frozenset({"graniteswitch"})
# iSWA (llama_kv_cache_iswa): (default n_swa, default SWA pattern) per arch, from each arch's
# load_arch_hparams: src/models/gemma2.cpp l.4-12 (n_swa 4096, pattern 2),
# gemma3.cpp l.4-12 (SWA only when sliding_window > 0, pattern 6), cohere2.cpp l.4-11 (pattern 4),
# openai-moe.cpp l.6-9 (gpt-oss, pattern 2).
# olmo2.cpp l.6-16 (SWA only when sliding_window > 0, pattern 4; SWA layers: trained base, scale 1).
# llama4.cpp l.8-23: chunked attention (LLAMA_SWA_TYPE_CHUNKED) of 8192-token chunks, pattern 4 (3 chunked,
# 1 full); the iSWA cache sizes its chunked half like an SWA one (llama-kv-cache-iswa.cpp l.70).
# exaone4.cpp l.4-14: SWA (window 4096 unless sliding_window says, pattern 4) only at 64 layers (the 32B).
# gemma3n.cpp l.4-11: pattern 5, sliding_window required; SWA layers: rope.freq_base_swa or 10000, scale 1.
# cohere2moe.cpp l.13, l.27-32: sliding_window required, pattern 4 dense first; SWA layers: trained base and scale.
# smallthinker.cpp l.4-13: SWA only when sliding_window > 0, and then a 4096 window whatever the file says,
# pattern 4 dense first; SWA layers: trained base and scale.
# granite-swa.cpp l.16-19 and gemma4.cpp l.5-6, l.16: sliding_window and a per-layer pattern array required.
ISWA: dict[str, tuple[int, int]] = {"gemma2": (4096, 2), "gemma3": (0, 6), "cohere2": (0, 4), "gpt-oss": (0, 2),
                                    "olmo2": (0, 4), "llama4": (8192, 4), "exaone4": (4096, 4), "gemma3n": (0, 5),
                                    "cohere2moe": (0, 4), "smallthinker": (4096, 4), "granite_swa": (0, 0),
                                    "gemma4": (0, 0)}
SWA_OPTIONAL = frozenset({"gemma3", "olmo2", "smallthinker"})   # plain KV cache without a sliding_window > 0
FIXED_WINDOW = frozenset({"smallthinker"})     # any sliding_window > 0 reads as the default window
# set_swa_pattern(n, dense_first = true) (llama-hparams.cpp l.8-12): layer il is SWA when il % n != 0
DENSE_FIRST = frozenset({"cohere2moe", "smallthinker"})
SWA_ARRAY = frozenset({"granite_swa", "gemma4"})   # get_arr without a default: no array, no model
# Layers that hold K/V: the first n (llama-hparams.cpp l.321-331 has_kv); the later ones reuse layer
# n-2 (SWA) or n-1 (full) and add no cells (llama-model.cpp l.2780-2790 reuse, llama-kv-cache.cpp
# l.252-274). gemma3n.cpp l.7: n = 20; gemma4.cpp l.8-11: n = block_count - attention.shared_kv_layers.
KV_FROM_START: dict[str, int] = {"gemma3n": 20}
# MLA: K only, no V, when key_length_mla and value_length_mla are both present
# (src/models/deepseek2.cpp l.16-17; llama-hparams.cpp is_mla; llama-kv-cache.cpp l.231 has_v = !is_mla)
# mistral4 is deepseek2's loader (models.h l.1399-1401). deepseek32 (DSA) must be MLA (deepseek32.cpp
# l.60-62) and adds a K-only "lightning indexer" cache of one attention.indexer.key_length head per
# layer, n_ctx cells like the MLA cache (create_memory l.2398-2450, llama-kv-cache-dsa.cpp l.31-50)
MLA = frozenset({"deepseek2", "mistral4", "deepseek32"})
MLA_REQUIRED = frozenset({"deepseek32"})
# Pure recurrent (llm_arch_is_recurrent -> llama_memory_recurrent, src/llama-arch.cpp l.1071-1083):
# Mamba-style state, or RWKV's token shift and wkv state.
RECURRENT = frozenset({"mamba", "mamba2", "rwkv6", "rwkv7"})
# Hybrid (llm_arch_is_hybrid -> llama_memory_hybrid, src/llama-model.cpp create_memory l.2678-2774): a
# KV cache for the attention layers and recurrent state for the others; which layer holds which is
# per arch (_hybrid_layers).
HYBRID = frozenset({"jamba", "qwen3next", "qwen35", "qwen35moe", "granitehybrid", "nemotron_h",
                    "nemotron_h_moe", "falcon-h1", "lfm2", "lfm2moe"})


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def _per_layer(v: Any, n: int) -> tuple[int, ...]:
    """llama_model_loader::get_key_or_arr: an array gives one value per layer, a scalar all."""
    if isinstance(v, list):
        vals = [_int(x) for x in v[:n]]
        return tuple(vals + [0] * (n - len(vals)))
    return (_int(v),) * n


@dataclass(frozen=True)
class KvShape:
    """What llama.cpp's memory allocation depends on, read from the file's metadata."""

    arch: str
    family: str                       # standard | iswa | mla | recurrent | hybrid | unknown
    reason: str                       # why unknown ("" otherwise)
    n_layer: int                      # layers that get memory (n_layer_all - nextn layers)
    n_head_kv: tuple[int, ...]        # per layer
    is_swa: tuple[bool, ...]          # per layer
    head_k: int
    head_v: int
    head_k_swa: int
    head_v_swa: int
    n_swa: int = 0
    swa_pattern: str = ""             # as the file gives it: "every 6th full", "array"
    n_embd_r: int = 0                 # recurrent conv state per sequence and layer (f32 elements)
    n_embd_s: int = 0                 # recurrent ssm state per sequence and layer
    is_recr: tuple[bool, ...] = ()    # per layer: holds recurrent state (R/S)
    is_attn: tuple[bool, ...] = ()    # per layer: holds K/V; () = every layer that is not recurrent
    # RoPE of the SWA layers, fixed at load (llama-model.cpp l.2329-2335 get_rope_freq_base/scale:
    # SWA layers use hparams' *_train_swa; only full-attention layers use the runtime cparams)
    freq_base_swa: float | None = None
    freq_scale_swa: float | None = None
    freq_base_swa_source: str = ""
    indexer_k: int = 0                # deepseek32: K width of the indexer cache per layer (0: none)

    @property
    def swa_layers(self) -> tuple[int, ...]:
        return tuple(il for il, s in enumerate(self.is_swa) if s)

    @property
    def full_layers(self) -> tuple[int, ...]:
        return tuple(il for il, s in enumerate(self.is_swa) if not s)

    @property
    def kv_layers(self) -> tuple[int, ...]:
        """The layers llama.cpp gives K/V cells (its layer filters)."""
        if self.is_attn:
            return tuple(il for il, a in enumerate(self.is_attn) if a)
        recr = self.is_recr or (False,) * self.n_layer
        return tuple(il for il in range(self.n_layer) if not recr[il])

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], arch: str) -> KvShape:
        def g(key: str) -> Any:
            return meta.get(f"{arch}.{key}")
        base = _common(g, arch)
        if arch in RECURRENT or arch in HYBRID:
            return cls(**base, **_state(g, arch, base["n_layer"], base["n_head_kv"]))
        if arch in ISWA:
            return cls(**{**base, **_iswa(g, arch, base["n_layer"])})
        if arch in MLA:
            return cls(**base, **_mla(g, arch))
        if arch in STANDARD:
            return cls(family="standard", reason="", **base)
        return cls(family="unknown", reason=f"llama.cpp's memory rule for {arch or 'this file'!r} is not modelled",
                   **base)

    @property
    def known(self) -> bool:
        return self.family != "unknown"

    def naive_bytes_per_cell(self, type_k: str = "f16", type_v: str | None = None) -> int:
        """Every layer, full attention, K and V: the llama-shaped figure (an upper bound for iSWA)."""
        return sum(_row(type_k, h * self.head_k) + _row(type_v or type_k, h * self.head_v) for h in self.n_head_kv)


def _common(g, arch: str) -> dict[str, Any]:
    """The fields every family reads (src/llama-model.cpp load_hparams l.1320-1470)."""
    n_all = min(_int(g("block_count")), 4096)   # as ModelInfo: far beyond LLAMA_MAX_LAYERS is a broken file
    nextn = min(_int(g("nextn_predict_layers")), n_all)      # l.1329; n_layer() = all - nextn
    n_layer = n_all - nextn
    n_embd = _int(g("embedding_length"))
    # l.1395-1404: head_count (key or per-layer array), head_count_kv defaults to it
    n_head = _per_layer(g("attention.head_count"), n_layer)
    kv = g("attention.head_count_kv")
    n_head_kv = n_head if kv is None else _per_layer(kv, n_layer)
    if arch in ROUTER_LAYER and n_layer:     # granite-switch.cpp l.61-70: n_layer() real layers + the router
        n_layer, n_head, n_head_kv = n_layer + 1, n_head + (1,), n_head_kv + (1,)
    # l.1436-1466: head dims default to n_embd / n_head(0); *_swa default to the full ones
    h0 = n_head[0] if n_head else 0
    hk = _int(g("attention.key_length")) or (n_embd // h0 if h0 else 0)
    hv = _int(g("attention.value_length")) or (n_embd // h0 if h0 else 0)
    return dict(arch=arch, n_layer=n_layer, n_head_kv=n_head_kv, head_k=hk, head_v=hv,
                head_k_swa=_int(g("attention.key_length_swa")) or hk,
                head_v_swa=_int(g("attention.value_length_swa")) or hv, is_swa=(False,) * n_layer)


def _mla(g, arch: str) -> dict[str, Any]:
    """MLA when key_length_mla and value_length_mla are both there; older conversions have plain K/V."""
    if not (_int(g("attention.key_length_mla")) and _int(g("attention.value_length_mla"))):
        if arch in MLA_REQUIRED:
            return dict(family="unknown", reason=f"{arch} without the MLA keys (llama.cpp will not load it)")
        return dict(family="standard", reason="")
    if arch == "deepseek32":     # deepseek32.cpp l.27-28: a required key
        idx = _int(g("attention.indexer.key_length"))
        if not idx:
            return dict(family="unknown", reason="deepseek32 without attention.indexer.key_length")
        return dict(family="mla", reason="", indexer_k=idx)
    return dict(family="mla", reason="")


def _state(g, arch: str, n_layer: int, n_head_kv: tuple[int, ...]) -> dict[str, Any]:
    """Recurrent and hybrid families: the state sizes and which layer holds what."""
    r, s = _state_sizes(g)
    sizes = dict(reason="", n_embd_r=r, n_embd_s=s)
    if arch.startswith("rwkv") and not _int(g("wkv.head_size")):
        # rwkv6.cpp l.6 / rwkv7.cpp l.6 require it: llama.cpp does not load such a file, so no number
        return dict(family="unknown", reason=f"{arch} without wkv.head_size (llama.cpp will not load it)")
    if arch == "lfm2" and _int(g("attention.sliding_window")):
        # src/models/lfm2.cpp l.26-31: its attention layers slide, which makes llama_memory_hybrid_iswa
        return dict(family="unknown", reason="lfm2 with attention.sliding_window (hybrid iSWA) is not modelled")
    if arch in RECURRENT:      # llama-model.cpp l.1384: every layer of a recurrent arch is recurrent
        return dict(family="recurrent", is_recr=(True,) * n_layer, **sizes)
    recr, attn = _hybrid_layers(g, arch, n_layer, n_head_kv)
    return dict(family="hybrid", is_recr=recr, is_attn=attn, **sizes)


def _state_sizes(g) -> tuple[int, int]:
    """(n_embd_r, n_embd_s): f32 elements of R and S per sequence and layer, in the order of
    llama-hparams.cpp l.208-257 (the branches for Kimi's KDA and MiniMax's linear attention are not here)."""
    n_embd = _int(g("embedding_length"))
    wkv = _int(g("wkv.head_size"))
    if wkv:           # l.209-212, l.237-240, RWKV: token_shift_count (default 2) x n_embd; n_embd x head size
        t = g("token_shift_count")
        return (_int(t) if t is not None else 2) * n_embd, n_embd * wkv
    d_conv, d_inner = _int(g("ssm.conv_kernel")), _int(g("ssm.inner_size"))
    d_state, n_group = _int(g("ssm.state_size")), _int(g("ssm.group_count"))
    l_cache = _int(g("shortconv.l_cache"))
    if l_cache:       # l.214-217, lfm2's short convolution: the last l_cache - 1 inputs
        return n_embd * (l_cache - 1), d_state * d_inner
    # l.229 and l.257, Mamba (qwen3next's gated delta net reads the same ssm.* keys: a conv over
    # d_inner + 2 n_group d_state channels, a d_state x d_inner state)
    return max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state), d_state * d_inner


def _hybrid_layers(g, arch: str, n: int, n_head_kv: tuple[int, ...]) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """(recurrent, attention) per layer, as each arch's load_arch_hparams marks is_recr and
    create_memory (src/llama-model.cpp l.2688-2712) filters the two caches."""
    if arch in ("qwen3next", "qwen35", "qwen35moe"):
        # src/models/qwen3next.cpp l.16-23 (qwen35.cpp l.16-23, qwen35moe.cpp l.19-26): the bool array
        # attention.recurrent_layers, else every full_attention_interval-th layer (default 4) is
        # attention; create_memory l.2698-2704 filters both caches by is_recr
        arr = g("attention.recurrent_layers")
        if isinstance(arr, list):
            recr = tuple(bool(x) for x in arr[:n]) + (False,) * max(0, n - len(arr))
        else:
            k = _int(g("full_attention_interval")) or 4
            recr = tuple((il + 1) % k != 0 for il in range(n))
        return recr, tuple(not r for r in recr)
    if arch == "falcon-h1":
        # src/models/falcon-h1.cpp l.14 and create_memory l.2688-2690: every layer holds both
        return (True,) * n, (True,) * n
    if arch in ("nemotron_h", "nemotron_h_moe"):
        # src/models/nemotron-h.cpp l.14-16 (nemotron_h_moe reuses it, models.h l.1545-1547): Mamba2
        # when head_count_kv and feed_forward_length are 0;
        # create_memory l.2691-2697: attention = not recurrent and no FFN (an MLP layer holds neither)
        n_ff = _per_layer(g("feed_forward_length"), n)
        return (tuple(h == 0 and f == 0 for h, f in zip(n_head_kv, n_ff)),
                tuple(h != 0 and f == 0 for h, f in zip(n_head_kv, n_ff)))
    # jamba (src/models/jamba.cpp l.11-13), granitehybrid (granite-hybrid.cpp l.23-25), lfm2
    # (lfm2.cpp l.11-13), lfm2moe (lfm2moe.cpp l.12-14): a layer with head_count_kv 0 is recurrent;
    # llama-memory-hybrid.cpp l.47-49, l.60-62: the default filters split on is_recr
    recr = tuple(h == 0 for h in n_head_kv)
    return recr, tuple(not r for r in recr)


def _iswa(g, arch: str, n_layer: int) -> dict[str, Any]:
    """The iSWA families: window, which layers slide, and the SWA layers' RoPE."""
    n_swa = _window(g, arch, n_layer)
    if n_swa == 0:
        return dict(family="standard", reason="")
    if n_swa is None:
        return dict(family="unknown", reason=f"{arch} without attention.sliding_window")
    layers = _swa_layers(g, arch, n_layer)
    if layers is None:
        return dict(family="unknown", reason=f"{arch} without an attention.sliding_window_pattern array "
                                             "(llama.cpp will not load it)")
    swa, desc = layers
    if not any(swa):     # llama-model.cpp l.2807: GGML_ASSERT(is_swa_any()), llama.cpp aborts
        return dict(family="unknown", reason=f"{arch} with no sliding-window layer (llama.cpp aborts)")
    fb, fs, src = _swa_rope(g, arch)
    kv_n = KV_FROM_START.get(arch)
    if arch == "gemma4":
        kv_n = n_layer - _int(g("attention.shared_kv_layers"))
    if kv_n is not None and kv_n < 2:     # llama-model.cpp l.2782: GGML_ASSERT(n_layer_kv_from_start >= 2)
        return dict(family="unknown", reason=f"{arch} with fewer than 2 layers holding K/V (llama.cpp aborts)")
    kv = {"is_attn": tuple(il < kv_n for il in range(n_layer))} if kv_n is not None else {}
    return dict(is_swa=swa, family="iswa", reason="", n_swa=n_swa, swa_pattern=desc,
                freq_base_swa=fb, freq_scale_swa=fs, freq_base_swa_source=src, **kv)


def _window(g, arch: str, n_layer: int) -> int | None:
    """The window llama.cpp uses; 0: it keeps one plain cache; None: a required key is missing."""
    raw = g("attention.sliding_window")
    n_swa_default = ISWA[arch][0]
    if arch == "llama4":   # llama4.cpp l.8-14: sliding_window 0 turns chunking off, any other value reads as 8192
        return 0 if raw is not None and not _int(raw) else n_swa_default
    if arch == "exaone4" and n_layer != 64:     # exaone4.cpp l.4: other sizes keep one plain cache
        return 0
    if arch in SWA_OPTIONAL and not _int(raw):
        return 0                                # gemma3.cpp l.10-11, olmo2.cpp l.14-15, smallthinker.cpp l.6
    if arch in FIXED_WINDOW:
        return n_swa_default                    # smallthinker.cpp l.8
    return _int(raw) or n_swa_default or None


def _swa_layers(g, arch: str, n_layer: int) -> tuple[tuple[bool, ...], str] | None:
    """Which layers slide. llama-model.cpp l.3434-3441 load_swa_pattern: a per-layer bool array,
    else an integer pattern (default per arch); llama-hparams.cpp l.8-22 set_swa_pattern: layer il
    is SWA when il % n < n - 1 (dense first: il % n != 0); n == 0 makes every layer SWA."""
    pat = g("attention.sliding_window_pattern")
    if isinstance(pat, list):
        swa = tuple(bool(x) for x in pat[:n_layer]) + (False,) * max(0, n_layer - len(pat))
        return swa, "per-layer array"
    if arch in SWA_ARRAY:
        return None
    n = _int(pat) if pat is not None else ISWA[arch][1]
    if arch in DENSE_FIRST:
        swa = tuple(n == 0 or il % n != 0 for il in range(n_layer))
        desc = f"pattern {n}, dense first"
    else:
        swa = tuple(n == 0 or (il % n < n - 1) for il in range(n_layer))
        desc = f"pattern {n}"
    return swa, f"chunked, {desc}" if arch == "llama4" else desc


def _f(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _swa_rope(g, arch: str) -> tuple[float, float, str]:
    """(freq_base, freq_scale, where the base comes from) of the SWA layers, as llama.cpp loads them.
    gemma3 (src/models/gemma3.cpp l.9): rope.freq_base_swa, else llama-hparams.h l.151-153's
    defaults 10000 and scale 1 (gemma3n, gemma4 too). gemma2/cohere2/gpt-oss/llama4/exaone4/cohere2moe/
    smallthinker (gemma2.cpp l.8-11, cohere2.cpp l.7-10, openai-moe.cpp l.11-13, llama4.cpp l.21-23,
    exaone4.cpp l.9-11, cohere2moe.cpp l.30-32, smallthinker.cpp l.11-13): the trained base and
    scale (llama-model.cpp l.1410-1425: freq_base default 10000; scale = 1/rope.scaling.factor, else
    1/rope.scale_linear, 0 -> 1), the base overridden by rope.freq_base_swa."""
    key = _f(g("rope.freq_base_swa"))
    if arch == "olmo2":
        base = _f(g("rope.freq_base")) or 10000.0
        return (key, 1.0, "rope.freq_base_swa") if key else (base, 1.0, "the trained rope.freq_base; no rope.freq_base_swa")
    if arch in ("gemma3", "gemma3n", "gemma4"):      # gemma3n.cpp l.10, gemma4.cpp l.14: the same rule
        return (key, 1.0, "rope.freq_base_swa") if key else (10000.0, 1.0, f"{arch}'s built-in 10000")
    if arch == "granite_swa":   # granite-swa.cpp reads no SWA RoPE key: llama-hparams.h l.151-153's defaults
        return 10000.0, 1.0, "llama.cpp's default 10000 (granite_swa reads no SWA base)"
    base = _f(g("rope.freq_base")) or 10000.0
    factor = _f(g("rope.scaling.factor"))
    if factor is None:
        factor = _f(g("rope.scale_linear"))
    scale = 1.0 if not factor else 1.0 / factor
    if key:
        return key, scale, "rope.freq_base_swa"
    return base, scale, "the trained rope.freq_base; no rope.freq_base_swa"


def _row(t: str, n: int) -> int:
    """ggml_row_size(type, n): n elements in blocks (ggml/src/ggml.c)."""
    blk, size = KV_CACHE_TYPES[t]
    return n // blk * size


@dataclass(frozen=True)
class CacheBytes:
    """One llama_kv_cache (or the recurrent memory): what its `size = ...` log line says."""

    name: str             # "kv" | "kv full" | "kv swa" | "recurrent"
    cells: int            # per stream (the log's "cells")
    streams: int          # 1 when unified, else n_seq
    layers: int
    k: int                # bytes (R for recurrent)
    v: int                # bytes (S for recurrent)

    @property
    def total(self) -> int:
        return self.k + self.v


@dataclass(frozen=True)
class KvPlan:
    caches: tuple[CacheBytes, ...]
    n_ctx: int            # llama.cpp's n_ctx after padding

    @property
    def total(self) -> int:
        return sum(c.total for c in self.caches)

    @property
    def cells(self) -> int:
        """Cells of the largest attention cache (what a one-number summary shows)."""
        return max((c.cells * c.streams for c in self.caches if c.name != "recurrent"), default=0)

    known = True


@dataclass(frozen=True)
class KvUnknown:
    """No rule for this architecture: rendered as such, never as a number."""

    arch: str
    reason: str
    n_ctx: int
    total = None
    cells = 0
    caches = ()
    known = False


# llama-context.cpp l.3816-3819: flash attention is forced off for grok (so V is transposed), and
# l.3840-3848 then refuse a quantized V cache: no context, so no number
NO_FLASH_ATTN = frozenset({"grok"})
UNQUANTIZED = frozenset({"f32", "f16", "bf16"})


def ctx_cells(n_ctx: int, n_seq: int = 1, unified: bool = False) -> tuple[int, int]:
    """(n_ctx, cells per stream) as llama.cpp sets them (src/llama-context.cpp l.290-304): n_ctx
    padded to 256; unified: one stream of n_ctx cells; else n_seq streams of pad(n_ctx/n_seq, 256)."""
    n = (max(n_ctx, 1) + CTX_PAD - 1) // CTX_PAD * CTX_PAD
    if unified or n_seq <= 1:
        return n, n
    per = (n // n_seq + CTX_PAD - 1) // CTX_PAD * CTX_PAD
    return per * n_seq, per


def kv_plan(shape: KvShape, n_ctx: int, *, type_k: str = "f16", type_v: str | None = None, n_seq: int = 1,
            n_ubatch: int = 512, swa_full: bool = False, unified: bool = False,
            flash_attn: bool = True) -> KvPlan | KvUnknown:
    """The memory llama.cpp allocates for this model at n_ctx (src/llama-model.cpp create_memory)."""
    type_v = type_v or type_k
    n_ctx_p, size = ctx_cells(n_ctx, n_seq, unified)
    if not shape.known:
        return KvUnknown(shape.arch, shape.reason, n_ctx_p)
    if shape.arch in NO_FLASH_ATTN:
        if type_v not in UNQUANTIZED:
            return KvUnknown(shape.arch, f"llama.cpp runs {shape.arch} without flash attention and refuses a "
                                         f"quantized V cache ({type_v})", n_ctx_p)
        flash_attn = False
    n_seq = max(1, n_seq)
    streams = 1 if unified else n_seq       # llama-kv-cache.cpp l.84: n_stream(unified ? 1 : n_seq_max)
    # llama-memory-recurrent.cpp l.101-103: mem_size = max(1, n_seq_max) rows of f32 R and S per
    # recurrent layer (its log line counts every layer of the model, the bytes only these)
    n_recr = sum(shape.is_recr)
    recr = CacheBytes("recurrent", n_seq, 1, n_recr, n_recr * n_seq * shape.n_embd_r * 4,
                      n_recr * n_seq * shape.n_embd_s * 4)
    if shape.family == "recurrent":
        return KvPlan((recr,), n_ctx_p)
    # ubatch is capped by the batch (default 2048) inside llama.cpp; callers pass what they run with
    v_trans = not flash_attn
    v_max = max((h * (shape.head_v_swa if s else shape.head_v) for h, s in zip(shape.n_head_kv, shape.is_swa)),
                default=0)

    def cache(name: str, layers: list[int], cells: int) -> CacheBytes:
        k = v = 0
        for il in layers:
            h, swa = shape.n_head_kv[il], shape.is_swa[il]
            k += _row(type_k, h * (shape.head_k_swa if swa else shape.head_k))
            if shape.family != "mla":        # llama-kv-cache.cpp l.231: MLA caches K only
                # l.209-210: a transposed V (no flash attention) is padded to the widest layer
                v += _row(type_v, v_max if v_trans else h * (shape.head_v_swa if swa else shape.head_v))
        return CacheBytes(name, cells, streams, len(layers), k * cells * streams, v * cells * streams)

    if shape.family == "iswa":
        # llama-kv-cache-iswa.cpp: size_swa = PAD(min(size_base, n_swa*(unified ? n_seq : 1) + n_ubatch), 256)
        swa = -(-min(size, shape.n_swa * (n_seq if unified else 1) + n_ubatch) // SWA_PAD) * SWA_PAD
        if swa_full:
            swa = size
        full_l = [il for il in shape.kv_layers if not shape.is_swa[il]]
        swa_l = [il for il in shape.kv_layers if shape.is_swa[il]]
        return KvPlan((cache("kv full", full_l, size), cache("kv swa", swa_l, swa)), n_ctx_p)
    if shape.family == "hybrid":     # llama-memory-hybrid.cpp l.34-65: attention KV + recurrent state
        return KvPlan((cache("kv", list(shape.kv_layers), size), recr), n_ctx_p)
    main = cache("kv", list(shape.kv_layers), size)
    if shape.indexer_k:     # llama-kv-cache-dsa.cpp l.43-50: one K head of indexer_k per layer, no V (MLA)
        k = len(shape.kv_layers) * _row(type_k, shape.indexer_k) * size * streams
        return KvPlan((main, CacheBytes("kv indexer", size, streams, len(shape.kv_layers), k, 0)), n_ctx_p)
    return KvPlan((main,), n_ctx_p)
