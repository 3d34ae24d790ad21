"""`eval needle`, `eval perplexity`, the passkey options test_eval.py leaves out, `eval report
--task` with plots, and the `bench` / `tune` options test_eval.py leaves out: real llama.cpp runs
on a tiny random-weight model (its answers are noise; what is checked is what each option
changes: cells, keys, prompt sizes, RoPE flags, text, files)."""
from __future__ import annotations

import json
import os

import pytest

from conftest import REAL_HOME, run_cli

PNG = b"\x89PNG\r\n\x1a\n"
ENV = {"GGUFROPE_HOME": REAL_HOME}   # the cached build and corpus


def _records(out) -> list[dict]:
    with open(os.path.join(out, "results.jsonl")) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def _png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG


@pytest.fixture
def tiny(tiny_model, cpu_build):
    return tiny_model(n_ctx=256)


def test_needle_options(tmp_path, tiny):
    out = tmp_path / "needle"
    r = run_cli("eval", "needle", tiny, "--lengths", "256,512", "--depths", "0,1", "--variants", "none,yarn",
                "--trials", "2", "--seed", "3", "--out", str(out), "--n-predict", "4", "--plan-ctx", "1024",
                "-t", "1", "--text-offset", "0.25", "--plots", "--json", env_extra=ENV, check=True)
    doc = json.loads(r.stdout)
    cells = doc["summary"]["cells"]
    assert doc["summary"]["task"] == "needle" and doc["summary"]["lengths"] == [256, 512]
    assert set(cells) == {"none", "yarn"}
    assert all(cells[v][n]["runs"] == 4 for v in cells for n in ("256", "512"))     # 2 depths x 2 trials
    # every file the JSON names is in --out; the plots are PNG files
    assert set(doc["files"]) == {"json", "csv", "table", "markdown", "plot_heatmap", "plot_accuracy"}
    assert all(os.path.dirname(p) == str(out) and os.path.exists(p) for p in doc["files"].values())
    assert _png(doc["files"]["plot_heatmap"]) and _png(doc["files"]["plot_accuracy"])
    spec = json.loads((out / "needle-results.json").read_text())["spec"]
    assert (spec["seed"], spec["n_predict"], spec["threads"], spec["text_offset"], spec["plan_ctx"]) == \
        (3, 4, 1, 0.25, 1024)
    recs = _records(out)
    assert {(x["length"], x["depth"], x["trial"], x["variant"]) for x in recs} == \
        {(n, d, t, v) for n in (256, 512) for d in (0.0, 1.0) for t in (0, 1) for v in ("none", "yarn")}
    for x in recs:
        assert x["status"] == "ok" and x["seed"] == 3
        # --n-predict: the prompt leaves room for 4 answer tokens (llama.cpp's own count)
        assert x["prompt_tokens_llama"] + 4 <= x["length"]
        # --plan-ctx: yarn planned for 1024 at every length, even within the trained 256
        if x["variant"] == "yarn":
            assert x["args"] == ["--rope-scaling", "yarn", "--rope-scale", "4", "--yarn-orig-ctx", "256"]
            assert not x.get("same_as")
    # --seed picks other facts; --text-offset other text (same facts); text output, no plots
    keys = {(x["length"], x["depth"], x["trial"]): x["answer"] for x in recs if x["variant"] == "none"}
    toks = {(x["length"], x["depth"], x["trial"]): x["prompt_tokens_llama"] for x in recs if x["variant"] == "none"}
    other = tmp_path / "needle-seed"
    r = run_cli("eval", "needle", tiny, "--lengths", "256,512", "--depths", "0,1", "--variants", "none",
                "--trials", "2", "--seed", "4", "--out", str(other), "--n-predict", "4", "--text-offset", "0.25",
                "--no-plots", env_extra=ENV, check=True)
    assert r.stdout.splitlines()[0].startswith("needle") and not any(f.endswith(".png") for f in os.listdir(other))
    assert {(x["length"], x["depth"], x["trial"]): x["answer"] for x in _records(other)} != keys
    moved = tmp_path / "needle-offset"
    run_cli("eval", "needle", tiny, "--lengths", "256,512", "--depths", "0,1", "--variants", "none",
            "--trials", "2", "--seed", "3", "--out", str(moved), "--n-predict", "4", "--text-offset", "0.75",
            "--no-plots", env_extra=ENV, check=True)
    moved_recs = _records(moved)
    assert {(x["length"], x["depth"], x["trial"]): x["answer"] for x in moved_recs} == keys
    assert {(x["length"], x["depth"], x["trial"]): x["prompt_tokens_llama"] for x in moved_recs} != toks


