"""After every build: run a tiny quantized model for one token, so a build that crashes on
quantized weights (as GGML_NATIVE builds do on AMX/AVX-512 hosts here) is reported as broken
at build time, not found later."""
from __future__ import annotations

import os
import signal
import subprocess

from ggufrope.build.builder import BuildResult
from ggufrope.errors import BuildError

SMOKE_QUANTS = ("q8_0", "q4_0")


def smoke_test(res: BuildResult, timeout: float = 120) -> None:
    from ggufrope.build.tiny_model import write_tiny_llama
    exe = res.binaries.get("llama-completion")
    if exe is None:
        return
    for q in SMOKE_QUANTS:
        model = os.path.join(res.dir, f"smoke-{q}.gguf")
        if not os.path.exists(model):
            write_tiny_llama(model + ".tmp", quant=q)
            os.replace(model + ".tmp", model)
        argv = [exe, "-m", model, "-p", "a b", "-n", "1", "--no-warmup", "-t", "2", "-no-cnv"]
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
