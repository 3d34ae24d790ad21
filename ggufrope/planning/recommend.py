"""`ggufrope plan`: the RoPE settings that reach a target context, with the reason for each.

Model facts come from one header read (ggufrope/model_facts.py); the
recommendation is the standard choice per method; its effect on every dimension pair is
computed with ggufrope.rope exactly as llama.cpp resolves it (resolve_llamacpp_rope).

Standard choices:
  yarn     factor s = N / trained, original context = trained, beta_fast 32 / beta_slow 1
           (YaRN paper, arXiv:2309.00071 sec. 3.2; llama.cpp's defaults), ext_factor 1
           (llama.cpp's default for yarn), magnitude 0.1*ln(s)+1 (computed by llama.cpp).
  linear   factor s = N / trained (position interpolation, arXiv:2306.15595).
  ntk      NTK-aware base change base * s^(D/(D-2)) (bloc97; YaRN paper sec. 3.1) with
           scaling type none: llama.cpp has no ntk type, it is a freq_base change.
  dynamic  Hugging Face's dynamic NTK (rope_type "dynamic", factor s). llama.cpp has no
           dynamic scaling; the closest llama.cpp setting is the static base dynamic NTK
           reaches at N tokens, reported separately and labelled as such.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ggufrope.errors import UsageError
from ggufrope.model_facts import ModelFacts, read_model_facts
from ggufrope.settings import RopeSettings, fmt_float

METHODS = ("yarn", "linear", "ntk", "dynamic")
# architectures whose llama.cpp graph has no rotary embedding (learned absolute positions, ALiBi,
# relative bias, recurrent state): src/models/{gpt2,mpt,bloom,starcoder,refact,bert,jina-bert-v2,jais,
# t5,t5encoder,rwkv*,mamba*}.cpp
NO_ROPE_ARCHS = frozenset({"gpt2", "mpt", "bloom", "starcoder", "refact", "bert", "jina-bert-v2", "jais",
                           "t5", "t5encoder", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7", "mamba", "mamba2"})
KV_PLAN_TYPES = ("f16", "q8_0", "q4_0")
DEFAULT_BETA_FAST = 32.0
DEFAULT_BETA_SLOW = 1.0


def require_rope(facts: ModelFacts) -> ModelFacts:
    """facts, when a plan can be made for the model: UsageError naming the file otherwise."""
    path, arch = facts.path, facts.arch
    if not arch:
        raise UsageError(f"{path}: no general.architecture key, so the RoPE keys are unknown")
    if arch in NO_ROPE_ARCHS:
        raise UsageError(f"{path}: architecture '{arch}' has no rotary position embedding in llama.cpp "
                         f"(learned, ALiBi, relative or recurrent positions): RoPE scaling does not apply")
    if facts.context_length is None or not facts.trained_ctx:
        raise UsageError(f"{path}: no usable {arch}.context_length (llama.cpp requires it), "
                         f"so the trained context is unknown")
    n_dims = facts.n_dims
    if not n_dims or n_dims < 4 or n_dims % 2:
        raise UsageError(f"{path}: RoPE dimension count {n_dims} is not a usable even number")
    return facts


def read_facts(path: str) -> ModelFacts:
    """The model's facts (one header read), checked for planning."""
    return require_rope(read_model_facts(path))


@dataclass(frozen=True)
class Choice:
    """One recommended parameter: its value (as data and as text) and why."""

    name: str
    value: Any
    text: str
    reason: str


@dataclass
class Plan:
    facts: ModelFacts
    method: str
    target_ctx: int
    factor: float                       # target / trained
    needed: bool                        # False: the target fits the trained context
    llama_cpp_native: bool              # False for dynamic (llama.cpp has none)
    settings: RopeSettings | None       # what llama.cpp gets (dynamic: the closest static setting)
    choices: list[Choice] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hf_dynamic: dict[str, Any] | None = None   # dynamic only: the HF rope_scaling dict

    @cached_property
    def effects(self) -> dict[str, Any]:
        """The effect on every dimension pair (numpy, computed when first shown)."""
        return _effects(self)


