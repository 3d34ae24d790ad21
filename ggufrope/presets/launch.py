"""Starting llama.cpp processes: always an argv list, never a shell. The process factory
(popen) and the HTTP getter are injected so tests can drive them without real binaries.

* one_shot: llama-completion for one answer; its stdout is the user's, its log goes to a file
  (shown when it fails).
* interactive: llama-cli on the terminal; Ctrl-C belongs to it.
* Server: llama-server in its own session (so a Ctrl-C reaches it only through us, once), with
  PR_SET_PDEATHSIG on Linux so it cannot outlive a killed ggufrope; ready when /health answers
  200; stopped with SIGTERM, then SIGKILL after a grace period.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ggufrope import childproc, paths
from ggufrope.presets import secrets
from ggufrope.errors import EngineError

Popen = childproc.Popen
API_KEY_ENV = secrets.ENV_VAR


def log_path(env: Mapping[str, str], preset: str, tool: str) -> str:
    d = os.path.join(paths.home(env), "logs")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, f"{preset}.{tool}.log")


def tail(path: str, n: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    errs = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    return "\n".join((errs or lines)[-n:])


def child_env(env: Mapping[str, str], api_key: str | None = None) -> dict[str, str]:
    """env for llama-server, with the resolved key (secrets.api_key) in LLAMA_API_KEY: in the
    environment, not on the command line (ps shows argv to every user; environ only to the same
    user)."""
    out = dict(env)
    if api_key:
        out[API_KEY_ENV] = api_key
    return out


def check_port(host: str, port: int) -> None:
    """EngineError if something already listens on host:port: it would answer /health for
    llama-server (or llama-server would fail to bind after loading)."""
    try:
        childproc.check_port_free(host, port)
    except OSError as e:
        h = f"[{host}]" if ":" in host else host
        raise EngineError(f"cannot listen on {h}:{port}: {e.strerror or e} (another server has the port; "
                          f"pick another with --port, or --port auto)") from None


def one_shot(argv: Sequence[str], env: Mapping[str, str], log: str, popen: Popen = subprocess.Popen,
             verbose: bool = False) -> int:
    """Run to completion; stdout passes through; the llama.cpp log goes to `log` (or stderr)."""
    with open(log, "w") as lf:
        proc = childproc.spawn(popen, argv, stdin=subprocess.DEVNULL, stdout=None,
                               stderr=None if verbose else lf, env=dict(env))
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    if rc != 0:
        raise EngineError(f"{os.path.basename(argv[0])} exited with {_rc_text(rc)}:\n{tail(log)}\nfull log: {log}")
    return rc


def interactive(argv: Sequence[str], env: Mapping[str, str], popen: Popen = subprocess.Popen) -> int:
    """A terminal program (llama-cli): it owns the terminal and Ctrl-C; we wait for it."""
    proc = childproc.spawn(popen, argv, env=dict(env))
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGINT, old)


def _rc_text(rc: int) -> str:
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit code {rc}"


def http_get(url: str, timeout: float = 2.0) -> int:
    """HTTP status of GET url (0: no answer)."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


@dataclass
class Server:
    """A llama-server process we own."""

    argv: list[str]
    env: dict[str, str]
    log: str
    host: str
    port: int
    popen: Popen = subprocess.Popen
    get: Callable[[str], int] = http_get
    owns: Callable[[int, int], bool | None] = childproc.listens
    proc: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        if h in ("0.0.0.0", "[::]"):
            h = "127.0.0.1"
        return f"http://{h}:{self.port}"

    def start(self) -> None:
        check_port(self.host, self.port)
        self.proc = childproc.start(self.argv, self.log, self.env, self.popen)

    def wait_ready(self, timeout: float, should_stop: Callable[[], bool] = lambda: False,
                   poll: float = 0.25) -> bool:
        """True once /health answers 200; False if asked to stop first. EngineError if the
        process dies or the time runs out."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if should_stop():
                return False
            rc = self.proc.poll()
            if rc is not None:
                raise EngineError(f"llama-server exited with {_rc_text(rc)} while starting:\n{tail(self.log)}\n"
                                  f"full log: {self.log}")
            if self.get(self.url + "/health") == 200:
                if self.owns(self.proc.pid, self.port) is False:
                    # the port was free when checked; another program took it since
                    raise EngineError(f"{self.url}/health answers, but not the llama-server ggufrope started "
                                      f"(pid {self.proc.pid}): another program listens on port {self.port}; "
                                      f"pick another with --port (log: {self.log})")
                return True
            time.sleep(poll)
        raise EngineError(f"llama-server did not answer {self.url}/health within {timeout:.0f}s "
                          f"(server.ready_timeout); log: {self.log}")

    def wait(self, should_stop: Callable[[], bool], poll: float = 0.2) -> int | None:
        """Until the server exits (its code) or should_stop() (None)."""
        assert self.proc is not None
        return childproc.wait(self.proc, should_stop, poll)

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after grace seconds. Returns the exit code."""
        return childproc.stop(self.proc, grace)
