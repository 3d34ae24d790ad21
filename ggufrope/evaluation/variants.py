"""Evaluation variants: one RoPE setting per method, computed by `plan` for the length under
test (or for --plan-ctx), applied at run time as llama.cpp flags (settings/projection.py, the same
projection presets use); the model file is untouched.

  none     the file as trained (`--rope-scaling none` only when the file itself asks to scale)
  linear   plan --method linear     ntk   plan --method ntk     yarn   plan --method yarn
  dynamic  llama.cpp has no dynamic NTK: reported as not applicable, never approximated
  preset   the RoPE settings of the preset named on the command line

Within the trained context plan recommends no scaling, so linear/ntk/yarn there get exactly
none's flags; the runner then runs once and records the result for every such variant (marked
`same_as`), rather than burning CPU on identical runs.
"""
from __future__ import annotations

from dataclasses import dataclass

from ggufrope.model_facts import ModelFacts
from ggufrope.planning import recommend
from ggufrope.settings import RopeSettings, fmt_float
from ggufrope.settings.projection import Projection


@dataclass(frozen=True)
class Variant:
    name: str
    length: int                  # the length under test
    plan_ctx: int                # the context the plan was made for
    applicable: bool
    args: tuple[str, ...]        # llama.cpp runtime flags (no -c)
    settings: dict               # the RoPE settings as data (for the record)
    summary: str                 # one line: what this variant is at this length

    @property
    def run_key(self) -> tuple[str, ...]:
        """Two variants with the same key give identical runs."""
        return self.args


def _none(facts: ModelFacts, length: int, plan_ctx: int) -> Variant:
    if facts.file_scaled:
        args = _flags(facts, RopeSettings(scaling_type="none"), length)
        why = (f"unscaled (the file asks for {facts.current.effective_type} x{fmt_float(facts.current.factor)}; "
               f"--rope-scaling none switches it off)")
    else:
        args, why = (), "no RoPE flags: the model as trained"
    return Variant("none", length, plan_ctx, True, args, {}, why)


def _flags(facts: ModelFacts, s: RopeSettings, length: int) -> tuple[str, ...]:
    """llama.cpp's RoPE flags for s on this model: the projection a preset launch uses."""
    return tuple(Projection(facts.arch, s, facts.current, facts.trained_ctx, length).rope_flags())


def make_variant(facts: ModelFacts, name: str, length: int, plan_ctx: int | None = None,
                 preset_rope: RopeSettings | None = None) -> Variant:
    target = plan_ctx or length
    if name == "none":
        return _none(facts, length, target)
    if name == "dynamic":
        plan = recommend(facts, target, "dynamic")
        extra = ""
        if plan.needed and plan.settings is not None and plan.settings.freq_base:
            extra = (f"; the closest STATIC setting (freq_base {fmt_float(plan.settings.freq_base)} at every "
                     f"length) is a different method and is not run under this name")
        return Variant("dynamic", length, target, False, (), {},
                       "not applicable: llama.cpp has no dynamic NTK (only transformers and vLLM run it)" + extra)
    if name == "preset":
        if preset_rope is None:
            return Variant("preset", length, target, False, (), {},
                           "not applicable: the target is a model, not a preset")
        s = preset_rope
        args = _flags(facts, s, length)
        return Variant("preset", length, target, True, args, s.as_dict(),
                       "the preset's RoPE settings: " + (" ".join(args) or "none"))
    plan = recommend(facts, target, name)
    if not plan.needed or plan.settings is None:
        v = _none(facts, length, target)
        return Variant(name, length, target, True, v.args, {},
                       f"within the trained context ({facts.trained_ctx}): plan recommends no scaling, "
                       f"so this is the same run as none")
    s = plan.settings
    args = _flags(facts, s, length)
    return Variant(name, length, target, True, args, s.as_dict(),
                   f"plan --method {name} --ctx {target}: " + " ".join(args))
