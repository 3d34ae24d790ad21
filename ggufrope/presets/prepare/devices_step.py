"""Prepare, step 4: devices. RPC workers probed (all at once, each bounded), the devices the
offloaded layers spread over, tensor_split per device, and a free port for llama-server."""
from __future__ import annotations

import socket

from ggufrope.errors import GgufropeError
from ggufrope.presets import memory
from ggufrope.presets.checks import Finding
from ggufrope.presets.preset import Preset


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def workers_and_devices(p: Preset, bud: memory.Budget, on_gpu: bool, strict: bool, timeout: float
                        ) -> tuple[tuple, tuple[memory.Device, ...], tuple[float, ...], list[Finding]]:
    """Probe every RPC worker (all at once, each bounded by timeout); the devices the offloaded
    layers spread over (the workers' devices in the order of `rpc`, then local GPUs, as llama.cpp
    orders them: src/llama.cpp puts RPC devices first); and tensor_split, given per worker, as
    llama.cpp's per-device -ts (a worker's share divided evenly over its devices)."""
    if not p.rpc:
        if p.tensor_split:
            return (), (), (), [Finding("warning", "tensor_split", "tensor_split is set but rpc lists no workers; "
                                                                    "pass it as -ts in extra_args for local GPUs")]
        return (), (), (), []
    from ggufrope.rpc import parse_endpoints, probe_all
    eps = parse_endpoints(p.rpc)
    findings: list[Finding] = []
    infos = []
    for ep, r in zip(eps, probe_all(eps, timeout)):
        if isinstance(r, GgufropeError):
            findings.append(Finding("error" if strict else "warning", "rpc", str(r)))
        else:
            infos.append(r)
    gpus = list(bud.vram_free) if on_gpu and bud.has_gpu else []
    ts = list(p.tensor_split)
    if ts and len(ts) > len(eps) + len(gpus):
        findings.append(Finding("error", "tensor_split",
                                f"{len(ts)} shares for {len(eps)} RPC worker(s)" +
                                (f" and {len(gpus)} local GPU(s)" if gpus else "") + ": one share per worker "
                                "(in the order of rpc), then one per local GPU"))
        ts = ts[:len(eps) + len(gpus)]
    ts += [0.0] * (len(eps) + len(gpus) - len(ts)) if ts else []
    by_ep = {w.endpoint: w for w in infos}
    devices: list[memory.Device] = []
    split: list[float] = []
    for i, ep in enumerate(eps):
        w = by_ep.get(ep)
        n_dev = len(w.devices) if w is not None else 1
        share = ts[i] / n_dev if ts else 0.0
        split += [share] * n_dev
        if w is not None:
            for d in w.devices:
                devices.append(memory.Device(f"rpc {ep}" + (f"#{d.index}" if n_dev > 1 else ""), d.free, share))
    for j, free in enumerate(gpus):
        share = ts[len(eps) + j] if ts else 0.0
        split.append(share)
        devices.append(memory.Device(f"GPU {j}", free, share))
    if p.engine == "python":
        findings.append(Finding("error", "engine", "the python engine (llama-cpp-python's wheel here) is built "
                                                   "without the RPC backend; use engine = \"server\" or \"cli\" "
                                                   "with RPC workers"))
    return tuple(infos), tuple(devices), tuple(split) if ts else (), findings
