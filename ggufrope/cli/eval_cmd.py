"""`ggufrope eval passkey|needle|perplexity|kv PRESET|MODEL`, `ggufrope eval report`,
`ggufrope bench PRESET|MODEL` and `ggufrope tune MODEL --ctx N`: thin wrappers over
ggufrope.evaluation that parse options, print progress and render results."""
from __future__ import annotations

import inspect
import sys
import time
from typing import Optional

import typer

from ggufrope.cli.output import echo, note, print_json, table

commands = typer.Typer()  # top-level commands; cli/app.py mounts them

eval_app = typer.Typer(no_args_is_help=True,
                       help="Passkey, needle and perplexity per RoPE variant and length; KV cache quality.")

_LENGTHS_HELP = "Comma-separated lengths in tokens: 512, 2k, 16k (k = 1024)."
_VARIANTS_HELP = ("Comma-separated: none, linear, ntk, yarn (each as `plan` computes it for the length), "
                  "dynamic (reported n/a: llama.cpp has none), preset (the preset's own settings).")


def _term_as_interrupt() -> None:
    """`kill PID` (SIGTERM) stops a sweep like Ctrl-C: the llama.cpp child is killed too (it runs
    in its own session) and the finished runs stay in results.jsonl for the resume."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (tests calling the command in-process)
        pass


def _dur(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _progress(task: str):
    t0 = time.monotonic()

    def on_event(e) -> None:
        w = len(str(e.total))
        if e.kind == "resume":
            if e.skipped:
                note(f"resuming: {e.skipped} of {e.total} cells already in results.jsonl")
            sys.stderr.write(f"{task}: {e.total - e.skipped} cells to do, {e.to_run} llama.cpp runs, "
                             f"ETA {_dur(e.eta_s)}\n")
        elif e.kind == "start":
            sys.stderr.write(f"[{e.index + 1:>{w}}/{e.total}] {e.cell.label()} ... running "
                             f"(ETA {_dur(e.eta_s)})\n")
        elif e.kind == "done":
            r = e.record
            st = r["status"]
            if st == "n/a":
                what = "n/a: " + r.get("summary", "")
            elif st == "error":
                what = "ERROR: " + r.get("error", "")
            elif task == "perplexity":
                what = f"ppl {r['ppl']:.3f} ± {r['ppl_err']:.3f}"
            elif r.get("probe") == "kld":
                what = (f"mean KLD {r['kld_mean']:.6f}, Δppl {r['dppl']:+.4f} ± {r['dppl_err']:.4f}, "
                        f"same top {r['same_top_pct']:.2f}%")
            else:
                what = (f"{'found' if r['found'] else 'MISSED'} {r['answer']} -> {r['output'].strip()[:40]!r}")
            if r.get("same_as"):
                what += f" (same run as {r['same_as']})"
            elif st == "ok":
                tok = f", {r['prompt_tokens']} tok" if r.get("prompt_tokens") else ""
                what += f" ({r['seconds']:.1f}s{tok})"
            sys.stderr.write(f"[{e.index:>{w}}/{e.total}] {e.cell.label()}: {what} | left: {e.to_run} runs, "
                             f"ETA {_dur(e.eta_s)}, elapsed {_dur(time.monotonic() - t0)}\n")
        sys.stderr.flush()
    return on_event


def _run_eval(task: str, target_arg: str, lengths: str, depths: str, variants: str, trials: int, seed: int,
              out: str, n_predict: int, chunks: int, plan_ctx: Optional[int], threads: Optional[int],
              text_offset: float, plots: bool, as_json: bool) -> None:
    from ggufrope.evaluation import EvalSpec, parse_depths, parse_lengths, parse_variants, resolve_target
    from ggufrope.evaluation.results import summarize, table_text, write_outputs
    from ggufrope.evaluation.runner import run_sweep
    spec = EvalSpec(task=task, lengths=parse_lengths(lengths), depths=parse_depths(depths),
                    variants=parse_variants(variants), trials=trials, seed=seed, n_predict=n_predict,
                    chunks=chunks, plan_ctx=plan_ctx, threads=threads, text_offset=text_offset)
    target = resolve_target(target_arg, log=note)
    note(f"{task}: {target.model}" + (f" (preset {target.preset})" if target.preset else ""))
    note(f"lengths {','.join(map(str, spec.lengths))}; variants {','.join(spec.variants)}"
         + (f"; depths {','.join(f'{d:g}' for d in spec.depths)}; trials {spec.trials}; seed {spec.seed}"
            if spec.uses_depth else f"; chunks {spec.chunks}")
         + f"; results in {out}")
    from ggufrope.evaluation.variants import make_variant
    from ggufrope.planning import require_rope
    facts = require_rope(target.facts)
    top = max(spec.lengths)
    note(f"trained context {facts.trained_ctx}; variants at {top} tokens:")
    for v in spec.variants:
        note(f"  {v:<8} {make_variant(facts, v, top, spec.plan_ctx, target.preset_rope).summary}")
    _term_as_interrupt()
    records = run_sweep(spec, target, out, on_event=_progress(task))
    tgt = {"label": target.label, "model": target.model, "preset": target.preset}
    paths = write_outputs(out, records, spec.to_dict(), tgt, spec.variants, plots=plots)
    summary = summarize(records, spec.variants)
    if as_json:
        from ggufrope.evaluation.results import _json_summary
        print_json({"summary": _json_summary(summary), "files": paths})
        return
    echo(table_text(summary))
    echo("")
    for kind, p in paths.items():
        echo(f"  {kind:<16} {p}")


# options eval kv shares with passkey/needle/perplexity, declared once
_OUT = typer.Option("ggufrope-eval", "--out", help="Results folder (resumes what is there).")
_PLAN_CTX = typer.Option(None, "--plan-ctx", help="Plan every variant for this context instead of each length.")
_THREADS = typer.Option(None, "-t", "--threads", help="llama.cpp threads (default: its own).")
_JSON = typer.Option(False, "--json", help="Summary and file paths as JSON.")
_TEXT_OFFSET = typer.Option(0.0, "--text-offset", help="Where the text starts in the corpus (0..1).")
_PLOTS = typer.Option(True, "--plots/--no-plots", help="Write PNG plots.")
_TARGET = typer.Argument(..., metavar="PRESET|MODEL", help="A preset name, a GGUF file or a named model (smollm2).")


def _eval_options(
    target: str = _TARGET,
    lengths: str = typer.Option("2k,4k,8k,16k,32k", "--lengths", help=_LENGTHS_HELP),
    depths: str = typer.Option("0,0.25,0.5,0.75,1", "--depths",
                               help="Where the fact sits, 0 (start) to 1 (just before the question)."),
    variants: str = typer.Option("none,linear,ntk,yarn,dynamic", "--variants", help=_VARIANTS_HELP),
    trials: int = typer.Option(1, "--trials", help="Runs per (length, depth, variant), each with its own key."),
    seed: int = typer.Option(0, "--seed", help="Seed for keys, facts and text positions."),
    out: str = _OUT,
    n_predict: int = typer.Option(10, "--n-predict", help="Tokens generated (the answer must be among them)."),
    chunks: int = typer.Option(1, "--chunks", help="llama-perplexity --chunks."),
    plan_ctx: Optional[int] = _PLAN_CTX,
    threads: Optional[int] = _THREADS,
    text_offset: float = _TEXT_OFFSET,
    plots: bool = _PLOTS,
    as_json: bool = _JSON,
) -> None:
    """Every option of `eval passkey|needle|perplexity`; each task offers the ones it reads."""


_EVAL_PARAMS = inspect.signature(_eval_options, eval_str=True).parameters
_EVAL_DEFAULTS = {n: p.default.default for n, p in _EVAL_PARAMS.items()}
_SHARED = ("target", "lengths", "variants", "out", "plan_ctx", "threads", "plots", "as_json")
# what each task reads beyond the shared options (an option a task ignores is not offered)
_TASK_OPTIONS = {
    "passkey": ("depths", "trials", "seed", "n_predict"),
    "needle": ("depths", "trials", "seed", "n_predict", "text_offset"),
    "perplexity": ("chunks", "text_offset"),
}


def _common(task: str):
    def cmd(**given) -> None:
        o = {**_EVAL_DEFAULTS, **given}
        _run_eval(task, o["target"], o["lengths"], o["depths"], o["variants"], o["trials"], o["seed"], o["out"],
                  o["n_predict"], o["chunks"], o["plan_ctx"], o["threads"], o["text_offset"], o["plots"],
                  o["as_json"])
    keep = set(_SHARED + _TASK_OPTIONS[task])
    # typer reads the options from the signature: only this task's
    cmd.__signature__ = inspect.Signature([p for n, p in _EVAL_PARAMS.items() if n in keep])
    cmd.__doc__ = {
        "passkey": "Passkey retrieval (YaRN paper): a 5-digit key in garbage filler, greedy, found or not.",
        "needle": "A fact hidden in natural text (King James Bible), exact-match answer.",
        "perplexity": "llama-perplexity at each length (-c L --chunks K), per variant.",
    }[task]
    return cmd


for _task in ("passkey", "needle", "perplexity"):
    eval_app.command(_task)(_common(_task))


@eval_app.command("report")
def report_cmd(
    out: str = typer.Option("ggufrope-eval", "--out", help="Results folder holding results.jsonl."),
    task: Optional[str] = typer.Option(None, "--task",
                                       help="passkey, needle, perplexity or kv (default: each present)."),
    plots: bool = typer.Option(True, "--plots/--no-plots"),
) -> None:
    """Rebuild tables, CSV, JSON and plots from results.jsonl without running anything (the
    latest configuration of each task)."""
    from ggufrope.errors import UsageError
    from ggufrope.evaluation import journal
    from ggufrope.evaluation.results import render_table, summarize_task, write_outputs
    from ggufrope.evaluation.runner import latest
    recs = journal.read_records(out)
    if not recs:
        raise UsageError(f"{journal.journal_path(out)}: no results")
    tasks = [task] if task else sorted({r["task"] for r in recs})
    for t in tasks:
        rs = [r for r in recs if r["task"] == t]
        if not rs:
            continue
        cfg = rs[-1]["config"]
        rs = latest([r for r in rs if r["config"] == cfg and r["model"] == rs[-1]["model"]])
        paths = write_outputs(out, rs, {"task": t, "config": cfg}, {"label": rs[0].get("target")}, plots=plots)
        echo(render_table(summarize_task(rs)))
        for kind, p in paths.items():
            echo(f"  {kind:<16} {p}")
        echo("")


@eval_app.command("kv")
def kv_cmd(
    target: str = _TARGET,
    lengths: str = typer.Option("2k,8k", "--lengths", help=_LENGTHS_HELP),
    kv: str = typer.Option("f16,q8_0,q8_0/q4_0,q4_0", "--kv",
                           help="K/V cache pairs compared with f16: a type (K = V) or K/V, e.g. q8_0/q4_0."),
    variants: Optional[str] = typer.Option(None, "--variants",
                                           help="RoPE variants (default: preset for a preset, else yarn). "
                                                + _VARIANTS_HELP),
    chunks: int = typer.Option(1, "--chunks", help="llama-perplexity --chunks per run."),
    depths: str = typer.Option("0.5", "--depths", help="Passkey depths per K/V pair (0 start .. 1 end)."),
    trials: int = typer.Option(1, "--trials", help="Passkey runs per (length, depth, K/V pair)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the passkeys."),
    bench_dir: Optional[str] = typer.Option(None, "--bench",
                                            help="A `ggufrope bench --out` folder: show its speeds per KV type."),
    text_offset: float = _TEXT_OFFSET,
    plan_ctx: Optional[int] = _PLAN_CTX,
    threads: Optional[int] = _THREADS,
    out: str = _OUT,
    plots: bool = _PLOTS,
    as_json: bool = _JSON,
) -> None:
    """What a quantized KV cache costs in quality: per length, f16 logits as the base, then per
    K/V pair Δperplexity, mean and 99% KL divergence, same-top-token % and passkey, next to the
    planner's KV memory and `bench` speed."""
    from ggufrope.evaluation import EvalSpec, parse_depths, parse_lengths, parse_variants, resolve_target
    from ggufrope.evaluation.kv_quality import parse_kv_pairs, run_kv_sweep, summarize, table_text
    from ggufrope.evaluation.results import write_outputs
    tgt = resolve_target(target, log=note)
    names = parse_variants(variants) if variants else (("preset",) if tgt.preset else ("yarn",))
    spec = EvalSpec(task="kv", lengths=parse_lengths(lengths), depths=parse_depths(depths), variants=names,
                    trials=trials, seed=seed, chunks=chunks, plan_ctx=plan_ctx, threads=threads,
                    text_offset=text_offset, kv_pairs=parse_kv_pairs(kv))
    note(f"kv: {tgt.model}" + (f" (preset {tgt.preset})" if tgt.preset else "")
         + f"; lengths {','.join(map(str, spec.lengths))}; K/V {','.join(spec.kv_pairs)} against f16; "
         f"variants {','.join(names)}; chunks {chunks}; passkey depths {depths} x {trials}; results in {out}")
    _term_as_interrupt()
    records = run_kv_sweep(spec, tgt, out, bench_dir=bench_dir, on_event=_progress("kv"))
    paths = write_outputs(out, records, spec.to_dict(), {"label": tgt.label, "model": tgt.model,
                                                         "preset": tgt.preset}, spec.variants, plots=plots)
    summary = summarize(records, spec.variants)
    if as_json:
        print_json({"summary": summary, "files": paths})
        return
    echo(table_text(summary))
    echo("")
    for kind, p in paths.items():
        echo(f"  {kind:<16} {p}")