def ntk_base(freq_base: float, factor: float, n_dims: int) -> float:
    """NTK-aware base rounded to the float32 llama.cpp stores, so every dialect states one number."""
    from ggufrope.rope.ntk_base import ntk_aware_base  # plain math: no numpy on the plan path
    return float(fmt_float(ntk_aware_base(freq_base, factor, n_dims)))


def dynamic_base_at(freq_base: float, factor: float, n_dims: int, seq_len: int, trained: int) -> float:
    from ggufrope.rope.ntk_base import dynamic_ntk_base
    return float(fmt_float(dynamic_ntk_base(freq_base, factor, n_dims, seq_len, trained)))


def _check_args(facts: ModelFacts, target_ctx: int, method: str,
                beta_fast: float | None, beta_slow: float | None) -> None:
    p = facts.path
    if method not in METHODS:
        raise UsageError(f"{p}: unknown method {method!r}; use one of {', '.join(METHODS)}")
    if isinstance(target_ctx, bool) or not isinstance(target_ctx, int) or not 0 < target_ctx < 2**32:
        raise UsageError(f"{p}: --ctx must be a positive 32-bit integer, not {target_ctx}")
    for name, v in (("--yarn-beta-fast", beta_fast), ("--yarn-beta-slow", beta_slow)):
        if v is not None:
            if not (math.isfinite(v) and v > 0):
                raise UsageError(f"{p}: {name} must be a positive number, not {v}")
            if method != "yarn":
                raise UsageError(f"{p}: {name} applies to --method yarn only")
    if (beta_fast or DEFAULT_BETA_FAST) <= (beta_slow or DEFAULT_BETA_SLOW):
        raise UsageError(f"{p}: beta_fast ({beta_fast or DEFAULT_BETA_FAST:g}) must be greater than "
                         f"beta_slow ({beta_slow or DEFAULT_BETA_SLOW:g})")


def recommend(facts: ModelFacts, target_ctx: int, method: str = "yarn", *,
              beta_fast: float | None = None, beta_slow: float | None = None) -> Plan:
    """The plan for reaching target_ctx tokens with method on this model (a pure function of
    the facts; the per-pair effects are computed when first read)."""
    require_rope(facts)
    _check_args(facts, target_ctx, method, beta_fast, beta_slow)
    T, N = facts.trained_ctx, target_ctx
    # the factor as the file stores it (float32), so every dialect states the same number
    s = float(fmt_float(N / T))
    plan = Plan(facts=facts, method=method, target_ctx=N, factor=s, needed=N > T,
                llama_cpp_native=method != "dynamic", settings=None)
    restore_base = facts.current.freq_base is not None and facts.current.freq_base != facts.freq_base
    if facts.rope_tensors:
        plan.notes.append(f"the file carries {', '.join(facts.rope_tensors)} tensor(s): per-pair scaling baked in at "
                          f"conversion (Llama-3.1 rope_freqs, LongRoPE factors) that llama.cpp applies on top of "
                          f"the settings below; the per-pair effects shown here leave them out")
    if not plan.needed:
        _fits_trained(plan, restore_base)
        return plan
    ctx_choice = Choice("context_length", N, str(N),
                        "llama.cpp's default context and llama-server's per-slot cap; the target")
    if method == "yarn":
        _yarn(plan, ctx_choice, restore_base, beta_fast, beta_slow)
    elif method == "linear":
        _linear(plan, ctx_choice, restore_base)
    else:
        _base_change(plan, ctx_choice)
    _closing_notes(plan, restore_base)
    return plan


