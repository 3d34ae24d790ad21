"""Helpers for plotting: wavelengths and per-pair regimes.

A pair is *extrapolated* when it keeps its original frequency, *interpolated* when it is
divided by the full factor s (position interpolation, Chen et al. arXiv:2306.15595), and
*ramped* in between (YaRN's NTK-by-parts ramp, arXiv:2309.00071 sec. 3.2; Llama-3
smoothing; NTK base change).
"""

from __future__ import annotations

import enum
import math

import numpy as np


class PairRegime(str, enum.Enum):
    EXTRAPOLATED = "extrapolated"
    INTERPOLATED = "interpolated"
    RAMPED = "ramped"

    def __str__(self) -> str:
        return self.value


def wavelengths(inv_freq) -> np.ndarray:
    """Tokens per full rotation, ``2 pi / inv_freq`` (YaRN paper sec. 3.2, lambda_d)."""
    inv = np.asarray(inv_freq, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 2.0 * math.pi / inv


def extrapolation_weight(inv_freq, base_inv_freq, factor: float) -> np.ndarray:
    """Per-pair w with ``inv = base * (w + (1 - w)/factor)``: 1 = original, 0 = interpolated.

    Equals YaRN's ramp mix and Llama-3's smooth weight; NaN when factor == 1.
    """
    r = np.asarray(inv_freq, dtype=np.float64) / np.asarray(base_inv_freq, dtype=np.float64)
    s = float(factor)
    if s == 1.0:
        return np.full_like(r, np.nan)
    return (r - 1.0 / s) / (1.0 - 1.0 / s)


def classify_pairs(inv_freq, base_inv_freq, factor: float, rtol: float = 1e-6) -> tuple[PairRegime, ...]:
    """Per-pair :class:`PairRegime` by comparing ``inv_freq`` to ``base`` and ``base/factor``
    within relative tolerance ``rtol`` (extrapolated wins when factor == 1)."""
    inv = np.asarray(inv_freq, dtype=np.float64)
    base = np.asarray(base_inv_freq, dtype=np.float64)
    out = []
    for v, b in zip(inv, base):
        if math.isclose(v, b, rel_tol=rtol):
            out.append(PairRegime.EXTRAPOLATED)
        elif math.isclose(v, b / float(factor), rel_tol=rtol):
            out.append(PairRegime.INTERPOLATED)
        else:
            out.append(PairRegime.RAMPED)
    return tuple(out)


def classify_mix(mix, atol: float = 1e-9) -> tuple[PairRegime, ...]:
    """Regimes from an extrapolation weight (1 extrapolated, 0 interpolated, else ramped)."""
    out = []
    for w in np.asarray(mix, dtype=np.float64):
        if abs(w - 1.0) <= atol:
            out.append(PairRegime.EXTRAPOLATED)
        elif abs(w) <= atol:
            out.append(PairRegime.INTERPOLATED)
        else:
            out.append(PairRegime.RAMPED)
    return tuple(out)
