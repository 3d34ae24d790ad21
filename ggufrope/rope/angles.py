"""Rotation angles per position and pair, as ggml's rope op computes them.

Replays ``ggml_rope_cache_init`` + ``rope_yarn`` (ggml/src/ggml-cpu/ops.cpp:6187-6218)
for the inputs of ``ggml_rope_ext`` (n_dims, freq_base, freq_scale, ext_factor,
attn_factor, beta_fast, beta_slow, n_ctx_orig, optional freq_factors)::

    theta_scale  = powf(freq_base, -2.0f/n_dims)                      (ops.cpp:6372)
    theta        = p;  for each pair i: ...; theta *= theta_scale     (ops.cpp:6208-6216)
    theta_extrap = theta / ff[i]          (ff = 1 without freq_factors) (ops.cpp:6210-6212)
    theta_interp = freq_scale * theta_extrap                           (ops.cpp:6190)
    if ext_factor != 0:                                                (ops.cpp:6192-6199)
        ramp_mix = rope_yarn_ramp(low, high, i0) * ext_factor
        theta    = theta_interp * (1 - ramp_mix) + theta_extrap * ramp_mix
        mscale  *= 1 + 0.1 * logf(1 / freq_scale)
    else:
        theta    = theta_interp
    cache = (cos(theta) * mscale, sin(theta) * mscale)

``precision="float64"`` computes the exact math (``theta_i = p * base**(-2i/n_dims)``);
``"float32"`` replays ggml's float arithmetic including the running product
``theta *= theta_scale``, whose rounding error grows with the pair index. With
``fma=True`` (default) the two sums the compiler contracts in an FMA-enabled build
(gcc -O3 -std=gnu++17 -mfma, as ggml-cpu is built with GGML_FMA/GGML_NATIVE; nvcc
contracts by default too) are single-rounded::

    theta  = fmaf(theta_interp, 1 - ramp_mix, theta_extrap * ramp_mix)
    mscale = mscale * fmaf(0.1f, logf(1/freq_scale), 1)

Checked against ggml_rope_ext of llama.cpp 0c1e570 (CPU, gcc -O3 -mfma) for positions up
to 1e6, yarn and plain, with and without freq_factors: theta bit-identical (glibc cosf/sinf
of our theta reproduce ggml's output bit for bit); ``RopeAngles.cos/sin`` within one
float32 ulp. ``fma=False`` models a build without FMA contraction.
"""

from __future__ import annotations

import numpy as np

from ._precision import check_precision, fmaf, logf, powf, scalar_type
from .base import check_n_dims
from .results import RopeAngles
from .yarn_ggml import ggml_yarn_corr_dims, ggml_yarn_ramp


