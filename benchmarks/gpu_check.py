#!/usr/bin/env python3
"""The CUDA check for a machine with an NVIDIA GPU (issue #13). One run, well under 15 min on a
16-core machine with one GPU (budget: CUDA build of one architecture ~5 min, the rest ~3 min):

  .venv/bin/python benchmarks/gpu_check.py [--out DIR]

1. `ggufrope build --backend cuda --kv-pairs q8_0-q4_0` for this GPU's architecture (CMake's
   "native"); the build's own checks (FA kernels via nm, ldd, the smoke test offloaded) are kept.
2. SmolLM2-135M fully offloaded (-ngl 99, -fa on) with K/V f16, q8_0/q8_0, q8_0/q4_0, q4_0/q4_0:
   - greedy output (llama-completion, --temp 0) equals the CPU build's for f16 (and is shown for the others);
   - llama.cpp's logged CUDA0 model/KV/compute buffers against ggufrope's planner (presets check);
   - no "not compiled" fallback warning for any of the pairs (they are all in this build);
   - llama-bench prompt (pp512) and generation (tg128) speed per K/V type.
3. A preset (YaRN 4x, q8_0/q4_0 KV, all layers on the GPU) served through `ggufrope serve` and
   asked one completion over HTTP.

Needs: ./bootstrap done (the CPU build exists), network for the first cuBLAS/model fetch, or both
cached. Writes DIR/report.md and DIR/report.json; exit 1 when a check fails.

`--rehearse-cpu` runs the same steps on the CPU build with nothing offloaded (no GPU, no CUDA
build): it checks the script's commands and parsing on a machine without a GPU, nothing more.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUFROPE = [sys.executable, "-m", "ggufrope"]
PAIRS = [("f16", "f16"), ("q8_0", "q8_0"), ("q8_0", "q4_0"), ("q4_0", "q4_0")]
PROMPT = "The three primary colors are"
CTX = 4096
N_PREDICT, BENCH = 48, ["-p", "512", "-n", "128", "-r", "3"]
_BUF = re.compile(r"(\w+) (model|KV|compute) buffer size =\s*([\d.]+) MiB")


def sh(argv: list[str], timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                       env={**os.environ, **(env or {})}, cwd=REPO)
    sys.stderr.write(f"[{time.monotonic() - t0:6.1f}s] {' '.join(argv[:6])}{' ...' if len(argv) > 6 else ''} "
                     f"-> {r.returncode}\n")
    return r


def gpu_info() -> dict:
    r = sh(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"])
    if r.returncode != 0:
        sys.exit(f"gpu_check: no NVIDIA GPU here (nvidia-smi: {r.stderr.strip() or r.returncode})")
    name, driver, mem, cap = [x.strip() for x in r.stdout.splitlines()[0].split(",")]
    return {"name": name, "driver": driver, "memory": mem, "compute_cap": cap}


def build(args: list[str]) -> dict:
    r = sh(GGUFROPE + ["build", *args, "--json"], timeout=1200)
    if r.returncode != 0:
        sys.exit(f"gpu_check: ggufrope build {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout)


def completion(bin_dir: str, model: str, k: str, v: str, ngl: int) -> dict:
    argv = [os.path.join(bin_dir, "llama-completion"), "-m", model, "-p", PROMPT, "-n", str(N_PREDICT), "--temp", "0",
            "-s", "1", "-c", str(CTX), "-no-cnv", "--no-warmup", "-v", "-ngl", str(ngl), "-fa", "on", "-ctk", k, "-ctv", v]
    r = sh(argv, timeout=300)
    bufs: dict[str, float] = {}
    for dev, kind, mib in _BUF.findall(r.stderr):   # -v: llama.cpp logs buffer sizes only verbosely;
        bufs[f"{dev} {kind}"] = float(mib)           # the last of each wins (--fit probes with empty ones first)
    fallback = [ln for ln in r.stderr.splitlines() if "not compiled" in ln.lower() or "fallback" in ln.lower()]
    return {"rc": r.returncode, "text": r.stdout.strip(), "buffers_mib": bufs, "fallback_warnings": fallback,
            "stderr_tail": r.stderr.splitlines()[-5:] if r.returncode else []}


def planner(model: str, k: str, v: str, backend: str) -> dict:
    """ggufrope's memory plan for the same run (presets check on a one-off preset)."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(f'model = "{model}"\nctx = {CTX}\ncache_type_k = "{k}"\ncache_type_v = "{v}"\n'
                f'flash_attn = "on"\nn_gpu_layers = "all"\n[build]\nbackend = "{backend}"\n'
                + (f'kv_pairs = ["{k}-{v}"]\n' if backend == "cuda" and (k, v) != ("f16", "f16") else ""))
    r = sh(GGUFROPE + ["presets", "check", "--preset-file", f.name, "--json"])
    os.unlink(f.name)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"error": (r.stderr or r.stdout).strip()[-500:]}


