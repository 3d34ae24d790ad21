"""Arithmetic in float64 or in float32 the way ggml's C code does it.

ggml's CPU rope op works in C ``float``; to compare with it to float32 precision the
same operations are replayed on numpy float32 scalars/arrays (each op rounds to
float32, as C does without -ffast-math; a compiler contracting ``a*b + c*d`` into an
FMA can still differ by one ulp).
"""

from __future__ import annotations

import numpy as np

PRECISIONS = ("float64", "float32")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def scalar_type(precision: str):
    """``np.float64`` or ``np.float32`` for the given precision name."""
    return np.float32 if check_precision(precision) == "float32" else np.float64


def _libm(fn, x, precision: str):
    """Apply a float64 numpy ufunc and, in float32 mode, round the result once to float32.

    numpy's own float32 loops are not what C's libm returns (e.g. float32
    ``np.power(10000, -1/32)`` is one ulp off glibc's powf, which is correctly rounded), so
    float32 libm calls are emulated by the float64 result rounded once to float32. That is
    exact for powf/logf in the cases checked against ggml; glibc's cosf/sinf are not always
    correctly rounded, so cos/sin may differ from ggml's by one float32 ulp (about 1% of values).
    """
    f = scalar_type(precision)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = fn(np.asarray(x, dtype=np.float64))
    return f(out) if np.ndim(out) == 0 else out.astype(f)


def logf(x, precision: str):
    """``logf`` (float32) or ``log`` (float64)."""
    return _libm(np.log, x, precision)


def powf(x, y, precision: str):
    """``powf(x, y)`` (float32) or ``x ** y`` (float64)."""
    f = scalar_type(precision)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.power(np.float64(f(x)), np.float64(f(y)))
    return f(out)


def cosf(x, precision: str):
    return _libm(np.cos, x, precision)


def sinf(x, precision: str):
    return _libm(np.sin, x, precision)


def fmaf(a, b, c):
    """Correctly rounded float32 fused multiply-add ``a*b + c`` (one rounding).

    The float32 product is exact in float64; the float64 sum is made round-to-odd with a
    TwoSum error term, after which rounding to float32 is correct (53 >= 24 + 2 bits).
    """
    a64 = np.asarray(a, dtype=np.float32).astype(np.float64)
    b64 = np.asarray(b, dtype=np.float32).astype(np.float64)
    c64 = np.asarray(c, dtype=np.float32).astype(np.float64)
    p = a64 * b64
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)
    s = np.asarray(s)
    even = (s.view(np.int64) & 1) == 0
    toward = np.where(err > 0, np.inf, -np.inf)
    s = np.where((err != 0) & even, np.nextafter(s, toward), s)
    out = s.astype(np.float32)
    return np.float32(out) if out.ndim == 0 else out
