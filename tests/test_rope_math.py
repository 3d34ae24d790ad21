"""Properties and hand-computed values of ggufrope.rope (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ggufrope import rope
from ggufrope.rope import PairRegime

LN4 = math.log(4.0)


# --------------------------------------------------------------------------- base / linear / NTK


@pytest.mark.parametrize(
    "n_dims, base, expected",
    [
        pytest.param(4, 10000.0, [1.0, 0.01], id="d4-base1e4"),
        pytest.param(8, 10000.0, [1.0, 0.1, 0.01, 0.001], id="d8-base1e4"),
        pytest.param(6, 64.0, [1.0, 0.25, 0.0625], id="d6-base64"),
    ],
)
def test_base_inv_freq_hand_values(n_dims, base, expected):
    np.testing.assert_allclose(rope.base_inv_freq(n_dims, base), expected, rtol=1e-15)


def test_none_keeps_frequencies_and_is_all_extrapolated():
    fr = rope.rope_none(128, 10000.0)
    np.testing.assert_array_equal(fr.inv_freq, fr.base_inv_freq)
    assert fr.attention_factor == 1.0
    assert set(fr.regimes) == {PairRegime.EXTRAPOLATED}
    assert fr.n_dims == 128 and fr.n_pairs == 64


@pytest.mark.parametrize(
    "n_dims, base, factor",
    [
        pytest.param(128, 10000.0, 2.0, id="llama2-x2"),
        pytest.param(64, 500000.0, 8.0, id="d64-x8"),
        pytest.param(128, 1e6, 0.5, id="compress-x0.5"),
    ],
)
def test_linear_is_base_over_factor(n_dims, base, factor):
    fr = rope.rope_linear(n_dims, base, factor)
    np.testing.assert_allclose(fr.inv_freq, rope.base_inv_freq(n_dims, base) / factor, rtol=1e-15)
    assert fr.attention_factor == 1.0
    if factor != 1.0:
        assert set(fr.regimes) == {PairRegime.INTERPOLATED}


@pytest.mark.parametrize(
    "base, factor, n_dims, expected",
    [
        # 10000 * 4 ** (128/126) = 10000 * 4 * exp(ln4/63) = 40889.94...
        pytest.param(10000.0, 4.0, 128, 40889.94243248622, id="d128-x4"),
        # 10000 * 2 ** (4/2) = 40000 exactly
        pytest.param(10000.0, 2.0, 4, 40000.0, id="d4-x2-exact"),
        pytest.param(500000.0, 1.0, 64, 500000.0, id="factor1-identity"),
    ],
)
def test_ntk_aware_base_hand_values(base, factor, n_dims, expected):
    assert rope.ntk_aware_base(base, factor, n_dims) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n_dims, base, factor", [pytest.param(128, 10000.0, 4.0, id="d128"),
                                                   pytest.param(64, 1e6, 16.0, id="d64")])
def test_ntk_aware_keeps_pair0_and_interpolates_last_pair_by_s(n_dims, base, factor):
    fr = rope.rope_ntk_aware(n_dims, base, factor)
    assert fr.inv_freq[0] == 1.0
    assert fr.inv_freq[-1] == pytest.approx(fr.base_inv_freq[-1] / factor, rel=1e-12)
    assert fr.regimes[0] is PairRegime.EXTRAPOLATED and fr.regimes[-1] is PairRegime.INTERPOLATED


@pytest.mark.parametrize(
    "seq_len, expected_mult",
    [
        pytest.param(None, 1.0, id="init-none"),
        pytest.param(1024, 1.0, id="short-clamped"),
        pytest.param(4096, 1.0, id="at-max"),
        # factor 2, seq 2*max: 2*2 - (2-1) = 3
        pytest.param(8192, 3.0, id="twice-max"),
        pytest.param(6144, 2.0, id="1.5x-max"),
    ],
)
def test_dynamic_ntk_base(seq_len, expected_mult):
    got = rope.dynamic_ntk_base(10000.0, 2.0, 128, seq_len, 4096)
    assert got == pytest.approx(10000.0 * expected_mult ** (128 / 126), rel=1e-12)
    fr = rope.rope_dynamic_ntk(128, 10000.0, 2.0, seq_len, 4096)
    np.testing.assert_allclose(fr.inv_freq, rope.base_inv_freq(128, got), rtol=1e-15)


# --------------------------------------------------------------------------- YaRN (llama.cpp form)


def test_corr_dims_llama2_4k_yarn_x4_by_hand():
    # corr(b) = n_dims * ln(n_ctx_orig / (2 pi b)) / (2 ln base), n_dims 128, base 1e4, ctx 4096
    corr_fast = 64 * math.log(4096 / (2 * math.pi * 32)) / math.log(10000)  # 20.9444816...
    corr_slow = 64 * math.log(4096 / (2 * math.pi * 1)) / math.log(10000)   # 45.0268812...
    assert corr_fast == pytest.approx(20.94448162, abs=1e-8)
    assert corr_slow == pytest.approx(45.02688127, abs=1e-8)
    for precision in ("float64", "float32"):
        assert rope.ggml_yarn_corr_dim(128, 4096, 32, 10000.0, precision) == pytest.approx(corr_fast, rel=1e-6)
        assert rope.ggml_yarn_corr_dims(128, 4096, 10000.0, 32, 1, precision) == (20.0, 46.0)


@pytest.mark.parametrize(
    "n_dims, n_ctx_orig, base, expected",
    [
        pytest.param(128, 4096, 10000.0, (20.0, 46.0), id="llama2-4k"),
        # ctx 8192 base 5e5: corr(32) = 64*ln(8192/(64 pi))/ln(5e5) = 18.08 -> 18;
        # corr(1) = 64*ln(8192/(2 pi))/ln(5e5) = 34.98 -> 35
        pytest.param(128, 8192, 500000.0, (18.0, 35.0), id="llama3-8k"),
        # tiny context: corr(beta_slow) < 0 -> high clamps below low (ggml keeps it)
        pytest.param(128, 4, 10000.0, (0.0, -3.0), id="tiny-ctx"),
        # huge context: high clamps to n_dims - 1, low is not clamped from above
        pytest.param(8, 10**9, 10.0, (26.0, 7.0), id="clamp-high"),
    ],
)
def test_corr_dims_clamping(n_dims, n_ctx_orig, base, expected):
    assert rope.ggml_yarn_corr_dims(n_dims, n_ctx_orig, base, 32, 1, "float32") == expected


def test_yarn_ramp_values_llama2():
    ramp = rope.ggml_yarn_ramp(20.0, 46.0, 64)
    assert ramp[:21].tolist() == [1.0] * 21  # pairs <= low keep the original frequency
    assert ramp[33] == pytest.approx(0.5)  # (33-20)/26
    assert ramp[46:].tolist() == [0.0] * 18
    # degenerate range: ggml divides by max(0.001, high - low)
    np.testing.assert_array_equal(rope.ggml_yarn_ramp(3.0, 3.0, 6), [1, 1, 1, 1, 0, 0])


def test_llamacpp_yarn_frequencies_and_regimes_llama2_x4():
    fr = rope.rope_yarn_llamacpp(128, 10000.0, 4.0, 4096)
    base = rope.base_inv_freq(128, 10000.0)
    np.testing.assert_allclose(fr.inv_freq[:21], base[:21], rtol=1e-15)
    np.testing.assert_allclose(fr.inv_freq[46:], base[46:] / 4, rtol=1e-15)
    assert fr.inv_freq[33] == pytest.approx(base[33] * (0.25 * 0.5 + 0.5), rel=1e-15)
    regimes = fr.regimes
    assert regimes[:21] == (PairRegime.EXTRAPOLATED,) * 21
    assert regimes[21:46] == (PairRegime.RAMPED,) * 25
    assert regimes[46:] == (PairRegime.INTERPOLATED,) * 18
    assert rope.classify_mix(fr.mix) == regimes
    np.testing.assert_allclose(rope.extrapolation_weight(fr.inv_freq, base, 4.0), fr.mix, atol=1e-12)
    assert fr.attention_factor == pytest.approx(1 + 0.1 * LN4, rel=1e-15)


R = rope.resolve_llamacpp_rope


@pytest.mark.parametrize(
    "kwargs, ext, attn, mscale",
    [
        pytest.param(dict(scaling_type="yarn"), 1.0, 1.0, 1 + 0.1 * LN4, id="yarn-default"),
        # a user-set attn factor is overwritten when ext_factor != 0
        pytest.param(dict(scaling_type="yarn", attn_factor=2.0), 1.0, 1.0, 1 + 0.1 * LN4, id="yarn-user-attn-overwritten"),
        # ... and rope.scaling.attn_factor multiplies last
        pytest.param(dict(scaling_type="yarn", rope_attn_factor=0.9), 1.0, 0.9, 0.9 * (1 + 0.1 * LN4), id="yarn-file-attn"),
        pytest.param(dict(scaling_type="yarn", ext_factor=0.5), 0.5, 1.0, 1 + 0.1 * LN4, id="yarn-ext-half"),
        # explicit ext_factor 0: no recompute, no mscale multiply
        pytest.param(dict(scaling_type="yarn", ext_factor=0.0, attn_factor=2.0), 0.0, 2.0, 2.0, id="yarn-ext0"),
        pytest.param(dict(scaling_type="linear"), 0.0, 1.0, 1.0, id="linear"),
        # ext_factor 0: the user's attn factor is kept and multiplied by rope.scaling.attn_factor
        pytest.param(dict(scaling_type="linear", attn_factor=2.0, rope_attn_factor=0.25), 0.0, 0.5, 0.5,
                     id="linear-user-attn-kept"),
        pytest.param(dict(scaling_type="longrope", rope_attn_factor=1.19), 0.0, 1.19, 1.19, id="longrope"),
        # ext_factor forced on a linear model: YaRN attention math applies
        pytest.param(dict(scaling_type="linear", ext_factor=1.0), 1.0, 1.0, 1 + 0.1 * LN4, id="linear-ext1"),
        # mistral3 reads the log multiplier; mscale = 1, mscale_all_dim = 1 -> ratio 1
        pytest.param(dict(scaling_type="yarn", yarn_log_multiplier=1.0, arch="mistral3"), 1.0,
                     1 / (1 + 0.1 * LN4), 1.0, id="mistral3-logmul1"),
        pytest.param(dict(scaling_type="yarn", yarn_log_multiplier=0.707, arch="mistral3"), 1.0,
                     1 / (1 + 0.0707 * LN4), (1 + 0.1 * LN4) / (1 + 0.0707 * LN4), id="mistral3-logmul0.707"),
        # other archs never read the key
        pytest.param(dict(scaling_type="yarn", yarn_log_multiplier=0.707, arch="llama"), 1.0, 1.0, 1 + 0.1 * LN4,
                     id="llama-ignores-logmul"),
        # deepseek2 stores 0.1*mscale_all_dim and uses mscale = mscale_all_dim -> ratio 1
        pytest.param(dict(scaling_type="yarn", yarn_log_multiplier=0.0707, arch="deepseek2"), 1.0,
                     1 / (1 + 0.1 * LN4), 1.0, id="deepseek2"),
        # deepseek32 divides by 0.1 too but keeps mscale = 1
        pytest.param(dict(scaling_type="yarn", yarn_log_multiplier=0.0707, arch="deepseek32"), 1.0,
                     1 / (1 + 0.0707 * LN4), (1 + 0.1 * LN4) / (1 + 0.0707 * LN4), id="deepseek32"),
    ],
)
def test_ext_and_attn_factor_resolution(kwargs, ext, attn, mscale):
    p = R(n_dims=128, n_ctx_orig=4096, freq_base=10000.0, freq_scale=0.25, **kwargs)
    assert p.ext_factor == ext
    # deepseek2/32 divide the stored key by 0.1f in float32
    rel = 1e-6 if kwargs.get("arch") in ("deepseek2", "deepseek32") else 1e-12
    assert p.attn_factor == pytest.approx(attn, rel=rel)
    assert p.mscale == pytest.approx(mscale, rel=rel)


def test_none_forces_freq_scale_one():
    p = R(n_dims=64, n_ctx_orig=4096, freq_scale=0.25, scaling_type="none")
    assert p.freq_scale == 1.0 and p.ext_factor == 0.0 and p.mscale == 1.0
    np.testing.assert_allclose(p.frequencies().inv_freq, rope.base_inv_freq(64, 10000.0), rtol=1e-15)


def test_yarn_factor_below_one_mscale_cancels_to_one():
    # get_mscale(0.5) = 1, divided by 1 + 0.1 ln 0.5, multiplied back by ggml -> 1
    p = R(n_dims=128, n_ctx_orig=4096, freq_scale=2.0, scaling_type="yarn")
    assert p.attn_factor == pytest.approx(1 / (1 + 0.1 * math.log(0.5)))
    assert p.mscale == pytest.approx(1.0, rel=1e-15)


def test_negative_betas_and_attn_mean_llamacpp_defaults():
    p = R(n_dims=128, n_ctx_orig=4096, freq_scale=0.25, scaling_type="yarn")
    assert (p.beta_fast, p.beta_slow, p.corr_dims) == (32.0, 1.0, (20.0, 46.0))


def test_ext_factor_scales_ramp_mix():
    half = R(n_dims=128, n_ctx_orig=4096, freq_scale=0.25, scaling_type="yarn", ext_factor=0.5)
    np.testing.assert_allclose(half.ramp_mix(), 0.5 * rope.ggml_yarn_ramp(20, 46, 64), rtol=1e-15)


def test_beta_fast_zero_disables_interpolation_in_llamacpp():
    # corr(0) = +inf -> low = inf -> ramp 1 for every pair (checked against ggml_rope_yarn_corr_dims)
    p = R(n_dims=128, n_ctx_orig=4096, freq_scale=0.25, scaling_type="yarn", beta_fast=0.0)
    assert p.corr_dims[0] == math.inf
    fr = p.frequencies()
    np.testing.assert_allclose(fr.inv_freq, fr.base_inv_freq, rtol=1e-15)
    assert fr.attention_factor == pytest.approx(1 + 0.1 * LN4)


def test_hf_and_llamacpp_yarn_agree_with_truncate_and_defaults():
    hf = rope.rope_yarn_hf(128, 10000.0, 4.0, 4096)
    cpp = rope.rope_yarn_llamacpp(128, 10000.0, 4.0, 4096)
    np.testing.assert_allclose(hf.inv_freq, cpp.inv_freq, rtol=1e-15)
    assert hf.attention_factor == pytest.approx(cpp.attention_factor, rel=1e-15)


def test_hf_truncate_false_differs_from_llamacpp():
    # gpt-oss style: head 64, base 150000, factor 32, orig 4096, truncate False
    hf = rope.rope_yarn_hf(64, 150000.0, 32.0, 4096, truncate=False)
    cpp = rope.rope_yarn_llamacpp(64, 150000.0, 32.0, 4096)
    low, high = rope.hf_yarn_correction_range(32, 1, 64, 150000.0, 4096, truncate=False)
    assert (low, high) != cpp_corr(64, 4096, 150000.0)
    assert low == pytest.approx(8.0929, abs=1e-3) and high == pytest.approx(17.3980, abs=1e-3)
    rel = np.abs(hf.inv_freq / cpp.inv_freq - 1)
    assert rel.max() > 0.05
    assert hf.attention_factor == pytest.approx(cpp.attention_factor)


def cpp_corr(n_dims, ctx, base):
    return rope.ggml_yarn_corr_dims(n_dims, ctx, base, 32, 1)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        pytest.param({}, 1 + 0.1 * LN4, id="default"),
        pytest.param(dict(attention_factor=0.8), 0.8, id="explicit"),
        pytest.param(dict(mscale=1.0, mscale_all_dim=0.5), (1 + 0.1 * LN4) / (1 + 0.05 * LN4), id="mscale-ratio"),
        pytest.param(dict(mscale=0.707, mscale_all_dim=0.707), 1.0, id="deepseek-equal"),
        pytest.param(dict(mscale=0.707), 1 + 0.1 * LN4, id="mscale-alone-ignored"),
        pytest.param(dict(mscale=1.0, mscale_all_dim=0.0), 1 + 0.1 * LN4, id="mscale-all-zero-falsy"),
    ],
)
def test_hf_yarn_attention_factor(kwargs, expected):
    assert rope.hf_yarn_attention_factor(4.0, **kwargs) == pytest.approx(expected, rel=1e-15)


def test_hf_yarn_factor_none_uses_max_over_orig_and_beta_zero_is_default():
    a = rope.rope_yarn_hf(128, 10000.0, None, 4096, max_position_embeddings=16384, beta_fast=0, beta_slow=0)
    b = rope.rope_yarn_hf(128, 10000.0, 4.0, 4096)
    np.testing.assert_array_equal(a.inv_freq, b.inv_freq)
    assert a.factor == 4.0


# --------------------------------------------------------------------------- angles, float32 mode

# cos/sin * mscale from ggml_rope_ext (llama.cpp 0c1e570, CPU backend, gcc -O3 -mfma), NORMAL
# mode, input pairs (1, 0): Llama-2 yarn x4 (n_dims 128, ctx 4096, base 1e4, freq_scale 0.25,
# ext 1, attn 1, beta 32/1) and plain RoPE (n_dims 128, base 5e5).
GOLDEN_YARN = {
    1: {0: (0.615204096, 0.958123624), 20: (1.13682961, 0.0639961362), 33: (1.13861275, 0.00616255449),
        46: (1.13862932, 0.000379597244), 63: (1.13862944, 3.28717906e-05)},
    4095: {0: (-0.0751222074, -1.13614857), 20: (-0.669053137, -0.92132777), 33: (-1.12179744, -0.195057988),
           46: (0.232457563, 1.1146481), 63: (1.13068175, 0.1342967)},
    100000: {0: (-1.13790166, 0.040704634), 20: (1.1379956, -0.0379883945), 33: (0.730332255, 0.87355125),
             46: (-0.391902536, 1.06906009), 63: (-1.10191584, 0.286807686)},
    1000000: {0: (1.06661355, -0.3985129), 20: (1.07024288, -0.388660699), 33: (-0.883994043, 0.71765697),
              46: (1.06074667, 0.413876325), 63: (-0.942775667, -0.638475537)},
}
GOLDEN_PLAIN = {
    100000: {0: (-0.9993608, 0.0357487984), 1: (0.975625575, 0.219441921), 17: (-0.921897531, -0.387433797),
             40: (-0.660326779, 0.75097841), 63: (0.970012605, 0.243054643)},
    1000000: {0: (0.936752141, -0.349993497), 1: (-0.598500311, 0.801122546), 17: (-0.669064224, -0.743204594),
              40: (-0.59834373, -0.80123955), 63: (-0.773497462, 0.633799434)},
}
GOLDEN_CASES = [
    pytest.param(GOLDEN_YARN, dict(n_dims=128, freq_base=10000.0, freq_scale=0.25, ext_factor=1.0,
                                   n_ctx_orig=4096), id="llama2-yarn-x4"),
    pytest.param(GOLDEN_PLAIN, dict(n_dims=128, freq_base=500000.0, freq_scale=1.0, ext_factor=0.0,
                                    n_ctx_orig=8192), id="plain-base5e5"),
]


def _golden_arrays(golden):
    pos = sorted(golden)
    pairs = sorted(golden[pos[0]])
    ref = np.array([[golden[p][i] for i in pairs] for p in pos])
    return pos, pairs, ref


@pytest.mark.parametrize("golden, kw", GOLDEN_CASES)
def test_float32_angles_match_ggml_golden(golden, kw):
    pos, pairs, ref = _golden_arrays(golden)
    a = rope.ggml_rope_angles(pos, precision="float32", **kw)
    assert a.theta.dtype == np.float32
    np.testing.assert_allclose(a.cos[:, pairs], ref[..., 0], rtol=0, atol=2.5e-7)
    np.testing.assert_allclose(a.sin[:, pairs], ref[..., 1], rtol=0, atol=2.5e-7)


@pytest.mark.parametrize("golden, kw", GOLDEN_CASES)
def test_float64_angles_drift_from_ggml_at_long_positions(golden, kw):
    pos, pairs, ref = _golden_arrays(golden)
    a = rope.ggml_rope_angles(pos, precision="float64", **kw)
    assert np.abs(a.cos[:, pairs] - ref[..., 0]).max() > 1e-3  # float32 theta rounding at 1e5..1e6


def test_float32_replays_running_product():
    # theta_scale = powf(10000, -2/128) = 0.865964353f (glibc); ggml multiplies 63 times from p = 7
    a = rope.ggml_rope_angles([7], 128, 10000.0, precision="float32")
    t = np.float32(7)
    for _ in range(63):
        t = t * np.float32(0.865964353)
    assert a.theta[0, 63] == t
    direct = np.float32(7 * 10000.0 ** (-126 / 128))
    assert float(a.theta[0, 63]) != float(direct)  # accumulated rounding, not the direct power
    a64 = rope.ggml_rope_angles([7], 128, 10000.0)
    assert a64.theta[0, 63] == pytest.approx(7 * 10000.0 ** (-126 / 128), rel=1e-15)


def test_fma_flag_changes_only_last_bits():
    kw = dict(n_dims=128, freq_base=10000.0, freq_scale=0.25, ext_factor=1.0, n_ctx_orig=4096, precision="float32")
    pos = np.arange(0, 50000, 997)
    fused = rope.ggml_rope_angles(pos, fma=True, **kw).theta
    plain = rope.ggml_rope_angles(pos, fma=False, **kw).theta
    np.testing.assert_allclose(fused, plain, rtol=2.5e-7)
    assert np.any(fused != plain)


def test_float32_close_to_float64_at_small_positions():
    p = R(n_dims=128, n_ctx_orig=4096, freq_scale=0.25, scaling_type="yarn")
    a32 = p.angles(np.arange(64), precision="float32")
    a64 = p.angles(np.arange(64))
    np.testing.assert_allclose(a32.theta, a64.theta, rtol=1e-5)
    assert a32.mscale == pytest.approx(a64.mscale, rel=1e-7)
    assert a64.mscale == pytest.approx(1 + 0.1 * LN4, rel=1e-15)
    np.testing.assert_allclose(a64.theta[1], p.frequencies().inv_freq, rtol=1e-14)
    np.testing.assert_allclose(a64.cos, np.cos(a64.theta) * a64.mscale)


def test_angles_with_freq_factors_divide_theta():
    ff = np.linspace(1.0, 8.0, 32)
    a = rope.ggml_rope_angles([10], 64, 10000.0, freq_factors=ff)
    np.testing.assert_allclose(a.theta[0], 10 * rope.base_inv_freq(64, 10000.0) / ff, rtol=1e-15)
    with pytest.raises(ValueError):
        rope.ggml_rope_angles([10], 64, 10000.0, freq_factors=ff[:10])


def test_float32_resolution_is_float32_rounded():
    p = R(n_dims=128, n_ctx_orig=4096, freq_scale=0.25, scaling_type="yarn", precision="float32")
    assert p.attn_factor == float(np.float32(p.attn_factor))
    assert p.mscale == pytest.approx(1 + 0.1 * LN4, rel=1e-7)


# --------------------------------------------------------------------------- Llama-3, LongRoPE


def test_llama3_smoothing_llama31_config():
    fr = rope.rope_llama3(128, 500000.0, 8.0, 1.0, 4.0, 8192)
    wl = rope.wavelengths(fr.base_inv_freq)
    hi, lo = wl < 2048, wl > 8192
    np.testing.assert_allclose(fr.inv_freq[hi], fr.base_inv_freq[hi], rtol=1e-15)
    np.testing.assert_allclose(fr.inv_freq[lo], fr.base_inv_freq[lo] / 8, rtol=1e-15)
    mid = ~hi & ~lo
    assert mid.sum() > 0
    smooth = (8192 / wl[mid] - 1) / 3
    np.testing.assert_allclose(fr.inv_freq[mid], fr.base_inv_freq[mid] * ((1 - smooth) / 8 + smooth), rtol=1e-14)
    # llama.cpp's rope_freqs divisors give the same frequencies through ggml
    ff = rope.llama3_rope_factors(128, 500000.0, 8.0, 1.0, 4.0, 8192)
    np.testing.assert_allclose(fr.base_inv_freq / ff, fr.inv_freq, rtol=1e-14)
    cpp = R(n_dims=128, n_ctx_orig=8192, freq_base=500000.0).frequencies(freq_factors=ff)
    np.testing.assert_allclose(cpp.inv_freq, fr.inv_freq, rtol=1e-14)
    assert set(fr.regimes) == {PairRegime.EXTRAPOLATED, PairRegime.RAMPED, PairRegime.INTERPOLATED}


def test_longrope_attention_factor_phi3_128k():
    # s = 131072/4096 = 32: sqrt(1 + ln 32 / ln 4096) = sqrt(1 + 5/12) = sqrt(17/12)
    assert rope.longrope_attention_factor(32.0, 4096) == pytest.approx(math.sqrt(17 / 12), rel=1e-15)
    assert rope.longrope_attention_factor(1.0, 4096) == 1.0


@pytest.mark.parametrize(
    "n_ctx, n_seq_max, kv_unified, n_ctx_seq, long",
    [
        pytest.param(4096, 1, False, 4096, False, id="ctx4096-short"),
        pytest.param(4000, 1, False, 4096, False, id="ctx4000-pads-to-4096"),
        pytest.param(4097, 1, False, 4352, True, id="ctx4097-pads-to-4352-long"),
        pytest.param(16384, 4, False, 4096, False, id="4-seqs-split"),
        pytest.param(16384, 4, True, 16384, True, id="4-seqs-unified"),
    ],
)
def test_llamacpp_longrope_selection(n_ctx, n_seq_max, kv_unified, n_ctx_seq, long):
    got = rope.llamacpp_n_ctx_seq(n_ctx, n_seq_max, kv_unified)
    assert got == n_ctx_seq
    assert rope.llamacpp_longrope_uses_long(got, 4096) is long


@pytest.mark.parametrize("seq_len, long", [pytest.param(None, False, id="none"), pytest.param(4096, False, id="eq"),
                                           pytest.param(4097, True, id="over")])
def test_hf_longrope_selection(seq_len, long):
    assert rope.hf_longrope_uses_long(seq_len, 4096) is long


def test_longrope_frequencies():
    long_f = np.linspace(1.0, 40.0, 48)
    short_f = np.linspace(1.0, 1.5, 48)
    fr = rope.rope_longrope(96, 10000.0, long_f, short_f, 4096, use_long=True, max_position_embeddings=131072)
    np.testing.assert_allclose(fr.inv_freq, rope.base_inv_freq(96, 10000.0) / long_f, rtol=1e-15)
    assert fr.attention_factor == pytest.approx(math.sqrt(17 / 12))
    fr_s = rope.rope_longrope(96, 10000.0, long_f, short_f, 4096, use_long=False, factor=32.0, attention_factor=1.0)
    np.testing.assert_allclose(fr_s.inv_freq, rope.base_inv_freq(96, 10000.0) / short_f, rtol=1e-15)
    assert fr_s.attention_factor == 1.0
    # llama.cpp: freq_factors divide theta, magnitude is rope.scaling.attn_factor
    cpp = R(n_dims=96, n_ctx_orig=4096, scaling_type="longrope", rope_attn_factor=math.sqrt(17 / 12))
    cf = cpp.frequencies(freq_factors=long_f)
    np.testing.assert_allclose(cf.inv_freq, fr.inv_freq, rtol=1e-15)
    assert cf.attention_factor == pytest.approx(fr.attention_factor)


# --------------------------------------------------------------------------- helpers, validation


def test_wavelengths():
    np.testing.assert_allclose(rope.wavelengths([1.0, 0.5, 2 * math.pi / 4096]), [2 * math.pi, 4 * math.pi, 4096])


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: rope.base_inv_freq(7, 10000.0), id="odd-dims"),
        pytest.param(lambda: rope.base_inv_freq(0, 10000.0), id="zero-dims"),
        pytest.param(lambda: rope.rope_linear(64, 10000.0, 0.0), id="zero-factor"),
        pytest.param(lambda: rope.ggml_rope_angles([1], 64, 1e4, precision="float16"), id="bad-precision"),
        pytest.param(lambda: R(n_dims=64, n_ctx_orig=4096, scaling_type="dynamic"), id="bad-scaling-type"),
        pytest.param(lambda: rope.rope_longrope(64, 1e4, [1.0] * 3, [1.0] * 3, 4096, use_long=True, factor=2.0),
                     id="longrope-wrong-length"),
    ],
)
def test_validation_errors(call):
    with pytest.raises(ValueError):
        call()


def test_results_are_read_only():
    fr = rope.rope_linear(64, 10000.0, 2.0)
    with pytest.raises(ValueError):
        fr.inv_freq[0] = 1.0
    a = rope.ggml_rope_angles([1, 2], 64, 10000.0)
    with pytest.raises(ValueError):
        a.theta[0, 0] = 0.0


def test_package_imports_nothing_else_from_ggufrope():
    import ast
    import pathlib

    for path in pathlib.Path(rope.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not (node.module or "").startswith("ggufrope"), path
            if isinstance(node, ast.ImportFrom) and node.level > 1:
                raise AssertionError(f"{path} imports outside ggufrope.rope")
            if isinstance(node, ast.Import):
                assert all(not a.name.startswith("ggufrope") for a in node.names), path
