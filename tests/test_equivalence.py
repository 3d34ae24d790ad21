"""Equivalence, proven: for each method, a model patched with the `ggufrope patch` command that
`ggufrope plan` prints, and the unpatched model run with the llama.cpp settings plan prints
(llama-cpp-python keyword arguments, and the --override-kv list), give bit-identical logits on
the same tokens; the unscaled model does not (so the test can fail).

Positions beyond the trained context are exercised on the tiny model (trained 256, 400 tokens
at a 1024 target). On SmolLM2 (trained 8192) a prompt past 8192 tokens takes minutes on a
small CPU; RoPE scaling changes the rotation at every position > 0, so the same equivalence
is shown on a 48-token prompt at a 2x plan (16384).
"""
import json
import shutil

import llama_cpp  # the engine oracle: installed by ./bootstrap (ggufrope[engine]); absent = a failure, not a skip
import numpy as np
import pytest

from conftest import run_cli

N_THREADS = 2
SMOL_TOKENS = 48
SMOL_N_CTX = 128  # RoPE does not depend on n_ctx (only on the trained/original context and the factor)


def _plan(model, ctx, method, out, *extra):
    r = run_cli("plan", model, "--ctx", str(ctx), "--method", method, "-o", out, "--json", *extra, check=True)
    return json.loads(r.stdout)


def _logits(path, tokens, **kw):
    m = llama_cpp.Llama(path, logits_all=True, verbose=False, n_threads=N_THREADS, n_threads_batch=N_THREADS,
                        n_batch=512, **kw)
    m.eval(tokens)
    out = np.array(m.scores[:m.n_tokens], dtype=np.float32)
    m.close()
    return out


def _override_kwargs(items):
    """--override-kv KEY=TYPE:VALUE items as llama-cpp-python's kv_overrides dict."""
    conv = {"int": int, "float": float, "str": str, "bool": lambda t: t == "true"}
    out = {}
    for item in items:
        key, _, rest = item.partition("=")
        kind, _, text = rest.partition(":")
        out[key] = conv[kind](text)
    return out


def _patched_and_flags(src, tmp_path, ctx, method, n_ctx, tokens, *extra):
    out = str(tmp_path / f"patched-{method}.gguf")
    rep = _plan(src, ctx, method, out, *extra)
    d = rep["dialects"]
    run_cli(*d["patch"]["argv"][1:], check=True)
    after = dict(d["after_patch"]["llama_cpp_kwargs"], n_ctx=n_ctx)
    patched = _logits(out, tokens, **after)
    flags = _logits(src, tokens, **dict(d["llama_cpp_kwargs"], n_ctx=n_ctx))
    return rep, patched, flags


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """tiny(n_ctx) -> (path, unscaled logits): the tiny llama made position-sensitive. With the
    fixture's 0.02 init everywhere (norm weights included) attention is nearly uniform and barely
    sees positions; unit norm weights and x30 on q and k give it sharp, position-dependent attention."""
    import gguf
    from conftest import write_tiny_llama
    cache = {}

    def make(n_ctx):
        if n_ctx not in cache:
            path = write_tiny_llama(str(tmp_path_factory.mktemp("eq") / f"tiny-{n_ctx}.gguf"), n_ctx=n_ctx)
            r = gguf.GGUFReader(path, "r+")
            for t in r.tensors:
                if t.name.endswith("norm.weight"):
                    t.data[...] = 1.0
                elif t.name.endswith(("attn_q.weight", "attn_k.weight")):
                    t.data[...] *= 30.0
            r.data.flush()
            del r
            cache[n_ctx] = (path, _logits(path, TINY_TOKENS, n_ctx=1024))
        return cache[n_ctx]
    return make


TINY_TOKENS = [1] + [int(t) for t in np.random.default_rng(7).integers(3, 285, size=399)]  # 400 tokens


