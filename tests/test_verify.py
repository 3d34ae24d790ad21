"""`ggufrope verify`: llama.cpp's resolution (ggufrope-probe) agrees with ggufrope's reading for
files ggufrope patched, every value ggufrope expects is compared (a value the probe did not
report fails), and a disagreement is reported with exit 1."""
import json

import gguf
import pytest

from conftest import REAL_HOME, run_cli
from ggufrope.build import native
from ggufrope.model_facts import read_model_facts
from ggufrope.verify import compare

# every value verify holds llama.cpp's probe to, for a llama model: what a user sees in the table
LLAMA_ROWS = {
    "llama.context_length", "llama.rope.freq_base", "llama.rope.scaling.type",
    "llama.rope.scaling.factor -> freq_scale", "llama.rope.scaling.original_context_length",
    "llama.rope.scaling.attn_factor", "llama.rope.scaling.finetuned", "llama.rope.dimension_count",
    "llama.rope.scaling.yarn_ext_factor", "llama.rope.scaling.yarn_attn_factor",
    "llama.rope.scaling.yarn_beta_fast", "llama.rope.scaling.yarn_beta_slow",
    "llama.rope.scaling.yarn_log_multiplier", "layers (less nextn_predict_layers)", "KV heads (layer 0)",
    "head dim K (layer 0)", "head dim V (layer 0)",
    "sliding-window layers",   # none on llama: kv_model and llama.cpp agree (verify.expected_swa)
    # what the graph feeds ggml_rope_ext (the probe's effective values at the trained context)
    "every layer's freq_base (effective)", "every layer's freq_scale (effective)",
}
HOME = {"GGUFROPE_HOME": REAL_HOME}


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
    r = run_cli("verify", out, "--json", env_extra=HOME)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["ok"], [row for row in doc["rows"] if not row["ok"]]
    # every value was compared, not just the ones the probe happened to report
    assert {row["what"] for row in doc["rows"]} == LLAMA_ROWS
    assert all(row["reported"] and row["ok"] for row in doc["rows"])


def test_verify_text_output(cpu_build, tiny_model, tmp_path):
    out = str(tmp_path / "o.gguf")
    run_cli("patch", tiny_model(), "-o", out, "--rope-scaling", "yarn", "--rope-scale", "4", check=True)
    r = run_cli("verify", out, env_extra=HOME)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{out}: llama.cpp ") and lines[0].endswith("(ggufrope-probe) against ggufrope's reading")
    rows = {ln.split()[0]: ln.split() for ln in lines if ln.split() and ln.split()[0] in LLAMA_ROWS}
    assert rows["llama.rope.scaling.type"][1:] == ["yarn", "yarn", "yarn", "ok"]
    assert rows["llama.context_length"][1:] == ["1024", "1024", "1024", "ok"]
    assert rows["llama.rope.scaling.original_context_length"][1:] == ["256", "256", "256", "ok"]
    assert sum(ln.rstrip().endswith(" ok") for ln in lines) == len(LLAMA_ROWS)
    assert "DIFFERS" not in r.stdout and "MISSING" not in r.stdout
    assert lines[-1] == "all values agree"


def test_verify_runtime_flags_effective(cpu_build, tiny_model):
    r = run_cli("verify", tiny_model(), "--ctx", "1024", "--rope-scaling", "yarn", "--rope-scale", "4", "--json",
                env_extra=HOME, check=True)
    eff = json.loads(r.stdout)["effective"]
    assert eff["rope_scaling_type"] == "yarn" and eff["freq_scale"] == 0.25 and eff["yarn_ext_factor"] == 1
    assert eff["n_ctx_train_after"] == 1024  # llama.cpp raises n_ctx_train for runtime YaRN


