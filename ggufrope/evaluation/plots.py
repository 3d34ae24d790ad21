"""PNG plots (matplotlib with the Agg backend, imported only here, only when plotting):
  TASK-heatmap.png    passkey/needle: accuracy over depth x length, one panel per variant
  TASK-accuracy.png   passkey/needle: accuracy against length, one line per variant
  perplexity.png      perplexity against length, one line per variant
  bench-speed.png     ggufrope bench: prompt processing and generation speed against context
  kv-quality.png      eval kv: mean KLD and top-token agreement against KV memory, a panel per length
"""
from __future__ import annotations

import os

from ggufrope.evaluation.spec import length_label

_COLORS = {"none": "#444444", "linear": "#1f77b4", "ntk": "#2ca02c", "yarn": "#d62728", "preset": "#9467bd",
           "dynamic": "#8c564b"}


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported at the first plot."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def depth_grid(records: list[dict], variant: str) -> tuple[list[float], list[int], list[list[float | None]]]:
    """(depths, lengths, accuracy[depth_index][length_index]) for one variant (None: no run)."""
    rs = [r for r in records if r["variant"] == variant and r.get("status") == "ok" and r.get("depth") is not None]
    depths = sorted({r["depth"] for r in rs})
    lengths = sorted({r["length"] for r in rs})
    grid: list[list[float | None]] = []
    for d in depths:
        row = []
        for n in lengths:
            cell = [r for r in rs if r["depth"] == d and r["length"] == n]
            row.append(sum(1 for r in cell if r.get("found")) / len(cell) if cell else None)
        grid.append(row)
    return depths, lengths, grid


def _title(records: list[dict], what: str) -> str:
    r = records[0]
    return f"{what}: {r.get('target') or r.get('model')}"


def _na_note(summary: dict) -> str:
    na = sorted({v for v, row in summary["cells"].items() for c in row.values() if c["status"] == "n/a"})
    return ("not applicable in llama.cpp (not plotted): " + ", ".join(na)) if na else ""


def heatmap(path: str, records: list[dict], summary: dict) -> str:
    plt = pyplot()
    task = summary["task"]
    variants = [v for v in summary["variants"] if depth_grid(records, v)[0]]
    n = max(1, len(variants))
    fig, axes = plt.subplots(1, n, figsize=(2.2 + 2.6 * n, 3.8), squeeze=False, layout="constrained")
    im = None
    for ax, v in zip(axes[0], variants):
        depths, lengths, grid = depth_grid(records, v)
        data = [[float("nan") if x is None else x for x in row] for row in grid]
        im = ax.imshow(data, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto", origin="upper")
        ax.set_xticks(range(len(lengths)), [length_label(x) for x in lengths])
        ax.set_yticks(range(len(depths)), [f"{d:g}" for d in depths])
        ax.set_xlabel("prompt length (tokens)")
        if ax is axes[0][0]:
            ax.set_ylabel("depth of the key (0 = start)")
        ax.set_title(v)
        for i, row in enumerate(grid):
            for j, x in enumerate(row):
                if x is not None:
                    ax.text(j, i, f"{x:.0%}",
                            ha="center", va="center", fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="found")
    note = _na_note(summary)
    fig.suptitle(_title(records, f"{task}: accuracy by depth and length") + (f"\n{note}" if note else ""),
                 fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy(path: str, records: list[dict], summary: dict) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    lengths = summary["lengths"]
    plotted = [v for v in summary["variants"] if any(c["status"] == "ok" for c in summary["cells"][v].values())]
    for k, v in enumerate(plotted):
        xs, ys = [], []
        for n in lengths:
            c = summary["cells"][v][n]
            if c["status"] == "ok":
                xs.append(n)
                ys.append(c["accuracy"])
        # a small vertical offset per variant: identical results (same run) stay visible
        off = (k - (len(plotted) - 1) / 2) * 0.015
        ax.plot(xs, [y + off for y in ys], marker="osD^v*"[k % 6], label=v, color=_COLORS.get(v), alpha=0.85)
    _length_axis(ax, records, lengths, "prompt length (tokens)", trained_text_y=1.04)
    ax.set_ylim(-0.05, 1.1)
    ax.set_ylabel("accuracy")
    return _save(plt, fig, ax, path, _title(records, f"{summary['task']}: accuracy against length"), summary)


def perplexity(path: str, records: list[dict], summary: dict) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    lengths = summary["lengths"]
    for v in summary["variants"]:
        xs, ys, es = [], [], []
        for n in lengths:
            c = summary["cells"][v][n]
            if c["status"] == "ok" and c.get("ppl") is not None:
                xs.append(n)
                ys.append(c["ppl"])
                es.append(c.get("ppl_err") or 0.0)
        if xs:
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=2, label=v, color=_COLORS.get(v), alpha=0.85)
    _length_axis(ax, records, lengths, "context length (tokens)")
    ax.set_yscale("log")
    ax.set_ylabel("perplexity (log scale)")
    return _save(plt, fig, ax, path, _title(records, "perplexity against context length"), summary)


def _length_axis(ax, records: list[dict], lengths: list[int], label: str,
                 trained_text_y: float | None = None) -> None:
    """A log-2 axis of lengths (labelled 4k, 8k...), with a dashed line at the trained context when it
    is in view: named in the legend, or by a text at trained_text_y."""
    trained = _trained(records)
    if trained and min(lengths) / 2 <= trained <= max(lengths) * 2:
        ax.axvline(trained, color="#999999", ls="--", lw=1,
                   label="trained context" if trained_text_y is None else None)
        if trained_text_y is not None:
            ax.text(trained, trained_text_y, " trained context", fontsize=7, color="#666666")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [length_label(n) for n in lengths])
    ax.set_xlabel(label)


