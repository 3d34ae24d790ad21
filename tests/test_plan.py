"""`ggufrope plan`: recommended settings per method, every dialect, the printed patch command
runs and writes those keys, the HF dict imports back, memory, the plot, errors."""
import json
import math
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, gguf_py_metadata, run_cli
from ggufrope.settings import ModelInfo, RopeSettings
from ggufrope.settings.rope_settings import f32
from ggufrope.settings.hf import rope_from_hf

DIALECTS = ("patch", "after_patch", "llama_args", "override_kv", "llama_cpp_kwargs", "hf", "vllm")


def plan_json(model, ctx, *args):
    r = run_cli("plan", model, "--ctx", str(ctx), "--json", *args, check=True)
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def smol_yarn(smollm2):
    return plan_json(smollm2, 32768)


def test_smollm2_yarn_to_32k(smol_yarn, smollm2):
    rep = smol_yarn
    assert rep["method"] == "yarn" and rep["architecture"] == "llama"
    assert rep["trained_context"] == 8192 and rep["target_context"] == 32768 and rep["factor"] == 4.0
    assert rep["rope_dims"] == 64 and rep["head_dim"] == 64 and rep["freq_base"] == 100000.0
    assert rep["settings"] == {"scaling_type": "yarn", "scaling_factor": 4.0, "original_context_length": 8192,
                               "context_length": 32768}
    rec = {c["name"]: c for c in rep["recommendation"]}
    assert rec["beta_fast / beta_slow"]["value"] == [32.0, 1.0]
    assert rec["ext_factor"]["value"] == 1.0
    assert rec["attention magnitude"]["value"] == pytest.approx(1 + 0.1 * math.log(4))
    assert all(c["reason"] for c in rep["recommendation"])
    eff = rep["effects"]
    # ggml_rope_yarn_corr_dims: 64*ln(8192/(b*2pi))/(2 ln 1e5) = 10.30 (b=32) and 19.94 (b=1)
    assert eff["llama_cpp"]["corr_dims"] == [10.0, 20.0]
    assert eff["counts"] == {"extrapolated": 11, "ramped": 9, "interpolated": 12}
    assert eff["pairs"]["interpolated"] == list(range(20, 32)) == eff["pairs_longer_than_trained"]
    assert eff["llama_cpp"]["mscale"] == pytest.approx(1 + 0.1 * math.log(4), rel=1e-12)
    assert eff["llama_cpp"]["attn_factor"] == pytest.approx(1.0)
    for name in DIALECTS:
        assert rep["dialects"][name], name
    d = rep["dialects"]
    # llama reads type/factor/orig/context from the file; default betas need no flags anywhere
    assert d["patch"]["keys"] == {"llama.context_length": 32768, "llama.rope.scaling.type": "yarn",
                                  "llama.rope.scaling.factor": 4.0,
                                  "llama.rope.scaling.original_context_length": 8192}
    assert d["after_patch"]["llama_args"] == ["-c", "32768"]
    assert d["llama_args"] == ["-c", "32768", "--rope-scaling", "yarn", "--rope-scale", "4", "--yarn-orig-ctx", "8192"]
    assert "llama.rope.scaling.factor=float:4" in d["override_kv"]
    assert d["llama_cpp_kwargs"]["rope_scaling_type"] == 2 and d["llama_cpp_kwargs"]["rope_freq_scale"] == 0.25
    assert d["hf"]["rope_scaling"] == {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8192}
    assert d["hf"]["config"]["max_position_embeddings"] == 32768
    va = d["vllm"]["args"]
    over = json.loads(va[va.index("--hf-overrides") + 1])
    assert over == {"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8192,
                                        "rope_theta": 100000.0}}
    assert va[va.index("--max-model-len") + 1] == "32768"
    assert "--rope-scaling" in d["vllm"]["legacy_args"]
    # memory: KV cache from ModelInfo, weights = the tensor bytes inspect reports
    from ggufrope.gguf import read_header
    with read_header(smollm2) as h:
        info = ModelInfo.from_metadata(h)
    mem = rep["memory"]
    assert mem["kv_cache_bytes"] == {t: info.kv_cache_bytes(32768, t) for t in ("f16", "q8_0", "q4_0")}
    assert mem["kv_cache_bytes"]["f16"] == 30 * 2 * 3 * 64 * 2 * 32768  # layers x K,V x kv heads x dim x 2 B
    insp = json.loads(run_cli("inspect", smollm2, "--json", check=True).stdout)
    assert mem["weights_bytes"] == insp["tensor_bytes"]


