"""Where ggufrope keeps its state. One variable moves all of it: GGUFROPE_HOME
(default: $XDG_CACHE_HOME/ggufrope or ~/.cache/ggufrope), which keeps tests hermetic."""
from __future__ import annotations

import os
from typing import Mapping


def home(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if env.get("GGUFROPE_HOME"):
        return os.path.expanduser(env["GGUFROPE_HOME"])
    return os.path.join(xdg_dir("cache", env), "ggufrope")


def xdg_dir(kind: str, env: Mapping[str, str]) -> str:
    """The XDG base folder of a kind ("cache" or "config"): $XDG_CACHE_HOME / $XDG_CONFIG_HOME,
    else ~/.cache / ~/.config (the XDG Base Directory defaults)."""
    var, default = {"cache": ("XDG_CACHE_HOME", ".cache"), "config": ("XDG_CONFIG_HOME", ".config")}[kind]
    return env.get(var) or os.path.join(os.path.expanduser("~"), default)


def models_dir(env: Mapping[str, str] | None = None) -> str:
    return os.path.join(home(env), "models")