def _fits_trained(plan: Plan, restore_base: bool) -> None:
    """The target fits the trained context: what the file's own scaling or base would change."""
    facts, N, T, base = plan.facts, plan.target_ctx, plan.facts.trained_ctx, plan.facts.freq_base
    plan.notes.append(f"no scaling needed: {N} tokens fit the trained context of {T}; run with -c {N}")
    if facts.file_scaled:
        plan.notes.append(
            f"this file already carries {facts.current.effective_type} scaling x{fmt_float(facts.current.factor)}, "
            f"which llama.cpp applies at every position; to run it unscaled pass --rope-scaling none "
            f"(or undo ggufrope's changes with `ggufrope restore`)")
    if restore_base:
        plan.notes.append(
            f"this file's freq_base is {fmt_float(facts.current.freq_base)}, not the trained {fmt_float(base)} "
            f"(ggufrope's undo record); to run it as trained pass --rope-freq-base {fmt_float(base)} "
            f"(or `ggufrope restore` it)")
    if facts.context_length < N:
        plan.settings = RopeSettings(context_length=N)
        plan.notes.append(f"context_length is {facts.context_length} (below {N}): llama-server caps each slot "
                          f"at it, so the patch raises it")


def _yarn(plan: Plan, ctx_choice: Choice, restore_base: bool,
          beta_fast: float | None, beta_slow: float | None) -> None:
    facts, N, T, s, base = plan.facts, plan.target_ctx, plan.facts.trained_ctx, plan.factor, plan.facts.freq_base
    vals: dict[str, Any] = dict(scaling_type="yarn", scaling_factor=s, original_context_length=T,
                                context_length=N)
    bf = DEFAULT_BETA_FAST if beta_fast is None else float(beta_fast)
    bs = DEFAULT_BETA_SLOW if beta_slow is None else float(beta_slow)
    if bf != DEFAULT_BETA_FAST:
        vals["yarn_beta_fast"] = bf
    if bs != DEFAULT_BETA_SLOW:
        vals["yarn_beta_slow"] = bs
    if restore_base:
        vals["freq_base"] = base
    plan.settings = RopeSettings(**vals)
    default_betas = bf == DEFAULT_BETA_FAST and bs == DEFAULT_BETA_SLOW
    plan.choices = [
        Choice("scaling_type", "yarn", "yarn",
               "NTK-by-parts interpolation plus attention temperature (YaRN, arXiv:2309.00071): "
               "high-frequency pairs keep their trained frequency, low-frequency pairs are interpolated"),
        Choice("factor", s, fmt_float(s), f"target / trained = {N} / {T}"),
        Choice("original_context_length", T, str(T),
               f"the trained context ({facts.trained_ctx_source}); YaRN's ramp is measured against it"),
        ctx_choice,
        Choice("beta_fast / beta_slow", [bf, bs], f"{bf:g} / {bs:g}",
               ("the YaRN paper's values and llama.cpp's defaults: " if default_betas else "as requested: ")
               + f"pairs turning more than {bf:g} times in {T} tokens keep their frequency, "
                 f"pairs turning less than {'once' if bs == 1 else f'{bs:g} times'} are fully interpolated"),
        Choice("ext_factor", 1.0, "1", "llama.cpp's default for yarn (-1 resolves to 1): the full ramp mix"),
        Choice("attention magnitude", 1 + 0.1 * math.log(s), f"{1 + 0.1 * math.log(s):.4f}",
               f"0.1*ln({fmt_float(s)})+1, computed by llama.cpp itself from the factor (not set by hand)"),
    ]


def _linear(plan: Plan, ctx_choice: Choice, restore_base: bool) -> None:
    N, T, s, base = plan.target_ctx, plan.facts.trained_ctx, plan.factor, plan.facts.freq_base
    vals = dict(scaling_type="linear", scaling_factor=s, original_context_length=T, context_length=N)
    if restore_base:
        vals["freq_base"] = base
    plan.settings = RopeSettings(**vals)
    plan.choices = [
        Choice("scaling_type", "linear", "linear",
               "position interpolation (arXiv:2306.15595): every pair's frequency divided by the factor"),
        Choice("factor", s, fmt_float(s), f"target / trained = {N} / {T}"),
        Choice("original_context_length", T, str(T), "the trained context, kept for the record"),
        ctx_choice,
    ]


