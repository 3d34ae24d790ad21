"""Which layers get which RoPE, as llama.cpp's graph applies it (not only as it loads it).

llama_model::get_rope_freq_base/scale (src/llama-model.cpp l.2329-2335) give a sliding-window layer
the *_swa values fixed at load and every other layer the context's (the file's rope.* keys and the
runtime --rope-* / --yarn-* flags). Most SWA graphs call them per layer; some do not, and some
layers get no RoPE at all (NoPE), so the rule is per architecture (0c1e570, src/models/*.cpp):

  gemma2, gemma3, gemma3n, gemma4, gpt-oss   get_rope_freq_base/scale per layer
  llama4 (chunked), smallthinker (iSWA)      the same, and the full-attention layers are NoPE
                                             (llama4.cpp l.140-141: (il+1) % n_no_rope_layer_step;
                                             smallthinker.cpp l.106-107: il % n_no_rope_layer_step)
  cohere2, exaone4                           SWA layers: the context's base/scale; full: NoPE
                                             (cohere2.cpp l.89-101, exaone4.cpp l.111)
  cohere2moe                                 the same, but the first leading_dense_block_count
                                             layers get RoPE (cohere2moe.cpp l.171-184)
  olmo2 (iSWA)                               SWA layers: the context's base, scale 1 and attention
                                             factor 1 (olmo2.cpp l.117-130)
  granite_swa                                the context's base/scale where attention.rope_pattern
                                             is set (granite-swa.cpp l.211, llama-hparams.cpp has_rope)
  granite, granitehybrid, graniteswitch      rope.scaling.finetuned = false: no RoPE anywhere
                                             (granite.cpp l.33-36: the key fills rope_pattern)
Pure Python, no header read: ModelInfo.from_metadata calls rope_groups with what it read."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

CONTEXT, FIXED, CONTEXT_BASE, NONE = "context", "fixed", "context_base", "none"
FOLLOWS = {
    CONTEXT: "rope.freq_base, rope.scaling.* and the runtime --rope-* / --yarn-* flags",
    FIXED: "fixed when the model loads: runtime --rope-* / --yarn-* flags do not reach these layers",
    CONTEXT_BASE: "the context's freq_base (runtime flags reach it) with freq_scale 1 and attention factor 1: "
                  "RoPE scaling does not reach these layers",
    NONE: "no RoPE (NoPE): these layers see positions only through the others",
}
ROPE_SWITCH = frozenset({"granite", "granitehybrid", "graniteswitch"})
NOPE_FULL_SWA_CONTEXT = frozenset({"cohere2", "exaone4", "cohere2moe"})


@dataclass(frozen=True)
class LayerGroup:
    kind: str                    # "full" (full-attention layers) or "swa"
    layers: tuple[int, ...]
    rope: str                    # CONTEXT, FIXED, CONTEXT_BASE or NONE
    freq_base: float | None = None     # FIXED: the values loaded (KvShape.freq_base_swa / _scale_swa)
    freq_scale: float | None = None
    freq_base_source: str = ""

    @property
    def follows(self) -> str:
        return FOLLOWS[self.rope]


def _uses_rope(meta: Mapping[str, Any], arch: str, kv, finetuned: Any) -> list[bool]:
    n, swa, iswa = kv.n_layer, kv.is_swa, kv.family == "iswa"
    if arch in ROPE_SWITCH and finetuned is False:
        return [False] * n
    if arch == "llama4":
        step = 4 if iswa else n       # n_no_rope_layer_step: 4 by default, n_layer without chunking
        return [step > 0 and (il + 1) % step != 0 for il in range(n)]
    if arch == "smallthinker" and iswa:
        return [il % 4 != 0 for il in range(n)]
    if arch in NOPE_FULL_SWA_CONTEXT and iswa:
        lead = meta.get(f"{arch}.leading_dense_block_count") if arch == "cohere2moe" else 0
        lead = lead if isinstance(lead, int) and not isinstance(lead, bool) else 0
        return [swa[il] or il < lead for il in range(n)]
    if arch == "granite_swa":
        pat = meta.get(f"{arch}.attention.rope_pattern")
        if isinstance(pat, list):
            return [bool(pat[il]) if il < len(pat) else False for il in range(n)]
    return [True] * n


def _swa_rule(arch: str) -> str:
    if arch in NOPE_FULL_SWA_CONTEXT or arch == "granite_swa":
        return CONTEXT
    return CONTEXT_BASE if arch == "olmo2" else FIXED


def rope_groups(meta: Mapping[str, Any], arch: str, kv, finetuned: Any = None) -> tuple[LayerGroup, ...]:
    """The layers grouped by (full/SWA, where their RoPE comes from), in layer order of first
    appearance; () when every layer takes the context's RoPE (the plain case)."""
    if kv is None or not kv.n_layer:
        return ()
    use = _uses_rope(meta, arch, kv, finetuned)
    swa_rule = _swa_rule(arch)
    keys: dict[tuple[str, str], list[int]] = {}
    for il in range(kv.n_layer):
        kind = "swa" if kv.is_swa[il] else "full"
        rule = NONE if not use[il] else (swa_rule if kind == "swa" else CONTEXT)
        keys.setdefault((kind, rule), []).append(il)
    if list(keys) == [("full", CONTEXT)]:
        return ()
    out = []
    for (kind, rule), layers in keys.items():
        fixed = rule == FIXED
        out.append(LayerGroup(kind, tuple(layers), rule, kv.freq_base_swa if fixed else None,
                              kv.freq_scale_swa if fixed else None, kv.freq_base_swa_source if fixed else ""))
    return tuple(out)


def reached(groups: tuple[LayerGroup, ...]) -> tuple[int, ...]:
    """The layers a change of the context's RoPE scaling reaches (CONTEXT groups)."""
    return tuple(sorted(il for g in groups if g.rope == CONTEXT for il in g.layers))