# -- bench -----------------------------------------------------------------------------------

@commands.command("bench")
def bench_cmd(
    target: str = typer.Argument(..., metavar="PRESET|MODEL", help="A preset name, a GGUF file or a named model."),
    contexts: str = typer.Option("0,2k,4k,8k", "--contexts",
                                 help="Tokens already in the KV cache when measuring (llama-bench -d)."),
    kv: str = typer.Option("f16,q8_0,q4_0", "--kv", help="KV cache types (-ctk/-ctv, with -fa 1)."),
    n_prompt: int = typer.Option(512, "-p", "--n-prompt", help="Prompt tokens processed per measurement."),
    n_gen: int = typer.Option(32, "-n", "--n-gen", help="Tokens generated per measurement."),
    reps: int = typer.Option(1, "--reps", help="llama-bench repetitions (-r)."),
    threads: Optional[int] = typer.Option(None, "-t", "--threads"),
    out: str = typer.Option("ggufrope-bench", "--out", help="Results folder (resumes what is there)."),
    plots: bool = typer.Option(True, "--plots/--no-plots"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Speed (prompt processing, generation) and memory against context length and KV cache type,
    through llama-bench; the KV cache llama.cpp allocates compared with the planner's estimate."""
    from ggufrope.evaluation import bench, resolve_target
    from ggufrope.evaluation.spec import parse_length
    ctxs = tuple(sorted({0 if c.strip() == "0" else parse_length(c) for c in contexts.split(",") if c.strip()}))
    spec = bench.BenchSpec(contexts=ctxs, kv_types=tuple(k.strip() for k in kv.split(",") if k.strip()),
                           n_prompt=n_prompt, n_gen=n_gen, reps=reps, threads=threads)
    tgt = resolve_target(target, log=note)
    note(f"bench: {tgt.model}; contexts {','.join(map(str, ctxs))}; kv {','.join(spec.kv_types)}; "
         f"-p {n_prompt} -n {n_gen} -r {reps} -fa 1; results in {out}")
    t0 = time.monotonic()

    def on_event(e: dict) -> None:
        if e["kind"] == "resume" and e["skipped"]:
            note(f"resuming: {e['skipped']} of {e['total']} measurements already in bench.jsonl")
        elif e["kind"] == "start":
            done = e["index"]
            eta = (e["elapsed"] / done * (e["total"] - done)) if done else None
            sys.stderr.write(f"[{done + 1}/{e['total']}] kv {e['kv']} context {e['context']} ... running "
                             f"(elapsed {_dur(time.monotonic() - t0)}, ETA {_dur(eta)})\n")
        elif e["kind"] == "done":
            r = e["record"]
            what = (f"pp {r['pp_ts']:.1f} t/s, tg {r['tg_ts']:.1f} t/s, peak RSS {r['peak_rss_mib']} MiB, "
                    f"KV {r['kv_log_mib']} MiB (plan {r['kv_plan_mib']} MiB)" if r["status"] == "ok"
                    else "ERROR: " + r.get("error", ""))
            sys.stderr.write(f"[{e['index']}/{e['total']}] kv {r['kv']} context {r['context']}: {what}\n")
        sys.stderr.flush()

    _term_as_interrupt()
    records = bench.run_bench(spec, tgt.facts, tgt.label, out, on_event=on_event)
    paths = bench.write_outputs(out, records, plots=plots)
    if as_json:
        print_json({"records": records, "files": paths})
        return
    echo(bench.table_text(records))
    echo("")
    for k, p in paths.items():
        echo(f"  {k:<8} {p}")


# -- tune ------------------------------------------------------------------------------------

@commands.command("tune")
def tune_cmd(
    model: str = typer.Argument(..., help="GGUF file or named model."),
    ctx: int = typer.Option(..., "--ctx", help="Context length to tune for (beyond the trained context)."),
    budget: int = typer.Option(12, "--budget", help="Perplexity evaluations the search may spend."),
    seed: int = typer.Option(0, "--seed", help="Seed for the order the parameters are searched in."),
    chunks: int = typer.Option(1, "--chunks", help="llama-perplexity --chunks per evaluation."),
    text_offset: float = typer.Option(0.5, "--text-offset",
                                      help="Where the search's text starts in the corpus (0..1)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Preset TOML to write (default: in --out)."),
    out: str = typer.Option("ggufrope-tune", "--out", help="Folder for the search log and the re-measurement."),
    verify: bool = typer.Option(True, "--verify/--no-verify",
                                help="Re-measure the winner with an independent `eval perplexity` run."),
    threads: Optional[int] = typer.Option(None, "-t", "--threads"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Search YaRN's beta_fast, beta_slow and attention factor, and the NTK base, for the lowest
    perplexity at --ctx within --budget llama-perplexity runs; write the winner as a preset with
    its gain over plan's default YaRN, then re-measure both on held-out text."""
    from ggufrope.evaluation.tune_workflow import run_tune

    def on_trial(i: int, t, elapsed: float) -> None:
        what = f"ppl {t.ppl:.4f} ± {t.ppl_err:.4f}" if t.ppl is not None else f"ERROR {t.error}"
        eta = elapsed / i * (budget - i)
        sys.stderr.write(f"[{i}/{budget}] {t.candidate.label()}: {what} ({t.seconds:.1f}s; ETA ≤ {_dur(eta)})\n")
        sys.stderr.flush()

    _term_as_interrupt()
    run = run_tune(model, ctx, budget=budget, seed=seed, chunks=chunks, text_offset=text_offset, output=output,
                   out=out, verify=verify, threads=threads, log=note, on_trial=on_trial,
                   on_event=_progress("perplexity"))
    log, res = run.record, run.result
    best, ref, gain = res.best, res.reference, log["gain_pct"]
    if as_json:
        print_json(log)
        return
    rows = [[str(i + 1), t.candidate.label(), f"{t.ppl:.4f}" if t.ppl is not None else "error"]
            for i, t in enumerate(res.trials)]
    echo(table([["#", "candidate", f"ppl @ {ctx}"]] + rows))
    echo("")
    echo(f"winner: {best.candidate.label()}")
    echo(f"  llama.cpp flags: {' '.join(best.args)}")
    echo(f"  perplexity {best.ppl:.4f} vs plan's default YaRN {ref.ppl:.4f}: gain {gain:+.2f}% (search text)")
    if "verify" in log:
        v = log["verify"]
        echo(f"  independent re-measurement (eval perplexity, held-out text): {v['preset_ppl']:.4f} vs "
             f"{v['yarn_ppl']:.4f}: gain {v['gain_pct']:+.2f}%")
    echo(f"preset written to {run.preset_path}")
