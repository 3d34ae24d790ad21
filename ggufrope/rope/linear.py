"""Linear scaling / position interpolation.

inv_freq_i = theta_i / s, i.e. positions are compressed by s (freq_scale = 1/s).

Source: Chen et al., "Extending Context Window of Large Language Models via Positional
Interpolation" (arXiv:2306.15595), sec. 2; llama.cpp's ``theta_interp = freq_scale *
theta_extrap`` (ggml/src/ggml-cpu/ops.cpp:6190); Hugging Face ``inv_freq /= factor``
(transformers 5.23.0 modeling_rope_utils.py:190).
"""

from __future__ import annotations

import numpy as np

from .base import base_inv_freq, check_positive
from .results import RopeFrequencies


def rope_linear(n_dims: int, freq_base: float, factor: float) -> RopeFrequencies:
    """Position interpolation by ``factor`` (s); attention factor 1."""
    s = check_positive("factor", factor)
    base = base_inv_freq(n_dims, freq_base)
    return RopeFrequencies("linear", base / s, 1.0, base, factor=s, mix=np.zeros_like(base))
