#!/usr/bin/env python3
"""Build times: a cold CPU build (fresh GGUFROPE_HOME, so nothing cached; --cold, minutes) and a
cached re-build of the same spec (target: under 2 s), through the real `ggufrope build`.

    .venv/bin/python benchmarks/bench_build.py            # cached re-build only
    .venv/bin/python benchmarks/bench_build.py --cold     # also a cold build from scratch

The CUDA default-FA-set vs `all` comparison needs a GPU machine with cuBLAS; where none is
available it is reported as not measured."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUFROPE = [sys.executable, "-m", "ggufrope"]


def timed(argv, env) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{r.stderr[-2000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", action="store_true", help="also time a build from scratch (minutes)")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    env = dict(os.environ)
    print(f"machine: {os.cpu_count()} cores")
    if a.cold:
        with tempfile.TemporaryDirectory() as home:
            cold_env = {**env, "GGUFROPE_HOME": home}
            # share the llama.cpp source download with the real cache: only the build is cold
            real_home = env.get("GGUFROPE_HOME") or os.path.expanduser("~/.cache/ggufrope")
            os.symlink(os.path.join(real_home, "src"), os.path.join(home, "src"))
            cold = timed(GGUFROPE + ["build"], cold_env)
            print(f"cold CPU build (portable, 8 targets incl. native probes): {cold:.0f} s")
    # make sure the default build exists, then time cached calls
    timed(GGUFROPE + ["build"], env)
    runs = [timed(GGUFROPE + ["build"], env) for _ in range(a.runs)]
    med = statistics.median(runs)
    print(f"cached re-build: median {med:.2f} s over {a.runs} runs (target < 2 s: "
          f"{'met' if med < 2 else 'MISSED'}; {2 / med:.1f}x under the target)")
    print("CUDA default FA set vs all: not measured (no GPU machine with cuBLAS here)")


if __name__ == "__main__":
    main()
