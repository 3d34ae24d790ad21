"""`ggufrope bench`: prompt-processing and generation speed and memory against context length
and KV cache type, through llama-bench, with the KV cache size compared to the planner's.

Speed: one llama-bench process per (KV type, context): `-p P -n N -d C -ctk T -ctv T -fa 1
-o json` measures P prompt tokens and N generated tokens after C tokens already in the cache
(llama-bench's n_depth; its n_ctx is C+P+N). Flash attention is on for every type, so the types
differ only in the cache (quantized V requires it: llama.cpp refuses -ctv q8_0 without it).

Memory: llama-bench reports none, so two measurements, each named in the output:
  kv_log_mib   the KV cache llama.cpp allocates, from llama-completion's own log line
               `llama_kv_cache: size = X MiB (N cells, ...)` at -c C+P+N (one token, -lv 4);
  peak_rss_mib the llama-bench process's peak resident memory (os.wait4), which includes the
               weights, compute buffers and the part of the cache actually written.
and the planner's estimate, ModelFacts.info.kv_cache_bytes at the same number of cells."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

from ggufrope.errors import EngineError, UsageError
from ggufrope.evaluation import engine, journal
from ggufrope.evaluation.proc import Runner, run_tool
from ggufrope.model_facts import ModelFacts

BENCH_JOURNAL = "bench.jsonl"
KV_TYPES = ("f16", "q8_0", "q4_0")


@dataclass(frozen=True)
class BenchSpec:
    contexts: tuple[int, ...] = (0, 2048, 4096, 8192)
    kv_types: tuple[str, ...] = KV_TYPES
    n_prompt: int = 512
    n_gen: int = 32
    reps: int = 1
    threads: int | None = None

    def __post_init__(self) -> None:
        from ggufrope.settings import KV_CACHE_TYPES
        for t in self.kv_types:
            if t not in KV_CACHE_TYPES:
                raise UsageError(f"--kv: unknown cache type {t!r}; use {', '.join(KV_CACHE_TYPES)}")
        if self.n_prompt < 1 or self.n_gen < 1 or self.reps < 1:
            raise UsageError("bench: -p, -n and --reps must be at least 1")
        if any(c < 0 for c in self.contexts):
            raise UsageError("bench: contexts must be 0 or more tokens")

    def key(self) -> dict:
        return {"n_prompt": self.n_prompt, "n_gen": self.n_gen, "reps": self.reps, "threads": self.threads}


def bench_argv(exe: str, model: str, ctx: int, kv: str, spec: BenchSpec) -> list[str]:
    argv = [exe, "-m", model, "-p", str(spec.n_prompt), "-n", str(spec.n_gen), "-d", str(ctx),
            "-ctk", kv, "-ctv", kv, "-fa", "1", "-r", str(spec.reps), "-o", "json"]
    if spec.threads:
        argv += ["-t", str(spec.threads)]
    return argv


def parse_bench_json(stdout: str) -> dict:
    """{"pp_ts", "pp_sd", "tg_ts", "tg_sd"} from llama-bench -o json (one entry per test)."""
    start = stdout.find("[")
    if start < 0:
        raise EngineError(f"llama-bench printed no JSON: {stdout.strip()[-200:]!r}")
    try:
        tests = json.loads(stdout[start:])
    except json.JSONDecodeError as e:
        raise EngineError(f"llama-bench JSON did not parse: {e}") from None
    out: dict = {}
    for t in tests:
        kind = "pp" if t.get("n_gen", 0) == 0 else "tg"
        out[f"{kind}_ts"] = t.get("avg_ts")
        out[f"{kind}_sd"] = t.get("stddev_ts")
        out["build_commit"] = t.get("build_commit")
    return out


def kv_probe_argv(exe: str, model: str, n_ctx: int, kv: str) -> list[str]:
    return [exe, "-m", model, "-p", "a", "-n", "1", "-c", str(n_ctx), "-ctk", kv, "-ctv", kv, "-fa", "on",
            "-no-cnv", "--no-warmup", "-lv", "4"]


def measure_one(binaries: Mapping[str, str], facts: ModelFacts, ctx: int, kv: str, spec: BenchSpec,
                runner: Runner = run_tool) -> dict:
    model = facts.path
    r = runner(bench_argv(binaries["llama-bench"], model, ctx, kv, spec), None, None)
    if r.returncode != 0:
        sig = r.crashed()
        raise EngineError(f"llama-bench {'crashed (' + sig + ')' if sig else f'exited {r.returncode}'} "
                          f"at -d {ctx} -ctk/-ctv {kv}: {r.tail()}")
    rec = parse_bench_json(r.stdout)
    rec["bench_seconds"] = round(r.seconds, 2)
    rec["peak_rss_mib"] = None if r.peak_rss_bytes is None else round(r.peak_rss_bytes / 2**20, 1)
    n_ctx = ctx + spec.n_prompt + spec.n_gen
    # the KV line comes through llama.cpp's async logger, whose tail can be lost at exit
    # (engine.ATTEMPTS): repeat the probe (one token, a second or so) until the last line arrived
    for _ in range(engine.ATTEMPTS):
        p = runner(kv_probe_argv(binaries["llama-completion"], model, n_ctx, kv), None, None)
        log = p.stdout + "\n" + p.stderr
        if engine._TOTAL.search(log):
            break
    m = engine._KV.search(log)                    # the first (full-attention) cache's cells
    cells = int(m.group(2)) if m else n_ctx
    rec.update(n_ctx=n_ctx, kv_cells=cells, kv_log_mib=engine.parse_kv_mib(log))
    # no number where llama.cpp's memory rule for the architecture is not modelled (kv_model.py)
    rec["kv_plan_mib"] = round(facts.info.kv_cache_bytes(cells, kv) / 2**20, 2) if facts.info.kv_known else None
    if rec["kv_log_mib"] and rec["kv_plan_mib"] is not None:
        rec["kv_plan_error_pct"] = round(100 * (rec["kv_plan_mib"] - rec["kv_log_mib"]) / rec["kv_log_mib"], 2)
    return rec


def run_bench(spec: BenchSpec, facts: ModelFacts, label: str, out_dir: str, binaries: Mapping[str, str] | None = None,
              runner: Runner = run_tool, env: Mapping[str, str] | None = None,
              on_event: Callable[[dict], None] = lambda e: None) -> list[dict]:
    """Measure every (kv type, context) not yet in bench.jsonl for the model of facts (read once
    by the caller); return this spec's records."""
    model = facts.path
    if binaries is None:
        from ggufrope.build.ensure import ensure_build
        binaries = ensure_build(env=env).binaries
    for b in ("llama-bench", "llama-completion"):
        if b not in binaries:
            raise UsageError(f"the llama.cpp build has no {b}; run `ggufrope build`")
    mid = {"model": os.path.basename(model), "model_size": os.path.getsize(model)}
    key = spec.key()
    have = [r for r in journal.read_records(out_dir, BENCH_JOURNAL)
            if r.get("model") == mid["model"] and r.get("model_size") == mid["model_size"]
            and r.get("spec") == key and r.get("status") == "ok"]
    done = {(r["kv"], r["context"]) for r in have}
    cells = [(kv, c) for kv in spec.kv_types for c in spec.contexts]
    todo = [x for x in cells if x not in done]
    t0 = time.monotonic()
    on_event({"kind": "resume", "skipped": len(cells) - len(todo), "total": len(cells)})
    for i, (kv, c) in enumerate(todo):
        on_event({"kind": "start", "index": len(cells) - len(todo) + i, "total": len(cells), "kv": kv, "context": c,
                  "elapsed": time.monotonic() - t0})
        base = {"task": "bench", **mid, "target": label, "spec": key, "kv": kv, "context": c}
        try:
            rec = {**base, **measure_one(binaries, facts, c, kv, spec, runner), "status": "ok"}
        except EngineError as e:
            rec = {**base, "status": "error", "error": str(e)}
        rec["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        journal.append_record(out_dir, rec, BENCH_JOURNAL)
        have.append(rec)
        on_event({"kind": "done", "index": len(cells) - len(todo) + i + 1, "total": len(cells), "record": rec,
                  "elapsed": time.monotonic() - t0})
    want = set(cells)
    return [r for r in have if (r["kv"], r["context"]) in want]


def table_rows(records: Sequence[dict]) -> list[list[str]]:
    rows = [["kv", "context", "pp t/s", "tg t/s", "peak RSS", "KV cells", "KV (llama.cpp log)", "KV (plan)",
             "plan error"]]
    for r in sorted(records, key=lambda r: (KV_TYPES.index(r["kv"]) if r["kv"] in KV_TYPES else 9, r["context"])):
        if r.get("status") != "ok":
            rows.append([r["kv"], str(r["context"]), "error", "", "", "", "", "", r.get("error", "")[:60]])
            continue
        rows.append([r["kv"], str(r["context"]), f"{r['pp_ts']:.1f}", f"{r['tg_ts']:.1f}",
                     f"{r['peak_rss_mib']:.0f} MiB" if r.get("peak_rss_mib") else "?", str(r.get("kv_cells", "?")),
                     f"{r['kv_log_mib']:.2f} MiB" if r.get("kv_log_mib") is not None else "?",
                     f"{r['kv_plan_mib']:.2f} MiB" if r.get("kv_plan_mib") is not None else "unknown rule",
                     f"{r['kv_plan_error_pct']:+.2f}%" if r.get("kv_plan_error_pct") is not None else "?"])
    return rows


def table_text(records: Sequence[dict]) -> str:
    rows = table_rows(records)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  " + "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    return "\n".join(lines) + ("\n  context: tokens already in the KV cache (llama-bench -d); n_ctx = context + "
                               "-p + -n (llama.cpp rounds the cache up to 256 cells); peak RSS: the llama-bench process "
                               "(weights, compute buffers and the cache as filled); KV (llama.cpp log): "
                               "llama-completion's `llama_kv_cache: size` lines at that n_ctx, summed (full + SWA caches, recurrent "
                               "state); KV (plan): "
                               "ModelInfo.kv_cache_bytes at the same cells")


def write_outputs(out_dir: str, records: list[dict], plots: bool = True) -> dict[str, str]:
    import csv
    import io
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    p = os.path.join(out_dir, "bench-results.json")
    with open(p, "w", encoding="utf-8") as f:
        json.dump({"task": "bench", "records": records}, f, indent=2)
        f.write("\n")
    paths["json"] = p
    cols = ["kv", "context", "n_ctx", "pp_ts", "pp_sd", "tg_ts", "tg_sd", "peak_rss_mib", "kv_cells", "kv_log_mib",
            "kv_plan_mib", "kv_plan_error_pct", "bench_seconds", "status", "error"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: r.get(k, "") for k in cols})
    p = os.path.join(out_dir, "bench-results.csv")
    with open(p, "w", encoding="utf-8") as f:
        f.write(buf.getvalue())
    paths["csv"] = p
    p = os.path.join(out_dir, "bench-table.txt")
    with open(p, "w", encoding="utf-8") as f:
        f.write(table_text(records) + "\n")
    paths["table"] = p
    if plots and any(r.get("status") == "ok" for r in records):
        paths["plot"] = plot(os.path.join(out_dir, "bench-speed.png"), records)
    return paths


