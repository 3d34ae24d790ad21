"""Where ggufrope keeps its state. One variable moves all of it: GGUFROPE_HOME
(default: $XDG_CACHE_HOME/ggufrope or ~/.cache/ggufrope), which keeps tests hermetic."""
from __future__ import annotations

import os
from typing import Mapping


def home(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if env.get("GGUFROPE_HOME"):
        return os.path.expanduser(env["GGUFROPE_HOME"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ggufrope")


def models_dir(env: Mapping[str, str] | None = None) -> str:
    return os.path.join(home(env), "models")
