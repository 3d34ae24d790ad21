"""A Hugging Face model card's rope_scaling snippet applies to a GGUF in one command."""
import json
import math

import pytest

from conftest import gguf_py_metadata, run_cli
from ggufrope.errors import UsageError
from ggufrope.settings.hf import load_rope_json, rope_from_hf


@pytest.mark.parametrize("snippet,expect", [
    pytest.param({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
                 dict(scaling_type="yarn", scaling_factor=4.0, original_context_length=32768), id="qwen-type"),
    pytest.param({"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 4096,
                  "beta_fast": 16, "beta_slow": 2, "attention_factor": 1.1},
                 dict(scaling_type="yarn", scaling_factor=2.0, original_context_length=4096, yarn_beta_fast=16.0,
                      yarn_beta_slow=2.0, attn_factor=1.1 / (1 + 0.1 * math.log(2))), id="rope_type-with-betas"),
    pytest.param({"type": "linear", "factor": 2.0}, dict(scaling_type="linear", scaling_factor=2.0), id="linear"),
])
def test_mapping(snippet, expect):
    s = rope_from_hf(snippet)
    for k, v in expect.items():
        assert getattr(s, k) == pytest.approx(v), k


@pytest.mark.parametrize("snippet,msg", [
    pytest.param({"rope_type": "llama3", "factor": 8.0}, "rope_freqs", id="llama3-baked-at-conversion"),
    pytest.param({"type": "dynamic", "factor": 2.0}, "no dynamic", id="dynamic"),
    pytest.param({"type": "yarn"}, "factor", id="no-factor"),
    pytest.param({"factor": 2.0}, "neither", id="no-type"),
])
def test_unmappable(snippet, msg):
    with pytest.raises(UsageError, match=msg):
        rope_from_hf(snippet)


def test_rope_json_bad_json():
    with pytest.raises(UsageError, match="not valid JSON"):
        load_rope_json("{yarn")


def test_patch_from_rope_json_and_config(tiny_model, tmp_path):
    out = str(tmp_path / "o.gguf")
    run_cli("patch", tiny_model(), "-o", out, "--rope-json",
            '{"type":"yarn","factor":4.0,"original_max_position_embeddings":256}', check=True)
    m = gguf_py_metadata(out)
    assert (m["llama.rope.scaling.type"], m["llama.rope.scaling.factor"], m["llama.context_length"]) == ("yarn", 4.0, 1024)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"max_position_embeddings": 256, "rope_theta": 10000.0,
                               "rope_scaling": {"rope_type": "yarn", "factor": 2.0}}))
    out2 = str(tmp_path / "o2.gguf")
    run_cli("patch", tiny_model(), "-o", out2, "--from-hf-config", str(cfg), check=True)
    m = gguf_py_metadata(out2)
    assert m["llama.rope.scaling.factor"] == 2.0 and m["llama.rope.scaling.original_context_length"] == 256
    assert m["llama.context_length"] == 512
    # explicit flags win over the imported dialect
    out3 = str(tmp_path / "o3.gguf")
    run_cli("patch", tiny_model(), "-o", out3, "--from-hf-config", str(cfg), "--rope-scale", "3", check=True)
    assert gguf_py_metadata(out3)["llama.rope.scaling.factor"] == 3.0


def test_attention_factor_round_trips_through_the_export():
    s = rope_from_hf({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096,
                      "attention_factor": 1.3})
    assert s.to_hf_rope_scaling()["attention_factor"] == pytest.approx(1.3)
