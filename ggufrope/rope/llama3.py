"""Llama-3.1 style frequency smoothing.

With ``wavelen_i = 2 pi / theta_i``, ``low_wl = orig / low_freq_factor``,
``high_wl = orig / high_freq_factor`` (transformers 5.23.0 modeling_rope_utils.py:581-663,
``_compute_llama3_parameters``; Meta's llama-models ``apply_scaling``):

* ``wavelen < high_wl``: unchanged (extrapolated);
* ``wavelen > low_wl``: ``theta_i / factor`` (interpolated);
* otherwise ``smooth = (orig / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)``,
  ``theta_i * ((1 - smooth) / factor + smooth)``.

llama.cpp does not compute this at run time: the converter bakes the per-pair divisors
``1 / ((1 - smooth)/factor + smooth)`` (1 and factor at the ends) into the ``rope_freqs``
tensor (conversion/llama.py:298-326), which ggml divides each angle by
(ggml/src/ggml-cpu/ops.cpp:6210-6212). Attention factor is 1 (HF l.640).
"""

from __future__ import annotations

import math

import numpy as np

from .base import base_inv_freq, check_positive
from .results import RopeFrequencies


def llama3_smooth(n_dims: int, freq_base: float, low_freq_factor: float = 1.0, high_freq_factor: float = 4.0,
                  original_max_position_embeddings: int = 8192) -> np.ndarray:
    """Per-pair extrapolation weight: 1 for high frequencies, 0 for low, ``smooth`` between."""
    orig = check_positive("original_max_position_embeddings", original_max_position_embeddings)
    lff = check_positive("low_freq_factor", low_freq_factor)
    hff = check_positive("high_freq_factor", high_freq_factor)
    wavelen = 2 * math.pi / base_inv_freq(n_dims, freq_base)
    low_wl, high_wl = orig / lff, orig / hff
    w = np.where(wavelen > low_wl, 0.0, 1.0)
    medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
    if np.any(medium):
        smooth = (orig / wavelen[medium] - lff) / (hff - lff)
        w[medium] = smooth
    return w


def rope_llama3(n_dims: int, freq_base: float, factor: float = 8.0, low_freq_factor: float = 1.0,
                high_freq_factor: float = 4.0, original_max_position_embeddings: int = 8192) -> RopeFrequencies:
    """Llama-3 smoothed frequencies; ``mix`` is the per-pair smooth weight."""
    s = check_positive("factor", factor)
    base = base_inv_freq(n_dims, freq_base)
    w = llama3_smooth(n_dims, freq_base, low_freq_factor, high_freq_factor, original_max_position_embeddings)
    inv = base * ((1.0 - w) / s + w)
    return RopeFrequencies("llama3", inv, 1.0, base, factor=s, mix=w)


def llama3_rope_factors(n_dims: int, freq_base: float, factor: float = 8.0, low_freq_factor: float = 1.0,
                        high_freq_factor: float = 4.0, original_max_position_embeddings: int = 8192) -> np.ndarray:
    """The ``rope_freqs`` values llama.cpp's converter writes (conversion/llama.py:315-324):
    per-pair divisors of the angle, 1 (high freq) .. factor (low freq)."""
    s = check_positive("factor", factor)
    w = llama3_smooth(n_dims, freq_base, low_freq_factor, high_freq_factor, original_max_position_embeddings)
    return 1.0 / ((1.0 - w) / s + w)
