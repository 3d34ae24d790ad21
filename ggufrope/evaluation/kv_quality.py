"""`eval kv`: what a quantized KV cache costs in quality, next to what it saves in memory and
what it does to speed.

At each length and RoPE variant (the preset's own settings, or plan's YaRN for the length):
  1. a base run with an f16 K/V cache writes llama.cpp's base logits (kld.write_base) to a
     temporary folder, deleted when the length is done (hundreds of MB at 8K);
  2. per K/V pair (f16 too: f16 against itself is the noise floor, KLD ~ 0) a --kl-divergence
     run gives Δperplexity with its error bar, mean and 99th-percentile KL divergence and the
     share of tokens whose top choice is unchanged (kld.compare);
  3. per K/V pair, passkey found/runs (evaluation/passkey.py, the same prompts as `eval passkey`).
Every run gets `-ctk K -ctv V -fa on` (a quantized V cache needs flash attention; f16 gets it
too, so only the cache type differs). Each record carries the planner's KV memory for the pair
(ModelInfo.kv_cache_bytes at llama.cpp's padded cell count, as `presets check` plans it) and,
when `--bench DIR` holds `ggufrope bench` data for the same model, prompt and generation speed.

The sweep is runner.Sweep's (results.jsonl, resume, same_as, ETA); only the grid, the per-cell
flags and one run differ."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from typing import Mapping

from ggufrope.errors import UsageError
from ggufrope.evaluation import kld
from ggufrope.evaluation.runner import Cell, Sweep, _mib
from ggufrope.evaluation.spec import choice_items, length_label
from ggufrope.evaluation.variants import Variant
from ggufrope.settings import KV_CACHE_TYPES

BASE_PAIR = "f16"                 # the reference cache: its logits are the base
DEFAULT_PAIRS = ("f16", "q8_0", "q8_0/q4_0", "q4_0")
PASSKEY = "passkey"
KLD = "kld"


def split_pair(pair: str) -> tuple[str, str]:
    """'q8_0/q4_0' -> ('q8_0', 'q4_0'); 'q8_0' -> ('q8_0', 'q8_0')."""
    k, _, v = pair.partition("/")
    return k, v or k


def parse_kv_pairs(text: str) -> tuple[str, ...]:
    """'f16,q8_0,q8_0/q4_0' -> pairs as K or K/V (K/V with K == V written as K), in the order given."""
    out: list[str] = []
    for t in choice_items(text, "--kv", "cache type", KV_CACHE_TYPES, split_pair,
                          ", or K/V such as q8_0/q4_0"):
        k, v = split_pair(t)
        p = k if k == v else f"{k}/{v}"
        if p not in out:
            out.append(p)
    if not out:
        raise UsageError("--kv: give at least one cache type, e.g. f16,q8_0,q4_0")
    return tuple(out)


def kv_args(pair: str) -> tuple[str, ...]:
    k, v = split_pair(pair)
    return ("-ctk", k, "-ctv", v, "-fa", "on")


def kv_plan_mib(facts, length: int, pair: str) -> float | None:
    """The planner's KV cache (presets/memory.plan's term) for `-c length`: llama.cpp pads n_ctx to 256.
    None where the architecture's memory rule is not modelled (ggufrope/kv_model.py)."""
    from ggufrope.presets.memory import pad_ctx
    if not facts.info.kv_known:
        return None
    k, v = split_pair(pair)
    return round(facts.info.kv_cache_bytes(pad_ctx(length), k, v) / 2**20, 2)


def bench_speed(bench_records: list[dict], pair: str, length: int) -> dict:
    """Prompt/generation speed from `ggufrope bench` records of the same cache type (bench runs K = V)
    at the deepest context measured <= length (else the shallowest); {} when there is none."""
    k, v = split_pair(pair)
    rs = [r for r in bench_records if r.get("status") == "ok" and r.get("kv") == k and k == v]
    if not rs:
        return {}
    below = [r for r in rs if r["context"] <= length]
    r = max(below, key=lambda r: r["context"]) if below else min(rs, key=lambda r: r["context"])
    return {"pp_ts": r.get("pp_ts"), "tg_ts": r.get("tg_ts"), "bench_context": r["context"]}


