"""After every build: run a tiny quantized model for one token, so a build that crashes on
quantized weights (as GGML_NATIVE builds do on AMX/AVX-512 hosts here) is reported as broken
at build time, not found later. A CUDA build also runs the model fully offloaded when this
machine has a CUDA device; without one that part says "not run: no CUDA device" (the CPU part of
the same binaries still runs)."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
from typing import Callable

from ggufrope.build.builder import BuildResult
from ggufrope.errors import BuildError

SMOKE_QUANTS = ("q8_0", "q4_0")


def cuda_device_present(devices: Callable[[str], list[str]] = glob.glob) -> bool:
    """An NVIDIA device node (/dev/nvidia0...) is the cheapest sign a CUDA device is usable."""
    return any(p[len("/dev/nvidia"):].isdigit() for p in devices("/dev/nvidia*"))


def smoke_test(res: BuildResult, timeout: float = 120,
               has_cuda_device: Callable[[], bool] = cuda_device_present) -> str:
    """Run the smoke test; returns what ran, e.g. "passed" or "CPU passed; CUDA not run: no CUDA device"."""
    exe = res.binaries.get("llama-completion")
    if exe is None:
        return "not run: no llama-completion in this build"
    if res.spec.backend != "cuda":
        _run_tiny(res, exe, [], timeout)
        return "passed"
    if not has_cuda_device():
        _run_tiny(res, exe, ["-ngl", "0"], timeout)
        return "CPU passed; CUDA not run: no CUDA device"
    _run_tiny(res, exe, ["-ngl", "99", "-fa", "on"], timeout)
    return "passed (CUDA, -ngl 99 -fa on)"


def _run_tiny(res: BuildResult, exe: str, extra: list[str], timeout: float) -> None:
    from ggufrope.build.tiny_model import write_tiny_llama
    for q in SMOKE_QUANTS:
        model = os.path.join(res.dir, f"smoke-{q}.gguf")
        if not os.path.exists(model):
            write_tiny_llama(model + ".tmp", quant=q)
            os.replace(model + ".tmp", model)
        argv = [exe, "-m", model, "-p", "a b", "-n", "1", "--no-warmup", "-t", "2", "-no-cnv", *extra]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BuildError(f"{exe}: smoke test hung for {timeout:.0f}s on a tiny {q} model") from None
        if r.returncode < 0 or r.returncode >= 128:
            sig = -r.returncode if r.returncode < 0 else r.returncode - 128
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            raise BuildError(f"{res.dir}: this build crashes ({name}) running a tiny {q} model: broken "
                             f"CPU code for this host; build with the default portable CPU flags (--cpu portable)")
        if r.returncode != 0:
            raise BuildError(f"{exe}: smoke test failed (exit {r.returncode}) on a tiny {q} model:\n"
                             + "\n".join(r.stderr.splitlines()[-5:]))
