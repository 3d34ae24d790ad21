"""A plan as one plain-data object (what `ggufrope plan --json` prints)."""
from __future__ import annotations

from typing import Any

from ggufrope.planning.dialects import build_dialects
from ggufrope.model_facts import ModelFacts
from ggufrope.planning.recommend import KV_PLAN_TYPES, Plan, recommend


def memory(plan: Plan) -> dict[str, Any]:
    info = plan.facts.info
    n = plan.target_ctx
    k = info.kv
    known = bool(k and k.known)
    # an unmodelled family gives no KV number (ggufrope/kv_model.py); the others follow llama.cpp's caches
    kv = {t: info.kv_cache_bytes(n, t) for t in KV_PLAN_TYPES} if info.n_layer and known else {}
    caches = [{"name": c.name, "layers": c.layers, "cells": c.cells * c.streams}
              for c in info.kv_memory(n, "f16").caches] if known else []
    w = plan.facts.weights_bytes
    return {"n_ctx": n, "weights_bytes": w, "kv_cache_bytes": kv, "kv_caches": caches,
            "kv_unknown": None if known or k is None else k.reason,
            "total_bytes": {t: w + b for t, b in kv.items()},
            "kv_cache_flags": {t: (["-ctk", t, "-ctv", t] + ([] if t in ("f16", "f32", "bf16") else ["-fa", "on"]))
                               for t in kv}}


def layers_touched(f: ModelFacts) -> dict[str, Any]:
    """Which layers the plan's settings reach: every layer, or only those whose graph takes the
    context's RoPE (ggufrope/layer_rope.py: SWA layers fixed at load, NoPE layers, olmo2's
    unscaled SWA layers are not reached). For fixed SWA layers, their wavelengths against the window."""
    import math
    from ggufrope.layer_rope import FIXED, reached
    groups = f.info.rope_groups
    if not groups:
        return {"all": True, "layers": f.info.n_layer}
    k = f.info.kv
    out: dict[str, Any] = {"all": False, "touched": list(reached(groups)), "window": k.n_swa if k else 0,
                           "full": [il for g in groups if g.kind == "full" for il in g.layers],
                           "swa": [il for g in groups if g.kind == "swa" for il in g.layers],
                           "groups": [{"kind": g.kind, "layers": list(g.layers), "rope": g.rope,
                                       "freq_base": g.freq_base, "freq_scale": g.freq_scale} for g in groups]}
    fixed = [g for g in groups if g.rope == FIXED]
    if fixed:
        g = fixed[0]
        d = max(f.n_dims, 2)
        wl = [2 * math.pi * g.freq_base ** (2 * i / d) / (g.freq_scale or 1.0) for i in range(d // 2)]
        out.update(swa_freq_base=g.freq_base, swa_freq_scale=g.freq_scale, swa_wavelengths=[wl[0], wl[-1]],
                   swa_pairs_beyond_window=sum(1 for w in wl if w > out["window"]))
    return out


def plan_report(plan: Plan, model: str | None = None, out: str | None = None) -> dict[str, Any]:
    f = plan.facts
    eff = dict(plan.effects)
    return {
        "model": f.path,
        "architecture": f.arch,
        "method": plan.method,
        "target_context": plan.target_ctx,
        "trained_context": f.trained_ctx,
        "trained_context_source": f.trained_ctx_source,
        "context_length": f.context_length,
        "factor": plan.factor,
        "scaling_needed": plan.needed,
        "llama_cpp_supports_method": plan.llama_cpp_native,
        "rope_dims": f.n_dims,
        "head_dim": f.info.head_dim_k,
        "freq_base": f.freq_base,
        "freq_base_source": f.freq_base_source,
        "file_settings": f.current.as_dict(),
        "settings": None if plan.settings is None else plan.settings.as_dict(),
        "settings_are": ("the closest STATIC llama.cpp setting (llama.cpp has no dynamic NTK)"
                         if not plan.llama_cpp_native else
                         "what llama.cpp gets" if plan.settings is not None else None),
        "recommendation": [{"name": c.name, "value": c.value, "text": c.text, "reason": c.reason}
                           for c in plan.choices],
        "effects": eff,
        "dialects": build_dialects(plan, model, out),
        "memory": memory(plan),
        "layers_touched": layers_touched(f),
        "notes": list(plan.notes),
    }


def make_plan(facts: ModelFacts, ctx: int, method: str = "yarn", **kw) -> Plan:
    """The plan for facts (read once by the caller: ggufrope.model_facts.read_model_facts)."""
    return recommend(facts, ctx, method, **kw)