def ggml_rope_angles(positions, n_dims: int, freq_base: float, freq_scale: float = 1.0,
                     ext_factor: float = 0.0, attn_factor: float = 1.0, beta_fast: float = 32.0,
                     beta_slow: float = 1.0, n_ctx_orig: int | None = None, freq_factors=None,
                     precision: str = "float64", fma: bool = True) -> RopeAngles:
    """Angles ggml's rope op uses at ``positions`` (see the module docstring for the formula).

    Arguments are the op's own (what llama.cpp passes to ``ggml_rope_ext``, i.e. the
    *resolved* ext_factor and attn_factor; see :func:`resolve_llamacpp_rope`).
    ``n_ctx_orig`` is needed only when ext_factor != 0 (otherwise ``corr_dims`` is NaN).
    ``freq_factors`` (length >= n_dims/2) is the ``rope_freqs`` / ``rope_factors_long`` /
    ``rope_factors_short`` tensor that divides each pair's angle.

    Returns a :class:`RopeAngles` with ``theta`` of shape (len(positions), n_dims/2) and
    ``mscale``, the factor ggml multiplies cos and sin by. ``fma`` only matters for
    ``precision="float32"`` (module docstring).
    """
    check_precision(precision)
    n = check_n_dims(n_dims)
    n_pairs = n // 2
    f = scalar_type(precision)
    pos = np.asarray(positions, dtype=np.int64).reshape(-1)
    ff = None
    if freq_factors is not None:
        ff = np.asarray(freq_factors, dtype=f).reshape(-1)
        if ff.shape[0] < n_pairs:  # ggml asserts src2->ne[0] >= n_dims/2 (ops.cpp:6393)
            raise ValueError(f"freq_factors needs at least {n_pairs} values, got {ff.shape[0]}")
        ff = ff[:n_pairs]

    fs = f(freq_scale)
    ef = f(ext_factor)
    if n_ctx_orig is None:
        if ef != 0:
            raise ValueError("n_ctx_orig is required when ext_factor != 0")
        low = high = float("nan")
        ramp_mix = np.zeros(n_pairs, dtype=f)
    else:
        low, high = ggml_yarn_corr_dims(n, n_ctx_orig, freq_base, beta_fast, beta_slow, precision)
        ramp_mix = (ggml_yarn_ramp(low, high, n_pairs, precision) * ef).astype(f)

    if precision == "float32":
        theta = _theta_float32(pos, n, freq_base, fs, ef, ramp_mix, ff, fma)
    else:
        theta = _theta_float64(pos, n, freq_base, fs, ef, ramp_mix, ff)
    mscale = ggml_mscale(attn_factor, freq_scale, ext_factor, precision, fma)
    return RopeAngles(positions=pos, theta=theta, mscale=mscale, corr_dims=(low, high),
                      ramp_mix=ramp_mix, precision=precision)


def _theta_float32(pos, n: int, freq_base: float, fs, ef, ramp_mix, ff, fma: bool) -> np.ndarray:
    """ggml's float arithmetic, pair by pair, with its running product (module docstring)."""
    f = np.float32
    n_pairs = n // 2
    theta_scale = powf(f(freq_base), f(-2.0) / f(n), "float32")
    theta = np.empty((pos.shape[0], n_pairs), dtype=f)
    t = pos.astype(f)                       # float theta = p (ops.cpp:6208)
    for i in range(n_pairs):
        t_extrap = t / ff[i] if ff is not None else t / f(1)
        t_interp = fs * t_extrap
        if ef != 0 and fma:
            theta[:, i] = fmaf(t_interp, f(1) - ramp_mix[i], t_extrap * ramp_mix[i])
        elif ef != 0:
            theta[:, i] = t_interp * (f(1) - ramp_mix[i]) + t_extrap * ramp_mix[i]
        else:
            theta[:, i] = t_interp
        t = t * theta_scale                 # theta *= theta_scale (ops.cpp:6216)
    return theta


def _theta_float64(pos, n: int, freq_base: float, fs, ef, ramp_mix, ff) -> np.ndarray:
    """The exact math: theta_i = p * base**(-2i/n) / ff_i, mixed by the ramp."""
    inv = float(freq_base) ** (-np.arange(0, n, 2, dtype=np.float64) / n)
    if ff is not None:
        inv = inv / ff
    t_extrap = pos.astype(np.float64)[:, None] * inv[None, :]
    if ef != 0:
        return t_extrap * (fs * (1.0 - ramp_mix) + ramp_mix)[None, :]
    return fs * t_extrap


def ggml_mscale(attn_factor: float, freq_scale: float, ext_factor: float, precision: str = "float64",
                fma: bool = True) -> float:
    """Magnitude ggml multiplies cos/sin by: ``attn_factor``, times ``1 + 0.1*logf(1/freq_scale)``
    when ext_factor != 0 (ops.cpp:6197-6198; fused in float32 mode with ``fma``)."""
    f = scalar_type(precision)
    m = f(attn_factor)
    if f(ext_factor) != 0:
        lg = logf(f(1) / f(freq_scale), precision)
        m = m * (fmaf(f(0.1), lg, f(1)) if (fma and precision == "float32") else f(1) + f(0.1) * lg)
    return float(m)
