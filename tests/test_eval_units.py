"""Evaluation without llama.cpp: spec parsing, prompts, scoring, variants, resume with a fake
tool runner, tables/CSV/JSON, plots, the bench JSON parser and the tune search."""
from __future__ import annotations

import csv
import io
import json
import os
import re

import pytest

from ggufrope.errors import UsageError
from ggufrope.evaluation import EvalSpec, Target, journal, needle, passkey, results
from ggufrope.evaluation.proc import ProcResult
from ggufrope.evaluation.runner import ETA, Sweep
from ggufrope.evaluation.spec import length_label, parse_depths, parse_length, parse_lengths, parse_variants

PNG = b"\x89PNG\r\n\x1a\n"


def words(text: str) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return len(text.split())


# -- spec --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,want", [
    pytest.param("512", 512, id="plain"), pytest.param("2k", 2048, id="k"), pytest.param("1.5k", 1536, id="frac"),
    pytest.param("16K", 16384, id="upper"), pytest.param("1m", 1 << 20, id="m")])
def test_parse_length(text, want):
    assert parse_length(text) == want


@pytest.mark.parametrize("bad", ["", "abc", "2kk", "-1", "1.1"])
def test_parse_length_rejects(bad):
    with pytest.raises(UsageError):
        parse_lengths(bad) if bad == "" else parse_length(bad)


def test_parse_lists():
    assert parse_lengths("4k,2k,2k") == (2048, 4096)
    assert parse_depths("1,0,0.5") == (0.0, 0.5, 1.0)
    assert parse_variants("YaRN, none") == ("yarn", "none")
    with pytest.raises(UsageError, match="did you mean 'yarn'"):
        parse_variants("yran")
    with pytest.raises(UsageError):
        parse_depths("1.5")
    assert [length_label(n) for n in (512, 1024, 1536, 1000)] == ["0.5k", "1k", "1.5k", "1000"]


def test_config_key_tracks_what_changes_results():
    a = EvalSpec("passkey", lengths=(512,), trials=1)
    assert a.config_key() == EvalSpec("passkey", lengths=(1024, 2048), trials=3).config_key()
    assert a.config_key() != EvalSpec("passkey", seed=1).config_key()
    assert a.config_key() != EvalSpec("passkey", n_predict=20).config_key()
    assert a.config_key() != EvalSpec("needle").config_key()


# -- prompts and scoring -----------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_passkey_prompt_fits_and_hides_the_key(depth):
    p = passkey.make_prompt(words, 600, depth, trial=0, seed=0, n_predict=10)
    assert p.tokens == words(p.text) <= 590
    assert words(p.text + passkey.FILLER) > 590 - 25  # as long as fits (one filler unit more would not)
    assert p.text.startswith(passkey.PREFIX) and p.text.endswith(passkey.QUESTION)
    assert p.text.count(f"The pass key is {p.answer}.") == 1 and re.fullmatch(r"\d{5}", p.answer)
    pos = p.text.index(p.answer) / len(p.text)
    assert abs(pos - depth) < 0.1


def test_same_cell_same_key_other_trial_other_key():
    a = passkey.make_prompt(words, 400, 0.5, 0, 0, 10)
    assert a.answer == passkey.make_prompt(words, 400, 0.5, 0, 0, 10).answer
    assert len({passkey.make_prompt(words, 400, 0.5, t, 0, 10).answer for t in range(5)}) > 1


@pytest.mark.parametrize("out,found", [
    pytest.param(" 12345. Remember it.", True, id="exact"),
    pytest.param(" is 12345", True, id="later"),
    pytest.param(" 123456", False, id="longer-number"),
    pytest.param(" the pass key", False, id="no-number")])
def test_passkey_score(out, found):
    assert passkey.score("12345", out) is found


@pytest.mark.parametrize("out,ok", [
    pytest.param(" apricot.", True, id="word"), pytest.param(" the Apricot!\nmore", True, id="article-case"),
    pytest.param(" apricot jam.", False, id="extra-word"), pytest.param(" banana. apricot", False, id="wrong")])
def test_needle_exact_match(out, ok):
    assert needle.score("apricot", out) is ok


def test_needle_prompt():
    units = [f"And verse {i} of the text." for i in range(500)]
    p = needle.make_prompt(words, units, 300, 0.5, 0, 0, 10)
    assert p.tokens <= 290 and p.answer in needle.ANSWERS
    assert p.text.startswith(needle.INTRO) and "Question:" in p.text and p.text.rstrip().endswith(" is")
    assert p.text.count(p.answer) == 1


# -- a sweep with a fake llama-completion ------------------------------------------------------------

