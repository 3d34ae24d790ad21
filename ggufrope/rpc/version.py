"""The RPC protocol version: what a llama.cpp tree speaks (ggml/include/ggml-rpc.h) and whether a
client and a worker can talk. llama.cpp's own rule (ggml-rpc.cpp, negotiate_hello): the major
versions must be equal and the worker's minor must not be newer than the client's; anything
else and the client refuses the worker ("RPC server version mismatch"). The patch number moves
when the graph operations change (a static_assert on GGML_OP_COUNT), so a different patch means
a different llama.cpp whose graphs the other side may not know."""
from __future__ import annotations

import os
import re
from typing import NamedTuple

from ggufrope.errors import BuildError

_DEF = re.compile(r"#define\s+RPC_PROTO_(MAJOR|MINOR|PATCH)_VERSION\s+(\d+)")


class ProtoVersion(NamedTuple):
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def source_proto_version(source_dir: str) -> ProtoVersion:
    path = os.path.join(source_dir, "ggml", "include", "ggml-rpc.h")
    try:
        with open(path, encoding="utf-8") as f:
            found = dict(m.groups() for m in _DEF.finditer(f.read()))
    except OSError as e:
        raise BuildError(f"{path}: cannot read the RPC protocol version ({e.strerror})") from None
    if set(found) != {"MAJOR", "MINOR", "PATCH"}:
        raise BuildError(f"{path}: no RPC_PROTO_MAJOR/MINOR/PATCH_VERSION defines (a llama.cpp without RPC?)")
    return ProtoVersion(int(found["MAJOR"]), int(found["MINOR"]), int(found["PATCH"]))


def compatibility(local: ProtoVersion, worker: ProtoVersion) -> tuple[str, str]:
    """("same" | "patch" | "incompatible", a sentence saying so plainly)."""
    if local == worker:
        return "same", (f"same RPC protocol {local} as this build (the version a worker tells over the wire; "
                        f"the same llama.cpp commit on both sides is the sure way)")
    if worker.major != local.major or worker.minor > local.minor:
        return "incompatible", (f"the worker speaks RPC protocol {worker} and this build {local}: llama.cpp refuses "
                                f"the worker (\"RPC server version mismatch\"); build both from the same llama.cpp")
    return "patch", (f"the worker speaks RPC protocol {worker} and this build {local}: they connect, but they are "
                     f"different llama.cpp versions and a graph operation one knows can crash the other; "
                     f"build both from the same llama.cpp")