def test_verify_every_rope_flag_reaches_llama_cpp(cpu_build, tiny_model):
    """Each of verify's runtime RoPE flags changes the effective value llama.cpp reports."""
    r = run_cli("verify", tiny_model(), "--ctx", "512", "--rope-scaling", "yarn", "--rope-scale", "2",
                "--rope-freq-base", "20000", "--yarn-orig-ctx", "128", "--yarn-ext-factor", "0.5",
                "--yarn-attn-factor", "0.75", "--yarn-beta-fast", "16", "--yarn-beta-slow", "2", "--json",
                env_extra=HOME, check=True)
    eff = json.loads(r.stdout)["effective"]
    assert eff["n_ctx"] == 512 and eff["rope_scaling_type"] == "yarn" and eff["freq_scale"] == 0.5
    assert eff["freq_base"] == 20000 and eff["n_ctx_orig_yarn"] == 128
    # ext_factor != 0 makes llama.cpp recompute the attention factor from the scale and drop the
    # flag's value (src/llama-context.cpp ~l.177-211: get_mscale(2)/(1+0.1 ln 2) = 1)
    assert (eff["yarn_ext_factor"], eff["yarn_attn_factor"]) == (0.5, 1)
    assert (eff["yarn_beta_fast"], eff["yarn_beta_slow"]) == (16, 2)
    # with ext_factor 0 nothing recomputes it, so --yarn-attn-factor is what llama.cpp runs
    r = run_cli("verify", tiny_model(), "--ctx", "512", "--rope-scaling", "yarn", "--rope-scale", "2",
                "--yarn-ext-factor", "0", "--yarn-attn-factor", "0.75", "--json", env_extra=HOME, check=True)
    eff = json.loads(r.stdout)["effective"]
    assert (eff["yarn_ext_factor"], eff["yarn_attn_factor"]) == (0, 0.75)
    # the text form names the flags it applied
    t = run_cli("verify", tiny_model(), "--ctx", "512", "--rope-scaling", "linear", "--rope-scale", "2",
                env_extra=HOME, check=True)
    assert "effective at n_ctx 512 with --rope-scaling linear --rope-scale 2" in t.stdout


def test_verify_exits_1_on_a_real_disagreement(cpu_build, tiny_model):
    """original_context_length = 0 in the file: llama.cpp's loader keeps the 0 (it substitutes
    the trained context only later, in the context's parameters), ggufrope reads it as the
    trained context. The two readings differ and verify says so."""
    model = tiny_model(extra={"llama.rope.scaling.original_context_length": (gguf.GGUFValueType.UINT32, 0)})
    r = run_cli("verify", model, env_extra=HOME)
    assert r.returncode == 1, (r.stdout, r.stderr)
    row = next(ln.split() for ln in r.stdout.splitlines() if ln.strip().startswith("llama.rope.scaling.original_context_length"))
    assert row[1:] == ["0", "256", "0", "DIFFERS"]
    assert r.stdout.count("DIFFERS") == 1 and r.stdout.splitlines()[-1] == "1 value(s) differ"
    j = run_cli("verify", model, "--json", env_extra=HOME)
    doc = json.loads(j.stdout)
    assert j.returncode == 1 and doc["ok"] is False
    assert [(x["what"], x["engine"]) for x in doc["rows"] if not x["ok"]] == \
        [("llama.rope.scaling.original_context_length", 0)]


def test_probe_field_renamed_is_a_failing_row(cpu_build, tiny_model):
    """A real probe result with one field renamed (what a new llama.cpp pin could do) and one
    dropped: both values fail instead of silently not being compared."""
    model = tiny_model()
    doc = native.probe(cpu_build.bin_dir, model)
    assert all(r.ok for r in compare(read_model_facts(model), doc))
    hp = dict(doc["hparams"])
    hp["freq_base_train"] = hp.pop("rope_freq_base_train")
    del hp["n_ctx_orig_yarn"]
    rows = compare(read_model_facts(model), {**doc, "hparams": hp})
    assert {r.what for r in rows} == LLAMA_ROWS
    assert {(r.what, r.reported) for r in rows if not r.ok} == {
        ("llama.rope.freq_base", False), ("llama.rope.scaling.original_context_length", False)}


def test_compare_reports_a_difference(tiny_model):
    doc = {"hparams": {"n_ctx_train": 256, "rope_freq_base_train": 20000.0}}
    rows = {r.what: r for r in compare(read_model_facts(tiny_model()), doc)}
    assert set(rows) == LLAMA_ROWS
    assert rows["llama.context_length"].ok
    assert not rows["llama.rope.freq_base"].ok and rows["llama.rope.freq_base"].reported
    assert rows["llama.rope.freq_base"].engine == 20000.0
    # everything the probe left out is a failing row, not a skipped one
    assert {w for w, r in rows.items() if not r.reported} == LLAMA_ROWS - {"llama.context_length", "llama.rope.freq_base"}
    assert all(not r.ok for r in rows.values() if not r.reported)


@pytest.mark.parametrize("doc", [pytest.param({}, id="no-hparams"), pytest.param({"hparams": {}}, id="empty"),
                                 pytest.param({"hparams": None}, id="null")])
def test_compare_with_nothing_reported_fails_every_row(tiny_model, doc):
    rows = compare(read_model_facts(tiny_model()), doc)
    assert {r.what for r in rows} == LLAMA_ROWS
    assert not any(r.ok or r.reported for r in rows)
