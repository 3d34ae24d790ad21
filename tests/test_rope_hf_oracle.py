"""Hugging Face transformers' RoPE initialisation functions as an oracle for ggufrope.rope.

Every method both implement (default, linear, dynamic, yarn and its variants, llama3,
longrope) must agree to 1e-6 relative on small fake LlamaConfigs. HF computes in
float32, ggufrope in float64, so 1e-6 leaves ~10 float32 ulps of room. Each case is also
run through HF's code with torch.float32 swapped for float64, which must agree to 1e-12
(formula identity). The one exception to 1e-6: YaRN with ``truncate=False`` at factor 32,
where HF's float32 ramp weight loses up to ~2e-6 (see test_yarn_hf_form).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
# the oracle is installed by ./bootstrap and the `test` extra (pinned); absent = a failure, not a skip
import torch
import transformers
import transformers.modeling_rope_utils as rope_utils
# HF's "default" RoPE lives on the model's rotary class (not in ROPE_INIT_FUNCTIONS since v5)
import transformers.models.llama.modeling_llama as modeling_llama

from ggufrope import rope

RTOL = 1e-6
HEADS = 4
TF_MAJOR = int(transformers.__version__.split(".")[0])


def make_config(head_dim: int, base: float, max_pos: int, rope_parameters: dict | None = None):
    """A LlamaConfig with the given RoPE settings (transformers 5 ``rope_parameters``;
    transformers 4 ``rope_scaling`` + ``rope_theta``)."""
    params = dict(rope_parameters or {"rope_type": "default"})
    common = dict(hidden_size=head_dim * HEADS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
                  head_dim=head_dim, max_position_embeddings=max_pos, num_hidden_layers=1,
                  intermediate_size=16, vocab_size=32)
    if TF_MAJOR >= 5:
        params["rope_theta"] = base
        return transformers.LlamaConfig(rope_parameters=params, **common)
    scaling = None if params.get("rope_type") == "default" else params
    return transformers.LlamaConfig(rope_theta=base, rope_scaling=scaling, **common)


class _Float64Torch:
    """Stand-in for the ``torch`` module that maps torch.float / torch.float32 to float64, so
    HF's own init code evaluates its formulas in float64 (formula identity check)."""

    float = torch.float64
    float32 = torch.float64

    def __getattr__(self, name):
        return getattr(torch, name)


def hf_init(config, rope_type: str, seq_len=None, float64: bool = False):
    """(inv_freq as float64 array, attention factor) from HF's init function for ``rope_type``.

    ``float64=True`` runs HF's code with torch.float/float32 replaced by float64.
    """
    fns = rope_utils.ROPE_INIT_FUNCTIONS
    mp = pytest.MonkeyPatch()
    try:
        if float64:
            for mod in (rope_utils, modeling_llama):
                mp.setattr(mod, "torch", _Float64Torch())
        if rope_type == "default" and "default" not in fns:
            inv, attn = modeling_llama.LlamaRotaryEmbedding.compute_default_rope_parameters(config)
        else:
            kwargs = {} if seq_len is None else {"seq_len": seq_len}
            inv, attn = fns[rope_type](config, None, **kwargs)
    finally:
        mp.undo()
    return inv.detach().cpu().numpy().astype(np.float64), float(attn)


def check(ours: rope.RopeFrequencies, config, rope_type: str, seq_len=None, *, rtol32: float = RTOL,
          rtol64: float = 1e-12, case: str = ""):
    """HF's native float32 result must agree to ``rtol32`` (1e-6), and HF's code run in float64
    to ``rtol64``; the attention factor (Python float in HF) to 1e-12 either way."""
    for float64, rtol in ((False, rtol32), (True, rtol64)):
        hf_inv, hf_attn = hf_init(config, rope_type, seq_len, float64=float64)
        np.testing.assert_allclose(ours.inv_freq, hf_inv, rtol=rtol, atol=0,
                                   err_msg=f"{rope_type} {case} hf_float64={float64}")
        assert ours.attention_factor == pytest.approx(hf_attn, rel=1e-12), f"{rope_type} {case}"
    return hf_inv, hf_attn


