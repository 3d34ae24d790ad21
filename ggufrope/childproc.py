"""Long-running child processes ggufrope owns (llama-server, RPC workers): started in their own
session (a Ctrl-C reaches them only through us, once) with PR_SET_PDEATHSIG on Linux (they
cannot outlive a killed ggufrope), waited on while nothing asks to stop, stopped with SIGTERM
and then SIGKILL after a grace period. `StopSignals` turns SIGINT/SIGTERM into such a request."""
from __future__ import annotations

import signal
import subprocess
import sys
from typing import Callable, Mapping, Sequence

Popen = Callable[..., subprocess.Popen]


def _pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def start(argv: Sequence[str], log: str, env: Mapping[str, str] | None = None,
          popen: Popen = subprocess.Popen) -> subprocess.Popen:
    """argv (a list, never a shell) with stdout and stderr into the file `log`."""
    with open(log, "w") as lf:
        kw = {"preexec_fn": _pdeathsig} if sys.platform.startswith("linux") else {}
        return popen(list(argv), stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
                     env=None if env is None else dict(env), start_new_session=True, **kw)


def wait(proc: subprocess.Popen, should_stop: Callable[[], bool], poll: float = 0.2) -> int | None:
    """Until the process exits (its code) or should_stop() (None)."""
    while not should_stop():
        try:
            return proc.wait(timeout=poll)
        except subprocess.TimeoutExpired:
            continue
    return None


def stop(proc: subprocess.Popen | None, grace: float = 15.0) -> int | None:
    """SIGTERM, then SIGKILL after grace seconds. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class StopSignals:
    """`with StopSignals() as s:` SIGINT and SIGTERM set s.sig instead of interrupting."""

    def __init__(self) -> None:
        self.sig: int | None = None
        self._old: dict = {}

    def requested(self) -> bool:
        return self.sig is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.sig).name if self.sig is not None else ""

    def _on(self, signum, frame) -> None:
        self.sig = signum

    def __enter__(self) -> StopSignals:
        self._old = {s: signal.signal(s, self._on) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