class FakeCompletion:
    """Answers like llama-completion: finds the key in the prompt file (or misses it when the
    context is above `miss_above`); raises KeyboardInterrupt on call number `interrupt_at`."""

    def __init__(self, interrupt_at: int | None = None, miss_above: int = 1 << 30, lose_output_first: int = 0):
        self.calls: list[list[str]] = []
        self.interrupt_at = interrupt_at
        self.miss_above = miss_above
        self.lose = lose_output_first

    def __call__(self, argv, timeout=None, env=None):
        self.calls.append(list(argv))
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        text = open(argv[argv.index("-f") + 1], encoding="utf-8").read()
        ctx = int(argv[argv.index("-c") + 1])
        key = re.search(r"The pass key is (\d+)\.", text).group(1)
        out = f" {key}. Remember it." if ctx <= self.miss_above else " the pass key is"
        if self.lose:
            self.lose -= 1
            return ProcResult(tuple(argv), 0, "", "llama_context: n_ctx = 512\n", 0.01, 1 << 20)
        err = (f"common_perf_print: prompt eval time =  10.00 ms / {words(text)} tokens\n"
               f"common_perf_print:        eval time =  1.00 ms / 9 runs\n"
               f"common_perf_print:       total time =  11.00 ms / 10 tokens\n")
        return ProcResult(tuple(argv), 0, out, err, 0.01, 1 << 20)


def _sweep(tmp_path, model, runner, **kw) -> Sweep:
    spec = EvalSpec("passkey", lengths=(128, 512), depths=(0.0, 1.0), variants=("none", "yarn", "dynamic"),
                    trials=2, seed=3, **kw)
    return Sweep(spec, Target("tiny", model), str(tmp_path / "out"), {"llama-completion": "/fake/llama-completion"},
                 runner=runner, tokenizer_factory=lambda m: words)


def test_cells_dedupe_and_not_applicable(tmp_path, tiny_model):
    model = tiny_model(n_ctx=256)
    runner = FakeCompletion(miss_above=256)
    recs = _sweep(tmp_path, model, runner).run()
    by = {(r["length"], r["depth"], r["trial"], r["variant"]): r for r in recs}
    # 128 fits the trained 256: yarn is the same run as none; 512 needs scaling: yarn runs itself
    assert len(runner.calls) == 2 * 2 + 2 * 2 * 2
    assert by[(128, 0.0, 0, "yarn")]["same_as"] == "none" and by[(128, 0.0, 0, "yarn")]["found"]
    assert "same_as" not in by[(512, 0.0, 0, "yarn")]
    assert by[(512, 0.0, 0, "yarn")]["args"] == ["--rope-scaling", "yarn", "--rope-scale", "2", "--yarn-orig-ctx", "256"]
    yarn_calls = [c for c in runner.calls if "--rope-scaling" in c]
    assert len(yarn_calls) == 4 and all(c[c.index("-c") + 1] == "512" for c in yarn_calls)
    # llama.cpp has no dynamic NTK: one n/a record per length, never run
    assert by[(128, None, None, "dynamic")]["status"] == "n/a"
    assert "llama.cpp has no dynamic NTK" in by[(512, None, None, "dynamic")]["summary"]
    assert not by[(512, 1.0, 1, "none")]["found"] and by[(128, 1.0, 1, "none")]["found"]
    # greedy, sized context, no chat mode, prompt from a file (never a shell)
    c = runner.calls[0]
    assert c[c.index("--temp") + 1] == "0" and "-no-cnv" in c and c[c.index("-c") + 1] == "128"


def test_resume_runs_only_the_rest(tmp_path, tiny_model):
    model = tiny_model(n_ctx=256)
    first = FakeCompletion(interrupt_at=4)
    with pytest.raises(KeyboardInterrupt):
        _sweep(tmp_path, model, first).run()
    done = journal.read_records(str(tmp_path / "out"))
    assert len([r for r in done if r["status"] == "ok" and not r.get("same_as")]) == 3
    # a torn last line from a kill mid-write is ignored
    with open(journal.journal_path(str(tmp_path / "out")), "a") as f:
        f.write('{"task": "passkey", "len')
    second = FakeCompletion()
    recs = _sweep(tmp_path, model, second).run()
    assert len(second.calls) == 12 - 3          # only what the first run did not finish
    assert len(recs) == 2 * (2 * 2 * 2 + 1)     # every cell, once
    third = FakeCompletion()
    _sweep(tmp_path, model, third).run()
    assert third.calls == []                    # nothing left
    # another seed is another configuration: it runs in the same folder without reusing
    fourth = FakeCompletion()
    spec = EvalSpec("passkey", lengths=(128,), depths=(0.0,), variants=("none",), trials=1, seed=99)
    Sweep(spec, Target("tiny", model), str(tmp_path / "out"), {"llama-completion": "x"}, runner=fourth,
          tokenizer_factory=lambda m: words).run()
    assert len(fourth.calls) == 1