def _base_change(plan: Plan, ctx_choice: Choice) -> None:
    """ntk, or dynamic's closest static llama.cpp setting: a freq_base change with type none."""
    method, N, T, s = plan.method, plan.target_ctx, plan.facts.trained_ctx, plan.factor
    base, D = plan.facts.freq_base, plan.facts.n_dims
    if method == "ntk":
        nb = ntk_base(base, s, D)
        why = (f"NTK-aware base change: {fmt_float(base)} * {fmt_float(s)}^({D}/{D - 2}) "
               f"(the lowest-frequency pair is interpolated by exactly {fmt_float(s)}, pair 0 keeps its frequency)")
    else:
        nb = dynamic_base_at(base, s, D, N, T)
        k = s * N / T - (s - 1)
        why = (f"the base Hugging Face's dynamic NTK uses at {N} tokens: "
               f"{fmt_float(base)} * ({fmt_float(s)}*{N}/{T} - {fmt_float(s - 1)})^({D}/{D - 2}); "
               f"note the base grows by {fmt_float(k)}^({D}/{D - 2}) there, more than static NTK's "
               f"{fmt_float(s)}^({D}/{D - 2}): HF's dynamic factor multiplies the length ratio")
        plan.hf_dynamic = {"rope_type": "dynamic", "factor": s}
        plan.notes.append(
            "llama.cpp has no dynamic NTK scaling (it recomputes nothing per sequence length); "
            "only Hugging Face transformers and vLLM run it. The llama.cpp settings below are the "
            f"closest STATIC equivalent: the base dynamic NTK reaches at {N} tokens, applied at every length "
            "(shorter prompts get a larger base than dynamic NTK would give them)")
    plan.settings = RopeSettings(scaling_type="none", freq_base=nb, original_context_length=T, context_length=N)
    plan.choices = [
        Choice("freq_base" if method == "ntk" else "freq_base (llama.cpp, static)", nb, fmt_float(nb), why),
        Choice("scaling_type", "none", "none",
               "llama.cpp has no ntk type: it is a plain freq_base change, and type none also makes "
               "llama.cpp ignore any scaling factor the file holds"),
        Choice("original_context_length", T, str(T), "the trained context, kept for the record"),
        ctx_choice,
    ]
    if method == "dynamic":
        plan.choices.insert(0, Choice("rope_scaling (HF/vLLM)", plan.hf_dynamic,
                                      f'{{"rope_type": "dynamic", "factor": {fmt_float(s)}}}',
                                      f"dynamic NTK with factor target / trained = {N} / {T}; "
                                      f"max_position_embeddings stays {T} (dynamic NTK measures against it)"))


def _closing_notes(plan: Plan, restore_base: bool) -> None:
    facts, method, base = plan.facts, plan.method, plan.facts.freq_base
    if restore_base and method in ("yarn", "linear"):
        plan.notes.append(f"the file's freq_base is {fmt_float(facts.current.freq_base)} but ggufrope's undo record "
                          f"says it was {fmt_float(base)}: the plan restores the trained base")
    if facts.file_scaled and method in ("ntk", "dynamic"):
        plan.notes.append(f"the file's {facts.current.effective_type} x{fmt_float(facts.current.factor)} scaling is "
                          f"switched off by scaling type none")
    if plan.settings is not None and _already(facts, plan.settings):
        plan.notes.append("the file already holds these settings: nothing to patch")


def _already(facts: ModelFacts, settings: RopeSettings) -> bool:
    cur = facts.current
    for k, v in settings.as_dict().items():
        c = getattr(cur, k)
        if c is None or (isinstance(v, float) and fmt_float(float(c)) != fmt_float(v)) or \
                (not isinstance(v, float) and c != v):
            return False
    return True


# -- effects ----------------------------------------------------------------------------

