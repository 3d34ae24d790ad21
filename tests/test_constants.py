"""ggufrope keeps its own GGUF tables (so the inspect path never imports numpy or gguf-py);
they must equal gguf-py's, and the RoPE key names must be llama.cpp's."""
import re

import pytest

import importlib.util
import os


@pytest.fixture(scope="module")
def gguf(llama_src):
    """gguf-py's constants from the llama.cpp tree we build (PyPI's gguf lags behind ggml)."""
    spec = importlib.util.spec_from_file_location(
        "vendored_gguf_constants", os.path.join(llama_src, "gguf-py", "gguf", "constants.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

from ggufrope.gguf.constants import FILE_TYPES, GGML_BLOCK, GGMLType, ValueType  # noqa: E402
from ggufrope.settings.keys import ROPE_KEYS  # noqa: E402


def test_value_types_equal_gguf_py(gguf):
    assert {t.name: t.value for t in ValueType} == {t.name: t.value for t in gguf.GGUFValueType}


def test_ggml_types_and_block_sizes_equal_gguf_py(gguf):
    ours = {t.name: (t.value, GGML_BLOCK[t]) for t in GGMLType}
    theirs = {t.name: (t.value, gguf.GGML_QUANT_SIZES[t]) for t in gguf.GGMLQuantizationType}
    assert ours == theirs


def test_file_types_equal_gguf_py(gguf):
    assert FILE_TYPES == {t.value: t.name for t in gguf.LlamaFileType}


def test_rope_key_names_are_llama_cpp_names(llama_src):
    """Every RoPE key suffix appears in src/llama-arch.cpp's LLM_KV name table."""
    with open(f"{llama_src}/src/llama-arch.cpp") as f:
        names = set(re.findall(r'"%s\.([a-z_.]+)"', f.read()))
    for rk in ROPE_KEYS:
        assert rk.suffix in names, rk.suffix


def test_rope_key_types_match_gguf_py_writer(gguf):
    """gguf-py's Keys table names the same keys; its writer methods use the same types."""
    k = gguf.Keys.Rope
    table = {rk.suffix: rk for rk in ROPE_KEYS}
    for attr, suffix in [("FREQ_BASE", "rope.freq_base"), ("SCALING_TYPE", "rope.scaling.type"),
                         ("SCALING_FACTOR", "rope.scaling.factor"),
                         ("SCALING_ORIG_CTX_LEN", "rope.scaling.original_context_length"),
                         ("SCALING_ATTN_FACTOR", "rope.scaling.attn_factor"),
                         ("SCALING_FINETUNED", "rope.scaling.finetuned"),
                         ("DIMENSION_COUNT", "rope.dimension_count")]:
        assert getattr(k, attr) == "{arch}." + suffix
        assert suffix in table
