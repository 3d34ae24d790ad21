"""`ggufrope presets new NAME --model PATH [--ctx N] [--method yarn]`: a starter preset for a
model file, its RoPE settings computed by `ggufrope plan` and written out explicitly."""
from __future__ import annotations

import os
import shlex
from typing import Any

from ggufrope.presets.toml_write import preset_text
from ggufrope.settings import fmt_float


def starter_text(name: str, model_arg: str, model_path: str, ctx: int | None, method: str = "yarn",
                 cache_type: str = "f16") -> tuple[str, list[str]]:
    """(TOML text, notes)."""
    from ggufrope.planning import make_plan
    from ggufrope.planning.recommend import read_facts
    facts = read_facts(model_path)
    values: dict[str, Any] = {"description": f"{facts.info.name or os.path.basename(model_path)}"
                                             + (f" at {ctx} tokens ({method})" if ctx else ""),
                              "model": model_arg, "ctx": ctx if ctx else "auto",
                              "cache_type_k": cache_type, "cache_type_v": cache_type}
    comments = {"model": "a path (~ and $VARS expanded), a split-model glob, or a named model",
                "ctx": 'tokens, or "auto": the largest context that fits free memory (capped at what RoPE reaches)'}
    notes: list[str] = []
    if cache_type != "f16":
        values["flash_attn"] = "on"
        comments["flash_attn"] = "a quantized V cache needs flash attention"
    if ctx and ctx > facts.trained_ctx:
        plan = make_plan(facts, ctx, method)
        notes += plan.notes
        cmd = shlex.join(["ggufrope", "plan", model_arg, "--ctx", str(ctx), "--method", method])
        for k, v in (plan.settings.as_dict() if plan.settings else {}).items():
            values[f"rope.{k}"] = float(fmt_float(v)) if isinstance(v, float) else v
        comments["rope"] = (f"from `{cmd}` (trained context {facts.trained_ctx}); "
                            f'or replace this table with plan = "{method}:{ctx}"')
    elif ctx:
        notes.append(f"{ctx} tokens fit the trained context ({facts.trained_ctx}): no RoPE scaling needed")
    header = [f"ggufrope preset {name!r}, written by `ggufrope presets new`.",
              "Fields: `ggufrope presets show NAME`; check it with `ggufrope presets check NAME`."]
    return preset_text(values, header=header, comments=comments), notes
