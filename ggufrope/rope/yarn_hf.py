"""YaRN as Hugging Face transformers computes it (``_compute_yarn_parameters``,
transformers 5.23.0 src/transformers/modeling_rope_utils.py:346-484), in float64.

* factor: ``rope_parameters["factor"]``, or ``max_position_embeddings /
  original_max_position_embeddings`` if None (l.427-428).
* attention factor (l.430-440): the configured ``attention_factor`` if given; else if
  both ``mscale`` and ``mscale_all_dim`` are truthy
  ``get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)``; else
  ``get_mscale(factor) = 0.1 ln(factor) + 1`` (1 for factor <= 1).
* beta_fast/beta_slow: ``value or 32`` / ``value or 1`` (l.444-445; 0 counts as unset).
* correction range (l.448-459): same ``find_correction_dim`` as ggml, floor/ceil only if
  ``truncate`` (default True), clamped to [0, dim-1].
* ramp (l.461-467, 479): ``clamp((i - low) / (high - low), 0, 1)`` with ``high += 0.001``
  if equal; extrapolation weight = 1 - ramp.
* ``inv = inv_interp * (1 - w) + inv_extrap * w`` with ``inv_interp = inv_extrap / factor``
  (l.472-483).
"""

from __future__ import annotations

import math

import numpy as np

from .base import base_inv_freq, check_n_dims, factor_and_original
from .results import RopeFrequencies


def hf_yarn_get_mscale(scale: float, mscale: float = 1.0) -> float:
    """HF ``get_mscale``: 1 if scale <= 1 else 0.1*mscale*ln(scale) + 1 (l.430-433)."""
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def hf_yarn_attention_factor(factor: float, attention_factor: float | None = None, mscale: float | None = None,
                             mscale_all_dim: float | None = None) -> float:
    """HF's YaRN attention factor (l.435-440)."""
    if attention_factor is not None:
        return float(attention_factor)
    if mscale and mscale_all_dim:
        return float(hf_yarn_get_mscale(factor, mscale) / hf_yarn_get_mscale(factor, mscale_all_dim))
    return hf_yarn_get_mscale(factor)


def hf_yarn_correction_dim(num_rotations: float, dim: int, base: float, max_position_embeddings: int) -> float:
    """``dim * ln(max_pos / (num_rotations * 2 pi)) / (2 ln base)`` (l.448-450)."""
    return (dim * math.log(max_position_embeddings / (num_rotations * 2 * math.pi))) / (2 * math.log(base))


def hf_yarn_correction_range(beta_fast: float, beta_slow: float, dim: int, base: float,
                             original_max_position_embeddings: int, truncate: bool = True) -> tuple[float, float]:
    """(low, high) as HF's ``find_correction_range`` (l.452-459)."""
    low = hf_yarn_correction_dim(beta_fast, dim, base, original_max_position_embeddings)
    high = hf_yarn_correction_dim(beta_slow, dim, base, original_max_position_embeddings)
    if truncate:
        low = math.floor(low)
        high = math.ceil(high)
    return float(max(low, 0)), float(min(high, dim - 1))


def hf_yarn_extrapolation_weight(low: float, high: float, n_pairs: int) -> np.ndarray:
    """``1 - linear_ramp_factor(low, high, n_pairs)`` (l.461-467, 479)."""
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(int(n_pairs), dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    return 1.0 - ramp


def rope_yarn_hf(n_dims: int, freq_base: float, factor: float | None, original_max_position_embeddings: int, *,
                 max_position_embeddings: int | None = None, beta_fast: float | None = None,
                 beta_slow: float | None = None, truncate: bool = True, attention_factor: float | None = None,
                 mscale: float | None = None, mscale_all_dim: float | None = None) -> RopeFrequencies:
    """HF YaRN frequencies and attention factor (module docstring)."""
    n = check_n_dims(n_dims)
    s, orig = factor_and_original(factor, original_max_position_embeddings, max_position_embeddings)
    attn = hf_yarn_attention_factor(s, attention_factor, mscale, mscale_all_dim)
    bf = beta_fast or 32
    bs = beta_slow or 1
    low, high = hf_yarn_correction_range(bf, bs, n, freq_base, int(orig), truncate)
    base = base_inv_freq(n, freq_base)
    w = hf_yarn_extrapolation_weight(low, high, n // 2)
    inv = (base / s) * (1.0 - w) + base * w
    return RopeFrequencies("yarn-hf", inv, attn, base, factor=s, mix=w)
