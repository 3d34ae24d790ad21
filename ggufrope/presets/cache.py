"""Small JSON caches under $GGUFROPE_HOME/cache/<kind>/, keyed by a file's identity (real path,
size, mtime) plus whatever else the value depends on. They keep `run` quick: a model's facts
(its header index, ~30 ms for SmolLM2 and more for a 128K-token vocabulary) and a RoPE plan
(numpy and per-pair effects, ~300 ms) are computed once per file version. A cache that cannot
be read or written only costs time."""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping

from ggufrope import paths


def file_key(path: str, *extra: Any) -> str:
    st = os.stat(path)
    return repr((os.path.realpath(path), st.st_size, st.st_mtime_ns) + extra)


def _path(kind: str, key: str, env: Mapping[str, str]) -> str:
    return os.path.join(paths.home(env), "cache", kind, hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def get(kind: str, key: str, env: Mapping[str, str]) -> Any | None:
    try:
        with open(_path(kind, key, env)) as f:
            d = json.load(f)
        return d["value"] if d.get("key") == key else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def put(kind: str, key: str, value: Any, env: Mapping[str, str]) -> None:
    p = _path(kind, key, env)
    try:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        tmp = f"{p}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({"key": key, "value": value}, f)
        os.replace(tmp, p)
    except (OSError, TypeError, ValueError):
        pass


def code_stamp(package_dir: str) -> tuple:
    """(file, mtime) of a package's modules: a cache computed by that code is stale when it changes."""
    return tuple((f, os.stat(os.path.join(package_dir, f)).st_mtime_ns)
                 for f in sorted(os.listdir(package_dir)) if f.endswith(".py"))