def grid(*axes):
    """Cartesian product of the given value lists."""
    return list(itertools.product(*axes))


HEAD_DIMS = (64, 128)
BASES = (10000.0, 500000.0, 1e6)
FACTORS = (2.0, 4.0, 8.0, 32.0)


def test_default():
    for head_dim, base in grid(HEAD_DIMS, BASES):
        cfg = make_config(head_dim, base, 4096)
        check(rope.rope_none(head_dim, base), cfg, "default", case=f"d{head_dim} b{base}")


def test_linear():
    for head_dim, base, factor in grid(HEAD_DIMS, BASES, FACTORS):
        cfg = make_config(head_dim, base, 4096, {"rope_type": "linear", "factor": factor})
        check(rope.rope_linear(head_dim, base, factor), cfg, "linear", case=f"d{head_dim} b{base} x{factor}")


@pytest.mark.parametrize("seq_len", [pytest.param(None, id="init"), pytest.param(1000, id="short"),
                                     pytest.param(4096, id="at-max"), pytest.param(9000, id="2.2x"),
                                     pytest.param(32768, id="8x")])
def test_dynamic_ntk(seq_len):
    for head_dim, base, factor in grid(HEAD_DIMS, BASES, (2.0, 8.0)):
        cfg = make_config(head_dim, base, 4096, {"rope_type": "dynamic", "factor": factor})
        ours = rope.rope_dynamic_ntk(head_dim, base, factor, seq_len, 4096)
        check(ours, cfg, "dynamic", seq_len, case=f"d{head_dim} b{base} x{factor}")


YARN_VARIANTS = [
    pytest.param({}, id="plain"),
    pytest.param({"truncate": False}, id="no-truncate"),
    pytest.param({"beta_fast": 16.0, "beta_slow": 2.0}, id="beta16-2"),
    pytest.param({"beta_fast": 64.0, "beta_slow": 0.5, "truncate": False}, id="beta64-0.5-no-truncate"),
    pytest.param({"attention_factor": 0.9}, id="attention-factor"),
    pytest.param({"mscale": 1.0, "mscale_all_dim": 0.5}, id="mscale-ratio"),
    pytest.param({"mscale": 0.707, "mscale_all_dim": 0.707}, id="deepseek-mscale"),
    pytest.param({"mscale": 0.707}, id="mscale-alone"),
]


