"""PRESET|MODEL -> what to evaluate. The one adapter between the evaluation and the presets
package: everything else here sees only a `Target` (a model file, and the RoPE settings a
preset asks for, if the argument named one, and the model's facts from its one header read)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ggufrope.model_facts import ModelFacts, read_model_facts
from ggufrope.settings import RopeSettings


@dataclass(frozen=True)
class Target:
    label: str                         # what the user typed (preset name or model)
    model: str                         # the GGUF file
    preset: str | None = None          # the preset's name when the argument was one
    preset_rope: RopeSettings | None = None   # the preset's resolved RoPE settings
    preset_notes: tuple[str, ...] = ()
    # read once by resolve_target; None for a Target built by hand (Sweep.facts reads it then)
    facts: ModelFacts | None = field(default=None, compare=False, repr=False)


def _preset_names(env: Mapping[str, str]) -> set[str]:
    try:
        from ggufrope.presets import load
        return set(load.available(env))
    except Exception:  # the presets package is absent or changing: treat the argument as a model
        return set()


def resolve_target(arg: str, env: Mapping[str, str] | None = None,
                   log: Callable[[str], None] = lambda s: None) -> Target:
    """A preset name (or a .toml preset file) when the presets package knows it; else a model
    path or named model (`smollm2`). A file that exists is always a model, unless it is .toml."""
    env = os.environ if env is None else env
    is_toml = arg.endswith(".toml")
    if is_toml or (not os.path.exists(os.path.expanduser(arg)) and arg in _preset_names(env)):
        return _from_preset(arg, env, log)
    from ggufrope.models import resolve
    path = resolve(arg, env, log)
    return Target(label=arg, model=path, facts=read_model_facts(path))


def _from_preset(arg: str, env: Mapping[str, str], log: Callable[[str], None]) -> Target:
    """Uses only the presets package's public surface: load_preset() and the Preset's name,
    model, rope_plan ((method, ctx) or None) and rope (explicit RopeSettings). The plan is made
    here with ggufrope.planning, exactly as `plan` makes it."""
    from ggufrope import models
    from ggufrope.errors import PresetError
    from ggufrope.presets import load_preset
    p = load_preset(arg, env)
    if not p.model:
        raise PresetError(f"{arg}: preset {p.name!r} names no model; evaluate the model file instead "
                          f"(`ggufrope eval passkey MODEL.gguf --variants ...`)")
    try:
        from ggufrope.presets.model_path import resolve_model
        path = resolve_model(p, env, log=log)
    except (ImportError, TypeError):
        path = models.resolve(p.model, env, log)
    facts = read_model_facts(path)
    rope, notes = RopeSettings(), []
    if p.rope_plan:
        from ggufrope.planning import make_plan, require_rope
        method, ctx = p.rope_plan
        plan = make_plan(require_rope(facts), ctx, method)
        rope, notes = plan.settings or RopeSettings(), list(plan.notes)
    rope = rope.merged(p.rope)
    return Target(label=p.name, model=path, preset=p.name, preset_rope=rope, preset_notes=tuple(notes),
                  facts=facts)