def test_text_output_names_every_dialect(smollm2):
    r = run_cli("plan", smollm2, "--ctx", "32768", check=True)
    out = r.stdout
    for s in ("ggufrope patch ", "llama.cpp flags", "--override-kv", "llama-cpp-python", "Hugging Face config.json",
              "vLLM >= 0.11.1", "--hf-overrides", "KV cache f16", "720.0 MiB", "extrapolated", "interpolated",
              "1.1386"):
        assert s in out, s


def test_linear(smollm2):
    rep = plan_json(smollm2, 32768, "--method", "linear")
    assert rep["settings"] == {"scaling_type": "linear", "scaling_factor": 4.0, "original_context_length": 8192,
                               "context_length": 32768}
    assert rep["effects"]["counts"] == {"extrapolated": 0, "ramped": 0, "interpolated": 32}
    assert rep["effects"]["llama_cpp"]["mscale"] == 1.0
    d = rep["dialects"]
    # llama-server caps slots at n_ctx_train; linear flags do not raise it, so the override does
    assert d["llama_args"][-2:] == ["--override-kv", "llama.context_length=int:32768"]
    assert d["hf"]["rope_scaling"] == {"rope_type": "linear", "factor": 4.0}
    over = json.loads(d["vllm"]["args"][1])
    assert "max_position_embeddings" not in over  # vLLM multiplies it by the factor itself


def test_ntk_base_formula(smollm2):
    rep = plan_json(smollm2, 32768, "--method", "ntk")
    want = 100000.0 * 4.0 ** (64 / 62)          # base * s^(D/(D-2)) = 418293.66...
    s = rep["settings"]
    assert s["freq_base"] == pytest.approx(want, rel=1e-7)
    assert s["scaling_type"] == "none" and s["context_length"] == 32768 and "scaling_factor" not in s
    eff = rep["effects"]
    # pair 0 keeps its frequency, the last pair is interpolated by exactly s
    assert eff["pairs"]["extrapolated"] == [0] and eff["pairs"]["interpolated"] == [31]
    assert eff["stretch"][31] == pytest.approx(4.0, rel=1e-6)
    d = rep["dialects"]
    assert "--rope-freq-base" in d["patch"]["argv"] and "--rope-scaling" in d["patch"]["argv"]
    assert d["llama_cpp_kwargs"]["rope_scaling_type"] == 0
    # kwargs carry the float32 llama.cpp computes with (settings/projection.py)
    assert d["llama_cpp_kwargs"]["rope_freq_base"] == f32(s["freq_base"])
    assert d["hf"]["config"] == {"rope_scaling": None, "rope_theta": s["freq_base"], "max_position_embeddings": 32768}
    over = json.loads(d["vllm"]["args"][1])
    assert over["max_position_embeddings"] == 32768 and over["rope_parameters"]["rope_type"] == "default"


def test_dynamic_is_honest(smollm2):
    r = run_cli("plan", smollm2, "--ctx", "32768", "--method", "dynamic", check=True)
    assert "llama.cpp has no dynamic NTK" in r.stdout and "NOT dynamic" in r.stdout
    rep = plan_json(smollm2, 32768, "--method", "dynamic")
    assert rep["llama_cpp_supports_method"] is False
    d = rep["dialects"]
    assert "patch" not in d and "llama_args" not in d   # no llama.cpp dialect claims to be dynamic
    assert d["hf"]["rope_scaling"] == {"rope_type": "dynamic", "factor": 4.0}
    assert "max_position_embeddings" not in d["hf"]["config"]  # dynamic NTK measures against the trained one
    assert json.loads(d["vllm"]["args"][1])["rope_parameters"]["rope_type"] == "dynamic"
    closest = d["closest_llama_cpp"]
    assert "NOT dynamic" in closest["label"]
    # HF's dynamic base at seq_len = N: base * (s*N/T - (s-1))^(D/(D-2)) = 1e5 * 13^(64/62)
    assert rep["settings"]["freq_base"] == pytest.approx(1e5 * 13 ** (64 / 62), rel=1e-7)
    assert closest["llama_cpp_kwargs"]["rope_freq_base"] == f32(rep["settings"]["freq_base"])


