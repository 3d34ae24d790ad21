"""The evaluation end to end with the real llama.cpp build: the reduced sweep CI runs on the
embedded SmolLM2 (trained 8192; within it the passkey must be found), resumption through the
CLI, `tune` on a tiny budget and `bench` on a tiny model. About a minute on an idle 2-core
machine (SmolLM2: 4 llama-completion runs of 512 and 1024 tokens)."""
from __future__ import annotations

import json
import os
import tomllib

import pytest

from conftest import REAL_HOME, run_cli

PNG = b"\x89PNG\r\n\x1a\n"
ENV = {"GGUFROPE_HOME": REAL_HOME}   # the cached build, model and corpus


@pytest.fixture(scope="module")
def ci_sweep(tmp_path_factory, cpu_build, smollm2):
    out = tmp_path_factory.mktemp("eval") / "passkey"
    r = run_cli("eval", "passkey", "smollm2", "--lengths", "512,1k", "--depths", "0,0.5", "--variants",
                "none,yarn,dynamic", "--trials", "1", "--seed", "0", "--out", str(out), env_extra=ENV, check=True)
    return out, r


def test_ci_sweep_files_and_passkey_found(ci_sweep):
    out, r = ci_sweep
    names = set(os.listdir(out))
    assert {"results.jsonl", "passkey-results.json", "passkey-results.csv", "passkey-table.txt",
            "passkey-table.md", "passkey-heatmap.png", "passkey-accuracy.png"} <= names
    for png in ("passkey-heatmap.png", "passkey-accuracy.png"):
        assert (out / png).read_bytes()[:8] == PNG
    doc = json.loads((out / "passkey-results.json").read_text())
    cells = doc["summary"]["cells"]
    # within the trained context (8192) the passkey is found at every length and depth
    for n in ("512", "1024"):
        assert cells["none"][n]["found"] == cells["none"][n]["runs"] == 2, cells["none"][n]
        assert cells["yarn"][n]["same_as"] == "none"
        assert cells["dynamic"][n]["status"] == "n/a"
    runs = [x for x in doc["records"] if x["status"] == "ok" and not x.get("same_as")]
    assert len(runs) == 4
    for x in runs:
        # llama.cpp itself evaluated a prompt sized to the length: within one filler unit (24 tokens)
        # of length - n_predict, so the answer fits after it; and our count agrees with llama.cpp's
        assert x["length"] - 10 - 24 < x["prompt_tokens_llama"] <= x["length"] - 10
        assert x["prompt_tokens"] == x["prompt_tokens_llama"]
    # progress per run with an ETA, and the table on stdout
    assert "ETA" in r.stderr and "[" in r.stderr
    assert r.stdout.splitlines()[0] == "passkey found / runs"
    assert "dynamic" in r.stdout and "n/a" in r.stdout


def test_ci_sweep_rerun_resumes(ci_sweep):
    out, _ = ci_sweep
    before = (out / "results.jsonl").read_text().count("\n")
    r = run_cli("eval", "passkey", "smollm2", "--lengths", "512,1k", "--depths", "0,0.5", "--variants",
                "none,yarn,dynamic", "--trials", "1", "--seed", "0", "--out", str(out), env_extra=ENV, check=True)
    assert "resuming: 10 of 10 cells" in r.stderr and "running" not in r.stderr
    assert (out / "results.jsonl").read_text().count("\n") == before
    rep = run_cli("eval", "report", "--out", str(out), "--no-plots", env_extra=ENV, check=True)
    assert rep.stdout.splitlines()[0] == "passkey found / runs"


def test_tune_tiny_budget(tmp_path, cpu_build, tiny_model):
    model = tiny_model(n_ctx=256)
    out = tmp_path / "tune"
    r = run_cli("tune", model, "--ctx", "512", "--budget", "3", "--seed", "1", "--out", str(out), "--json",
                env_extra=ENV, check=True)
    log = json.loads(r.stdout)
    assert len(log["trials"]) == 3 and log["trials"][0]["candidate"].startswith("yarn beta_fast 32 beta_slow 1")
    assert all(t["ppl"] is not None for t in log["trials"]), [t.get("error") for t in log["trials"]]
    # the winner is the lowest perplexity of the trials, the reference is plan's YaRN (trial 0), and
    # the gain is recomputed from the logged perplexities (gain_pct >= 0 alone holds by construction)
    ppls = [t["ppl"] for t in log["trials"]]
    assert log["reference_ppl"] == ppls[0] and log["winner_ppl"] == min(ppls)
    assert log["winner"] == log["trials"][ppls.index(min(ppls))]["candidate"]
    assert log["gain_pct"] == pytest.approx(100 * (ppls[0] - min(ppls)) / ppls[0], rel=1e-12, abs=1e-12)
    preset = tomllib.loads(open(log["preset"]).read())
    assert preset["model"] == model and preset["ctx"] == 512
    assert preset["rope"]["scaling_type"] in ("yarn", "none")
    # re-measured by an independent eval perplexity run on other text
    v = log["verify"]
    assert v["text_offset"] == 0.0 and v["yarn_ppl"] > 0 and v["preset_ppl"] > 0
    assert os.path.exists(os.path.join(v["dir"], "perplexity-results.json"))


def test_bench_tiny(tmp_path, cpu_build, tiny_model):
    model = tiny_model(n_ctx=1024)
    out = tmp_path / "bench"
    r = run_cli("bench", model, "--contexts", "0,256", "--kv", "f16,q8_0", "-p", "16", "-n", "4", "--out", str(out),
                "--json", env_extra=ENV, check=True)
    doc = json.loads(r.stdout)
    recs = doc["records"]
    assert {(x["kv"], x["context"]) for x in recs} == {("f16", 0), ("f16", 256), ("q8_0", 0), ("q8_0", 256)}
    for x in recs:
        assert x["status"] == "ok" and x["pp_ts"] > 0 and x["tg_ts"] > 0 and x["peak_rss_mib"] > 0
        # the planner's KV estimate against llama.cpp's own allocation, at the cells llama.cpp used
        assert x["kv_log_mib"] is not None and abs(x["kv_plan_error_pct"]) < 0.5, x
    assert (out / "bench-speed.png").read_bytes()[:8] == PNG
    assert "KV (llama.cpp log)" in (out / "bench-table.txt").read_text()
