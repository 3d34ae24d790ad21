"""Ask an RPC worker what it is, over llama.cpp's own wire protocol (ggml/src/ggml-rpc/
ggml-rpc.cpp, protocol 7), with a timeout on every step:

  request:  | command (1 byte) | payload size (u64 LE) | payload |
  response: | payload size (u64 LE) | payload |
  HELLO (14):             24 bytes of transport capabilities (zero: plain TCP)
                          -> major, minor, patch, pad (1 byte each) + 24 bytes of capabilities
  DEVICE_COUNT (15):      nothing -> u32
  GET_DEVICE_MEMORY (11): u32 device -> u64 free, u64 total

HELLO must be the first command of a connection; a worker serves one client at a time (its
accept loop is sequential), so a worker busy with a llama.cpp client does not answer HELLO
until that client leaves: a timeout then says "busy or hung", not "absent".
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import Sequence

from ggufrope.errors import WorkerError
from ggufrope.rpc.endpoint import Endpoint
from ggufrope.rpc.version import ProtoVersion

CMD_GET_DEVICE_MEMORY = 11
CMD_HELLO = 14
CMD_DEVICE_COUNT = 15
CONN_CAPS_SIZE = 24
DEFAULT_TIMEOUT = 5.0
# more devices than any machine has: a count above this is a broken or hostile worker (one memory
# query per device would otherwise go on for as long as it keeps answering)
MAX_DEVICES = 64


@dataclass(frozen=True)
class DeviceMemory:
    index: int
    free: int
    total: int


@dataclass(frozen=True)
class WorkerInfo:
    endpoint: Endpoint
    version: ProtoVersion
    devices: tuple[DeviceMemory, ...]
    seconds: float

    @property
    def free(self) -> int:
        return sum(d.free for d in self.devices)

    @property
    def total(self) -> int:
        return sum(d.total for d in self.devices)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the worker closed the connection")
        buf += chunk
    return bytes(buf)


def _call(s: socket.socket, cmd: int, payload: bytes, expect: int) -> bytes:
    s.sendall(struct.pack("<BQ", cmd, len(payload)) + payload)
    (size,) = struct.unpack("<Q", _recv_exact(s, 8))
    if size != expect:
        raise ConnectionError(f"answered command {cmd} with {size} bytes, not {expect} (not a llama.cpp RPC worker, "
                              f"or another protocol)")
    return _recv_exact(s, size)


def probe(ep: Endpoint, timeout: float = DEFAULT_TIMEOUT) -> WorkerInfo:
    """HELLO, DEVICE_COUNT and GET_DEVICE_MEMORY per device, then disconnect (freeing the worker
    for the real client). WorkerError with a sentence a user can act on, on any failure."""
    t0 = time.monotonic()
    stage = "connecting"
    try:
        with socket.create_connection((ep.host, ep.port), timeout=timeout) as s:
            s.settimeout(timeout)
            stage = "waiting for its HELLO"
            hello = _call(s, CMD_HELLO, bytes(CONN_CAPS_SIZE), 4 + CONN_CAPS_SIZE)
            version = ProtoVersion(hello[0], hello[1], hello[2])
            stage = "asking for its devices"
            (count,) = struct.unpack("<I", _call(s, CMD_DEVICE_COUNT, b"", 4))
            if count > MAX_DEVICES:
                raise WorkerError(f"RPC worker {ep}: reports {count} devices (at most {MAX_DEVICES} make sense): "
                                  f"not a working llama.cpp RPC worker; check what listens on {ep}")
            devices = []
            for i in range(count):
                free, total = struct.unpack("<QQ", _call(s, CMD_GET_DEVICE_MEMORY, struct.pack("<I", i), 16))
                devices.append(DeviceMemory(i, free, total))
    except socket.timeout:
        hint = (" (a worker serves one client at a time: is another llama.cpp process using it?)"
                if stage != "connecting" else "")
        raise WorkerError(f"RPC worker {ep}: no answer within {timeout:g}s while {stage}{hint}") from None
    except ConnectionRefusedError:
        raise WorkerError(f"RPC worker {ep}: connection refused (nothing listens there; start it with "
                          f"`ggufrope worker --host {ep.host} --port {ep.port}` on that machine)") from None
    except socket.gaierror as e:
        raise WorkerError(f"RPC worker {ep}: unknown host ({e.strerror})") from None
    except (ConnectionError, OSError) as e:
        raise WorkerError(f"RPC worker {ep}: {e.strerror or e} while {stage}") from None
    return WorkerInfo(ep, version, tuple(devices), time.monotonic() - t0)


def probe_all(endpoints: Sequence[Endpoint], timeout: float = DEFAULT_TIMEOUT) -> list[WorkerInfo | WorkerError]:
    """Every worker at once (a dead one costs one timeout, not one per worker), in order."""
    if not endpoints:
        return []
    from concurrent.futures import ThreadPoolExecutor   # only here: keeps `import ggufrope.rpc` light

    def one(ep: Endpoint) -> WorkerInfo | WorkerError:
        try:
            return probe(ep, timeout)
        except WorkerError as e:
            return e
    with ThreadPoolExecutor(max_workers=min(16, len(endpoints))) as pool:
        return list(pool.map(one, endpoints))
