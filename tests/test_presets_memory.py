"""The memory plan against what llama.cpp itself reports allocating (SmolLM2, the real build):
the KV cache within 2% (it is exact), the compute-buffer estimate within 5%; and against
llama-fit-params --fit-print when the build has it."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from ggufrope.presets import Override, load_preset, memory
from ggufrope.presets.prepare import prepare

pytestmark = pytest.mark.slow
MIB = 1 << 20


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    monkeypatch.setenv("GGUFROPE_CONFIG", str(tmp_path / "config"))


def _prepared(smollm2, ctx: int, t: str, fa: str = "on"):
    p = load_preset("demo", dict(os.environ), [Override("model", smollm2, "--model"), Override("ctx", str(ctx), "--ctx"),
                                               Override("cache_type_k", t, "-"), Override("cache_type_v", t, "-"),
                                               Override("flash_attn", fa, "-"), Override("threads", "1", "-")])
    return prepare(p, dict(os.environ), bud=memory.Budget(64 << 30, "test"))


@pytest.mark.parametrize("ctx", [2048, 8192, 20000])
@pytest.mark.parametrize("t", ["f16", "q8_0", "q4_0"])
def test_kv_cache_matches_llama_cpp_log(smollm2, cpu_build, ctx, t):
    prep = _prepared(smollm2, ctx, t)
    argv = [cpu_build.binaries["llama-completion"]] + prep.one_shot_args("a") + ["-lv", "4", "--no-warmup", "-n", "1"]
    for _ in range(4):  # llama.cpp's async logger can drop the log tail at exit (llama.cpp#22142)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr[-2000:]
        m = re.search(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells", r.stderr)
        if m:
            break
    assert m, r.stderr[-3000:]
    got_mib, cells = float(m.group(1)), int(m.group(2))
    assert cells == prep.mem.kv_cells == memory.pad_ctx(ctx)
    assert abs(prep.mem.kv / MIB - got_mib) <= 0.02 * got_mib, (prep.mem.kv / MIB, got_mib)
    c = re.search(r"CPU compute buffer size = +([\d.]+) MiB", r.stderr)
    assert c and abs(prep.mem.compute / MIB - float(c.group(1))) <= 0.05 * float(c.group(1)), \
        (prep.mem.compute / MIB, c.group(1))


def test_plan_matches_llama_fit_params(smollm2, cpu_build):
    exe = os.path.join(cpu_build.bin_dir, "llama-fit-params")
    if not os.path.exists(exe):
        pytest.skip("this build has no llama-fit-params (`cmake --build BUILD --target llama-fit-params`)")
    for ctx, t, fa in ((4096, "q8_0", "on"), (32768, "f16", "off"), (32768, "q4_0", "on")):
        prep = _prepared(smollm2, ctx, t, fa)
        r = subprocess.run([exe, "-m", smollm2, "-c", str(ctx), "-ctk", t, "-ctv", t, "-fa", fa, "--fit-print", "on"],
                           capture_output=True, text=True, timeout=120)
        host = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("Host")][0]
        model_mib, ctx_mib, compute_mib = (int(x) for x in host[1:4])
        assert abs(prep.mem.weights / MIB - model_mib) <= 1
        assert abs(prep.mem.kv / MIB - ctx_mib) <= 1
        assert abs(prep.mem.compute / MIB - compute_mib) <= max(2, 0.05 * compute_mib)
