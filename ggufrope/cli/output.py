"""Terminal output helpers for the CLI layer (the library never prints)."""
from __future__ import annotations

import json
import sys
import time


def echo(s: str = "") -> None:
    sys.stdout.write(s + "\n")


def note(s: str) -> None:
    sys.stderr.write(f"note: {s}\n")


def warn(s: str) -> None:
    sys.stderr.write(f"warning: {s}\n")


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def table(rows: list[list[str]], indent: str = "  ") -> str:
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


class Progress:
    """A one-line progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.t0 = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and (now - self.last < 0.1 or not self.tty):
            return  # not a terminal: only the final line
        self.last = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        rate = done / max(now - self.t0, 1e-6) / 2**20
        sys.stderr.write(f"{chr(13) if self.tty else ''}{self.label} [{bar:<30}] {frac * 100:5.1f}% {human_bytes(done)} ({rate:.0f} MiB/s)")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
