"""Result types shared by the RoPE math modules.

Two small frozen dataclasses:

* :class:`RopeFrequencies` -- per-pair inverse frequencies of one scaling method plus
  the attention magnitude factor that multiplies cos and sin (Hugging Face's
  ``attention_scaling``, ggml's ``mscale``).
* :class:`RopeAngles` -- rotation angles per position x pair as ggml's rope op
  computes them, with the magnitude factor it applies.

Arrays are stored read-only; the dataclasses compare by identity (``eq=False``)
because element-wise array equality has no single truth value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._precision import cosf, sinf


def _frozen_array(values, dtype) -> np.ndarray:
    arr = np.array(values, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class RopeFrequencies:
    """Inverse frequencies of one RoPE variant.

    Attributes:
        method: the variant's name ("none", "linear", "ntk", "dynamic", "yarn-hf",
            "yarn-llamacpp", "llama3", "longrope", "llamacpp").
        inv_freq: radians per position for each dimension pair i = 0 .. n_dims/2-1.
            The angle at position p is ``p * inv_freq[i]``.
        attention_factor: factor multiplying cos and sin (so q.k scales by its square).
        base_inv_freq: the unscaled ``freq_base ** (-2i/n_dims)`` for comparison.
        factor: the context scale factor s (1 = unscaled); interpolation means
            ``inv_freq == base_inv_freq / s``.
        mix: per-pair extrapolation weight where the method defines one
            (1 = original frequency kept, 0 = fully interpolated), else None.
    """

    method: str
    inv_freq: np.ndarray
    attention_factor: float
    base_inv_freq: np.ndarray
    factor: float = 1.0
    mix: np.ndarray | None = None

    def __post_init__(self) -> None:
        inv = _frozen_array(self.inv_freq, np.float64)
        base = _frozen_array(self.base_inv_freq, np.float64)
        if inv.ndim != 1 or inv.shape != base.shape:
            raise ValueError(f"inv_freq {inv.shape} and base_inv_freq {base.shape} must be equal 1-D shapes")
        object.__setattr__(self, "inv_freq", inv)
        object.__setattr__(self, "base_inv_freq", base)
        object.__setattr__(self, "attention_factor", float(self.attention_factor))
        object.__setattr__(self, "factor", float(self.factor))
        if self.mix is not None:
            mix = _frozen_array(self.mix, np.float64)
            if mix.shape != inv.shape:
                raise ValueError(f"mix {mix.shape} must have the shape of inv_freq {inv.shape}")
            object.__setattr__(self, "mix", mix)

    @property
    def n_pairs(self) -> int:
        return int(self.inv_freq.shape[0])

    @property
    def n_dims(self) -> int:
        return 2 * self.n_pairs

    @property
    def wavelengths(self) -> np.ndarray:
        """Tokens per full turn of each pair, ``2*pi/inv_freq``."""
        from .analysis import wavelengths

        return wavelengths(self.inv_freq)

    @property
    def regimes(self) -> tuple:
        """Per-pair :class:`~ggufrope.rope.analysis.PairRegime` (see ``classify_pairs``)."""
        from .analysis import classify_pairs

        return classify_pairs(self.inv_freq, self.base_inv_freq, self.factor)

    def angles(self, positions) -> np.ndarray:
        """float64 angles ``p * inv_freq[i]``, shape (len(positions), n_pairs)."""
        pos = np.asarray(positions, dtype=np.float64).reshape(-1)
        return pos[:, None] * self.inv_freq[None, :]


@dataclass(frozen=True, eq=False)
class RopeAngles:
    """Rotation angles as ggml's rope op computes them (ggml/src/ggml-cpu/ops.cpp:6187-6218).

    Attributes:
        positions: int64 positions, shape (n_pos,).
        theta: angle per position x pair, shape (n_pos, n_pairs); float64 or float32
            depending on ``precision``.
        mscale: magnitude factor applied to cos and sin, i.e. the op's attn_factor times
            ``1 + 0.1*ln(1/freq_scale)`` when ext_factor != 0 (ops.cpp:6197-6198).
        corr_dims: (low, high) YaRN correction dims as ggml_rope_yarn_corr_dims gives them.
        ramp_mix: per-pair ``rope_yarn_ramp(low, high, i0) * ext_factor`` (0 where ext_factor == 0).
        precision: "float64" or "float32".
    """

    positions: np.ndarray
    theta: np.ndarray
    mscale: float
    corr_dims: tuple[float, float]
    ramp_mix: np.ndarray
    precision: str = "float64"

    def __post_init__(self) -> None:
        dtype = np.float32 if self.precision == "float32" else np.float64
        object.__setattr__(self, "positions", _frozen_array(self.positions, np.int64))
        object.__setattr__(self, "theta", _frozen_array(self.theta, dtype))
        object.__setattr__(self, "ramp_mix", _frozen_array(self.ramp_mix, dtype))
        object.__setattr__(self, "mscale", float(self.mscale))
        object.__setattr__(self, "corr_dims", (float(self.corr_dims[0]), float(self.corr_dims[1])))

    @property
    def n_pairs(self) -> int:
        return int(self.theta.shape[1])

    @property
    def cos(self) -> np.ndarray:
        """``cos(theta) * mscale`` as ggml stores it in its cache (ops.cpp:6200); in float32 mode
        within one ulp of glibc's cosf."""
        return cosf(self.theta, self.precision) * self.theta.dtype.type(self.mscale)

    @property
    def sin(self) -> np.ndarray:
        """``sin(theta) * mscale`` as ggml stores it in its cache (ops.cpp:6201), forward sign."""
        return sinf(self.theta, self.precision) * self.theta.dtype.type(self.mscale)
