"""`ggufrope verify`: llama.cpp's resolution (ggufrope-probe) agrees with ggufrope's reading for
files ggufrope patched, and a disagreement is reported."""
import json

import pytest

from conftest import REAL_HOME, run_cli
from ggufrope.settings import ModelInfo
from ggufrope.verify import compare


@pytest.mark.parametrize("args", [
    pytest.param([], id="unpatched"),
    pytest.param(["--rope-scaling", "yarn", "--rope-scale", "4"], id="yarn-4x"),
    pytest.param(["--rope-scaling", "linear", "--rope-scale", "3", "--rope-freq-base", "50000"], id="linear-3x-base"),
    pytest.param(["--rope-scaling", "none", "--set", "llama.rope.scaling.attn_factor=float:0.9",
                  "--set", "llama.rope.scaling.finetuned=bool:true"], id="none-attn-finetuned"),
    pytest.param(["--rope-scaling", "yarn", "--rope-scale", "2", "--yarn-beta-fast", "8"], id="ignored-beta"),
])
def test_verify_agrees_on_patched_files(cpu_build, tiny_model, tmp_path, args):
    src = tiny_model()
    out = str(tmp_path / "o.gguf")
    if args:
        run_cli("patch", src, "-o", out, *args, check=True)
    else:
        out = src
    r = run_cli("verify", out, "--json", env_extra={"GGUFROPE_HOME": REAL_HOME})
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["ok"], [row for row in doc["rows"] if not row["ok"]]


def test_verify_runtime_flags_effective(cpu_build, tiny_model):
    r = run_cli("verify", tiny_model(), "--ctx", "1024", "--rope-scaling", "yarn", "--rope-scale", "4", "--json",
                env_extra={"GGUFROPE_HOME": REAL_HOME}, check=True)
    eff = json.loads(r.stdout)["effective"]
    assert eff["rope_scaling_type"] == "yarn" and eff["freq_scale"] == 0.25 and eff["yarn_ext_factor"] == 1
    assert eff["n_ctx_train_after"] == 1024  # llama.cpp raises n_ctx_train for runtime YaRN


def test_compare_reports_a_difference(tiny_model):
    from ggufrope.gguf import read_header
    with read_header(tiny_model()) as h:
        info = ModelInfo.from_metadata(h)
    doc = {"hparams": {"n_ctx_train": 256, "rope_freq_base_train": 20000.0}}
    rows = {r.what: r for r in compare(info, doc)}
    assert rows["llama.context_length"].ok
    assert not rows["llama.rope.freq_base"].ok
