"""Running one llama.cpp tool: an argv list (never a shell), its output, wall time and the
peak resident memory of that one process (os.wait4's rusage, so other children do not count).

Everything that spawns a tool takes a `Runner` (a callable with this signature), so tests can
pass a fake that returns canned output."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ggufrope.childproc import last_lines


@dataclass(frozen=True)
class ProcResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_bytes: int | None   # the process's own peak RSS (Linux: ru_maxrss in KiB)

    def crashed(self) -> str | None:
        """The signal name when the process died of one, else None."""
        rc = self.returncode
        if rc < 0:
            try:
                return signal.Signals(-rc).name
            except ValueError:
                return f"signal {-rc}"
        return None

    def tail(self, n: int = 5) -> str:
        """The last non-blank lines of its stderr (else stdout), on one line."""
        return " | ".join(last_lines(self.stderr or self.stdout, n, skip_blank=True))


Runner = Callable[[Sequence[str], "float | None", "Mapping[str, str] | None"], ProcResult]


def run_tool(argv: Sequence[str], timeout: float | None = None, env: Mapping[str, str] | None = None) -> ProcResult:
    """Run argv with stdin closed; output goes to temp files (a 16K-token prompt echoed back can
    be large) and the child is reaped with os.wait4 to read its own peak RSS."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             env=None if env is None else dict(env), start_new_session=True)
        rss = None
        try:
            if hasattr(os, "wait4"):
                deadline = None if timeout is None else t0 + timeout
                while True:
                    pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                    if pid:
                        p.returncode = os.waitstatus_to_exitcode(status)
                        # Linux reports KiB, macOS bytes
                        rss = ru.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
                        break
                    if deadline is not None and time.monotonic() > deadline:
                        raise subprocess.TimeoutExpired(argv, timeout)
                    time.sleep(0.05)
            else:  # pragma: no cover
                p.wait(timeout)
        except BaseException:
            # a timeout or Ctrl-C: never leave a llama.cpp process burning the CPU
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
            raise
        out.seek(0)
        err.seek(0)
        return ProcResult(tuple(argv), p.returncode, out.read().decode("utf-8", "replace"),
                          err.read().decode("utf-8", "replace"), time.monotonic() - t0, rss)
