"""Split models: NAME-00001-of-00003.gguf ... (llama.cpp's gguf-split naming, llama_split_prefix)."""
from __future__ import annotations

import os
import re

_SPLIT = re.compile(r"^(?P<prefix>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def split_paths(path: str) -> list[str]:
    """All splits of the model path belongs to, first first; [path] for a single file."""
    m = _SPLIT.match(path)
    if not m:
        return [path]
    count = int(m["count"])
    return [f"{m['prefix']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def first_split(path: str) -> str:
    return split_paths(path)[0]


def is_split(path: str) -> bool:
    return _SPLIT.match(os.fspath(path)) is not None
