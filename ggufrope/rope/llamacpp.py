"""How llama.cpp resolves its RoPE parameters, and the frequencies that result.

Models src/llama-context.cpp:114-117 and 165-214 (llama.cpp 0c1e570):

1. ``yarn_ext_factor/attn_factor/beta_fast/beta_slow``: the runtime value if >= 0, else the
   model's hparams (defaults -1, 1, 32, 1; src/llama-hparams.h:159-162).
2. scaling type ``none`` forces ``freq_scale = 1`` (l.169-171).
3. ``ext_factor < 0`` becomes 1.0 for yarn, 0.0 for every other type (l.173-175).
4. if ``ext_factor != 0`` (l.177-212), with ``factor = 1/freq_scale``:

   * ``yarn_log_multiplier != 0``: ``attn = get_mscale(factor, m) / get_mscale(factor, mall)``
     with ``mall = yarn_log_multiplier`` and ``m = 1`` -- except arch deepseek2 with
     ``mall != 1``, where ``m = mall`` (l.185-201);
   * else ``attn = get_mscale(factor, 1) = 1 + 0.1 ln(factor)`` (l.203);

   overwriting any user-set attn factor; then ``attn /= 1 + 0.1 ln(factor)`` because
   ggml's rope_yarn multiplies ``1 + 0.1 ln(1/freq_scale)`` back in (l.206-211,
   ggml/src/ggml-cpu/ops.cpp:6197-6198).
5. always ``attn *= rope.scaling.attn_factor`` (hparams.rope_attn_factor, l.214).

In ``precision="float32"`` these steps replay C float arithmetic without FMA
contraction (libllama is compiled without -mfma; only ggml-cpu gets it).

The GGUF key ``rope.scaling.yarn_log_multiplier`` is read only by deepseek2,
deepseek32 and mistral3; deepseek2/deepseek32 divide the stored value by 0.1
(src/models/deepseek2.cpp:34-38, deepseek32.cpp:34-38).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._precision import check_precision, logf, scalar_type
from .angles import ggml_mscale, ggml_rope_angles
from .base import base_inv_freq, check_n_dims, check_positive
from .results import RopeAngles, RopeFrequencies
from .yarn_ggml import get_mscale, ggml_yarn_corr_dims, ggml_yarn_ramp

SCALING_TYPES = ("none", "linear", "yarn", "longrope")
# archs whose loader reads rope.scaling.yarn_log_multiplier (src/models/*.cpp)
YARN_LOG_MUL_ARCHS = ("deepseek2", "deepseek32", "mistral3")
# archs that store 0.1 * mscale_all_dim and divide by 0.1 at load ([TAG_DEEPSEEK2_YARN_LOG_MUL_FIX])
_LOG_MUL_DIV_ARCHS = ("deepseek2", "deepseek32")


@dataclass(frozen=True)
class LlamaCppRopeParams:
    """RoPE inputs of ``ggml_rope_ext`` after llama.cpp's context-parameter resolution.

    ``attn_factor`` is what llama.cpp passes to the op (cparams.yarn_attn_factor);
    :attr:`mscale` is what ggml finally multiplies cos and sin by.
    """

    scaling_type: str
    n_dims: int
    n_ctx_orig: int
    freq_base: float
    freq_scale: float
    ext_factor: float
    attn_factor: float
    beta_fast: float
    beta_slow: float
    corr_dims: tuple[float, float]
    precision: str = "float64"

    @property
    def factor(self) -> float:
        """Context scale factor ``1/freq_scale``."""
        return 1.0 / self.freq_scale

    @property
    def mscale(self) -> float:
        """Magnitude on cos/sin: attn_factor, times ``1 + 0.1 ln(1/freq_scale)`` if ext_factor != 0
        (ops.cpp:6197-6198)."""
        return ggml_mscale(self.attn_factor, self.freq_scale, self.ext_factor, self.precision)

    def ramp_mix(self) -> np.ndarray:
        """Per-pair ``rope_yarn_ramp(low, high, i0) * ext_factor`` (ops.cpp:6194)."""
        f = scalar_type(self.precision)
        ramp = ggml_yarn_ramp(self.corr_dims[0], self.corr_dims[1], self.n_dims // 2, self.precision)
        return (ramp * f(self.ext_factor)).astype(np.float64)

    def frequencies(self, freq_factors=None) -> RopeFrequencies:
        """Per-pair inverse frequencies llama.cpp effectively uses (float64 math)::

            inv_i = base**(-2i/n) / ff_i * (freq_scale * (1 - mix_i) + mix_i)

        with ``mix_i = ramp_mix`` if ext_factor != 0 else 0; attention factor = :attr:`mscale`.
        """
        base = base_inv_freq(self.n_dims, self.freq_base)
        inv = base.copy()
        if freq_factors is not None:
            ff = np.asarray(freq_factors, dtype=np.float64).reshape(-1)[: self.n_dims // 2]
            if ff.shape[0] != base.shape[0]:
                raise ValueError(f"freq_factors needs at least {base.shape[0]} values")
            inv = inv / ff
        mix = self.ramp_mix() if self.ext_factor != 0 else np.zeros_like(base)
        inv = inv * (self.freq_scale * (1.0 - mix) + mix)
        method = "yarn-llamacpp" if self.scaling_type == "yarn" else "llamacpp"
        return RopeFrequencies(method, inv, self.mscale, base, factor=self.factor, mix=mix)

    def angles(self, positions, freq_factors=None, precision: str | None = None, fma: bool = True) -> RopeAngles:
        """:func:`ggml_rope_angles` with these parameters."""
        return ggml_rope_angles(positions, self.n_dims, self.freq_base, self.freq_scale, self.ext_factor,
                                self.attn_factor, self.beta_fast, self.beta_slow, self.n_ctx_orig,
                                freq_factors=freq_factors, precision=precision or self.precision, fma=fma)


def hparams_yarn_log_multiplier(gguf_value: float, arch: str | None) -> float:
    """hparams.rope_yarn_log_mul from the GGUF key's value.

    ``arch`` None: ``gguf_value`` is taken as already the hparams value. Otherwise archs
    that do not read the key get 0, deepseek2/deepseek32 get ``value / 0.1f``.
    """
    if arch is None:
        return float(gguf_value)
    if arch not in YARN_LOG_MUL_ARCHS:
        return 0.0
    if arch in _LOG_MUL_DIV_ARCHS:
        return float(np.float32(gguf_value) / np.float32(0.1))
    return float(gguf_value)


def resolve_llamacpp_rope(*, n_dims: int, n_ctx_orig: int, freq_base: float = 10000.0,
                          freq_scale: float = 1.0, scaling_type: str = "linear", ext_factor: float = -1.0,
                          attn_factor: float = -1.0, beta_fast: float = -1.0, beta_slow: float = -1.0,
                          yarn_log_multiplier: float = 0.0, rope_attn_factor: float = 1.0,
                          arch: str | None = None, precision: str = "float64") -> LlamaCppRopeParams:
    """Resolve RoPE parameters as llama.cpp's context constructor does (module docstring, steps 1-5).

    Args:
        n_dims: rope.dimension_count.
        n_ctx_orig: cparams.n_ctx_orig_yarn (``--yarn-orig-ctx``, else the file's
            rope.scaling.original_context_length, else context_length).
        freq_base, freq_scale: runtime value if non-zero, else the file's (freq_scale =
            1/rope.scaling.factor).
        scaling_type: resolved type: none / linear / yarn / longrope.
        ext_factor, attn_factor, beta_fast, beta_slow: runtime value if >= 0, else the
            file's where the arch reads one (grok, mistral3); negative = llama.cpp default.
        yarn_log_multiplier: value of the GGUF key rope.scaling.yarn_log_multiplier; see
            :func:`hparams_yarn_log_multiplier` for how ``arch`` is applied.
        rope_attn_factor: GGUF rope.scaling.attn_factor (default 1).
        precision: "float64" exact math, or "float32" to replay llama.cpp's float math.
    """
    check_precision(precision)
    n = check_n_dims(n_dims)
    stype = str(scaling_type).lower()
    if stype not in SCALING_TYPES:
        raise ValueError(f"scaling_type must be one of {SCALING_TYPES}, got {scaling_type!r}")
    f = scalar_type(precision)
    base = f(check_positive("freq_base", freq_base))
    fs = f(1) if stype == "none" else f(check_positive("freq_scale", freq_scale))

    ef = f(ext_factor) if ext_factor >= 0 else f(-1)            # hparams default -1
    attn = f(attn_factor) if attn_factor >= 0 else f(1)         # hparams default 1
    bf = f(beta_fast) if beta_fast >= 0 else f(32)
    bs = f(beta_slow) if beta_slow >= 0 else f(1)
    if ef < 0:
        ef = f(1) if stype == "yarn" else f(0)

    if ef != 0:
        factor = f(1) / fs
        mall = f(hparams_yarn_log_multiplier(yarn_log_multiplier, arch))
        if mall != 0:
            m = mall if (arch == "deepseek2" and mall != 1) else f(1)
            attn = f(get_mscale(factor, m, precision)) / f(get_mscale(factor, mall, precision))
        else:
            attn = f(get_mscale(factor, 1.0, precision))
        attn = attn * (f(1) / (f(1) + f(0.1) * logf(factor, precision)))
    attn = attn * f(rope_attn_factor)

    corr = ggml_yarn_corr_dims(n, int(n_ctx_orig), float(base), float(bf), float(bs), precision)
    return LlamaCppRopeParams(scaling_type=stype, n_dims=n, n_ctx_orig=int(n_ctx_orig), freq_base=float(base),
                              freq_scale=float(fs), ext_factor=float(ef), attn_factor=float(attn),
                              beta_fast=float(bf), beta_slow=float(bs), corr_dims=corr, precision=precision)


def rope_yarn_llamacpp(n_dims: int, freq_base: float, factor: float, n_ctx_orig: int, *,
                       ext_factor: float = -1.0, beta_fast: float = -1.0, beta_slow: float = -1.0,
                       yarn_log_multiplier: float = 0.0, rope_attn_factor: float = 1.0,
                       arch: str | None = None) -> RopeFrequencies:
    """YaRN frequencies and magnitude as llama.cpp applies them (scaling type yarn,
    freq_scale = 1/factor), in float64."""
    params = resolve_llamacpp_rope(n_dims=n_dims, n_ctx_orig=n_ctx_orig, freq_base=freq_base,
                                   freq_scale=1.0 / check_positive("factor", factor), scaling_type="yarn",
                                   ext_factor=ext_factor, beta_fast=beta_fast, beta_slow=beta_slow,
                                   yarn_log_multiplier=yarn_log_multiplier, rope_attn_factor=rope_attn_factor,
                                   arch=arch)
    return params.frequencies()