@pytest.mark.parametrize("task,option,value", [
    pytest.param("passkey", "--chunks", "3", id="passkey-chunks"),
    pytest.param("passkey", "--text-offset", "0.5", id="passkey-text-offset"),
    pytest.param("needle", "--chunks", "3", id="needle-chunks"),
    pytest.param("perplexity", "--depths", "0,1", id="perplexity-depths"),
    pytest.param("perplexity", "--trials", "2", id="perplexity-trials"),
    pytest.param("perplexity", "--seed", "3", id="perplexity-seed"),
    pytest.param("perplexity", "--n-predict", "4", id="perplexity-n-predict"),
])
def test_eval_refuses_an_option_its_task_does_not_read(tmp_path, tiny_model, task, option, value):
    """An option that would change nothing is not offered: usage error, nothing run or written."""
    out = tmp_path / "out"
    r = run_cli("eval", task, tiny_model(n_ctx=256), "--lengths", "256", "--variants", "none", "--out", str(out),
                option, value, env_extra=ENV)
    assert r.returncode == 2 and f"No such option '{option}'" in r.stderr
    assert not out.exists()


def _ppl(out) -> dict[tuple[int, str], float]:
    return {(x["length"], x["variant"]): x["ppl"] for x in _records(out) if x["status"] == "ok"}


def test_perplexity_options(tmp_path, tiny):
    out = tmp_path / "ppl"
    r = run_cli("eval", "perplexity", tiny, "--lengths", "256,512", "--variants", "none,yarn",
                "--out", str(out), "--chunks", "2",
                "--plan-ctx", "1024", "-t", "1", "--text-offset", "0.5", "--plots", "--json", env_extra=ENV,
                check=True)
    doc = json.loads(r.stdout)
    assert doc["summary"]["task"] == "perplexity" and set(doc["summary"]["cells"]) == {"none", "yarn"}
    assert _png(doc["files"]["plot_perplexity"]) and os.path.dirname(doc["files"]["plot_perplexity"]) == str(out)
    spec = json.loads((out / "perplexity-results.json").read_text())["spec"]
    assert (spec["chunks"], spec["threads"], spec["text_offset"], spec["plan_ctx"]) == (2, 1, 0.5, 1024)
    recs = _records(out)
    assert {(x["length"], x["variant"]) for x in recs} == {(n, v) for n in (256, 512) for v in ("none", "yarn")}
    for x in recs:
        assert x["status"] == "ok" and x["ppl"] > 1 and x["ppl_err"] > 0
        assert x["args"] == ([] if x["variant"] == "none" else
                             ["--rope-scaling", "yarn", "--rope-scale", "4", "--yarn-orig-ctx", "256"])
    two_chunks = _ppl(out)
    # --chunks 1 scores less text; --text-offset 0 other text: each gives other perplexities
    one = tmp_path / "ppl-1"
    r = run_cli("eval", "perplexity", tiny, "--lengths", "256,512", "--variants", "none,yarn", "--out", str(one),
                "--chunks", "1", "--plan-ctx", "1024", "--text-offset", "0.5", "--no-plots", env_extra=ENV, check=True)
    assert r.stdout.splitlines()[0] == "perplexity (lower is better)"
    assert not any(f.endswith(".png") for f in os.listdir(one))
    one_chunk = _ppl(one)
    start = tmp_path / "ppl-0"
    run_cli("eval", "perplexity", tiny, "--lengths", "256,512", "--variants", "none,yarn", "--out", str(start),
            "--chunks", "1", "--plan-ctx", "1024", "--text-offset", "0", "--no-plots", env_extra=ENV, check=True)
    at_start = _ppl(start)
    assert set(two_chunks) == set(one_chunk) == set(at_start)
    assert all(two_chunks[k] != one_chunk[k] and one_chunk[k] != at_start[k] for k in two_chunks), \
        (two_chunks, one_chunk, at_start)


def test_passkey_n_predict_plan_ctx_threads_json(tmp_path, tiny):
    out = tmp_path / "passkey"
    r = run_cli("eval", "passkey", tiny, "--lengths", "256", "--depths", "0.5", "--variants", "none,yarn",
                "--out", str(out), "--n-predict", "4", "--plan-ctx", "512", "-t", "1",
                "--no-plots", "--json", env_extra=ENV, check=True)
    doc = json.loads(r.stdout)
    assert doc["summary"]["cells"]["none"]["256"]["runs"] == 1 and "plot_heatmap" not in doc["files"]
    spec = json.loads((out / "passkey-results.json").read_text())["spec"]
    assert (spec["n_predict"], spec["threads"], spec["plan_ctx"]) == (4, 1, 512)
    by = {x["variant"]: x for x in _records(out)}
    # the prompt leaves room for the 4 answer tokens; with --n-predict 40 it leaves room for 40
    assert by["none"]["prompt_tokens_llama"] <= 256 - 4
    # (at 512 tokens: one filler unit is smaller than the 36 tokens between the two)
    for n in ("4", "40"):
        run_cli("eval", "passkey", tiny, "--lengths", "512", "--depths", "0.5", "--variants", "none",
                "--out", str(tmp_path / n), "--n-predict", n, "--no-plots", env_extra=ENV, check=True)
    (n4,), (n40,) = _records(tmp_path / "4"), _records(tmp_path / "40")
    assert n40["prompt_tokens_llama"] <= 512 - 40 < n4["prompt_tokens_llama"] <= 512 - 4
    assert by["yarn"]["args"] == ["--rope-scaling", "yarn", "--rope-scale", "2", "--yarn-orig-ctx", "256"]
    assert len(by["none"]["output"]) > 0


