"""Shared fixtures. State is hermetic: every test gets its own GGUFROPE_HOME, except the slow
shared artefacts (the llama.cpp source with its vocab files, the SmolLM2 model), which come
from the real cache once per session."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
from typing import Callable

import numpy as np
import pytest

from ggufrope import paths

REAL_HOME = paths.home()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _hermetic_home(tmp_path, monkeypatch):
    home = tmp_path / "ggufrope-home"
    monkeypatch.setenv("GGUFROPE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def llama_src() -> str:
    from ggufrope.llama_source import vendored_tree
    return vendored_tree({"GGUFROPE_HOME": REAL_HOME})


@pytest.fixture(scope="session")
def vocab_files(llama_src) -> list[str]:
    files = sorted(glob.glob(os.path.join(llama_src, "models", "ggml-vocab-*.gguf")))
    assert len(files) >= 10
    return files


@pytest.fixture(scope="session")
def smollm2() -> str:
    from ggufrope.models import fetch
    return fetch("smollm2", {"GGUFROPE_HOME": REAL_HOME})


def write_tiny_llama(path: str, *, n_ctx: int = 256, head_dim: int = 32, n_head: int = 2,
                     n_head_kv: int = 1, n_layer: int = 2, n_vocab: int = 285, n_ff: int = 64,
                     freq_base: float = 10000.0, extra: dict | None = None, seed: int = 0,
                     endianess=None, arch: str = "llama", tensor_dtype=np.float32) -> str:
    """A tiny random-weight llama model that llama.cpp loads and runs (written with gguf-py)."""
    import gguf
    rng = np.random.default_rng(seed)
    n_embd = head_dim * n_head
    kw = {} if endianess is None else {"endianess": endianess}
    w = gguf.GGUFWriter(path, arch, **kw)
    w.add_name("tiny-test")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(freq_base)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    # SPM needs a byte token for every byte (llama_vocab::byte_to_token)
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + \
           ["\u2581" + chr(ord("a") + i) for i in range(26)]
    assert n_vocab == len(toks), f"n_vocab must be {len(toks)}"
    w.add_token_list(toks)
    w.add_token_scores([0.0] * len(toks))
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * 26)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    for k, v in (extra or {}).items():
        w.add_key_value(k, v[1], v[0]) if isinstance(v, tuple) else w.add_string(k, v)

    def t(name, *shape):
        w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(tensor_dtype))

    t("token_embd.weight", n_vocab, n_embd)
    t("output_norm.weight", n_embd)
    t("output.weight", n_vocab, n_embd)
    for i in range(n_layer):
        t(f"blk.{i}.attn_norm.weight", n_embd)
        t(f"blk.{i}.attn_q.weight", n_embd, n_embd)
        t(f"blk.{i}.attn_k.weight", head_dim * n_head_kv, n_embd)
        t(f"blk.{i}.attn_v.weight", head_dim * n_head_kv, n_embd)
        t(f"blk.{i}.attn_output.weight", n_embd, n_embd)
        t(f"blk.{i}.ffn_norm.weight", n_embd)
        t(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        t(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
        t(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def tiny_model(tmp_path) -> Callable[..., str]:
    counter = iter(range(10**6))

    def make(**kw) -> str:
        return write_tiny_llama(str(tmp_path / f"tiny-{next(counter)}.gguf"), **kw)
    return make


def run_cli(*args: str, env_extra: dict | None = None, check: bool = False,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m ggufrope ARGS` as a user would (argv list, real process)."""
    env = dict(os.environ)
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-m", "ggufrope", *args], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"ggufrope {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def file_digest(path: str) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tensor_digests(path: str) -> dict[str, tuple]:
    """name -> (type, shape, sha256 of the data bytes), read with gguf-py (the independent reader)."""
    import hashlib
    import gguf
    r = gguf.GGUFReader(path)
    return {t.name: (int(t.tensor_type), tuple(int(x) for x in t.shape),
                     hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).hexdigest())
            for t in r.tensors}


def gguf_py_metadata(path: str) -> dict:
    """key -> python value, read with gguf-py."""
    import gguf
    r = gguf.GGUFReader(path)
    out = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        out[k] = f.contents()
    return out