def test_target_within_trained_context(smollm2):
    r = run_cli("plan", smollm2, "--ctx", "4096", check=True)
    assert "no scaling needed" in r.stdout
    rep = plan_json(smollm2, 8192)
    assert rep["scaling_needed"] is False and rep["settings"] is None
    d = rep["dialects"]
    assert d["patch"] is None and d["llama_args"] == ["-c", "8192"] and d["hf"]["rope_scaling"] is None


@pytest.mark.parametrize("method", ["yarn", "linear", "ntk"])
def test_printed_patch_command_runs_and_writes_the_keys(tiny_model, tmp_path, method):
    src = tiny_model()                                  # trained 256
    out = str(tmp_path / f"out-{method}.gguf")
    r = run_cli("plan", src, "--ctx", "1024", "--method", method, "-o", out, check=True)
    line = next(ln.strip() for ln in r.stdout.splitlines() if ln.strip().startswith("ggufrope patch "))
    argv = shlex.split(line)
    assert argv[2] == src and argv[argv.index("-o") + 1] == out
    run_cli(*argv[1:], check=True)
    rep = plan_json(src, 1024, "--method", method)
    md = gguf_py_metadata(out)
    for key, want in rep["dialects"]["patch"]["keys"].items():
        got = md[key]
        assert (got == pytest.approx(want, rel=1e-7)) if isinstance(want, float) else got == want, key
    # planning the patched file again: trained context still 256, nothing left to patch
    again = plan_json(out, 1024, "--method", method)
    assert again["trained_context"] == 256
    assert any("already holds these settings" in n for n in again["notes"])


def test_smollm2_printed_patch_command_runs(smollm2, tmp_path):
    src = str(tmp_path / "smol.gguf")
    shutil.copyfile(smollm2, src)
    out = str(tmp_path / "smol-yarn.gguf")
    rep = plan_json(src, 32768, "-o", out)
    run_cli(*shlex.split(rep["dialects"]["patch"]["command"])[1:], check=True)
    from ggufrope.gguf import read_header
    with read_header(out) as h:  # (gguf-py decodes SmolLM2's 49k-token vocab: slow)
        for key, want in rep["dialects"]["patch"]["keys"].items():
            assert h.get(key) == want, key


@pytest.mark.parametrize("method", ["yarn", "linear", "ntk"])
def test_hf_dict_round_trips(smol_yarn, smollm2, method):
    rep = smol_yarn if method == "yarn" else plan_json(smollm2, 32768, "--method", method)
    hf = rep["dialects"]["hf"]
    back = rope_from_hf(hf["rope_scaling"], hf["config"])
    s = RopeSettings(**rep["settings"])
    if method == "ntk":
        assert back.freq_base == s.freq_base and back.context_length == 32768 and back.scaling_type is None
    else:
        assert (back.scaling_type, back.scaling_factor) == (s.scaling_type, s.scaling_factor)
        assert back.freq_base == 100000.0
    if method == "yarn":
        assert back.original_context_length == 8192
    # transformers >= 5 spelling carries the same
    rp = hf["rope_parameters"]
    assert rp["rope_theta"] == hf["config"]["rope_theta"]


def test_non_default_betas_travel_as_flags_for_llama(tiny_model, tmp_path):
    rep = plan_json(tiny_model(), 1024, "--yarn-beta-fast", "16", "--yarn-beta-slow", "2")
    d = rep["dialects"]
    assert not any("beta" in k for k in d["patch"]["keys"])          # llama ignores them in the file
    assert set(d["patch"]["not_read_by_llama_cpp"]) == {"llama.rope.scaling.yarn_beta_fast",
                                                        "llama.rope.scaling.yarn_beta_slow"}
    assert d["after_patch"]["llama_args"] == ["-c", "1024", "--yarn-beta-fast", "16", "--yarn-beta-slow", "2"]
    kw = d["after_patch"]["llama_cpp_kwargs"]
    assert kw["n_ctx"] == 1024 and kw["yarn_beta_fast"] == 16.0 and kw["yarn_beta_slow"] == 2.0
    assert d["llama_args"][-4:] == ["--yarn-beta-fast", "16", "--yarn-beta-slow", "2"]
    assert "--yarn-beta-fast 16 --yarn-beta-slow 2 --override-kv" in d["override_kv_text"]
    assert d["hf"]["rope_scaling"]["beta_fast"] == 16.0
    assert rep["effects"]["llama_cpp"]["beta_fast"] == 16.0


