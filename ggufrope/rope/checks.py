"""Argument checks shared by the RoPE formulas (plain Python: no numpy, so scalar callers such
as the planner's base changes stay light)."""

from __future__ import annotations


def check_n_dims(n_dims: int) -> int:
    """Validate a rotary dimension count (must be a positive even integer; ggml asserts
    ``n_dims % 2 == 0``, ops.cpp:6356)."""
    n = int(n_dims)
    if n != n_dims or n <= 0 or n % 2:
        raise ValueError(f"n_dims must be a positive even integer, got {n_dims!r}")
    return n


def check_positive(name: str, value: float) -> float:
    v = float(value)
    if not v > 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v