def test_lost_output_is_retried_not_scored(tmp_path, tiny_model):
    model = tiny_model(n_ctx=256)
    runner = FakeCompletion(lose_output_first=2)
    spec = EvalSpec("passkey", lengths=(128,), depths=(0.5,), variants=("none",), trials=1)
    recs = Sweep(spec, Target("tiny", model), str(tmp_path / "o"), {"llama-completion": "x"}, runner=runner,
                 tokenizer_factory=lambda m: words).run()
    assert recs[0]["found"] and recs[0]["attempts"] == 3
    runner = FakeCompletion(lose_output_first=5)
    spec2 = EvalSpec("passkey", lengths=(128,), depths=(0.5,), variants=("none",), trials=1, seed=1)
    recs = Sweep(spec2, Target("tiny", model), str(tmp_path / "o2"), {"llama-completion": "x"}, runner=runner,
                 tokenizer_factory=lambda m: words).run()
    assert recs[0]["status"] == "error" and "llama.cpp#22142" in recs[0]["error"]


def test_eta():
    e = ETA()
    assert e.total([1024]) is None
    e.add(1024, 10.0)
    e.add(1024, 20.0)
    assert e.one(1024) == 15.0
    assert e.one(4096) == pytest.approx(15.0 * 4 ** 1.5)
    assert e.total([]) == 0.0


# -- outputs -----------------------------------------------------------------------------------

def _records():
    base = {"task": "passkey", "config": "c", "model": "m.gguf", "model_size": 1, "target": "m", "trained_ctx": 1024}
    out = []
    for n in (512, 2048):
        for d in (0.0, 1.0):
            for t in (0, 1):
                out.append({**base, "length": n, "depth": d, "trial": t, "variant": "none", "status": "ok",
                            "found": n == 512 or d == 0.0, "answer": "12345", "output": " 12345.", "args": [],
                            "seconds": 1.5})
                out.append({**base, "length": n, "depth": d, "trial": t, "variant": "yarn", "status": "ok",
                            "found": True, "answer": "12345", "output": " 12345.", "seconds": 1.5,
                            "args": [] if n == 512 else ["--rope-scaling", "yarn"],
                            **({"same_as": "none"} if n == 512 else {})})
        out.append({**base, "length": n, "depth": None, "trial": None, "variant": "dynamic", "status": "n/a",
                    "summary": "not applicable: llama.cpp has no dynamic NTK"})
    return out


def test_summary_table_csv_json(tmp_path):
    recs = _records()
    s = results.summarize(recs, ("none", "yarn", "dynamic"))
    assert s["cells"]["none"][2048] == {"status": "ok", "found": 2, "runs": 4, "accuracy": 0.5, "note": ""}
    assert s["cells"]["yarn"][512]["same_as"] == "none"
    txt = results.table_text(s)
    lines = txt.splitlines()
    assert lines[0] == "passkey found / runs"
    assert lines[1].split() == ["variant", "0.5k", "2k"]
    assert lines[2].split() == ["none", "4/4", "2/4"]
    assert lines[3].split() == ["yarn", "4/4*", "4/4"]
    assert lines[4].split() == ["dynamic", "n/a", "n/a"]
    assert "llama.cpp has no dynamic NTK" in txt
    md = results.table_markdown(s)
    assert "| none | 4/4 | 2/4 |" in md
    paths = results.write_outputs(str(tmp_path), recs, {"task": "passkey"}, {"label": "m"}, ("none", "yarn", "dynamic"))
    rows = list(csv.DictReader(io.StringIO(open(paths["csv"]).read())))
    assert len(rows) == len(recs) and rows[0]["task"] == "passkey" and set(results.CSV_COLUMNS) == set(rows[0])
    assert {r["args"] for r in rows if r["variant"] == "yarn"} == {"", "--rope-scaling yarn"}
    doc = json.load(open(paths["json"]))
    assert doc["summary"]["cells"]["none"]["2048"]["found"] == 2 and len(doc["records"]) == len(recs)
    for k in ("plot_heatmap", "plot_accuracy"):
        with open(paths[k], "rb") as f:
            assert f.read(8) == PNG, k