def test_betas_go_into_the_file_for_an_arch_that_reads_them(tiny_model):
    # mistral3's loader reads the betas: they belong in the patch, but llama-cpp-python would still
    # override them with its own 32/1, so its kwargs carry them too
    rep = plan_json(tiny_model(arch="mistral3"), 1024, "--yarn-beta-fast", "16")
    d = rep["dialects"]
    assert d["patch"]["keys"]["mistral3.rope.scaling.yarn_beta_fast"] == 16.0
    assert d["after_patch"]["llama_args"] == ["-c", "1024"]
    assert d["after_patch"]["llama_cpp_kwargs"]["yarn_beta_fast"] == 16.0


def test_plot_is_a_png(smollm2, tmp_path):
    png = tmp_path / "p.png"
    for method in ("yarn", "dynamic"):
        run_cli("plan", smollm2, "--ctx", "32768", "--method", method, "--plot", str(png), check=True)
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        png.unlink()


def test_plan_module_keeps_heavy_imports_lazy():
    code = ("import sys; import ggufrope.cli.plan_cmd, ggufrope.planning; "
            "print('numpy' in sys.modules, 'matplotlib' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert r.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("method", ["yarn", "linear", "ntk", "dynamic"])
def test_plan_settings_load_no_numpy(tiny_model, method):
    """A plan's settings (what `run --dry-run` of a `plan = "METHOD:N"` preset needs) are scalar
    math; numpy loads only for the per-pair effects `plan` shows."""
    code = ("import sys; from ggufrope.planning import make_plan, read_facts; "
            f"p = make_plan(read_facts({tiny_model(n_ctx=1024)!r}), 4096, {method!r}); "
            "print(p.settings is not None, 'numpy' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert r.stdout.split() == ["True", "False"]


@pytest.mark.parametrize("args,code,msg", [
    pytest.param(["--ctx", "32768", "--method", "rope"], 2, "unknown method 'rope'", id="method"),
    pytest.param(["--ctx", "0"], 2, "--ctx must be positive", id="ctx-zero"),
    pytest.param(["--ctx", "32768", "--method", "ntk", "--yarn-beta-fast", "8"], 2, "yarn only", id="beta-not-yarn"),
    pytest.param(["--ctx", "32768", "--plot", "x.svg"], 2, "PNG", id="plot-ext"),
])
def test_errors_are_one_line_naming_the_file(tiny_model, args, code, msg):
    src = tiny_model()
    r = run_cli("plan", src, *args)
    assert r.returncode == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0] and lines[0].startswith("ggufrope: error: ")
    assert src in lines[0] or "x.svg" in lines[0]


def test_missing_and_invalid_files(tmp_path):
    r = run_cli("plan", str(tmp_path / "nope.gguf"), "--ctx", "100")
    assert r.returncode == 5 and "nope.gguf" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    r = run_cli("plan", str(bad), "--ctx", "100")
    assert r.returncode == 3 and "bad.gguf" in r.stderr


def test_architectures_without_rope_are_refused(vocab_files):
    gpt2 = next(f for f in vocab_files if f.endswith("ggml-vocab-gpt-2.gguf"))
    r = run_cli("plan", gpt2, "--ctx", "4096")
    assert r.returncode == 2 and "no rotary position embedding" in r.stderr and gpt2 in r.stderr


def test_file_without_context_length(tmp_path):
    import gguf
    path = str(tmp_path / "noctx.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = run_cli("plan", path, "--ctx", "100")
    assert r.returncode == 2 and "context_length" in r.stderr and path in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
