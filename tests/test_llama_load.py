"""Files ggufrope writes load in llama.cpp (through llama-cpp-python, built portable by
./bootstrap), and llama.cpp sees the patch: metadata and n_ctx_train."""
import llama_cpp  # installed by ./bootstrap (ggufrope[engine]); absent = a failure, not a skip
import numpy as np
import pytest

from conftest import run_cli


def _load(path, **kw):
    return llama_cpp.Llama(path, n_ctx=kw.pop("n_ctx", 64), verbose=False, **kw)


@pytest.mark.parametrize("mode", ["copy", "in-place"])
def test_tiny_model_patch_is_seen_by_llama_cpp(tiny_model, tmp_path, mode):
    src = tiny_model()
    out = str(tmp_path / "o.gguf")
    args = ["-o", out] if mode == "copy" else ["--in-place"]
    target = out if mode == "copy" else src
    run_cli("patch", src, *args, "--rope-scaling", "yarn", "--rope-scale", "4", "--rope-freq-base", "20000",
            check=True)
    m = _load(target, logits_all=True)  # without logits_all llama-cpp-python 0.3.x leaves scores unwritten
    assert m._model.n_ctx_train() == 1024
    md = m.metadata
    assert md["llama.rope.scaling.type"] == "yarn"
    assert float(md["llama.rope.scaling.factor"]) == 4.0
    assert int(md["llama.rope.scaling.original_context_length"]) == 256
    assert float(md["llama.rope.freq_base"]) == 20000.0
    toks = m.tokenize(b"abc")
    m.eval(toks)  # a forward pass: the last position's logits are real numbers, not the buffer's old bytes
    assert m.n_tokens == len(toks)
    last = np.asarray(m.scores[m.n_tokens - 1])
    assert last.shape == (m.n_vocab(),) and np.isfinite(last).all() and np.abs(last).max() > 0


def test_smollm2_patched_copy_loads(smollm2, tmp_path):
    out = str(tmp_path / "smol-yarn.gguf")
    run_cli("patch", smollm2, "-o", out, "--rope-scaling", "yarn", "--rope-scale", "2", check=True)
    m = _load(out, n_ctx=128)
    assert m._model.n_ctx_train() == 16384
    assert m.metadata["llama.rope.scaling.type"] == "yarn"
    out2 = m("The capital of France is", max_tokens=4, temperature=0)
    assert out2["choices"][0]["text"].strip()


def test_restored_file_loads_like_the_original(tiny_model):
    src = tiny_model()
    ref = _load(src, logits_all=True)
    ref.eval(ref.tokenize(b"ab"))
    ref_logits = list(ref.scores[ref.n_tokens - 1][:10])
    run_cli("patch", src, "--in-place", "--rope-scaling", "linear", "--rope-scale", "2", check=True)
    run_cli("restore", src, check=True)
    m = _load(src, logits_all=True)
    assert m._model.n_ctx_train() == 256
    m.eval(m.tokenize(b"ab"))
    assert list(m.scores[m.n_tokens - 1][:10]) == ref_logits
