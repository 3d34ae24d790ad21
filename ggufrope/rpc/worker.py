"""An RPC worker process: ggufrope-rpc-worker (llama.cpp's RPC server with a capacity cap,
native/rpc_worker.cpp) from an RPC build, as an argv list, in its own session so a Ctrl-C
reaches it only through us, and with PR_SET_PDEATHSIG so it cannot outlive a killed ggufrope.
Ready when it answers the wire probe; stopped with SIGTERM, then SIGKILL."""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ggufrope import childproc
from ggufrope.errors import WorkerError
from ggufrope.rpc.endpoint import Endpoint
from ggufrope.rpc.probe import WorkerInfo, probe

DEFAULT_PORT = 50052        # ggml-rpc-server's default
LOOPBACK_WARNING = ("the llama.cpp RPC protocol has no authentication and no encryption: anyone who can reach "
                    "{ep} can run code on this machine's devices and read what it computes. Bind to a trusted "
                    "network only (a LAN behind a firewall, a VPN such as WireGuard or Tailscale).")


def worker_argv(exe: str, ep: Endpoint, *, threads: int | None = None, devices: Sequence[str] = (),
                mem_mib: int | None = None, cache: bool = False) -> list[str]:
    argv = [exe, "--host", ep.host, "--port", str(ep.port)]
    if threads:
        argv += ["--threads", str(threads)]
    if devices:
        argv += ["--device", ",".join(devices)]
    if mem_mib:
        argv += ["--mem-mib", str(int(mem_mib))]
    if cache:
        argv.append("--cache")
    return argv


@dataclass
class Worker:
    argv: list[str]
    endpoint: Endpoint
    log: str
    proc: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> None:
        self.check_port()
        self.proc = childproc.start(self.argv, self.log)

    def check_port(self) -> None:
        """Refuse a port something already listens on (say, another worker): the probe would
        reach that one and report it as ours."""
        try:
            childproc.check_port_free(self.endpoint.host, self.endpoint.port)
        except OSError as e:
            raise WorkerError(f"cannot listen on {self.endpoint}: {e.strerror or e} (another worker, or another "
                              f"program, has the port; pick another with --port)") from None

    def log_tail(self, n: int = 12) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 30.0, should_stop: Callable[[], bool] = lambda: False) -> WorkerInfo | None:
        """The worker's answer to the probe once it listens; None if asked to stop first."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last: WorkerError | None = None
        while time.monotonic() < deadline:
            if should_stop():
                return None
            rc = self.proc.poll()
            if rc is not None:
                raise WorkerError(f"the RPC worker for {self.endpoint} exited with code {rc} while starting:\n"
                                  f"{self.log_tail()}\nlog: {self.log}")
            try:
                info = probe(self.endpoint, timeout=2.0)
                if self.proc.poll() is None:
                    return info
                continue   # it answered, but it was not ours: ours has just exited (reported above)
            except WorkerError as e:
                last = e
                time.sleep(0.1)
        raise WorkerError(f"the RPC worker for {self.endpoint} did not answer within {timeout:g}s ({last}); "
                          f"log: {self.log}")

    def wait(self, should_stop: Callable[[], bool], poll: float = 0.2) -> int | None:
        assert self.proc is not None
        return childproc.wait(self.proc, should_stop, poll)

    def stop(self, grace: float = 5.0) -> int | None:
        return childproc.stop(self.proc, grace)
