"""An RPC worker process: ggufrope-rpc-worker (llama.cpp's RPC server with a capacity cap,
native/rpc_worker.cpp) from an RPC build, as a supervised child (ggufrope.supervise: an argv
list in its own session, cannot outlive a killed ggufrope, stopped with SIGTERM then SIGKILL).
Ready when it answers the wire probe."""
from __future__ import annotations

from typing import Sequence

from ggufrope import childproc
from ggufrope.errors import WorkerError
from ggufrope.rpc.endpoint import Endpoint
from ggufrope.rpc.probe import WorkerInfo, probe
from ggufrope.supervise import Child

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


class Worker(Child):
    """An RPC worker we own: ready when the wire probe on its endpoint answers."""

    def __init__(self, argv: Sequence[str], endpoint: Endpoint, log: str) -> None:
        super().__init__(list(argv), log, f"the RPC worker on {endpoint}", None, WorkerError)
        self.endpoint = endpoint
        self._last: WorkerError | None = None

    def start(self) -> None:
        self.check_port()
        super().start()

    def check_port(self) -> None:
        """Refuse a port something already listens on (say, another worker): the probe would
        reach that one and report it as ours."""
        try:
            childproc.check_port_free(self.endpoint.host, self.endpoint.port)
        except OSError as e:
            raise WorkerError(f"cannot listen on {self.endpoint}: {e.strerror or e} (another worker, or another "
                              f"program, has the port; pick another with --port)") from None

    def probe(self) -> WorkerInfo | None:
        try:
            return probe(self.endpoint, timeout=2.0)
        except WorkerError as e:
            self._last = e
            return None

    def not_ready(self, timeout: float) -> str:
        return f"{self.what} did not answer within {timeout:g}s ({self._last}); log: {self.log}"
