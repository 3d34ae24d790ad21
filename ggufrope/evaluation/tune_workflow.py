"""`ggufrope tune` from start to end, without the terminal: read the model, get a build and the
corpus, run the search (evaluation/tune.py), write the winner as a preset, re-measure it with an
independent `eval perplexity` sweep, and record everything in tune-results.json. Progress and
notes go to injected callbacks; the CLI renders them and the returned `TuneRun`."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Callable

from ggufrope.evaluation.tune import Trial, TuneResult


@dataclass(frozen=True)
class TuneRun:
    result: TuneResult
    preset_path: str
    record: dict        # what tune-results.json holds (also the CLI's --json)


def run_tune(model: str, ctx: int, *, budget: int = 12, seed: int = 0, chunks: int = 1, text_offset: float = 0.5,
             output: str | None = None, out: str = "ggufrope-tune", verify: bool = True, threads: int | None = None,
             log: Callable[[str], None] = lambda s: None,
             on_trial: Callable[[int, Trial, float], None] = lambda i, t, elapsed: None,
             on_event: Callable[[object], None] = lambda e: None) -> TuneRun:
    """Tune model's RoPE parameters for ctx tokens. on_trial(i, trial, seconds since the search
    began) after each evaluation; on_event gets the re-measurement sweep's events (runner.run_sweep)."""
    from ggufrope.build.ensure import ensure_build
    from ggufrope.evaluation import tune as tn
    from ggufrope.evaluation.perplexity import text_for
    from ggufrope.evaluation.texts import fetch_corpus, load_units
    from ggufrope.evaluation.tokens import Tokenizer
    from ggufrope.models import resolve
    from ggufrope.planning import read_facts
    path = resolve(model, log=log)
    facts = read_facts(path)
    if ctx <= facts.trained_ctx:
        from ggufrope.errors import UsageError
        raise UsageError(f"{path}: --ctx {ctx} fits the trained context ({facts.trained_ctx}); "
                         f"there is no scaling to tune")
    binaries = ensure_build().binaries
    units = load_units(fetch_corpus(log=log))
    text = text_for(Tokenizer(path).count, units, ctx, chunks, text_offset)
    log(f"tune: {path} at {ctx} tokens; budget {budget} llama-perplexity runs, chunks {chunks}, seed {seed}, "
        f"text from corpus offset {text_offset:g}")
    t0 = time.monotonic()
    ev = tn.perplexity_evaluator(binaries, path, text, ctx, chunks, facts, threads)
    res = tn.search(facts, ctx, budget, seed, ev, lambda i, t: on_trial(i, t, time.monotonic() - t0))
    best, ref = res.best, res.reference
    gain = res.gain_pct()
    os.makedirs(out, exist_ok=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    preset_path = output or os.path.join(out, f"{stem}-tuned-{ctx}.toml")
    # a named model (smollm2) stays a name in the preset, so the file works on other machines
    model_ref = path if os.path.exists(os.path.expanduser(model)) else model
    tn.write_preset(preset_path, model_ref, ctx, best.settings, gain, ref.ppl, best.ppl)
    record = {"model": path, "ctx": ctx, "budget": budget, "seed": seed, "chunks": chunks,
              "text_offset": text_offset,
              "trials": [{"candidate": t.candidate.label(), "args": list(t.args), "ppl": t.ppl, "ppl_err": t.ppl_err,
                          "seconds": round(t.seconds, 2), "error": t.error} for t in res.trials],
              "winner": best.candidate.label(), "winner_args": list(best.args), "reference_ppl": ref.ppl,
              "winner_ppl": best.ppl, "gain_pct": gain, "preset": preset_path}
    if verify:
        checked = _remeasure(preset_path, path, best.settings, ctx, chunks, threads, out, binaries, log, on_event)
        if checked is not None:
            record["verify"] = checked
    with open(os.path.join(out, "tune-results.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    return TuneRun(res, preset_path, record)


def _remeasure(preset_path: str, path: str, settings, ctx: int, chunks: int, threads: int | None, out: str,
               binaries, log: Callable[[str], None], on_event: Callable[[object], None]) -> dict | None:
    """The written preset against plan's YaRN in an independent `eval perplexity` sweep on
    held-out text (corpus offset 0); None when either run failed."""
    from ggufrope.evaluation import EvalSpec, Target, resolve_target
    from ggufrope.evaluation.results import write_outputs
    from ggufrope.evaluation.runner import run_sweep
    try:
        tgt = resolve_target(preset_path, log=log)
    except Exception as e:  # the presets package is absent or rejects the file: same settings, by hand
        log(f"presets package could not load {preset_path} ({e}); re-measuring its settings directly")
        tgt = Target(label=preset_path, model=path, preset="tuned", preset_rope=settings)
    spec = EvalSpec(task="perplexity", lengths=(ctx,), variants=("yarn", "preset"), chunks=chunks,
                    text_offset=0.0, threads=threads)
    vdir = os.path.join(out, "verify")
    recs = run_sweep(spec, tgt, vdir, binaries=binaries, on_event=on_event)
    write_outputs(vdir, recs, spec.to_dict(), {"label": tgt.label, "model": tgt.model, "preset": tgt.preset},
                  spec.variants)
    by = {r["variant"]: r for r in recs if r.get("status") == "ok"}
    if "yarn" not in by or "preset" not in by:
        return None
    y, p = by["yarn"]["ppl"], by["preset"]["ppl"]
    return {"text_offset": 0.0, "yarn_ppl": y, "preset_ppl": p, "gain_pct": 100 * (y - p) / y, "dir": vdir}
