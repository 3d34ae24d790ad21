"""The memory plan against what llama.cpp itself reports allocating (SmolLM2, the real build):
the KV cache within 2% (it is exact), the compute-buffer estimate within 5%; and against
llama-fit-params --fit-print (built by default), also for a sliding-window model with one and
with four sequences."""
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
    exe = cpu_build.binaries["llama-fit-params"]     # a default target (build/spec.py)
    for ctx, t, fa in ((4096, "q8_0", "on"), (32768, "f16", "off"), (32768, "q4_0", "on")):
        prep = _prepared(smollm2, ctx, t, fa)
        r = subprocess.run([exe, "-m", smollm2, "-c", str(ctx), "-ctk", t, "-ctv", t, "-fa", fa, "--fit-print", "on"],
                           capture_output=True, text=True, timeout=120)
        host = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("Host")][0]
        model_mib, ctx_mib, compute_mib = (int(x) for x in host[1:4])
        assert abs(prep.mem.weights / MIB - model_mib) <= 1
        assert abs(prep.mem.kv / MIB - ctx_mib) <= 1
        assert abs(prep.mem.compute / MIB - compute_mib) <= max(2, 0.05 * compute_mib)


@pytest.mark.parametrize("ctx,t,fields,argv", [
    pytest.param(32768, "f16", "", [], id="32k-f16"),
    pytest.param(32768, "q8_0", "", [], id="32k-q8_0"),
    pytest.param(32768, "f16", 'engine = "server"\nparallel = 4\nkv_unified = "off"\n', ["-np", "4"],
                 id="32k-np4-split"),
    pytest.param(16384, "f16", "swa_full = true\n", ["--swa-full"], id="16k-swa-full"),
])
def test_sliding_window_plan_matches_llama_fit_params(tmp_path, cpu_build, ctx, t, fields, argv):
    """The issue's Gemma-3-style model (head_dim 256, 1 KV head, 18 layers of which 15 SWA, window
    512): llama.cpp's own estimate of its context memory (3 x 32768 + 15 x 1024 cells, f16 = 111 MiB)
    is the plan's. (llama-fit-params takes no -kvu: the unified case is held against the server's
    log in tests/test_serve_sequences.py.)"""
    from ggufrope.build.tiny_model import write_tiny_family
    m = write_tiny_family(str(tmp_path / "g3.gguf"), "gemma3", n_layer=18, swa=512, n_ctx=32768, head_dim=256)
    f = tmp_path / "p.toml"
    f.write_text(f'model = "{m}"\nctx = {ctx}\ncache_type_k = "{t}"\ncache_type_v = "{t}"\nflash_attn = "on"\n'
                 + fields)
    prep = prepare(load_preset(None, dict(os.environ), [], preset_file=str(f)), dict(os.environ),
                   bud=memory.Budget(64 << 30, "test"))
    r = subprocess.run([cpu_build.binaries["llama-fit-params"], "-m", m, "-c", str(ctx), "-ctk", t, "-ctv", t,
                        "-fa", "on", "--fit-print", "on", *argv], capture_output=True, text=True, timeout=120)
    host = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("Host")]
    assert host, r.stderr[-2000:]
    assert abs(prep.mem.kv / MIB - int(host[0][2])) <= 1, (prep.mem.kv_text(), host)
