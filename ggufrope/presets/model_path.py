"""A preset's `model` value -> the GGUF file to load.

Accepted: a named model ggufrope can fetch (smollm2), a path (~ and $VARS expanded), or a glob
that selects one model: a split model's parts (`*-0000?-of-00004.gguf`: the first part is what
llama.cpp loads) or a single file.
"""
from __future__ import annotations

import glob
import os
from typing import Callable, Mapping

from ggufrope.errors import PresetError
from ggufrope.gguf.splits import first_split, is_split, split_paths
from ggufrope.presets.preset import Preset


def missing_model_error(p: Preset) -> PresetError:
    hint = f" It is written for {p.model_hint}." if p.model_hint else ""
    where = p.res.path or p.name
    return PresetError(
        f"{where}: model: preset {p.name!r} has no model.{hint} Give the GGUF file: "
        f"`--model PATH` (or GGUFROPE_MODEL=PATH, or `model = \"PATH\"` in a preset that extends {p.name!r})")


def resolve_model(p: Preset, env: Mapping[str, str], fetch: bool = True,
                  log: Callable[[str], None] = lambda s: None) -> str:
    """The path of the model file; fetches a named model when fetch is True."""
    from ggufrope import models
    if not p.model:
        raise missing_model_error(p)
    value = p.model
    if value in models.NAMED:
        m = models.NAMED[value]
        cached = models.cached_path(m, env)
        if os.path.exists(cached):
            return models.fetch(value, env, log)  # verified (by its stamp), never downloaded here
        if not fetch:
            raise p.res.error("model", f"{value} is not downloaded yet: `ggufrope fetch {value}` "
                                       f"(run, serve and chat fetch it themselves)")
        return models.fetch(value, env, log)
    path = os.path.expandvars(os.path.expanduser(value))
    if any(c in path for c in "*?["):
        hits = sorted(glob.glob(path))
        if not hits:
            raise p.res.error("model", f"no file matches {path!r}")
        firsts = sorted({first_split(h) if is_split(h) else h for h in hits})
        if len(firsts) > 1:
            shown = ", ".join(os.path.basename(h) for h in firsts[:5])
            raise p.res.error("model", f"{path!r} matches {len(firsts)} models ({shown}{', ...' if len(firsts) > 5 else ''}); "
                                       f"make the pattern select one")
        path = firsts[0]
    if "$" in path:
        raise p.res.error("model", f"{path!r}: an environment variable in it is not set")
    if not os.path.exists(path):
        raise p.res.error("model", f"{path}: no such file")
    if os.path.isdir(path):
        raise p.res.error("model", f"{path}: is a directory, not a GGUF file")
    if is_split(path):
        missing = [s for s in split_paths(path) if not os.path.exists(s)]
        if missing:
            raise p.res.error("model", f"{path}: split model is missing {', '.join(os.path.basename(m) for m in missing)}")
        path = first_split(path)
    return os.path.abspath(path)
