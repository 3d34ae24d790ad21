"""Is a worker still there while a llama.cpp process holds it?

A worker serves one client at a time and its listen backlog is 1 (ggml-rpc transport.cpp), so
nothing may knock on its door during a session: a probe would queue behind the client, and
repeated connects fill the backlog. Instead the watch reads, passively, the client's own TCP
connections (Linux /proc/PID/net/tcp{,6} and /proc/PID/fd): once the client has a connection
ESTABLISHED to a worker, that connection turning CLOSE_WAIT (the worker closed it: its process
died or stopped) or disappearing means the worker went away. llama.cpp itself would only notice
at its next request to that worker, and then abort.

A host that vanishes without closing its connections (power loss, cable) is not seen this way:
TCP only notices when data is sent. `blame` probes the workers after a client has died."""
from __future__ import annotations

import os
import socket
import time
from typing import Sequence

from ggufrope.rpc.endpoint import Endpoint

ESTABLISHED, CLOSE_WAIT = "01", "08"


def _addr_hex(ip: str, port: int) -> set[str]:
    """The forms /proc/net/tcp{,6} write ip:port in (host byte order words, port in hex)."""
    out = set()
    try:
        packed4 = socket.inet_pton(socket.AF_INET, ip)
        out.add(packed4[::-1].hex().upper() + f":{port:04X}")
        mapped = b"\0" * 10 + b"\xff\xff" + packed4
        out.add("".join(mapped[i:i + 4][::-1].hex().upper() for i in range(0, 16, 4)) + f":{port:04X}")
    except OSError:
        packed6 = socket.inet_pton(socket.AF_INET6, ip)
        out.add("".join(packed6[i:i + 4][::-1].hex().upper() for i in range(0, 16, 4)) + f":{port:04X}")
    return out


def _resolve(ep: Endpoint) -> set[str]:
    try:
        infos = socket.getaddrinfo(ep.host, ep.port, type=socket.SOCK_STREAM)
    except OSError:
        return set()
    out: set[str] = set()
    for fam, _, _, _, sa in infos:
        out |= _addr_hex(sa[0], ep.port)
    return out


def connections(pid: int) -> list[tuple[str, str, str]] | None:
    """(remote address hex, state, inode) of pid's TCP sockets; None when /proc cannot say."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        rows = []
        for name in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{pid}/net/{name}") as f:
                    lines = f.read().splitlines()[1:]
            except OSError:
                continue
            for ln in lines:
                parts = ln.split()
                if len(parts) > 9 and parts[9] in inodes:
                    rows.append((parts[2], parts[3], parts[9]))
        return rows
    except OSError:
        return None


class Watch:
    """Watches one client process's connections to the workers; check() is cheap (two small
    file reads) and may be called often.

    While llama.cpp loads a model it opens and drops short connections to each worker (its
    dispatchers are weak references until model buffers hold them), so until `armed` (set once
    the server is ready) only a connection the worker closed (CLOSE_WAIT) counts as lost; after
    it, a connection that disappears counts too."""

    def __init__(self, pid: int, endpoints: Sequence[Endpoint], interval: float = 0.5) -> None:
        self.pid = pid
        self.targets = {ep: _resolve(ep) for ep in endpoints}
        self.seen: set[Endpoint] = set()
        self.interval = interval
        self.next = 0.0
        self.armed = False
        self.lost: list[tuple[Endpoint, str]] = []

    def check(self) -> bool:
        """True once a worker the client was connected to is gone (self.lost says which)."""
        if self.lost or not self.targets:
            return bool(self.lost)
        now = time.monotonic()
        if now < self.next:
            return False
        self.next = now + self.interval
        rows = connections(self.pid)
        if rows is None:
            return False
        for ep, addrs in self.targets.items():
            states = {st for rem, st, _ in rows if rem in addrs}
            if CLOSE_WAIT in states:
                self.lost.append((ep, "it closed its connection"))
            elif ESTABLISHED in states:
                if self.armed:
                    self.seen.add(ep)
            elif ep in self.seen:
                self.lost.append((ep, "its connection is gone"))
        return bool(self.lost)


def blame(endpoints: Sequence[Endpoint], timeout: float = 2.0) -> list[tuple[Endpoint, str]]:
    """After a client died: the workers that no longer answer the wire probe, and why."""
    from ggufrope.errors import WorkerError
    from ggufrope.rpc.probe import probe_all
    return [(ep, str(r).split(": ", 1)[-1]) for ep, r in zip(endpoints, probe_all(endpoints, timeout))
            if isinstance(r, WorkerError)]


def describe(lost: Sequence[tuple[Endpoint, str]]) -> str:
    return "; ".join(f"RPC worker {ep} went away ({why})" for ep, why in lost)
