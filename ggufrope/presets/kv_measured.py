"""What a quantized KV cache was measured to cost in quality, as data: kv_measured.json, written
from an `ggufrope eval kv` baseline (benchmarks/bench_eval_kv.sh; evaluation.kv_quality.
write_measurements). `presets check` cites it when a preset asks for a K cache type whose
measured mean KL divergence against f16 is above the file's `warn_mean_kld`."""
from __future__ import annotations

import json
import os
import re

RESOURCE = os.path.join(os.path.dirname(__file__), "kv_measured.json")


def load(path: str = RESOURCE) -> dict:
    """{"source", "model", "command", "warn_mean_kld", "rows": [...]}; {} when the file is absent."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def lookup(type_k: str, type_v: str, n_ctx: int, data: dict | None = None) -> dict | None:
    """The measured row for this K type (the same V type when measured, else any V) at the longest
    measured length <= n_ctx, else the shortest measured length."""
    data = load() if data is None else data
    rows = [r for r in data.get("rows", []) if r.get("kld_mean") is not None
            and r["kv"].partition("/")[0] == type_k]
    same = [r for r in rows if (r["kv"].partition("/")[2] or type_k) == type_v]
    rows = same or rows
    if not rows:
        return None
    below = [r for r in rows if r["length"] <= n_ctx]
    return max(below, key=lambda r: r["length"]) if below else min(rows, key=lambda r: r["length"])


def describe(row: dict, model: str | None) -> str:
    """'q4_0 K/V at 2048 tokens on SmolLM2-...: mean KLD 0.27 vs f16, Δppl +0.88 ± 0.21, same top token 82.8%'."""
    on = f" on {model}" if model else ""
    return (f"{row['kv']} K/V at {row['length']} tokens{on}: mean KLD {row['kld_mean']:.4f} vs f16, "
            f"Δppl {row['dppl']:+.3f} ± {row['dppl_err']:.3f}, same top token {row['same_top_pct']:.1f}%")


DEMO_MODEL = "SmolLM2-135M (the demo model, trained 8K; plan's YaRN beyond)"
_NOTE_LINE = re.compile(r'^measured = ".*"$', re.M)


def _k(n: int) -> str:
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)


def note(kv: str, data: dict, model: str = DEMO_MODEL) -> str:
    """The one-line `measured` field of a -kv-q8/-kv-q4 preset: per measured length, the mean KL
    divergence against f16 and how often the top token stays the same."""
    rows = sorted((r for r in data.get("rows", []) if r["kv"] == kv and r.get("kld_mean") is not None),
                  key=lambda r: r["length"])
    klds = ", ".join(f"{r['kld_mean']:.3f} at {_k(r['length'])}" for r in rows)
    tops = "/".join(f"{r['same_top_pct']:.1f}" for r in rows)
    return (f"{kv} K/V vs f16 on {model}: mean KLD {klds}; same top token {tops}% "
            f"({data.get('source', '?')}; `ggufrope eval kv`)")


def write_preset_notes(presets_dir: str, data: dict) -> list[str]:
    """Rewrite the `measured` line of every built-in *-kv-q8 / *-kv-q4 preset from data; the files changed."""
    changed = []
    for name in sorted(os.listdir(presets_dir)):
        kv = "q8_0" if name.endswith("-kv-q8.toml") else "q4_0" if name.endswith("-kv-q4.toml") else None
        if kv is None:
            continue
        path = os.path.join(presets_dir, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = _NOTE_LINE.sub(lambda m: "measured = " + json.dumps(note(kv, data), ensure_ascii=False), text, count=1)
        if new != text:
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.write(new)
            os.replace(path + ".tmp", path)
            changed.append(path)
    return changed
