"""YaRN building blocks exactly as ggml computes them.

* correction dims: ``ggml_rope_yarn_corr_dim`` / ``ggml_rope_yarn_corr_dims``
  (ggml/src/ggml.c:4478-4490)::

      corr(b) = n_dims * logf(n_ctx_orig / (b * 2 * pi)) / (2 * logf(freq_base))
      low  = max(0,          floorf(corr(beta_fast)))
      high = min(n_dims - 1, ceilf(corr(beta_slow)))

* ramp: ``rope_yarn_ramp`` (ggml/src/ggml-cpu/ops.cpp:6180-6183), with pair index
  i = i0/2::

      y = (i - low) / max(0.001, high - low);  ramp = 1 - min(1, max(0, y))

  ramp is 1 (pure extrapolation, original frequency) below ``low`` and 0 (pure
  interpolation) above ``high``.

* ``get_mscale`` (src/llama-context.cpp:178-180, after YaRN paper sec. 3.3:
  sqrt(1/t) = 0.1 ln s + 1)::

      get_mscale(s, m) = 1 if s <= 1 else 1 + 0.1 * m * ln(s)

Every function takes ``precision`` ("float64" or "float32"); float32 replays the C
float arithmetic.
"""

from __future__ import annotations

import numpy as np

from ._precision import logf, scalar_type


def ggml_yarn_corr_dim(n_dims: int, n_ctx_orig: int, n_rot: float, freq_base: float,
                       precision: str = "float64") -> float:
    """Un-rounded correction dim for ``n_rot`` rotations (ggml.c:4478-4480)."""
    f = scalar_type(precision)
    with np.errstate(divide="ignore", invalid="ignore"):
        num = f(n_dims) * logf(f(n_ctx_orig) / (f(n_rot) * f(2) * f(np.pi)), precision)
        return float(num / (f(2) * logf(f(freq_base), precision)))


def ggml_yarn_corr_dims(n_dims: int, n_ctx_orig: int, freq_base: float, beta_fast: float = 32.0,
                        beta_slow: float = 1.0, precision: str = "float64") -> tuple[float, float]:
    """(low, high) = (max(0, floor(corr(beta_fast))), min(n_dims-1, ceil(corr(beta_slow))))
    (ggml.c:4482-4490)."""
    f = scalar_type(precision)
    start = np.floor(f(ggml_yarn_corr_dim(n_dims, n_ctx_orig, beta_fast, freq_base, precision)))
    end = np.ceil(f(ggml_yarn_corr_dim(n_dims, n_ctx_orig, beta_slow, freq_base, precision)))
    low = start if start > 0 else f(0)          # MAX(0, start)
    high = end if end < n_dims - 1 else f(n_dims - 1)  # MIN(n_dims - 1, end)
    return float(low), float(high)


def ggml_yarn_ramp(low: float, high: float, n_pairs: int, precision: str = "float64") -> np.ndarray:
    """``rope_yarn_ramp(low, high, i0)`` for i0 = 0, 2, ..., 2*(n_pairs-1) (ops.cpp:6180-6183).

    Returns the extrapolation weight per pair: 1 keeps the original frequency, 0 fully
    interpolates.
    """
    f = scalar_type(precision)
    i = np.arange(int(n_pairs)).astype(f)
    denom = max(f(0.001), f(high) - f(low))
    y = (i - f(low)) / denom
    return (f(1) - np.minimum(f(1), np.maximum(f(0), y))).astype(f)


def get_mscale(scale: float, mscale: float = 1.0, precision: str = "float64") -> float:
    """llama.cpp's get_mscale: 1 if scale <= 1 else 0.1*mscale*ln(scale) + 1
    (src/llama-context.cpp:178-180)."""
    f = scalar_type(precision)
    s = f(scale)
    if s <= 1:
        return 1.0
    return float(f(0.1) * f(mscale) * logf(s, precision) + f(1))
