"""ggufrope's own start-up overhead on `run`: the same one-shot answer through
`ggufrope run demo --prompt ...` and through the llama-completion command it prints with
--dry-run, called directly. Also times `run --dry-run` alone (everything ggufrope does before
exec: argument parsing, preset resolution, header read, RoPE plan, memory plan, build lookup).

    .venv/bin/python benchmarks/bench_run_overhead.py [--runs 7] [--model PATH]

Target: under 150 ms added. Prints medians, the overhead and the ratio.
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_MS = 150.0


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=env, cwd=REPO)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {shlex.join(argv)}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--model", default=None, help="GGUF file (default: the cached SmolLM2)")
    args = ap.parse_args()
    sys.path.insert(0, REPO)
    from ggufrope.models import fetch
    model = args.model or fetch("smollm2")
    env = dict(os.environ, GGUFROPE_CONFIG=tempfile.mkdtemp(prefix="ggufrope-bench-cfg-"))
    # an installed package has its bytecode compiled (pip does it); a PYTHONDONTWRITEBYTECODE
    # environment would recompile every module on every start and measure that instead
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    py = [sys.executable, "-m", "ggufrope"]
    run = py + ["run", "demo", "--model", model, "--ctx", "2048", "--prompt", "Name three colours.",
                "--set", "threads=1", "--set", "n_predict=8", "--set", "sampling.seed=1"]
    dry = subprocess.run(run + ["--dry-run"], capture_output=True, text=True, env=env, cwd=REPO)
    if dry.returncode != 0:
        sys.exit(dry.stderr)
    direct = shlex.split(dry.stdout.strip())
    print(f"model: {model}\ndirect: {shlex.join(direct)}\n")
    for argv in (direct, run, run + ["--dry-run"]):   # warm the page cache and the build lookup
        timed(argv, env)
    res: dict[str, list[float]] = {"direct": [], "run": [], "dry": [], "python": [], "typer": []}
    for _ in range(args.runs):   # interleaved, so load changes hit all alike
        res["direct"].append(timed(direct, env))
        res["run"].append(timed(run, env))
        res["dry"].append(timed(run + ["--dry-run"], env))
        res["python"].append(timed([sys.executable, "-c", "pass"], env))
        # the CLI framework's floor: typer 0.29 coerces every option through pydantic
        res["typer"].append(timed([sys.executable, "-c", "import typer"], env))
    med = {k: statistics.median(v) * 1000 for k, v in res.items()}
    rows = [("llama-completion (direct)", "direct"), ("ggufrope run --prompt", "run"),
            ("ggufrope run --dry-run", "dry"), ("python -c pass (interpreter)", "python"),
            ("import typer", "typer")]
    for label, k in rows:
        print(f"{label:<32} median {med[k]:8.1f} ms   (min {min(res[k]) * 1000:.1f}, max {max(res[k]) * 1000:.1f})")
    added = med["run"] - med["direct"]
    print(f"\nadded by ggufrope on run --prompt: {added:.1f} ms (ratio {med['run'] / med['direct']:.2f}x; "
          f"target < {TARGET_MS:.0f} ms: {'met' if added < TARGET_MS else 'NOT met'})")
    print(f"run --dry-run alone (all of ggufrope's work before llama.cpp starts): {med['dry']:.1f} ms = "
          f"interpreter {med['python']:.1f} + CLI framework {med['typer'] - med['python']:.1f} + "
          f"ggufrope {med['dry'] - med['typer']:.1f} ms")


if __name__ == "__main__":
    main()
