"""From records to what people read: a summary per (variant, length), the depth x length grid
per variant, a terminal table, Markdown, CSV and JSON. Pure functions of the records, so
`ggufrope eval report` rebuilds everything from results.jsonl without running anything."""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

from ggufrope.evaluation.spec import VARIANTS, length_label

CSV_COLUMNS = ("task", "model", "target", "length", "depth", "trial", "variant", "status", "found", "ppl",
               "ppl_err", "answer", "output", "prompt_tokens", "prompt_tokens_llama", "seconds",
               "peak_rss_mib", "same_as", "args", "summary", "error")


def _order(names: list[str], want: tuple[str, ...] | list[str] | None) -> list[str]:
    want = list(want or [])
    return [v for v in want if v in names] + sorted(v for v in names if v not in want)


def summarize(records: list[dict], variants: tuple[str, ...] | None = None) -> dict[str, Any]:
    """{"task", "lengths", "variants", "cells": {variant: {length: cell}}} where a cell is
    {"status": "ok"|"n/a"|"error"|"missing", "found", "runs", "accuracy" | "ppl", "ppl_err",
    "same_as", "note"}."""
    task = records[0]["task"] if records else None
    lengths = sorted({r["length"] for r in records})
    names = _order(sorted({r["variant"] for r in records}), variants or VARIANTS)
    cells: dict[str, dict[int, dict]] = {v: {} for v in names}
    for v in names:
        for n in lengths:
            rs = [r for r in records if r["variant"] == v and r["length"] == n]
            ok = [r for r in rs if r.get("status") == "ok"]
            c: dict[str, Any]
            if any(r.get("status") == "n/a" for r in rs):
                c = {"status": "n/a", "note": rs[0].get("summary", "")}
            elif not ok:
                errs = [r for r in rs if r.get("status") == "error"]
                c = {"status": "error", "note": errs[-1].get("error", "")} if errs else {"status": "missing"}
            elif task == "perplexity":
                r = ok[-1]
                c = {"status": "ok", "ppl": r.get("ppl"), "ppl_err": r.get("ppl_err")}
            else:
                found = sum(1 for r in ok if r.get("found"))
                c = {"status": "ok", "found": found, "runs": len(ok), "accuracy": found / len(ok)}
                errors = len([r for r in rs if r.get("status") == "error"])
                if errors:
                    c["errors"] = errors
            if c["status"] == "ok":
                same = {r.get("same_as") for r in ok}
                if len(same) == 1 and None not in same:
                    c["same_as"] = same.pop()
                c["note"] = ok[0].get("summary", "")
            cells[v][n] = c
    return {"task": task, "lengths": lengths, "variants": names, "cells": cells}


def cell_text(c: dict, task: str | None, mark_same: bool = True) -> str:
    st = c["status"]
    if st == "n/a":
        return "n/a"
    if st == "missing":
        return "-"
    if st == "error":
        return "error"
    if task == "perplexity":
        t = f"{c['ppl']:.2f}" if c.get("ppl") is not None else "?"
    else:
        t = f"{c['found']}/{c['runs']}"
    if mark_same and c.get("same_as"):
        t += "*"
    return t


def table_rows(summary: dict) -> list[list[str]]:
    task = summary["task"]
    head = ["variant"] + [length_label(n) for n in summary["lengths"]]
    rows = [head]
    for v in summary["variants"]:
        rows.append([v] + [cell_text(summary["cells"][v][n], task) for n in summary["lengths"]])
    return rows


def footnotes(summary: dict) -> list[str]:
    notes = []
    if any(c.get("same_as") for row in summary["cells"].values() for c in row.values()):
        notes.append("* within the trained context plan recommends no scaling: the same llama.cpp run as none, "
                     "shown under each name")
    for v, row in summary["cells"].items():
        na = [c for c in row.values() if c["status"] == "n/a"]
        if na:
            notes.append(f"{v}: {na[0]['note']}")
    return notes


def table_text(summary: dict) -> str:
    rows = table_rows(summary)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    what = {"passkey": "passkey found / runs", "needle": "needle exact match / runs",
            "perplexity": "perplexity (lower is better)"}.get(summary["task"] or "", "")
    lines = [what] if what else []
    for r in rows:
        lines.append("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    lines += ["  " + n for n in footnotes(summary)]
    return "\n".join(lines)


def table_markdown(summary: dict) -> str:
    rows = table_rows(summary)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    notes = footnotes(summary)
    if notes:
        out.append("")
        out += [n if not n.startswith("*") else "\\" + n for n in notes]
    return "\n".join(out) + "\n"


def csv_text(records: list[dict], columns: tuple[str, ...] = CSV_COLUMNS) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in sorted(records, key=_sort_key):
        row = dict(r)
        row["args"] = " ".join(r.get("args") or [])
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


def summarize_task(records: list[dict], variants: tuple[str, ...] | None = None) -> dict[str, Any]:
    """summarize(), or eval kv's own summary (a row per length, variant and K/V pair)."""
    if records and records[0].get("task") == "kv":
        from ggufrope.evaluation import kv_quality
        return kv_quality.summarize(records, variants)
    return summarize(records, variants)


def render_table(summary: dict) -> str:
    """The terminal table of summarize_task's result."""
    if summary["task"] == "kv":
        from ggufrope.evaluation import kv_quality
        return kv_quality.table_text(summary)
    return table_text(summary)


def _sort_key(r: dict):
    return (r.get("length") or 0, -1 if r.get("depth") is None else r["depth"],
            -1 if r.get("trial") is None else r["trial"], r.get("variant") or "", r.get("kv") or "")


def write_outputs(out_dir: str, records: list[dict], spec: dict, target: dict,
                  variants: tuple[str, ...] | None = None, plots: bool = True) -> dict[str, str]:
    """Write TASK-results.json, TASK-results.csv, TASK-table.txt, TASK-table.md and the plots;
    return {kind: path}."""
    os.makedirs(out_dir, exist_ok=True)
    summary = summarize_task(records, variants)
    task = summary["task"] or spec.get("task", "eval")
    if task == "kv":
        from ggufrope.evaluation import kv_quality
        table, markdown, columns = kv_quality.table_text, kv_quality.table_markdown, kv_quality.CSV_COLUMNS
    else:
        table, markdown, columns = table_text, table_markdown, CSV_COLUMNS
    paths: dict[str, str] = {}

    def put(kind: str, name: str, text: str) -> None:
        p = os.path.join(out_dir, name)
        tmp = p + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
        paths[kind] = p

    doc = {"task": task, "spec": spec, "target": target, "summary": _json_summary(summary),
           "records": sorted(records, key=_sort_key)}
    put("json", f"{task}-results.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    put("csv", f"{task}-results.csv", csv_text(records, columns))
    put("table", f"{task}-table.txt", table(summary) + "\n")
    put("markdown", f"{task}-table.md", markdown(summary))
    if plots and records:
        from ggufrope.evaluation import plots as pl
        paths.update(pl.plot_all(out_dir, records, summary))
    return paths


def _json_summary(summary: dict) -> dict:
    if "cells" not in summary:   # eval kv: rows, already JSON-shaped
        return summary
    # JSON object keys are strings: lengths as text
    return {**summary, "cells": {v: {str(n): c for n, c in row.items()} for v, row in summary["cells"].items()}}