@pytest.mark.parametrize("variant", YARN_VARIANTS)
def test_yarn_hf_form(variant):
    orig = 4096
    # Without truncation the ramp runs between non-integer bounds and HF rounds the ramp
    # weight w to float32 (|dw| ~ 1e-7); inv = base*(w + (1-w)/s) amplifies that by up to
    # s for small w, i.e. ~4e-6 relative at s = 32. The float64 run stays at 1e-12.
    rtol32 = 1e-5 if variant.get("truncate") is False else RTOL
    for head_dim, base, factor in grid(HEAD_DIMS, BASES, FACTORS):
        params = {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": orig, **variant}
        cfg = make_config(head_dim, base, int(orig * factor), params)
        ours = rope.rope_yarn_hf(head_dim, base, factor, orig, **variant)
        check(ours, cfg, "yarn", rtol32=rtol32, case=f"d{head_dim} b{base} x{factor}")


def test_yarn_hf_form_no_truncate_float32_within_1e6_for_small_factors():
    for head_dim, base, factor in grid(HEAD_DIMS, BASES, (2.0, 4.0, 8.0)):
        params = {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": 4096, "truncate": False}
        cfg = make_config(head_dim, base, int(4096 * factor), params)
        check(rope.rope_yarn_hf(head_dim, base, factor, 4096, truncate=False), cfg, "yarn",
              case=f"d{head_dim} b{base} x{factor}")


@pytest.mark.parametrize("orig, max_pos", [pytest.param(4096, 32768, id="4k-32k"),
                                           pytest.param(2048, 163840, id="2k-160k")])
def test_yarn_hf_factor_from_max_over_orig(orig, max_pos):
    # factor None: HF uses max_position_embeddings / original_max_position_embeddings
    for head_dim in HEAD_DIMS:
        cfg = make_config(head_dim, 10000.0, max_pos, {"rope_type": "yarn", "factor": None,
                                                       "original_max_position_embeddings": orig})
        ours = rope.rope_yarn_hf(head_dim, 10000.0, None, orig, max_position_embeddings=max_pos)
        check(ours, cfg, "yarn", case=f"d{head_dim}")


@pytest.mark.parametrize("orig", [pytest.param(4096, id="orig4k"), pytest.param(32768, id="orig32k")])
def test_yarn_llamacpp_form_matches_hf_defaults(orig):
    """llama.cpp's YaRN equals HF's when HF truncates (default), betas are 32/1 and no
    attention_factor / mscale override is configured."""
    for head_dim, base, factor in grid(HEAD_DIMS, BASES, FACTORS):
        params = {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": orig}
        cfg = make_config(head_dim, base, int(orig * factor), params)
        check(rope.rope_yarn_llamacpp(head_dim, base, factor, orig), cfg, "yarn",
              case=f"d{head_dim} b{base} x{factor}")


@pytest.mark.parametrize(
    "hf_extra, cpp_kwargs",
    [
        # llama.cpp mistral3 reads mscale_all_dim as yarn_log_multiplier and assumes mscale 1
        pytest.param({"mscale": 1.0, "mscale_all_dim": 1.0}, dict(yarn_log_multiplier=1.0, arch="mistral3"),
                     id="mistral3-1-1"),
        pytest.param({"mscale": 1.0, "mscale_all_dim": 0.5}, dict(yarn_log_multiplier=0.5, arch="mistral3"),
                     id="mistral3-1-0.5"),
        # deepseek2 stores 0.1*mscale_all_dim and uses mscale = mscale_all_dim
        pytest.param({"mscale": 0.707, "mscale_all_dim": 0.707}, dict(yarn_log_multiplier=0.0707, arch="deepseek2"),
                     id="deepseek2"),
        # llama.cpp runtime flags --yarn-beta-fast/--yarn-beta-slow vs HF beta_fast/beta_slow
        pytest.param({"beta_fast": 16.0, "beta_slow": 2.0}, dict(beta_fast=16.0, beta_slow=2.0), id="betas-as-flags"),
    ],
)
def test_yarn_llamacpp_form_matches_hf_variants(hf_extra, cpp_kwargs):
    orig = 4096
    for head_dim, factor in grid(HEAD_DIMS, FACTORS):
        params = {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": orig, **hf_extra}
        cfg = make_config(head_dim, 10000.0, int(orig * factor), params)
        ours = rope.rope_yarn_llamacpp(head_dim, 10000.0, factor, orig, **cpp_kwargs)
        check(ours, cfg, "yarn", case=f"d{head_dim} x{factor}")


def test_yarn_llamacpp_differs_from_hf_when_truncate_false():
    """gpt-oss-like settings (truncate False): HF's unrounded correction range moves the ramp."""
    params = {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096, "truncate": False}
    cfg = make_config(64, 150000.0, 131072, params)
    hf_inv, hf_attn = hf_init(cfg, "yarn")
    ours = rope.rope_yarn_llamacpp(64, 150000.0, 32.0, 4096)
    assert np.max(np.abs(ours.inv_freq / hf_inv - 1)) > 0.05
    assert ours.attention_factor == pytest.approx(hf_attn, rel=RTOL)


def test_yarn_llamacpp_ignores_hf_attention_factor():
    params = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "attention_factor": 0.9}
    cfg = make_config(128, 10000.0, 16384, params)
    hf_inv, hf_attn = hf_init(cfg, "yarn")
    # the converter writes rope.scaling.yarn_attn_factor, which llama.cpp overwrites (ext_factor 1)
    p = rope.resolve_llamacpp_rope(n_dims=128, n_ctx_orig=4096, freq_scale=0.25, scaling_type="yarn", attn_factor=0.9)
    assert hf_attn == pytest.approx(0.9)
    assert p.mscale == pytest.approx(1 + 0.1 * math.log(4), rel=1e-12)
    np.testing.assert_allclose(p.frequencies().inv_freq, hf_inv, rtol=RTOL)


LLAMA3_CASES = [
    pytest.param(500000.0, 8.0, 1.0, 4.0, 8192, id="llama3.1"),
    pytest.param(500000.0, 32.0, 1.0, 4.0, 8192, id="llama3.2-x32"),
    pytest.param(10000.0, 4.0, 2.0, 8.0, 4096, id="synthetic-1e4"),
    pytest.param(1e6, 16.0, 1.0, 32.0, 2048, id="synthetic-1e6"),
]


@pytest.mark.parametrize("base, factor, low, high, orig", LLAMA3_CASES)
def test_llama3(base, factor, low, high, orig):
    for head_dim in HEAD_DIMS:
        params = {"rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
                  "original_max_position_embeddings": orig}
        cfg = make_config(head_dim, base, int(orig * factor), params)
        check(rope.rope_llama3(head_dim, base, factor, low, high, orig), cfg, "llama3", case=f"d{head_dim}")
        # llama.cpp: the converter's rope_freqs divisors, applied by ggml as theta / ff
        ff = rope.llama3_rope_factors(head_dim, base, factor, low, high, orig)
        cpp = rope.resolve_llamacpp_rope(n_dims=head_dim, n_ctx_orig=orig, freq_base=base)
        check(cpp.frequencies(freq_factors=ff), cfg, "llama3", case=f"llama.cpp d{head_dim}")


def _longrope_factors(n_pairs: int, seed: int):
    rng = np.random.default_rng(seed)
    long_f = np.sort(rng.uniform(1.0, 60.0, n_pairs))
    short_f = np.sort(rng.uniform(1.0, 2.0, n_pairs))
    return long_f.tolist(), short_f.tolist()


@pytest.mark.parametrize("seq_len", [pytest.param(None, id="init"), pytest.param(4096, id="at-orig"),
                                     pytest.param(4097, id="over-orig"), pytest.param(100000, id="long")])
@pytest.mark.parametrize("extra", [pytest.param({}, id="phi3-implicit-factor"),
                                   pytest.param({"factor": 8.0}, id="explicit-factor"),
                                   pytest.param({"attention_factor": 1.1}, id="explicit-attention")])
def test_longrope(seq_len, extra):
    orig, max_pos = 4096, 131072
    use_long = rope.hf_longrope_uses_long(seq_len, orig)
    for head_dim, base in grid((64, 96, 128), BASES):
        long_f, short_f = _longrope_factors(head_dim // 2, head_dim)
        params = {"rope_type": "longrope", "long_factor": long_f, "short_factor": short_f,
                  "original_max_position_embeddings": orig, **extra}
        cfg = make_config(head_dim, base, max_pos, params)
        ours = rope.rope_longrope(head_dim, base, long_f, short_f, orig, use_long=use_long,
                                  max_position_embeddings=max_pos, **extra)
        # HF's longrope exponent goes through Tensor.float() (float32) even in the float64 run
        check(ours, cfg, "longrope", seq_len, rtol64=RTOL, case=f"d{head_dim} b{base}")
        if not extra:
            # llama.cpp: rope.scaling.attn_factor written by the converter (phi.py) and theta / ff
            attn = rope.longrope_attention_factor(max_pos / orig, orig)
            p = rope.resolve_llamacpp_rope(n_dims=head_dim, n_ctx_orig=orig, freq_base=base,
                                           scaling_type="longrope", rope_attn_factor=attn)
            check(p.frequencies(freq_factors=long_f if use_long else short_f), cfg, "longrope", seq_len,
                  rtol64=RTOL, case=f"llama.cpp d{head_dim} b{base}")
