"""A sweep: every cell (length x depth x trial x variant) of an EvalSpec, run one at a time,
each result appended to results.jsonl as it ends. A rerun with the same spec, model and --out
skips the cells already there; a changed spec (seed, n_predict, chunks...) starts its own cells
in the same file without touching the old ones.

Cells whose llama.cpp flags are identical (linear/ntk/yarn within the trained context are all
"no scaling") run once; the other variants get a copy marked `same_as`. A variant llama.cpp
cannot run (dynamic) gets one `n/a` record per length, never a substitute."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ggufrope.errors import EngineError, GgufropeError
from ggufrope.evaluation import engine, journal
from ggufrope.evaluation.proc import Runner, run_tool
from ggufrope.evaluation.spec import EvalSpec
from ggufrope.evaluation.target import Target
from ggufrope.evaluation.variants import Variant, make_variant

# eval kv's measured fields (evaluation/kv_quality.py), copied to a `same_as` record like the others
KV_RESULT_KEYS = ("ppl_base", "ppl_base_err", "dppl", "dppl_err", "kld_mean", "kld_err", "kld_p99", "kld_max",
                  "same_top_pct", "same_top_err", "kld_tokens")

RECORD_VERSION = 1


@dataclass(frozen=True)
class Cell:
    length: int
    depth: float | None     # None: perplexity, or a variant that is not applicable
    trial: int | None
    variant: str
    kv: str | None = None   # eval kv: the K/V cache pair ("q8_0/q4_0"); None for the other tasks

    def key(self) -> tuple:
        return (self.length, self.depth, self.trial, self.variant, self.kv)

    def label(self) -> str:
        parts = [f"L={self.length}"]
        if self.depth is not None:
            parts.append(f"depth={self.depth:g}")
        if self.trial is not None:
            parts.append(f"trial={self.trial}")
        parts.append(self.variant)
        if self.kv is not None:
            parts.append(f"kv {self.kv}")
        return " ".join(parts)


@dataclass
class Event:
    kind: str                    # "resume" | "start" | "done"
    index: int                   # cells handled so far (this one included for "done")
    total: int
    cell: Cell | None = None
    record: dict | None = None
    eta_s: float | None = None   # seconds of llama.cpp runs still to do (estimate)
    skipped: int = 0             # "resume": cells already in results.jsonl
    to_run: int = 0              # runs (llama.cpp processes) still to do


def model_id(path: str) -> dict:
    try:
        size = os.path.getsize(path)
    except OSError:
        size = None
    return {"model": os.path.basename(path), "model_size": size}


def record_key(rec: dict) -> tuple:
    return (rec.get("length"), rec.get("depth"), rec.get("trial"), rec.get("variant"), rec.get("kv"))


def matches(rec: dict, config: str, mid: dict) -> bool:
    return (rec.get("config") == config and rec.get("model") == mid["model"]
            and rec.get("model_size") == mid["model_size"])


class ETA:
    """Seconds still to run, from the runs measured so far: the mean time at a length already
    seen, else the longest measured length scaled by (L/Lm)^1.5 (prompt processing is linear
    in L plus an attention term that grows with L^2)."""

    def __init__(self) -> None:
        self.seen: dict[int, list[float]] = {}

    def add(self, length: int, seconds: float) -> None:
        self.seen.setdefault(length, []).append(seconds)

    def one(self, length: int) -> float | None:
        if length in self.seen:
            v = self.seen[length]
            return sum(v) / len(v)
        if not self.seen:
            return None
        below = [x for x in self.seen if x <= length]
        lm = max(below) if below else min(self.seen)
        t = sum(self.seen[lm]) / len(self.seen[lm])
        return t * (length / lm) ** 1.5

    def total(self, lengths: list[int]) -> float | None:
        if not lengths:
            return 0.0
        vals = [self.one(n) for n in lengths]
        return None if any(v is None for v in vals) else sum(vals)


@dataclass
class Sweep:
    spec: EvalSpec
    target: Target
    out_dir: str
    binaries: Mapping[str, str]              # llama-completion / llama-perplexity paths
    runner: Runner = run_tool
    env: Mapping[str, str] | None = None
    on_event: Callable[[Event], None] = lambda e: None
    tokenizer_factory: Callable[[str], object] | None = None
    corpus: Callable[[], list[str]] | None = None
    timeout: float | None = None
    _facts: object = field(default=None, init=False, repr=False)
    _tok: object = field(default=None, init=False, repr=False)
    _units: list[str] | None = field(default=None, init=False, repr=False)

    # -- the grid --------------------------------------------------------------------------
    @property
    def facts(self):
        if self._facts is None:
            from ggufrope.planning import read_facts, require_rope
            t = self.target
            self._facts = require_rope(t.facts) if t.facts is not None else read_facts(t.model)
        return self._facts

    def variant(self, name: str, length: int) -> Variant:
        return make_variant(self.facts, name, length, self.spec.plan_ctx, self.target.preset_rope)

    def cell_variant(self, cell: Cell) -> Variant:
        """The variant a cell runs (eval kv adds its cache flags, so they join the run key)."""
        return self.variant(cell.variant, cell.length)

    def cells(self) -> list[Cell]:
        """Every cell of the grid, in run order: per length, a skipped cell for each variant that
        does not apply there, then cells_at() for those that do."""
        out: list[Cell] = []
        for n in self.spec.lengths:
            runnable = []
            for v in self.spec.variants:
                if self.variant(v, n).applicable:
                    runnable.append(v)
                else:
                    out.append(Cell(n, None, None, v))
            out += self.cells_at(n, runnable)
        return out

    def cells_at(self, n: int, runnable: list[str]) -> list[Cell]:
        """The cells run at length n for the variants that apply there."""
        s = self.spec
        if not s.uses_depth:
            return [Cell(n, None, None, v) for v in runnable]
        return [Cell(n, d, t, v) for t in range(s.trials) for d in s.depths for v in runnable]

    # -- lazily loaded helpers -------------------------------------------------------------
    def tokenizer(self):
        if self._tok is None:
            if self.tokenizer_factory is not None:
                self._tok = self.tokenizer_factory(self.target.model)
            else:
                from ggufrope.evaluation.tokens import Tokenizer
                self._tok = Tokenizer(self.target.model)
        return self._tok

    def units(self) -> list[str]:
        if self._units is None:
            if self.corpus is not None:
                self._units = self.corpus()
            else:
                from ggufrope.evaluation.texts import fetch_corpus, load_units
                self._units = load_units(fetch_corpus(self.env))
        return self._units

    # -- one run ---------------------------------------------------------------------------
    def execute(self, cell: Cell, v: Variant) -> dict:
        s = self.spec
        tok = self.tokenizer()
        count = tok.count if hasattr(tok, "count") else tok
        if s.task == "perplexity":
            from ggufrope.evaluation.perplexity import text_for
            text = text_for(count, self.units(), cell.length, s.chunks, s.text_offset)
            r = engine.perplexity(self.binaries["llama-perplexity"], self.target.model, text, cell.length,
                                  s.chunks, v.args, s.threads, s.extra_args, self.runner, self.timeout)
            return {"ppl": r.ppl, "ppl_err": r.ppl_err, "score": r.ppl, "seconds": round(r.seconds, 2),
                    "peak_rss_mib": _mib(r.peak_rss_bytes), "attempts": r.attempts}
        return self.retrieval(cell, v, s.task)

    def retrieval(self, cell: Cell, v: Variant, task: str) -> dict:
        """One passkey or needle run of cell with v's flags."""
        s = self.spec
        tok = self.tokenizer()
        count = tok.count if hasattr(tok, "count") else tok
        if task == "passkey":
            from ggufrope.evaluation import passkey as mod
            p = mod.make_prompt(count, cell.length, cell.depth, cell.trial, s.seed, s.n_predict)
        else:
            from ggufrope.evaluation import needle as mod
            p = mod.make_prompt(count, self.units(), cell.length, cell.depth, cell.trial, s.seed, s.n_predict,
                                s.text_offset)
        c = engine.complete(self.binaries["llama-completion"], self.target.model, p.text, cell.length,
                            s.n_predict, v.args, s.threads, s.extra_args, self.runner, self.timeout)
        ok = mod.score(p.answer, c.text)
        return {"answer": p.answer, "output": c.text, "found": ok, "score": 1.0 if ok else 0.0,
                "prompt_tokens": p.tokens, "prompt_tokens_llama": c.prompt_tokens,
                "seconds": round(c.seconds, 2), "peak_rss_mib": _mib(c.peak_rss_bytes), "attempts": c.attempts}

    # -- the sweep -------------------------------------------------------------------------
    def run(self) -> list[dict]:
        """Run every cell not yet in results.jsonl; return this spec's records (old and new)."""
        config = self.spec.config_key()
        mid = model_id(self.target.model)
        cells = self.cells()
        existing = [r for r in journal.read_records(self.out_dir) if matches(r, config, mid)]
        done = {record_key(r): r for r in existing if r.get("status") in ("ok", "n/a")}
        by_run: dict[tuple, dict] = {}
        eta = ETA()
        for r in done.values():
            if r.get("status") == "ok":
                by_run.setdefault(_run_key(r), r)
                if not r.get("same_as") and r.get("seconds"):
                    eta.add(r["length"], r["seconds"])
        todo = [c for c in cells if c.key() not in done]
        variants = {_vkey(c): self.cell_variant(c) for c in cells}
        skipped = len(cells) - len(todo)

        def event(kind: str, i: int, **kw) -> None:
            pend = _pending_lengths(todo[i:], variants, by_run)
            self.on_event(Event(kind, skipped + i, len(cells), to_run=len(pend), eta_s=eta.total(pend), **kw))

        event("resume", 0, skipped=skipped)
        for i, cell in enumerate(todo):
            v = variants[_vkey(cell)]
            rec = self._outcome(cell, v, self._base_record(cell, v, config, mid), by_run, eta,
                                lambda: event("start", i, cell=cell))
            rec["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            journal.append_record(self.out_dir, rec)
            existing.append(rec)
            event("done", i + 1, cell=cell, record=rec)
        return latest(existing)

    def _base_record(self, cell: Cell, v: Variant, config: str, mid: dict) -> dict:
        s = self.spec
        return {"v": RECORD_VERSION, "task": s.task, "config": config, **mid, "target": self.target.label,
                "length": cell.length, "depth": cell.depth, "trial": cell.trial, "variant": cell.variant,
                "args": list(v.args), "summary": v.summary, "plan_ctx": v.plan_ctx, "seed": s.seed,
                "trained_ctx": self.facts.trained_ctx}

    def _outcome(self, cell: Cell, v: Variant, base: dict, by_run: dict[tuple, dict], eta: ETA,
                 announce: Callable[[], None]) -> dict:
        """One cell's record: n/a, a copy of an identical run already made (same_as), or a new run
        (announced first; its result joins by_run and the ETA)."""
        if not v.applicable:
            return {**base, "status": "n/a"}
        k = (cell.length, cell.depth, cell.trial, v.run_key)
        prev = by_run.get(k)
        if prev is not None:
            return {**base, **_result_fields(prev), "status": "ok", "same_as": prev["variant"], "seconds": 0.0}
        announce()
        try:
            rec = {**base, **self.execute(cell, v), "status": "ok"}
        except EngineError as e:
            return {**base, "status": "error", "error": str(e)}
        eta.add(cell.length, rec["seconds"])
        by_run[k] = rec
        return rec


def _pending_lengths(todo: list[Cell], variants: dict, by_run: dict[tuple, dict]) -> list[int]:
    """The length of each run still to make among todo (a run two variants share counts once)."""
    keys = set(by_run)
    out = []
    for c in todo:
        v = variants[_vkey(c)]
        if not v.applicable:
            continue
        k = (c.length, c.depth, c.trial, v.run_key)
        if k not in keys:
            keys.add(k)
            out.append(c.length)
    return out


def _vkey(c: Cell) -> tuple:
    return (c.variant, c.length, c.kv)


def _mib(b: int | None) -> float | None:
    return None if b is None else round(b / 2**20, 1)


_RESULT_KEYS = ("answer", "output", "found", "score", "ppl", "ppl_err", "prompt_tokens", "prompt_tokens_llama",
                "peak_rss_mib", *KV_RESULT_KEYS)


def _result_fields(rec: dict) -> dict:
    return {k: rec[k] for k in _RESULT_KEYS if k in rec}


def _run_key(rec: dict) -> tuple:
    return (rec.get("length"), rec.get("depth"), rec.get("trial"), tuple(rec.get("args") or ()))


def latest(records: list[dict]) -> list[dict]:
    """One record per cell: the last ok/n-a one (an error followed by a success is a success)."""
    out: dict[tuple, dict] = {}
    for r in records:
        k = record_key(r)
        if r.get("status") in ("ok", "n/a") or k not in out or out[k].get("status") == "error":
            out[k] = r
    return list(out.values())


def run_sweep(spec: EvalSpec, target: Target, out_dir: str, *, binaries: Mapping[str, str] | None = None,
              runner: Runner = run_tool, env: Mapping[str, str] | None = None,
              on_event: Callable[[Event], None] = lambda e: None, **kw) -> list[dict]:
    if binaries is None:
        from ggufrope.build.ensure import ensure_build
        b = ensure_build(env=env)
        binaries = b.binaries
    need = "llama-perplexity" if spec.task == "perplexity" else "llama-completion"
    if need not in binaries:
        raise GgufropeError(f"the llama.cpp build has no {need}; run `ggufrope build`")
    return Sweep(spec, target, out_dir, binaries, runner, env, on_event, **kw).run()