def test_perplexity_outputs(tmp_path):
    base = {"task": "perplexity", "config": "c", "model": "m", "model_size": 1, "trained_ctx": 1024}
    recs = [{**base, "length": n, "depth": None, "trial": None, "variant": v, "status": "ok", "ppl": p, "ppl_err": 0.1}
            for n, v, p in ((512, "none", 10.0), (2048, "none", 90.0), (2048, "yarn", 12.5))]
    s = results.summarize(recs)
    assert results.table_text(s).splitlines()[2].split() == ["none", "10.00", "90.00"]
    paths = results.write_outputs(str(tmp_path), recs, {}, {})
    assert open(paths["plot_perplexity"], "rb").read(8) == PNG
    assert os.path.basename(paths["plot_perplexity"]) == "perplexity.png"


# -- bench and tune without llama.cpp ----------------------------------------------------------------

def test_bench_json_parse():
    from ggufrope.evaluation.bench import parse_bench_json
    out = "noise\n" + json.dumps([{"n_prompt": 512, "n_gen": 0, "avg_ts": 100.5, "stddev_ts": 1.0, "build_commit": "x"},
                                  {"n_prompt": 0, "n_gen": 32, "avg_ts": 20.25, "stddev_ts": 0.5}])
    assert parse_bench_json(out) == {"pp_ts": 100.5, "pp_sd": 1.0, "tg_ts": 20.25, "tg_sd": 0.5, "build_commit": None}


def test_tune_search_is_seeded_and_bounded(tiny_model):
    from ggufrope.evaluation import tune
    from ggufrope.planning import read_facts
    from ggufrope.settings.projection import settings_flags
    facts = read_facts(tiny_model(n_ctx=256))

    def fake(c, s):
        # a bowl with its minimum at beta_fast 16, attn_factor 1.05
        ppl = 10 + abs(c.beta_fast - 16) / 8 + abs(c.attn_factor - 1.05) * 10 + (5 if c.method == "ntk" else 0)
        return tune.Trial(c, s, tuple(settings_flags(s, "llama")), ppl, 0.1, 0.0)

    a = tune.search(facts, 1024, 10, seed=1, evaluate=fake)
    b = tune.search(facts, 1024, 10, seed=1, evaluate=fake)
    assert [t.candidate for t in a.trials] == [t.candidate for t in b.trials]
    assert len(a.trials) == 10 and len({t.candidate for t in a.trials}) == 10
    assert a.trials[0].candidate == tune.Candidate("yarn") and a.best.ppl < a.reference.ppl
    assert a.gain_pct() > 0
    best = tune.search(facts, 1024, 40, seed=1, evaluate=fake).best.candidate
    assert (best.beta_fast, best.attn_factor) == (16.0, 1.05)
    s = tune.settings_for(facts, tune.Candidate("yarn", attn_factor=1.1, beta_slow=2.0), 1024)
    assert s.attn_factor == 1.1 and s.yarn_beta_slow == 2.0 and s.scaling_factor == 4.0
    args = settings_flags(s, "llama")
    assert "--override-kv" in args and "llama.rope.scaling.attn_factor=float:1.1" in args
    with pytest.raises(UsageError, match="fits the trained context"):
        tune.search(facts, 200, 2, 0, fake)


# -- PRESET|MODEL ------------------------------------------------------------------------------

def test_target_model_and_preset(tmp_path, tiny_model, monkeypatch):
    from ggufrope.evaluation import resolve_target
    from ggufrope.evaluation.variants import make_variant
    from ggufrope.planning import read_facts
    model = tiny_model(n_ctx=256)
    t = resolve_target(model, env={"GGUFROPE_HOME": str(tmp_path)})
    assert (t.model, t.preset, t.preset_rope) == (model, None, None)
    toml = tmp_path / "mine.toml"
    toml.write_text(f'model = "{model}"\n[rope]\nplan = "yarn:1024"\nyarn_beta_fast = 16.0\n')
    t = resolve_target(str(toml), env={"GGUFROPE_HOME": str(tmp_path), "GGUFROPE_CONFIG": str(tmp_path / "cfg")})
    assert t.model == model and t.preset == "mine"
    assert (t.preset_rope.scaling_type, t.preset_rope.scaling_factor, t.preset_rope.yarn_beta_fast) == ("yarn", 4.0, 16.0)
    v = make_variant(read_facts(model), "preset", 512, None, t.preset_rope)
    assert v.applicable and v.args[:4] == ("--rope-scaling", "yarn", "--rope-scale", "4")
    assert "--yarn-beta-fast" in v.args
    # without a preset, the preset variant is reported, not run
    assert not make_variant(read_facts(model), "preset", 512).applicable
