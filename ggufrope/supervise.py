"""One way to own a long-running child (llama-server, an RPC worker), used by both: start it (an
argv list in its own session, output to a log: childproc.start), wait until a probe says it is
ready while the child lives, serve until it exits or something asks to stop (Ctrl-C or SIGTERM,
caught by StopSignals, or the caller's own check), then stop its whole process group (SIGTERM,
SIGKILL after a grace period) and report how it ended. The library never prints: the caller
renders through `on_started` / `on_ready`, and failures are raised as the child's error class."""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Generic, Mapping, TypeVar

from ggufrope import childproc
from ggufrope.errors import EngineError, GgufropeError

T = TypeVar("T")


@dataclass
class Child:
    """A child process we own. `what` names it in messages ("llama-server", "the RPC worker on
    HOST:PORT"); `error` is the error class its failures raise; a subclass says how to tell it
    is ready (`probe`) and may check more before it starts (`start`)."""

    argv: list[str]
    log: str
    what: str
    env: Mapping[str, str] | None = None
    error: type[GgufropeError] = EngineError
    popen: childproc.Popen = subprocess.Popen
    proc: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> None:
        self.proc = childproc.start(self.argv, self.log, self.env, self.popen)

    def exited(self, rc: int, when: str = "") -> GgufropeError:
        """The error for a child that ended on its own, with the end of its log."""
        return self.error(f"{self.what} exited with {childproc.rc_text(rc)}{when}:\n{childproc.log_tail(self.log)}\n"
                          f"full log: {self.log}")

    def probe(self):
        """Whether the child is ready: an answer (not None) once it is; may raise to give up."""
        raise NotImplementedError

    def not_ready(self, timeout: float) -> str:
        """The message when the child has not answered the probe within timeout seconds."""
        return f"{self.what} did not answer within {timeout:g}s; log: {self.log}"

    def wait_ready(self, timeout: float, should_stop: Callable[[], bool] = lambda: False, poll: float = 0.25):
        """probe()'s first answer while the child lives; None if asked to stop first. The
        child's error if it dies, or not_ready()'s when time runs out."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if should_stop():
                return None
            rc = self.proc.poll()
            if rc is not None:
                raise self.exited(rc, " while starting")
            got = self.probe()
            # an answer while our child has just died came from someone else: reported above
            if got is not None and self.proc.poll() is None:
                return got
            if got is None:
                time.sleep(poll)
        raise self.error(self.not_ready(timeout))

    def wait(self, should_stop: Callable[[], bool], poll: float = 0.2) -> int | None:
        """Until the child exits (its code) or should_stop() (None)."""
        assert self.proc is not None
        return childproc.wait(self.proc, should_stop, poll)

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM to its process group, then SIGKILL after grace seconds. Returns the exit code."""
        return childproc.stop(self.proc, grace)


@dataclass
class Ended(Generic[T]):
    """How a supervised session ended: `ready` is the probe's answer (None if it never came);
    `signal` names the stop signal when Ctrl-C or SIGTERM ended it ("" otherwise); `code` is the
    child's exit code after the stop."""

    ready: T | None
    signal: str
    code: int | None


def supervise(child: Child, *, ready_timeout: float, on_started: Callable[[Child], None] = lambda c: None,
              on_ready: Callable[[T], None] = lambda r: None, should_stop: Callable[[], bool] = lambda: False,
              grace: float = 15.0, ready_poll: float = 0.25,
              echo_log: Callable[[str], None] | None = None) -> Ended[T]:
    """Start child, wait for its probe, call on_ready, serve until the child exits (raised as its
    error: it should not end by itself), Ctrl-C/SIGTERM or should_stop(); stop it in every case.
    echo_log, when given, gets the child's log as it is written (--verbose)."""
    with childproc.StopSignals() as stop:
        def asked() -> bool:
            return stop.requested() or should_stop()
        ready = None
        follower = None
        try:
            child.start()
            if echo_log is not None:
                follower = childproc.LogFollower(child.log, echo_log)
            on_started(child)
            ready = child.wait_ready(ready_timeout, asked, ready_poll)
            if ready is not None:
                on_ready(ready)
                rc = child.wait(asked)
                if rc is not None:
                    raise child.exited(rc)
        finally:
            code = child.stop(grace)
            if follower is not None:
                follower.close()
    return Ended(ready, stop.name, code)