@dataclass
class KvSweep(Sweep):
    """Sweep with a K/V pair per cell: KLD cells (depth None) first at each length, then passkey."""

    bench_records: list[dict] = field(default_factory=list)
    _tmp: str | None = field(default=None, init=False, repr=False)
    _bases: dict = field(default_factory=dict, init=False, repr=False)

    def cells(self) -> list[Cell]:
        s = self.spec
        if min(s.lengths) < 256:
            raise UsageError(f"eval kv: length {min(s.lengths)} is too short: llama.cpp prints KL-divergence "
                             f"statistics only for {kld.MIN_TOKENS}+ scored tokens (use 256 or more)")
        return super().cells()

    def cells_at(self, n: int, runnable: list[str]) -> list[Cell]:
        """Per K/V pair: a quality cell, then the passkey cells."""
        s = self.spec
        return [Cell(n, None, None, v, p) for v in runnable for p in s.kv_pairs] + \
            [Cell(n, d, t, v, p) for t in range(s.trials) for d in s.depths for v in runnable for p in s.kv_pairs]

    def cell_variant(self, cell: Cell) -> Variant:
        v = self.variant(cell.variant, cell.length)
        if cell.kv is None or not v.applicable:
            return v
        return replace(v, args=v.args + kv_args(cell.kv))

    def _base_record(self, cell: Cell, v: Variant, config: str, mid: dict) -> dict:
        rec = super()._base_record(cell, v, config, mid)
        if cell.kv is not None:
            k, vt = split_pair(cell.kv)
            rec.update(kv=cell.kv, type_k=k, type_v=vt, probe=PASSKEY if cell.depth is not None else KLD,
                       kv_plan_mib=kv_plan_mib(self.facts, cell.length, cell.kv),
                       **bench_speed(self.bench_records, cell.kv, cell.length))
        return rec

    def execute(self, cell: Cell, v: Variant) -> dict:
        if cell.depth is not None:
            self._drop_bases()     # the KLD cells of this length came first: their base is done with
            return self.retrieval(cell, v, "passkey")
        s = self.spec
        text = self._text(cell.length)
        base, base_s = self._base(cell, text)
        r = kld.compare(self.binaries["llama-perplexity"], self.target.model, text, cell.length, s.chunks, v.args,
                        base, s.threads, s.extra_args, self.runner, self.timeout)
        st = r.stats
        return {**st, "score": st.get("kld_mean"), "kld_tokens": kld.scored_tokens(cell.length, s.chunks),
                "seconds": round(r.seconds + base_s, 2), "base_seconds": round(base_s, 2),
                "peak_rss_mib": _mib(r.peak_rss_bytes), "attempts": r.attempts}

    def run(self) -> list[dict]:
        try:
            return super().run()
        finally:
            self._drop_bases()

    # -- the base logits -------------------------------------------------------------------
    def _text(self, length: int) -> str:
        from ggufrope.evaluation.perplexity import text_for
        tok = self.tokenizer()
        count = tok.count if hasattr(tok, "count") else tok
        return text_for(count, self.units(), length, self.spec.chunks, self.spec.text_offset)

    def _base(self, cell: Cell, text: str) -> tuple[str, float]:
        """The f16 base logits for the cell's length and RoPE flags: (file, seconds spent making it
        now: 0 when it was already there). A new length drops the previous length's files first."""
        rope = self.variant(cell.variant, cell.length).args
        key = (cell.length, rope)
        if key in self._bases:
            return self._bases[key], 0.0
        if any(n != cell.length for n, _ in self._bases):
            self._drop_bases()
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="ggufrope-kld-")
        path = os.path.join(self._tmp, f"base-{cell.length}-{len(self._bases)}.kld")
        s = self.spec
        r = kld.write_base(self.binaries["llama-perplexity"], self.target.model, text, cell.length, s.chunks,
                           rope + kv_args(BASE_PAIR), path, s.threads, s.extra_args, self.runner, self.timeout)
        self._bases[key] = path
        return path, r.seconds

    def _drop_bases(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None
        self._bases = {}


def run_kv_sweep(spec, target, out_dir: str, *, binaries: Mapping[str, str] | None = None,
                 bench_dir: str | None = None, env: Mapping[str, str] | None = None, **kw) -> list[dict]:
    if binaries is None:
        from ggufrope.build.ensure import ensure_build
        binaries = ensure_build(env=env).binaries
    for need in ("llama-perplexity", "llama-completion"):
        if need not in binaries:
            from ggufrope.errors import GgufropeError
            raise GgufropeError(f"the llama.cpp build has no {need}; run `ggufrope build`")
    bench_records: list[dict] = []
    if bench_dir:
        from ggufrope.evaluation import bench, journal
        from ggufrope.evaluation.runner import model_id
        mid = model_id(target.model)
        bench_records = [r for r in journal.read_records(bench_dir, bench.BENCH_JOURNAL)
                         if r.get("model") == mid["model"] and r.get("model_size") == mid["model_size"]]
        if not bench_records:
            raise UsageError(f"--bench {bench_dir}: no `ggufrope bench` results for {mid['model']} there")
    return KvSweep(spec, target, out_dir, binaries, env=env, bench_records=bench_records, **kw).run()


# -- from records to the table ---------------------------------------------------------------

def pair_order(pairs: list[str]) -> list[str]:
    """f16 first, then by bytes per element of K then V (q8_0 before q8_0/q4_0 before q4_0)."""
    def size(t: str) -> float:
        blk, b = KV_CACHE_TYPES[t]
        return b / blk
    return sorted(pairs, key=lambda p: (-size(split_pair(p)[0]), -size(split_pair(p)[1]), p))


def summarize(records: list[dict], variants: tuple[str, ...] | None = None) -> dict:
    """{"task": "kv", "lengths", "rows": [row per (length, variant, pair)], "na": [notes]}: a row has the
    KLD run's fields, passkey found/runs and the memory and speed of the pair."""
    kv = [r for r in records if r.get("kv")]
    lengths = sorted({r["length"] for r in records})
    names = list(dict.fromkeys([*(variants or ()), *sorted({r["variant"] for r in kv})]))
    rows = []
    for n in lengths:
        for var in names:
            rs = [r for r in kv if r["length"] == n and r["variant"] == var]
            for p in pair_order(sorted({r["kv"] for r in rs})):
                mine = [r for r in rs if r["kv"] == p]
                k = [r for r in mine if r.get("probe") == KLD and r.get("status") == "ok"]
                pk = [r for r in mine if r.get("probe") == PASSKEY and r.get("status") == "ok"]
                errs = [r for r in mine if r.get("status") == "error"]
                row = {"length": n, "variant": var, "kv": p, "kv_plan_mib": mine[0].get("kv_plan_mib"),
                       "pp_ts": mine[0].get("pp_ts"), "tg_ts": mine[0].get("tg_ts"),
                       "bench_context": mine[0].get("bench_context"),
                       "found": sum(1 for r in pk if r.get("found")), "runs": len(pk), "errors": len(errs),
                       "same_as": k[-1].get("same_as") if k else None, "summary": mine[0].get("summary", "")}
                for f in ("ppl", "ppl_base", "dppl", "dppl_err", "kld_mean", "kld_err", "kld_p99", "kld_max",
                          "same_top_pct", "same_top_err"):
                    row[f] = k[-1].get(f) if k else None
                rows.append(row)
    na = sorted({f"{r['variant']}: {r.get('summary', '')}" for r in records if r.get("status") == "n/a"})
    return {"task": "kv", "lengths": lengths, "variants": names, "rows": rows, "na": na}


def _f(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


HEAD = ["length", "variant", "K/V", "KV MiB", "pp t/s", "tg t/s", "Δppl", "± ", "mean KLD", "99% KLD",
        "same top %", "passkey"]


def table_rows(summary: dict) -> list[list[str]]:
    rows = [HEAD]
    for r in summary["rows"]:
        rows.append([length_label(r["length"]), r["variant"], r["kv"], _f(r["kv_plan_mib"], ".2f"),
                     _f(r["pp_ts"], ".1f"), _f(r["tg_ts"], ".1f"), _f(r["dppl"], "+.4f"), _f(r["dppl_err"], ".4f"),
                     _f(r["kld_mean"], ".6f"), _f(r["kld_p99"], ".5f"), _f(r["same_top_pct"], ".2f"),
                     f"{r['found']}/{r['runs']}" if r["runs"] else "-"])
    return rows


def footnotes(summary: dict) -> list[str]:
    notes = ["K/V: -ctk/-ctv (-fa on for every run); KV MiB: the planner's KV cache at -c length "
             "(ModelInfo.kv_cache_bytes, 256-cell padding, as `presets check` plans it); Δppl and KLD against an "
             "f16 K/V run of the same text, RoPE flags and length (llama-perplexity --kl-divergence); "
             "same top %: tokens whose most likely next token is unchanged; passkey: found / runs"]
    if any(r["pp_ts"] is not None for r in summary["rows"]):
        ctxs = sorted({r["bench_context"] for r in summary["rows"] if r["bench_context"] is not None})
        notes.append("pp/tg t/s: `ggufrope bench` (llama-bench -fa 1, K = V type only) at context "
                     + ", ".join(map(str, ctxs)) + " (the deepest measured at or below the length)")
    variants = {(r["length"], r["variant"]): r["summary"] for r in summary["rows"]}
    for (n, v), s in variants.items():
        notes.append(f"{length_label(n)} {v}: {s}")
    return notes + summary["na"]


def table_text(summary: dict) -> str:
    rows = table_rows(summary)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["KV cache quality against f16 (lower KLD / Δppl is better)"]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines + ["  " + n for n in footnotes(summary)])


def table_markdown(summary: dict) -> str:
    rows = table_rows(summary)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(rows[0]) - 3)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out + [""] + footnotes(summary)) + "\n"


