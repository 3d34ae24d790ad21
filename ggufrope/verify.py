"""`verify`: hold llama.cpp's own resolution of a model (ggufrope-probe) against the file's
metadata as ggufrope reads it, value by value, and report the effective runtime values.

ggufrope's expectation for each hparam follows the loader (src/llama-model.cpp l.1321-1432 and
the per-arch readers in src/models/): absent keys take llama.cpp's defaults, keys an architecture
does not read keep the defaults whatever the file says."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ggufrope.model_facts import ModelFacts
from ggufrope.settings.keys import BY_FIELD
from ggufrope.settings.model_info import ModelInfo
from ggufrope.settings.rope_settings import RopeSettings, f32
from ggufrope.settings.projection import freq_scale


SWA_LAYERS = "which layers are SWA"     # the row whose values are layer indices


@dataclass(frozen=True)
class Row:
    what: str          # key or fact
    file: Any          # the file's value (None = absent)
    expected: Any      # what ggufrope says llama.cpp will use
    engine: Any        # what llama.cpp resolved (None when it did not report the value)
    ok: bool
    reported: bool = True  # False: the probe's output lacks this value (a renamed field, an old probe)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return f32(float(a)) == f32(float(b)) or math.isclose(float(a), float(b), rel_tol=1e-6)
        except (TypeError, ValueError):
            return False
    return a == b


# Granite's rope.scaling.finetuned is its RoPE on/off switch (rope_pattern), true when absent
# (src/models/granite.cpp l.33-36, granite-hybrid.cpp l.16-20, granite-switch.cpp l.12-15)
ROPE_SWITCH_ARCHS = frozenset({"granite", "granitehybrid", "graniteswitch"})


def _finetuned(arch: str, v: Any) -> bool:
    if arch == "minicpm":      # src/models/minicpm.cpp l.16-17: always true, whatever the file says
        return True
    if v is None:
        return arch in ROPE_SWITCH_ARCHS
    return bool(v)


def expected_hparams(info: ModelInfo) -> dict[str, tuple[str, Any, Any]]:
    """hparam name -> (key or fact, file value, value llama.cpp should resolve)."""
    r = info.rope
    arch = info.arch
    read = {f: BY_FIELD[f].read_for(arch) for f in BY_FIELD}
    factor = r.scaling_factor if r.scaling_factor else (r.scale_linear or 0.0)
    yarn_default_fast = 8.0 if arch == "grok" else 32.0  # src/models/grok.cpp sets 8 before reading
    log_mul = r.yarn_log_multiplier if (read["yarn_log_multiplier"] and r.yarn_log_multiplier is not None) else 0.0
    if arch in ("deepseek2", "deepseek32", "mistral4") and log_mul:   # mistral4: deepseek2's loader (models.h)
        log_mul = log_mul / 0.1  # [TAG_DEEPSEEK2_YARN_LOG_MUL_FIX]: stored as 0.1*m
    k = lambda f: BY_FIELD[f].key(arch)  # noqa: E731
    kv = info.kv
    swa0 = bool(kv and kv.is_swa and kv.is_swa[0])
    return {
        "n_ctx_train": (k("context_length"), r.context_length, r.context_length),
        "rope_freq_base_train": (k("freq_base"), r.freq_base,
                                 info.loaded_freq_base(10000.0 if r.freq_base is None else r.freq_base)),
        "rope_scaling_type": (k("scaling_type"), r.scaling_type, r.scaling_type or "linear"),
        "rope_freq_scale_train": (k("scaling_factor") + " -> freq_scale", r.scaling_factor if r.scaling_factor is not None
                                  else r.scale_linear, freq_scale(factor)),
        "n_ctx_orig_yarn": (k("original_context_length"), r.original_context_length,
                            r.original_context_length or r.context_length),
        "rope_attn_factor": (k("attn_factor"), r.attn_factor, 1.0 if r.attn_factor is None else r.attn_factor),
        "rope_finetuned": (k("finetuned"), r.finetuned, _finetuned(arch, r.finetuned)),
        "n_rot": (k("dimension_count"), r.dimension_count, r.dimension_count or info.head_dim_k),
        "yarn_ext_factor": (k("yarn_ext_factor"), r.yarn_ext_factor,
                            r.yarn_ext_factor if read["yarn_ext_factor"] and r.yarn_ext_factor is not None else -1.0),
        "yarn_attn_factor": (k("yarn_attn_factor"), r.yarn_attn_factor,
                             r.yarn_attn_factor if read["yarn_attn_factor"] and r.yarn_attn_factor is not None else 1.0),
        "yarn_beta_fast": (k("yarn_beta_fast"), r.yarn_beta_fast,
                           r.yarn_beta_fast if read["yarn_beta_fast"] and r.yarn_beta_fast is not None
                           else yarn_default_fast),
        "yarn_beta_slow": (k("yarn_beta_slow"), r.yarn_beta_slow,
                           r.yarn_beta_slow if read["yarn_beta_slow"] and r.yarn_beta_slow is not None else 1.0),
        "rope_yarn_log_mul": (k("yarn_log_multiplier"), r.yarn_log_multiplier, log_mul),
        # llama.cpp's n_layer() leaves out MTP/nextn layers (src/llama-hparams.cpp l.348-350)
        "n_layer": ("layers (less nextn_predict_layers)", info.n_layer, info.n_layer - info.n_nextn),
        "n_head_kv": ("KV heads (layer 0)", info.n_head_kv[0] if info.n_head_kv else None,
                      info.n_head_kv[0] if info.n_head_kv else None),
        # n_embd_head_k(0)/v(0) are layer 0's: an SWA layer's *_swa head size (llama-hparams.cpp l.140-154)
        "n_embd_head_k": ("head dim K (layer 0)", info.head_dim_k, kv.head_k_swa if swa0 else info.head_dim_k),
        "n_embd_head_v": ("head dim V (layer 0)", info.head_dim_v, kv.head_v_swa if swa0 else info.head_dim_v),
    }


def compare(facts: ModelFacts, probe_doc: dict, rope: RopeSettings | None = None) -> list[Row]:
    """One row per value ggufrope expects of the model (its facts, read once by the caller). A value the probe did not report is a failing row:
    a probe whose field names drifted must not pass by comparing nothing."""
    hp = probe_doc.get("hparams") or {}
    rows = []
    for name, (what, file_v, expect) in expected_hparams(facts.info).items():
        if name not in hp:
            rows.append(Row(what, file_v, expect, None, False, reported=False))
        else:
            rows.append(Row(what, file_v, expect, hp[name], _same(expect, hp[name])))
    extra = probe_doc.get("hparams_extra") or {}
    for name, (what, file_v, expect) in expected_swa(facts.info).items():
        if name not in extra:
            rows.append(Row(what, file_v, expect, None, False, reported=False))
        else:
            rows.append(Row(what, file_v, expect, extra[name], _same(expect, extra[name])))
    if facts.info.rope_sections:     # M-RoPE: llama.cpp reads 4 integers (missing ones stay 0)
        want = list(facts.info.rope_sections) + [0] * (4 - len(facts.info.rope_sections))
        got = extra.get("rope_sections")
        rows.append(Row(f"{facts.arch}.rope.dimension_sections", list(facts.info.rope_sections), want, got,
                        got == want, reported=got is not None))
    eff = probe_doc.get("effective") or {}
    for (layer, key), (what, expect) in expected_effective(facts.info, rope or RopeSettings()).items():
        got = eff.get(key) if layer == "context" else (eff.get(layer) or {}).get(key)
        rows.append(Row(what, None, expect, got, got is not None and _same(expect, got), reported=got is not None))
    return rows


def expected_effective(info: ModelInfo, rope: RopeSettings) -> dict[tuple[str, str], tuple[str, Any]]:
    """The base and scale each kind of layer gets with these runtime flags, keyed by where the probe
    reports them. The context's values (a flag: --rope-freq-base, --rope-scale N -> 1/N; else the
    file's) are the probe's top-level effective values; values fixed at load (get_rope_freq_base/
    scale of an SWA layer, src/llama-model.cpp l.2329-2335) its first_swa_layer's. Which layers take
    which is the graph's rule per architecture (ggufrope/layer_rope.py); NoPE layers have none."""
    from ggufrope.layer_rope import CONTEXT, CONTEXT_BASE, FIXED
    hp = expected_hparams(info)
    base = rope.freq_base if rope.freq_base is not None else hp["rope_freq_base_train"][2]
    scale = 1.0 / rope.scaling_factor if rope.scaling_factor else hp["rope_freq_scale_train"][2]
    groups = info.rope_groups
    out: dict[tuple[str, str], tuple[str, Any]] = {}
    name = {"full": "full-attention layers'", "swa": "SWA layers'"}
    if not groups or any(g.rope == CONTEXT for g in groups):
        who = "every layer's" if not groups else \
            " and ".join(sorted({name[g.kind] for g in groups if g.rope == CONTEXT}))
        out[("context", "freq_base")] = (f"{who} freq_base (effective)", base)
        out[("context", "freq_scale")] = (f"{who} freq_scale (effective)", scale)
    for g in groups:
        if g.rope == FIXED:
            out[("first_swa_layer", "freq_base")] = ("SWA layers' freq_base (effective)", g.freq_base)
            out[("first_swa_layer", "freq_scale")] = ("SWA layers' freq_scale (effective)", g.freq_scale)
        elif g.rope == CONTEXT_BASE and ("context", "freq_base") not in out:
            out[("context", "freq_base")] = ("SWA layers' freq_base (effective; scale 1 in the graph)", base)
    return out


def expected_swa(info: ModelInfo) -> dict[str, tuple[str, Any, Any]]:
    """The per-layer-type values ggufrope's memory and RoPE model (ggufrope/kv_model.py) expects:
    the sliding window, how many layers use it, and the SWA layers' base and scale, which
    llama.cpp fixes at load (src/llama-model.cpp get_rope_freq_base/scale; runtime flags reach only
    the full-attention layers). Nothing for a family whose rule ggufrope does not know."""
    k = info.kv
    if k is None or not k.known:
        return {}
    a = info.arch
    if k.family != "iswa":
        return {"n_swa_layers": ("sliding-window layers", None, 0)}
    return {
        "n_swa": (f"{a}.attention.sliding_window", k.n_swa, k.n_swa),
        "n_swa_layers": (f"sliding-window layers ({k.swa_pattern})", None, len(k.swa_layers)),
        "swa_layers": (SWA_LAYERS, None, list(k.swa_layers)),
        "rope_freq_base_train_swa": ("SWA layers' freq_base", k.freq_base_swa_source, k.freq_base_swa),
        "rope_freq_scale_train_swa": ("SWA layers' freq_scale", None, k.freq_scale_swa),
    }
