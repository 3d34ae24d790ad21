"""Starting llama.cpp processes: always an argv list, never a shell. The process factory
(popen) and the HTTP getter are injected so tests can drive them without real binaries.

* one_shot: llama-completion for one answer; its stdout is the user's, its log goes to a file
  (shown when it fails).
* interactive: llama-cli on the terminal; Ctrl-C belongs to it.
* Server: llama-server as a supervised child (ggufrope.supervise: its own session, cannot outlive
  a killed ggufrope, stopped with SIGTERM then SIGKILL); ready when /health answers 200 from it.
"""
from __future__ import annotations

import os
import signal
import subprocess
from typing import Callable, Mapping, Sequence

from ggufrope import childproc, paths
from ggufrope.presets import secrets
from ggufrope.errors import EngineError
from ggufrope.supervise import Child

Popen = childproc.Popen
API_KEY_ENV = secrets.ENV_VAR


def log_path(env: Mapping[str, str], preset: str, tool: str) -> str:
    d = os.path.join(paths.home(env), "logs")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, f"{preset}.{tool}.log")


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
        raise EngineError(f"{os.path.basename(argv[0])} exited with {childproc.rc_text(rc)}:\n"
                          f"{childproc.log_tail(log)}\nfull log: {log}")
    return rc


def interactive(argv: Sequence[str], env: Mapping[str, str], popen: Popen = subprocess.Popen) -> int:
    """A terminal program (llama-cli): it owns the terminal and Ctrl-C; we wait for it."""
    proc = childproc.spawn(popen, argv, env=dict(env))
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGINT, old)


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


class Server(Child):
    """A llama-server process we own: ready when /health answers 200 and the listening socket is
    our child's."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: str, host: str, port: int,
                 popen: Popen = subprocess.Popen, get: Callable[[str], int] = http_get,
                 owns: Callable[[int, int], bool | None] = childproc.listens) -> None:
        super().__init__(list(argv), log, "llama-server", dict(env), EngineError, popen)
        self.host, self.port, self.get, self.owns = host, port, get, owns

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        if h in ("0.0.0.0", "[::]"):
            h = "127.0.0.1"
        return f"http://{h}:{self.port}"

    def start(self) -> None:
        check_port(self.host, self.port)
        super().start()

    def probe(self) -> bool | None:
        if self.get(self.url + "/health") != 200:
            return None
        assert self.proc is not None
        if self.owns(self.proc.pid, self.port) is False:
            # the port was free when checked; another program took it since
            raise EngineError(f"{self.url}/health answers, but not the llama-server ggufrope started "
                              f"(pid {self.proc.pid}): another program listens on port {self.port}; "
                              f"pick another with --port (log: {self.log})")
        return True

    def not_ready(self, timeout: float) -> str:
        return (f"llama-server did not answer {self.url}/health within {timeout:.0f}s (server.ready_timeout); "
                f"log: {self.log}")