def plot(path: str, records: list[dict]) -> str:
    from ggufrope.evaluation.plots import pyplot
    plt = pyplot()
    ok = [r for r in records if r.get("status") == "ok"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    kvs = [k for k in KV_TYPES if any(r["kv"] == k for r in ok)] + sorted({r["kv"] for r in ok} - set(KV_TYPES))
    for kv in kvs:
        rs = sorted((r for r in ok if r["kv"] == kv), key=lambda r: r["context"])
        xs = [r["context"] for r in rs]
        axes[0].plot(xs, [r["pp_ts"] for r in rs], marker="o", label=kv)
        axes[1].plot(xs, [r["tg_ts"] for r in rs], marker="o", label=kv)
        line, = axes[2].plot(xs, [r["peak_rss_mib"] for r in rs], marker="o", label=f"{kv} peak RSS")
        axes[2].plot(xs, [r["kv_log_mib"] for r in rs], ls="--", marker="x", color=line.get_color(),
                     label=f"{kv} KV (llama.cpp)")
        axes[2].plot(xs, [r["kv_plan_mib"] if r.get("kv_plan_mib") is not None else float("nan") for r in rs], ls=":", color=line.get_color(), label=f"{kv} KV (plan)")
    axes[0].set_title("prompt processing (tokens/s)", fontsize=9)
    axes[1].set_title("generation (tokens/s)", fontsize=9)
    axes[2].set_title("memory (MiB)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("context already in the KV cache (tokens)")
        ax.legend(fontsize=7)
    fig.suptitle(f"llama-bench: {ok[0].get('target') or ok[0]['model']} (-fa 1, -p {ok[0]['spec']['n_prompt']}, "
                 f"-n {ok[0]['spec']['n_gen']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def spec_dict(spec: BenchSpec) -> dict:
    return asdict(spec)
