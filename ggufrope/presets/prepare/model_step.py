"""Prepare, step 1: the model. Resolve the preset's `model` to a file and read its facts once
(ggufrope/model_facts.py); a file llama.cpp cannot run is a preset error on `model`."""
from __future__ import annotations

from typing import Callable, Mapping

from ggufrope.errors import GgufropeError
from ggufrope.model_facts import ModelFacts, read_model_facts
from ggufrope.presets.model_path import resolve_model
from ggufrope.presets.preset import Preset


def launch_model(p: Preset, env: Mapping[str, str], fetch: bool = True,
                 log: Callable[[str], None] = lambda s: None) -> ModelFacts:
    path = resolve_model(p, env, fetch=fetch, log=log)
    try:
        facts = read_model_facts(path)
    except GgufropeError as e:
        raise p.res.error("model", f"{path}: not a usable GGUF file: {e}") from None
    if not facts.arch or not facts.info.n_layer:
        raise p.res.error("model", f"{path}: no general.architecture / block_count: not a model llama.cpp can run")
    if not facts.trained_ctx:
        raise p.res.error("model", f"{path}: no {facts.arch}.context_length (llama.cpp requires it)")
    return facts