def method_frequencies(facts: ModelFacts, method: str, target_ctx: int, *, beta_fast: float | None = None,
                       beta_slow: float | None = None):
    """(RopeFrequencies against the trained base, LlamaCppRopeParams or None) for method at target_ctx.

    yarn/linear/ntk are computed as llama.cpp resolves them; dynamic is Hugging Face's at target_ctx."""
    from ggufrope import rope
    T, N, D, base = facts.trained_ctx, target_ctx, facts.n_dims, facts.freq_base
    s = max(1.0, float(fmt_float(N / T)))
    if method == "dynamic":
        return rope.rope_dynamic_ntk(D, base, s, N, T), None
    if method == "ntk":
        nb = ntk_base(base, s, D)
        params = rope.resolve_llamacpp_rope(n_dims=D, n_ctx_orig=T, freq_base=nb, scaling_type="none",
                                            arch=facts.arch)
        fr = params.frequencies()
        # measure against the trained base, not the new one
        fr = rope.RopeFrequencies("ntk", fr.inv_freq, fr.attention_factor, rope.base_inv_freq(D, base), factor=s)
        return fr, params
    stype = method if method in ("yarn", "linear") else "linear"
    params = rope.resolve_llamacpp_rope(n_dims=D, n_ctx_orig=T, freq_base=base, freq_scale=1.0 / s,
                                        scaling_type=stype, beta_fast=-1.0 if beta_fast is None else beta_fast,
                                        beta_slow=-1.0 if beta_slow is None else beta_slow, arch=facts.arch)
    return params.frequencies(), params


def _ranges(idx: list[int]) -> str:
    if not idx:
        return "-"
    out, start, prev = [], idx[0], idx[0]
    for i in idx[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(out)


def _effects(plan: Plan) -> dict[str, Any]:
    from ggufrope.rope import classify_mix, classify_pairs
    facts = plan.facts
    T, D = facts.trained_ctx, facts.n_dims
    bf = plan.settings.yarn_beta_fast if plan.settings is not None else None
    bs = plan.settings.yarn_beta_slow if plan.settings is not None else None
    if plan.needed:
        fr, params = method_frequencies(facts, plan.method, plan.target_ctx, beta_fast=bf, beta_slow=bs)
    else:
        from ggufrope import rope
        fr, params = rope.rope_none(D, facts.freq_base), None
    if fr.mix is not None and plan.method == "yarn" and plan.needed:
        regimes = classify_mix(fr.mix)
    else:
        regimes = classify_pairs(fr.inv_freq, fr.base_inv_freq, fr.factor) if fr.factor != 1.0 else \
            classify_mix([1.0] * fr.n_pairs)
    by = {r: [i for i, x in enumerate(regimes) if x.value == r] for r in ("extrapolated", "ramped", "interpolated")}
    wl_old = [2 * math.pi / x for x in fr.base_inv_freq]
    wl_new = [2 * math.pi / x for x in fr.inv_freq]
    unseen = [i for i, w in enumerate(wl_old) if w > T]
    eff: dict[str, Any] = {
        "n_pairs": fr.n_pairs,
        "pairs": by,
        "counts": {k: len(v) for k, v in by.items()},
        "ranges": {k: _ranges(v) for k, v in by.items()},
        "pairs_longer_than_trained": unseen,
        "wavelength_trained": wl_old,
        "wavelength_scaled": wl_new,
        "stretch": [n / o for n, o in zip(wl_new, wl_old)],
        "magnitude": fr.attention_factor,
        "engine": "llama.cpp" if params is not None else ("transformers (dynamic NTK at target)"
                                                          if plan.needed else "unscaled"),
    }
    if params is not None:
        eff["llama_cpp"] = {
            "scaling_type": params.scaling_type, "freq_base": params.freq_base, "freq_scale": params.freq_scale,
            "n_ctx_orig": params.n_ctx_orig, "ext_factor": params.ext_factor,
            "attn_factor": params.attn_factor, "mscale": params.mscale,
            "beta_fast": params.beta_fast, "beta_slow": params.beta_slow, "corr_dims": list(params.corr_dims),
        }
    if plan.method == "dynamic" and plan.needed and plan.settings is not None:
        # the closest static setting as llama.cpp resolves it
        from ggufrope import rope
        p2 = rope.resolve_llamacpp_rope(n_dims=D, n_ctx_orig=T, freq_base=plan.settings.freq_base,
                                        scaling_type="none", arch=facts.arch)
        eff["closest_static_llama_cpp"] = {"freq_base": p2.freq_base, "mscale": p2.mscale}
    return eff
