"""Float32 as the file stores it: rounding to it, and the shortest text that reads back as it.

Lives in the codec so that rendering a header (gguf/render.py) needs nothing above the codec;
settings and the CLI import it from here.
"""
from __future__ import annotations

import struct

_F32 = struct.Struct("<f")


def f32(v: float) -> float:
    """v rounded to float32, as the file stores it."""
    return _F32.unpack(_F32.pack(v))[0]


def fmt_float(v: float) -> str:
    """Shortest text that reads back as the same float32 (what the file stores)."""
    for digits in range(6, 10):
        s = f"{v:.{digits}g}"
        if f32(float(s)) == f32(v):
            return s
    return repr(v)
