"""Presets: TOML files naming a model, its RoPE settings and how to run it, resolved with one
precedence (defaults < preset chain < GGUFROPE_* environment < command line), checked before
launch, and run by llama.cpp (llama-cli / llama-completion / llama-server) or llama-cpp-python.

Modules, one job each: schema (the fields), load (files, search path, strict reading),
resolve (precedence with provenance), preset (the typed Preset), model_path, memory (the memory
plan), checks, prepare (a preset made concrete for a model: engine projections), binaries
(which llama.cpp build), launch (processes), chat (python engine), export / importer
(llama.cpp INI, llama-swap, llama-cpp-python server), starter (`presets new`).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ggufrope.presets.resolve import Override, Resolved


def load_preset(name: str | None, env: Mapping[str, str], overrides: Sequence[Override] = (),
                preset_file: str | None = None):
    """The typed Preset for a name (or a file), resolved through every layer."""
    from ggufrope.errors import PresetError
    from ggufrope.presets import load
    from ggufrope.presets.preset import Preset
    from ggufrope.presets.resolve import resolve
    if preset_file:
        top = load.read_file(preset_file, load.FILE)
    elif name and (name.endswith(".toml") or "/" in name):
        top = load.read_file(name, load.FILE)
    elif name:
        top = load.find(name, env)
    else:
        raise PresetError("name a preset (`ggufrope presets list`) or give --preset-file PATH")
    return Preset.from_resolved(resolve(top, env, overrides))


__all__ = ["Override", "Resolved", "load_preset"]
