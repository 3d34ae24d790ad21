"""Long-running child processes ggufrope owns (llama-server, RPC workers): started in their own
session (a Ctrl-C reaches them only through us, once) with PR_SET_PDEATHSIG on Linux (they
cannot outlive a killed ggufrope), waited on while nothing asks to stop, stopped with SIGTERM
and then SIGKILL after a grace period. `StopSignals` turns SIGINT/SIGTERM into such a request.

The address such a child listens on: `is_loopback` (reachable from this machine only),
`check_port_free` before starting it (something already there would answer for it) and
`listens` (does this pid hold the listening socket?) once something answers.

How a child ended, for messages: `rc_text` (exit code or signal) and `last_lines` / `log_tail`
(the end of its output, error lines first); `LogFollower` shows its log as it grows (--verbose)."""
from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
from typing import Callable, Mapping, Sequence

from ggufrope.errors import EngineError

Popen = Callable[..., subprocess.Popen]
# a short tool run to completion: subprocess.run, or a stand-in with its signature (tests)
Runner = Callable[..., subprocess.CompletedProcess]


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    h = host.strip().strip("[]").lower()
    return h in ("localhost", "::1") or h.startswith("127.")


def check_port_free(host: str, port: int) -> None:
    """OSError if host:port cannot be listened on now (another process has it). SO_REUSEADDR as
    llama.cpp's servers bind (ggml-rpc, cpp-httplib), so a port in TIME_WAIT counts as free."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host.strip("[]"), port))


def listens(pid: int, port: int) -> bool | None:
    """Whether process pid holds a listening TCP socket on port (Linux: /proc/net/tcp{,6} and
    /proc/PID/fd); None where this cannot be told (no /proc)."""
    inodes: set[str] = set()
    tables = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        tables += 1
        for row in rows:
            cols = row.split()
            # sl local_address rem_address st ... inode (column 9); st 0A = LISTEN
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    if not tables:
        return None
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def spawn(popen: Popen, argv: Sequence[str], **kw) -> subprocess.Popen:
    """popen(argv, **kw), with a failure to start (E2BIG, ENOENT, EACCES...) as one EngineError."""
    try:
        return popen(list(argv), **kw)
    except OSError as e:
        hint = {errno.E2BIG: " (the arguments are longer than the system allows: a huge system prompt or "
                             "extra_args?)",
                errno.ENOENT: " (no such program)", errno.EACCES: " (not executable)"}.get(e.errno, "")
        raise EngineError(f"cannot start {argv[0]}: {e.strerror or e}{hint}") from None


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
        return spawn(popen, argv, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
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
    """SIGTERM to the child's whole process group (it leads its own session: `start`), then
    SIGKILL after grace seconds. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except OSError:   # not a group leader (a child started some other way): the process alone
        proc.send_signal(sig)


def rc_text(rc: int) -> str:
    """A Popen return code in words: "exit code 1", "signal SIGKILL"."""
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit code {rc}"


ERROR_LINES = r"error|failed"


def last_lines(text: str, n: int, prefer: str | None = None, skip_blank: bool = False) -> list[str]:
    """The last n lines of a tool's output; with `prefer` (a regex, any case), the last n lines
    that match it when some do (a failing tool's error lines, not its final chatter)."""
    lines = [ln for ln in text.splitlines() if ln.strip() or not skip_blank]
    if prefer is not None:
        lines = [ln for ln in lines if re.search(prefer, ln, re.I)] or lines
    return lines[-n:]


def log_tail(path: str, n: int = 15, prefer: str | None = ERROR_LINES) -> str:
    """last_lines of the log file at path, one a line ("" if it cannot be read)."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return "\n".join(last_lines(text, n, prefer))


class LogFollower:
    """Copies what a child writes to its log file to `write` as it arrives (a thread polling the
    file), for `--verbose`: the log file stays whole for error messages, the terminal sees the
    same lines. `close()` copies what is left and stops."""

    def __init__(self, path: str, write: Callable[[str], None], poll: float = 0.1) -> None:
        import threading
        self.path, self.write, self.poll = path, write, poll
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow {path}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with open(self.path, "rb") as f:
            while True:
                finished = self._done.is_set()   # read once more after close() asked
                chunk = f.read()
                if chunk:
                    self.write(chunk.decode("utf-8", "replace"))
                elif finished:
                    return
                else:
                    self._done.wait(self.poll)

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)


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
