"""`eval kv`: the KL-divergence log parsing (on llama-perplexity's summary, in the format of
tools/perplexity/perplexity.cpp kl_divergence()), K/V pair parsing, the sweep's grid and base-logits
lifetime with a fake runner, and the reduced CI case end to end through the CLI on the demo preset
(SmolLM2 with its YaRN x4 at 1K)."""
from __future__ import annotations

import json
import math
import os

import pytest

from conftest import REAL_HOME, run_cli
from ggufrope.errors import UsageError
from ggufrope.evaluation import kld
from ggufrope.evaluation.kv_quality import kv_args, parse_kv_pairs, split_pair

DATA = os.path.join(os.path.dirname(__file__), "data")
PNG = b"\x89PNG\r\n\x1a\n"
ENV = {"GGUFROPE_HOME": REAL_HOME}   # the cached build, model and corpus


def _log(name: str) -> str:
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return f.read()


def test_parse_kld_summary():
    st = kld.parse_kld(_log("kld_q4_0.log"))
    assert st["ppl"] == pytest.approx(7.651215) and st["ppl_base"] == pytest.approx(6.767215)
    assert (st["dppl"], st["dppl_err"]) == (pytest.approx(0.884), pytest.approx(0.2101))
    assert (st["kld_mean"], st["kld_err"]) == (pytest.approx(0.268334), pytest.approx(0.01721))
    assert st["kld_p99"] == pytest.approx(1.76218) and st["kld_max"] == pytest.approx(5.127401)
    assert (st["same_top_pct"], st["same_top_err"]) == (pytest.approx(82.779), pytest.approx(1.672))


def test_parse_kld_nan_error_bar_and_missing_tail():
    # f16 against itself: the error bar of Δppl is sqrt of a rounding-negative number -> nan
    log = _log("kld_q4_0.log").replace("0.884000 ±   0.210100", "0.000000 ±        nan")
    st = kld.parse_kld(log)
    assert st["dppl"] == 0.0 and math.isnan(st["dppl_err"])
    # the last line lost (logger not drained) or < 100 tokens scored: no result, never a partial one
    assert kld.parse_kld(log.split("====== Token probability")[0]) is None


@pytest.mark.parametrize("text, want", [
    pytest.param("f16,q8_0,q8_0/q4_0,q4_0", ("f16", "q8_0", "q8_0/q4_0", "q4_0"), id="issue-default"),
    pytest.param("q8_0/q8_0, Q4_0,q8_0", ("q8_0", "q4_0"), id="k-equals-v-folded"),
])
def test_parse_kv_pairs(text, want):
    assert parse_kv_pairs(text) == want


def test_parse_kv_pairs_typo_suggests():
    with pytest.raises(UsageError, match="did you mean 'q8_0'"):
        parse_kv_pairs("f16,q8")


def test_kv_args_and_scored_tokens():
    assert split_pair("q8_0/q4_0") == ("q8_0", "q4_0")
    assert kv_args("q8_0/q4_0") == ("-ctk", "q8_0", "-ctv", "q4_0", "-fa", "on")
    assert kld.scored_tokens(1024, 1) == 511 and kld.scored_tokens(2048, 2) == 2 * 1023