def _find_mem(doc, out: dict | None = None) -> dict:
    """Pick the planner's weights/kv/compute byte counts out of presets check's JSON."""
    out = {} if out is None else out
    if isinstance(doc, dict):
        for key, val in doc.items():
            m = re.fullmatch(r"(weights|kv|compute)(_cache|_estimate)?", key)
            if isinstance(val, (int, float)) and m:   # memory: {weights, kv_cache, compute_estimate} (bytes)
                out.setdefault(m.group(1), val / 2**20)
            else:
                _find_mem(val, out)
    elif isinstance(doc, list):
        for x in doc:
            _find_mem(x, out)
    return out


def bench(bin_dir: str, model: str, k: str, v: str, ngl: int) -> dict:
    argv = [os.path.join(bin_dir, "llama-bench"), "-m", model, "-ngl", str(ngl), "-fa", "1", "-ctk", k, "-ctv", v,
            *BENCH, "-o", "json"]
    r = sh(argv, timeout=300)
    try:
        rows = json.loads(r.stdout)
    except ValueError:
        return {"error": r.stderr.strip()[-300:]}
    return {("pp" if row["n_prompt"] else "tg"): round(row["avg_ts"], 1) for row in rows}


def serve(model: str, backend: str) -> dict:
    preset = os.path.join(tempfile.mkdtemp(), "gpu-check.toml")
    with open(preset, "w") as f:
        f.write(f'description = "gpu check: SmolLM2, YaRN 4x, q8_0/q4_0 KV, all layers on the GPU"\n'
                f'model = "{model}"\napply = "runtime"\nctx = 16384\ncache_type_k = "q8_0"\ncache_type_v = "q4_0"\n'
                f'flash_attn = "on"\nn_gpu_layers = "all"\nn_predict = 24\n[rope]\nplan = "yarn:32768"\n'
                f'[build]\nbackend = "{backend}"\n' + ('kv_pairs = ["q8_0-q4_0"]\n' if backend == "cuda" else ""))
    proc = subprocess.Popen(GGUFROPE + ["serve", "--preset-file", preset, "--port", "auto"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        t0 = time.monotonic()
        assert proc.stdout is not None
        while time.monotonic() - t0 < 180:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"https?://[\w.:\[\]]+", line)
            if m:
                url = m.group(0)
                break
        if url is None:
            return {"ok": False, "error": (proc.stderr.read() if proc.poll() is not None else "no URL in 180 s")[-800:]}
        body = json.dumps({"prompt": PROMPT, "max_tokens": 24, "temperature": 0}).encode()
        req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            doc = json.load(resp)
        return {"ok": True, "url": url, "text": doc["choices"][0]["text"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "gpu_check"))
    ap.add_argument("--rehearse-cpu", action="store_true", help="the same steps on the CPU build (no GPU)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    t0 = time.monotonic()
    cpu_only = a.rehearse_cpu
    if cpu_only:   # small counts: the rehearsal checks commands and parsing, not speed
        global N_PREDICT, BENCH
        N_PREDICT, BENCH = 8, ["-p", "32", "-n", "8", "-r", "1"]
    dev, ngl, backend = ("CPU", 0, "cpu") if cpu_only else ("CUDA0", 99, "cuda")
    gpu = ({"name": "CPU rehearsal (no GPU)", "driver": "-", "memory": "-", "compute_cap": "0.0"} if cpu_only
           else gpu_info())
    rep: dict = {"gpu": gpu, "device": dev}
    fails: list[str] = []
    model = sh(GGUFROPE + ["fetch", "smollm2"]).stdout.strip().splitlines()[-1]
    cpu = build([])
    t = time.monotonic()
    cuda = cpu if cpu_only else build(["--backend", "cuda", "--kv-pairs", "q8_0-q4_0"])
    rep["cuda_build"] = {"seconds": round(time.monotonic() - t), "cached": cuda["cached"], "checks": cuda["checks"]}
    if not cpu_only and "CUDA" not in cuda["checks"].get("smoke", ""):
        fails.append(f"smoke test did not run offloaded: {cuda['checks'].get('smoke')}")
    ref = completion(cpu["bin_dir"], model, "f16", "f16", 0)
    rep["cpu_f16_text"] = ref["text"]
    rep["runs"] = {}
    for k, v in PAIRS:
        run = completion(cuda["bin_dir"], model, k, v, ngl)
        run["planner_mib"] = _find_mem(planner(model, k, v, backend))
        run["bench_tps"] = bench(cuda["bin_dir"], model, k, v, ngl)
        rep["runs"][f"{k}/{v}"] = run
        if run["rc"] != 0:
            fails.append(f"{k}/{v}: llama-completion exit {run['rc']}")
        if run["fallback_warnings"]:
            fails.append(f"{k}/{v}: FA fallback: {run['fallback_warnings'][0]}")
        if not logged_mib(run["buffers_mib"], dev, "model"):
            fails.append(f"{k}/{v}: no {dev} buffers in the log (not offloaded?)")
    if rep["runs"]["f16/f16"]["text"] != ref["text"]:
        fails.append("f16 greedy output differs from the CPU build's")
    rep["serve"] = serve(model, backend)
    if not rep["serve"].get("ok"):
        fails.append(f"serve: {rep['serve'].get('error')}")
    rep["seconds"] = round(time.monotonic() - t0)
    rep["fails"] = fails
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(rep, f, indent=2)
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(render(rep))
    sys.stdout.write(render(rep))
    return 1 if fails else 0


def logged_mib(bufs: dict, dev: str, kind: str) -> float:
    """A device's logged buffer of one kind ("CPU" also counts CPU_Mapped model buffers)."""
    return sum(v for k, v in bufs.items() if k.split()[0].split("_")[0] == dev and k.split()[1] == kind)


def render(rep: dict) -> str:
    g = rep["gpu"]
    lines = [f"# GPU check: {g['name']} (driver {g['driver']}, {g['memory']}, sm_{g['compute_cap'].replace('.', '')})",
             "", f"CUDA build: {rep['cuda_build']['seconds']} s (cached: {rep['cuda_build']['cached']}); "
             f"FA kernels: {', '.join(rep['cuda_build']['checks'].get('cuda', {}).get('fa_kernels', []))}; "
             f"smoke: {rep['cuda_build']['checks'].get('smoke')}", "",
             f"| K/V | same text as CPU f16 | {rep['device']} model / KV / compute MiB (log) | planner weights / KV / compute MiB"
             f" | pp{BENCH[1]} t/s | tg{BENCH[3]} t/s |", "|---|---|---|---|---|---|"]
    for pair, run in rep["runs"].items():
        b, p, s = run["buffers_mib"], run["planner_mib"], run["bench_tps"]
        logged = " / ".join(f"{logged_mib(b, rep['device'], x):.1f}" for x in ("model", "KV", "compute"))
        planned = " / ".join(f"{p[x]:.1f}" if x in p else "-" for x in ("weights", "kv", "compute"))
        lines.append(f"| {pair} | {'yes' if run['text'] == rep['cpu_f16_text'] else 'no'} | {logged} | {planned} | "
                     f"{s.get('pp', '-')} | {s.get('tg', '-')} |")
    lines += ["", f"serve (YaRN 4x, q8_0/q4_0, n_gpu_layers all): "
              + (f"answered {rep['serve']['text']!r}" if rep["serve"].get("ok") else f"FAILED: {rep['serve'].get('error')}"),
              "", f"total {rep['seconds']} s; " + ("all checks passed" if not rep["fails"] else
                                                    "FAILED: " + "; ".join(rep["fails"])), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