CSV_COLUMNS = ("task", "model", "target", "length", "variant", "kv", "type_k", "type_v", "probe", "depth", "trial",
               "status", "kv_plan_mib", "pp_ts", "tg_ts", "bench_context", "ppl", "ppl_err", "ppl_base",
               "ppl_base_err", "dppl", "dppl_err", "kld_mean", "kld_err", "kld_p99", "kld_max", "same_top_pct",
               "same_top_err", "kld_tokens", "found", "answer", "output", "seconds", "peak_rss_mib", "same_as",
               "args", "summary", "error")


def measurements(summary: dict, source: str) -> dict:
    """The baseline as data for presets (presets/kv_measured.json): per length and pair, the numbers
    `presets show`/`check` cite."""
    return {"source": source, "model": None, "rows": [
        {k: r[k] for k in ("length", "variant", "kv", "kv_plan_mib", "dppl", "dppl_err", "kld_mean", "kld_p99",
                           "same_top_pct", "found", "runs")} for r in summary["rows"]]}


WARN_MEAN_KLD = 0.05   # presets check warns above this (q8_0 measured ~0.01, q4_0 ~0.27 on SmolLM2)


def write_measurements(out_dir: str, path: str, command: str = "", warn_mean_kld: float = WARN_MEAN_KLD) -> dict:
    """presets/kv_measured.json from the latest `eval kv` results in out_dir."""
    import json
    from ggufrope.evaluation import journal
    from ggufrope.evaluation.runner import latest
    rs = [r for r in journal.read_records(out_dir) if r.get("task") == "kv"]
    if not rs:
        raise UsageError(f"{journal.journal_path(out_dir)}: no eval kv results")
    rs = latest([r for r in rs if r["config"] == rs[-1]["config"] and r["model"] == rs[-1]["model"]])
    doc = measurements(summarize(rs), out_dir.rstrip("/"))
    doc.update(model=rs[0]["model"], target=rs[0].get("target"), command=command, warn_mean_kld=warn_mean_kld)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return doc