def test_sweep_base_logits_made_once_per_length_and_deleted(tmp_path, tiny_model):
    """A fake llama.cpp: one base run per length (f16 K/V), one --kl-divergence run per pair against
    that base file, which is gone after the sweep."""
    from ggufrope.evaluation.kv_quality import KvSweep
    from ggufrope.evaluation.proc import ProcResult
    from ggufrope.evaluation.spec import EvalSpec
    from ggufrope.evaluation.target import Target
    model = tiny_model(n_ctx=4096)
    calls: list[list[str]] = []
    summary = _log("kld_q4_0.log")

    def runner(argv, timeout, env):
        argv = list(argv)
        calls.append(argv)
        if "--kl-divergence" in argv:
            assert os.path.exists(argv[argv.index("--kl-divergence-base") + 1])
            return ProcResult(tuple(argv), 0, "", summary, 1.0, None)
        if "--kl-divergence-base" in argv:
            open(argv[argv.index("--kl-divergence-base") + 1], "wb").close()
            return ProcResult(tuple(argv), 0, "", "Final estimate: PPL = 6.7672 +/- 0.34390", 1.0, None)
        return ProcResult(tuple(argv), 0, "The pass key is 12345", "total time = 1 ms", 1.0, None)

    spec = EvalSpec(task="kv", lengths=(512, 1024), depths=(0.5,), variants=("none",), kv_pairs=("f16", "q4_0"))
    sw = KvSweep(spec, Target(label="tiny", model=model), str(tmp_path), {"llama-perplexity": "pp",
                 "llama-completion": "lc"}, runner=runner, tokenizer_factory=lambda m: (lambda s: len(s) // 4),
                 corpus=lambda: ["word " * 20] * 400)
    recs = sw.run()
    bases = [a for a in calls if "--kl-divergence-base" in a and "--kl-divergence" not in a]
    assert [a[a.index("-c") + 1] for a in bases] == ["512", "1024"]
    assert all(a[a.index("-ctk") + 1] == "f16" and a[a.index("-ctv") + 1] == "f16" for a in bases)
    base_files = {a[a.index("--kl-divergence-base") + 1] for a in calls if "--kl-divergence-base" in a}
    assert base_files and not any(os.path.exists(p) for p in base_files)
    kl = [r for r in recs if r.get("probe") == "kld"]
    assert {(r["length"], r["kv"]) for r in kl} == {(n, p) for n in (512, 1024) for p in ("f16", "q4_0")}
    assert all(r["kld_mean"] == pytest.approx(0.268334) and r["kv_plan_mib"] > 0 for r in kl)
    q4 = [a for a in calls if "--kl-divergence" in a and "q4_0" in a]
    assert q4 and all("-fa" in a and a[a.index("-fa") + 1] == "on" for a in q4)
    assert len([r for r in recs if r.get("probe") == "passkey"]) == 4


@pytest.mark.slow
def test_ci_kv_demo_end_to_end(tmp_path, cpu_build, smollm2):
    out = tmp_path / "kv"
    r = run_cli("eval", "kv", "demo", "--lengths", "1k", "--kv", "f16,q8_0,q4_0", "--chunks", "1", "--depths", "0.5",
                "--trials", "1", "--seed", "0", "-t", "2", "--out", str(out), env_extra=ENV, check=True, timeout=3600)
    for name in ("kv-results.json", "kv-results.csv", "kv-table.txt", "kv-table.md", "kv-quality.png",
                 "results.jsonl"):
        assert (out / name).exists(), name
    assert (out / "kv-quality.png").read_bytes()[:8] == PNG
    rows = {row["kv"]: row for row in json.loads((out / "kv-results.json").read_text())["summary"]["rows"]}
    assert set(rows) == {"f16", "q8_0", "q4_0"}
    for row in rows.values():
        for f in ("dppl", "dppl_err", "kld_mean", "kld_p99", "same_top_pct", "kv_plan_mib"):
            assert f in row
        assert row["runs"] == 1
    # f16 against its own logits: the noise floor
    assert rows["f16"]["kld_mean"] < 1e-3 and rows["f16"]["same_top_pct"] > 99.0
    # on the demo model q8_0 costs less than q4_0 (docs/eval/README.md, "KV cache quality")
    assert rows["q8_0"]["kld_mean"] < rows["q4_0"]["kld_mean"]
    assert rows["f16"]["kv_plan_mib"] > rows["q8_0"]["kv_plan_mib"] > rows["q4_0"]["kv_plan_mib"]
    csv_head = (out / "kv-results.csv").read_text().splitlines()[0].split(",")
    assert {"dppl", "dppl_err", "kld_mean", "kld_p99", "same_top_pct", "kv"} <= set(csv_head)
    assert "mean KLD" in r.stdout
    # eval report rebuilds the same table from results.jsonl
    rep = run_cli("eval", "report", "--task", "kv", "--out", str(out), "--no-plots", env_extra=ENV, check=True)
    assert "q4_0" in rep.stdout and "mean KLD" in rep.stdout


def test_presets_check_warns_for_q4_0_k_citing_the_measurement():
    """presets check: q4_0 K at a measured length above warn_mean_kld -> a warning with the numbers;
    q8_0 K (below) -> nothing."""
    from ggufrope.presets import checks, kv_measured
    from ggufrope.presets import load_preset
    data = {"source": "docs/eval/kv", "model": "M", "warn_mean_kld": 0.05, "rows": [
        {"length": 2048, "kv": "q4_0", "kld_mean": 0.3, "dppl": 0.9, "dppl_err": 0.2, "same_top_pct": 82.0},
        {"length": 2048, "kv": "q8_0", "kld_mean": 0.01, "dppl": 0.0, "dppl_err": 0.03, "same_top_pct": 95.0}]}
    q4 = load_preset("llama-2-7b-yarn-16k-kv-q4", {})
    (f,) = checks.kv_quality(q4, 16384, data)
    assert f.level == "warning" and f.field == "cache_type_k"
    assert "mean KLD 0.3000" in f.message and "2048 tokens on M" in f.message and "docs/eval/kv" in f.message
    assert checks.kv_quality(load_preset("llama-2-7b-yarn-16k-kv-q8", {}), 16384, data) == []
    assert kv_measured.lookup("q4_0", "q4_0", 1024, data)["length"] == 2048   # shorter than measured: nearest


def test_kv_preset_notes_are_the_shipped_measurement():
    """Each built-in -kv-q8/-kv-q4 preset's `measured` line is kv_measured.json's row, as describe() words it."""
    from ggufrope.presets import kv_measured
    from ggufrope.presets import load_preset
    from ggufrope.presets.load import builtin_dir
    d = kv_measured.load()
    names = [n[:-5] for n in os.listdir(builtin_dir()) if n.endswith(("-kv-q8.toml", "-kv-q4.toml"))]
    assert len(names) >= 10
    for name in names:
        t = "q8_0" if name.endswith("-kv-q8") else "q4_0"
        note = load_preset(name, {}).res.values["measured"]
        assert note == kv_measured.note(t, d), name
        assert all(f"{r['kld_mean']:.3f}" in note for r in d["rows"] if r["kv"] == t)


def test_eval_kv_options_are_checked_before_any_run(tmp_path):
    """The remaining options parse, and a bad --kv stops the command (exit 2) before llama.cpp runs."""
    r = run_cli("eval", "kv", "demo", "--kv", "f16,q8", "--variants", "none", "--bench", str(tmp_path),
                "--plan-ctx", "2048", "--text-offset", "0.1", "--no-plots", "--json", "--out", str(tmp_path / "o"),
                env_extra=ENV)
    assert r.returncode == 2 and "did you mean 'q8_0'" in r.stderr
    assert not (tmp_path / "o" / "results.jsonl").exists()