@pytest.mark.parametrize("method,trained,target,extra", [
    pytest.param("yarn", 256, 1024, (), id="yarn"),
    pytest.param("linear", 256, 1024, (), id="linear"),
    pytest.param("ntk", 256, 1024, (), id="ntk"),
    # non-default betas: llama.cpp does not read them from a llama file, so they must travel as flags
    pytest.param("yarn", 256, 1024, ("--yarn-beta-fast", "16", "--yarn-beta-slow", "2"), id="yarn-betas-16-2"),
    # a factor that is not a power of two (1022/300, where f32(1/s) != 1.0f/f32(s)): the float32
    # rounding must agree in every dialect
    pytest.param("yarn", 300, 1022, (), id="yarn-factor-3.41"),
])
def test_tiny_patch_equals_flags_beyond_trained_context(tiny, tmp_path, method, trained, target, extra):
    src, unscaled = tiny(trained)
    rep, patched, flags = _patched_and_flags(src, tmp_path, target, method, 1024, TINY_TOKENS, *extra)
    assert rep["trained_context"] == trained and rep["factor"] == pytest.approx(target / trained, rel=1e-7)
    assert patched.shape == (400, 285)
    assert np.array_equal(patched, flags), f"{method}: patched file and flags differ"
    # the --override-kv dialect (file keys as overrides + runtime-only flags) is the same model too
    d = rep["dialects"]
    kw = dict(d["after_patch"]["llama_cpp_kwargs"], n_ctx=1024, kv_overrides=_override_kwargs(d["override_kv"]))
    assert np.array_equal(_logits(src, TINY_TOKENS, **kw), patched)
    # and scaling really changed something, beyond the trained context too
    diff = np.abs(patched[trained + 4:] - unscaled[trained + 4:]).max() / np.abs(unscaled).max()
    assert diff > 1e-2, f"{method}: scaled and unscaled logits differ by only {diff:.2g} (relative)"
    if extra:
        # betas are not in the file for llama: without the runtime flags the result differs
        assert "llama.rope.scaling.yarn_beta_fast" not in d["patch"]["keys"]
        plain = _logits(str(tmp_path / "patched-yarn.gguf"), TINY_TOKENS, n_ctx=1024)
        assert not np.array_equal(plain, patched)


@pytest.fixture(scope="module")
def smol_copy(smollm2, tmp_path_factory):
    dst = tmp_path_factory.mktemp("smol") / "smol.gguf"
    shutil.copyfile(smollm2, dst)
    return str(dst)


@pytest.fixture(scope="module")
def smol_tokens(smol_copy):
    m = llama_cpp.Llama(smol_copy, verbose=False, vocab_only=True)
    tokens = m.tokenize(b"Long context in llama.cpp: RoPE scaling stretches the rotary position embedding so "
                        b"that positions beyond the trained context map onto angles the model has seen. "
                        b"YaRN keeps the high frequencies and interpolates the low ones; linear scaling "
                        b"interpolates every pair, and an NTK-aware base change spreads the stretch over "
                        b"all pairs, leaving the fastest one untouched.")[:SMOL_TOKENS]
    assert len(tokens) == SMOL_TOKENS
    return tokens


@pytest.fixture(scope="module")
def smol_unscaled(smol_copy, smol_tokens):
    return _logits(smol_copy, smol_tokens, n_ctx=SMOL_N_CTX)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["yarn", "linear", "ntk"])
def test_smollm2_patch_equals_flags(smol_copy, smol_tokens, smol_unscaled, tmp_path, method):
    # a 2x plan (16384) on a 48-token prompt: see the module docstring for why not > 8192 tokens here
    rep, patched, flags = _patched_and_flags(smol_copy, tmp_path, 16384, method, SMOL_N_CTX, smol_tokens)
    assert rep["trained_context"] == 8192 and rep["factor"] == 2.0
    assert np.array_equal(patched, flags), f"{method}: patched file and flags differ"
    diff = np.abs(patched - smol_unscaled).max() / np.abs(smol_unscaled).max()
    assert diff > 1e-3, f"{method}: scaled and unscaled logits differ by only {diff:.2g} (relative)"