def _save(plt, fig, ax, path: str, title: str, summary: dict) -> str:
    note = _na_note(summary)
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _trained(records: list[dict]) -> int | None:
    for r in records:
        if r.get("trained_ctx"):
            return r["trained_ctx"]
    return None


def plot_all(out_dir: str, records: list[dict], summary: dict) -> dict[str, str]:
    task = summary["task"]
    if task == "kv":
        return {"plot": kv_quality(os.path.join(out_dir, "kv-quality.png"), summary)}
    if task == "perplexity":
        return {"plot_perplexity": perplexity(os.path.join(out_dir, "perplexity.png"), records, summary)}
    return {"plot_heatmap": heatmap(os.path.join(out_dir, f"{task}-heatmap.png"), records, summary),
            "plot_accuracy": accuracy(os.path.join(out_dir, f"{task}-accuracy.png"), records, summary)}


def kv_quality(path: str, summary: dict) -> str:
    """eval kv: per length (a column of panels), mean KL divergence (log scale, top) and same-top-token %
    (bottom) against the planner's KV cache MiB, one labelled point per K/V pair and RoPE variant."""
    plt = pyplot()
    # the x axis is the planner's memory: rows of an architecture whose rule is unknown have none
    rows = [r for r in summary["rows"] if r["kld_mean"] is not None and r["kv_plan_mib"] is not None]
    lengths = sorted({r["length"] for r in rows}) or summary["lengths"]
    n = max(1, len(lengths))
    fig, axes = plt.subplots(2, n, figsize=(1.5 + 3.6 * n, 6.4), squeeze=False, layout="constrained")
    for j, length in enumerate(lengths):
        top, bottom = axes[0][j], axes[1][j]
        for var in summary["variants"]:
            rs = sorted((r for r in rows if r["length"] == length and r["variant"] == var),
                        key=lambda r: r["kv_plan_mib"] or 0)
            if not rs:
                continue
            xs = [r["kv_plan_mib"] for r in rs]
            # f16 against itself is ~0 (or exactly 0): draw it at a floor so the log axis keeps it
            top.plot(xs, [max(r["kld_mean"], 1e-6) for r in rs], marker="o", color=_COLORS.get(var), label=var)
            bottom.plot(xs, [r["same_top_pct"] for r in rs], marker="o", color=_COLORS.get(var), label=var)
            for r in rs:
                top.annotate(r["kv"], (r["kv_plan_mib"], max(r["kld_mean"], 1e-6)), fontsize=7,
                             textcoords="offset points", xytext=(3, 3))
                bottom.annotate(r["kv"], (r["kv_plan_mib"], r["same_top_pct"]), fontsize=7,
                                textcoords="offset points", xytext=(3, -9))
        top.set_yscale("log")
        top.set_title(f"{length_label(length)} tokens")
        top.set_ylabel("mean KLD vs f16 (log; f16 at 1e-6)")
        bottom.set_ylabel("same top token %")
        bottom.set_xlabel("KV cache MiB (planner)")
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
        top.legend(fontsize=7)
    fig.suptitle("KV cache type: quality against memory" + (f" ({rows[0]['variant']})" if rows else ""))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
