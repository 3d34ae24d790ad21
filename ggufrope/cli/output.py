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
    """The one progress bar, on stderr: bytes copied (`Progress("copying")(done, total)`, with the
    rate) or build steps (`Progress("build")(n, m, what)`: ninja's [n/m] and the step). On a
    terminal one line redrawn at most 10 times a second; otherwise only the final line (bytes)
    or a line every 10% (steps), so a log does not fill with redraws."""

    def __init__(self, label: str = "build"):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.last_pct = -1
        self.t0 = time.monotonic()

    def __call__(self, done: int, total: int, what: str | None = None) -> None:
        now = time.monotonic()
        final = done >= total
        pct = done * 100 // max(total, 1)
        show = final or (now - self.last >= 0.1 if self.tty else what is not None and pct // 10 != self.last_pct // 10)
        self.last_pct = pct
        if not show:
            return
        self.last = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        elapsed = now - self.t0
        if what is None:
            rate = done / max(elapsed, 1e-6) / 2**20
            line = f"{self.label} [{bar:<30}] {frac * 100:5.1f}% {human_bytes(done)} ({rate:.0f} MiB/s)"
        elif self.tty:
            line = f"[{bar:<30}] {done}/{total} {elapsed:5.0f}s {what[-40:]:<40}"
        else:
            line = f"{self.label}: [{done}/{total}] {pct}% {elapsed:.0f}s"
        sys.stderr.write(f"\r{line}" + ("\n" if final else "") if self.tty else line + "\n")
        sys.stderr.flush()


def print_findings(prep_or_findings, p) -> None:
    """A preset's pre-launch findings: warnings and notes on stderr (errors were raised)."""
    findings = getattr(prep_or_findings, "findings", prep_or_findings)
    for f in findings:
        if f.level == "warning":
            warn(f.render(p))
        elif f.level == "note":
            note(f.render(p))