def test_report_task_rebuilds_one_task_with_plots(tmp_path, tiny):
    out = tmp_path / "both"
    run_cli("eval", "needle", tiny, "--lengths", "256", "--depths", "0", "--variants", "none", "--out", str(out),
            "--n-predict", "4", "--no-plots", env_extra=ENV, check=True)
    run_cli("eval", "perplexity", tiny, "--lengths", "256", "--variants", "none", "--out", str(out), "--no-plots",
            env_extra=ENV, check=True)
    assert not any(f.endswith(".png") for f in os.listdir(out))
    before = _records(out)
    r = run_cli("eval", "report", "--out", str(out), "--task", "perplexity", "--plots", env_extra=ENV, check=True)
    assert r.stdout.splitlines()[0] == "perplexity (lower is better)" and "needle" not in r.stdout
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == ["perplexity.png"]
    assert _png(out / "perplexity.png")
    r = run_cli("eval", "report", "--out", str(out), "--task", "needle", env_extra=ENV, check=True)
    assert r.stdout.splitlines()[0].startswith("needle") and "perplexity" not in r.stdout
    assert _png(out / "needle-heatmap.png") and _png(out / "needle-accuracy.png")
    assert _records(out) == before                       # a report runs nothing
    r = run_cli("eval", "report", "--out", str(tmp_path / "empty"), "--task", "needle")
    assert r.returncode == 2 and "no results" in r.stderr


def test_bench_reps_threads_and_plots(tmp_path, tiny_model, cpu_build):
    model = tiny_model(n_ctx=512)
    out = tmp_path / "bench"
    r = run_cli("bench", model, "--contexts", "0", "--kv", "f16", "-p", "16", "-n", "4", "--reps", "2", "-t", "1",
                "--out", str(out), "--no-plots", "--json", env_extra=ENV, check=True)
    doc = json.loads(r.stdout)
    (rec,) = doc["records"]
    assert rec["status"] == "ok" and rec["pp_ts"] > 0 and rec["tg_ts"] > 0
    assert "-p 16 -n 4 -r 2 -fa 1" in r.stderr            # what llama-bench was asked for
    assert "speed" not in doc["files"] and not any(f.endswith(".png") for f in os.listdir(out))
    assert rec["spec"] == {"n_prompt": 16, "n_gen": 4, "reps": 2, "threads": 1}
    # two repetitions: llama-bench reports a spread over them; one repetition has none
    assert rec["pp_sd"] > 0 and rec["tg_sd"] > 0, rec
    out2 = tmp_path / "bench-plots"
    r = run_cli("bench", model, "--contexts", "0", "--kv", "f16", "-p", "16", "-n", "4", "--reps", "1",
                "--threads", "1", "--out", str(out2), "--plots", "--json", env_extra=ENV, check=True)
    (rec1,) = json.loads(r.stdout)["records"]
    assert rec1["pp_sd"] == rec1["tg_sd"] == 0 and rec1["spec"]["reps"] == 1
    assert _png(out2 / "bench-speed.png")


def test_tune_output_chunks_text_offset_no_verify(tmp_path, tiny):
    out = tmp_path / "tune"
    preset = tmp_path / "presets" / "tuned.toml"
    r = run_cli("tune", tiny, "--ctx", "512", "--budget", "2", "--chunks", "1", "--text-offset", "0.25",
                "-o", str(preset), "--out", str(out), "--no-verify", "-t", "1", "--json", env_extra=ENV, check=True)
    log = json.loads(r.stdout)
    assert log["preset"] == str(preset) and preset.exists()
    assert not (out / f"{os.path.splitext(os.path.basename(tiny))[0]}-tuned-512.toml").exists()
    assert (log["chunks"], log["text_offset"]) == (1, 0.25)
    assert "verify" not in log and not (out / "verify").exists()        # --no-verify: no re-measurement
    assert json.loads((out / "tune-results.json").read_text()) == log
    # every trial ran llama-perplexity with the candidate's flags
    assert len(log["trials"]) == 2 and all(t["ppl"] is not None for t in log["trials"])
    # --text-offset: another slice of the corpus gives the reference another perplexity; --verify
    # re-measures the winner in out/verify
    out2 = tmp_path / "tune2"
    r = run_cli("tune", tiny, "--ctx", "512", "--budget", "1", "--chunks", "1", "--text-offset", "0.75",
                "--output", str(tmp_path / "t2.toml"), "--out", str(out2), "--verify", "--threads", "1", "--json",
                env_extra=ENV, check=True)
    log2 = json.loads(r.stdout)
    assert log2["reference_ppl"] != log["reference_ppl"]
    assert log2["verify"]["dir"] == str(out2 / "verify") and (out2 / "verify" / "perplexity-results.json").exists()
