"""Unscaled RoPE frequencies ("none").

theta_i = freq_base ** (-2i / n_dims) for pair i = 0 .. n_dims/2 - 1.

Source: Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding"
(arXiv:2104.09864), sec. 3.2.2; ggml computes the same ratio as
``theta_scale = powf(freq_base, -2.0f/n_dims)`` (ggml/src/ggml-cpu/ops.cpp:6372);
Hugging Face as ``1 / base ** (arange(0, dim, 2) / dim)`` (transformers 5.23.0,
models/llama/modeling_llama.py:105).
"""

from __future__ import annotations

import numpy as np

from .checks import check_n_dims, check_positive  # noqa: F401  (re-exported)
from .results import RopeFrequencies


def factor_and_original(factor: float | None, original_max_position_embeddings: int,
                        max_position_embeddings: int | None) -> tuple[float, float]:
    """(factor, original context), both checked > 0; a factor of None is HF's
    ``max_position_embeddings / original_max_position_embeddings`` (YaRN and LongRoPE alike)."""
    orig = check_positive("original_max_position_embeddings", original_max_position_embeddings)
    if factor is None:
        if max_position_embeddings is None:
            raise ValueError("factor None needs max_position_embeddings (HF uses max_pos / original)")
        factor = max_position_embeddings / orig
    return check_positive("factor", factor), orig


def base_inv_freq(n_dims: int, freq_base: float) -> np.ndarray:
    """float64 ``freq_base ** (-2i/n_dims)``, shape (n_dims/2,) (RoFormer eq. 15)."""
    n = check_n_dims(n_dims)
    base = check_positive("freq_base", freq_base)
    return base ** (-np.arange(0, n, 2, dtype=np.float64) / n)


def rope_none(n_dims: int, freq_base: float = 10000.0) -> RopeFrequencies:
    """Plain RoPE: inverse frequencies unchanged, attention factor 1."""
    inv = base_inv_freq(n_dims, freq_base)
    return RopeFrequencies("none", inv, 1.0, inv, factor=1.0, mix=np.ones_like(inv))
