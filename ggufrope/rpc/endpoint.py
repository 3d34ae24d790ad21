"""`host:port` of an RPC worker, as llama.cpp's --rpc takes it (common/arg.cpp splits on ',';
ggml-rpc.cpp parse_endpoint splits at the first ':', so an IPv6 address cannot be written)."""
from __future__ import annotations

from dataclasses import dataclass

from ggufrope.errors import UsageError


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        from ggufrope.childproc import is_loopback   # the one rule (llama-server's host too)
        return is_loopback(self.host)


def parse_endpoint(text: str) -> Endpoint:
    t = text.strip()
    host, sep, port = t.partition(":")
    if not sep or not host or ":" in port:
        raise UsageError(f"RPC worker {text!r}: expected HOST:PORT, e.g. 192.168.1.20:50052 "
                         f"(llama.cpp's --rpc takes no IPv6 literals)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"RPC worker {text!r}: {port!r} is not a TCP port")
    return Endpoint(host, int(port))


def parse_endpoints(items) -> tuple[Endpoint, ...]:
    """A list of "host:port" (each may itself be comma-separated, as on the command line)."""
    if isinstance(items, str):
        items = [items]
    out: list[Endpoint] = []
    for item in items:
        for part in str(item).split(","):
            if part.strip():
                e = parse_endpoint(part)
                if e in out:
                    raise UsageError(f"RPC worker {e} is listed twice")
                out.append(e)
    return tuple(out)
