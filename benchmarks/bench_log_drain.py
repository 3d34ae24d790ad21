"""llama.cpp's tools lose the tail of their output at exit on a busy machine (llama.cpp#22142);
ggufrope's builds drain the logger (native/log_flush.cpp). This runs llama-perplexity on a tiny
model N times with the drain off (GGUFROPE_NO_LOG_DRAIN=1: llama.cpp as upstream ships it, the
anchor) and N times with it on, interleaved, while three busy-loop processes load the CPU, and
counts the runs whose "Final estimate" line is missing. Also prints the median wall time of a
run each way (the drain joins one thread at exit).

    .venv/bin/python benchmarks/bench_log_drain.py [--runs 40] [--spinners 3]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--spinners", type=int, default=3, help="busy-loop processes beside the runs")
    args = ap.parse_args()
    sys.path.insert(0, REPO)
    from ggufrope.build.ensure import ensure_build
    from ggufrope.build.tiny_model import write_tiny_llama
    exe = ensure_build().binaries["llama-perplexity"]
    with tempfile.TemporaryDirectory() as d:
        model = write_tiny_llama(os.path.join(d, "tiny.gguf"), n_ctx=256)
        text = os.path.join(d, "text.txt")
        words = "the of and to in is was he for it with as his on be at by".split()
        rnd = random.Random(0)
        with open(text, "w") as f:
            f.write(" ".join(rnd.choice(words) for _ in range(3000)))
        argv = [exe, "-m", model, "-f", text, "-c", "128", "-b", "128", "--chunks", "2", "--no-warmup", "-t", "2"]
        lost = {"off": 0, "on": 0}
        secs: dict[str, list[float]] = {"off": [], "on": []}
        spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.spinners)]
        try:
            for i in range(args.runs):
                for mode in ("off", "on"):
                    env = dict(os.environ)
                    env.pop("GGUFROPE_NO_LOG_DRAIN", None)
                    if mode == "off":
                        env["GGUFROPE_NO_LOG_DRAIN"] = "1"
                    t0 = time.perf_counter()
                    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
                    secs[mode].append(time.perf_counter() - t0)
                    if r.returncode != 0:
                        sys.exit(f"llama-perplexity failed ({r.returncode}): {r.stderr[-500:]}")
                    lost[mode] += "Final estimate" not in r.stdout + r.stderr
        finally:
            for p in spin:
                p.kill()
                p.wait()
    print(f"llama-perplexity on a tiny model, {args.runs} runs each, {args.spinners} busy processes beside them")
    for mode, label in (("off", "drain off (upstream, anchor)"), ("on", "drain on (ggufrope build)")):
        print(f"  {label:30} lost the final line {lost[mode]:3d}/{args.runs}   "
              f"median {statistics.median(secs[mode]) * 1000:.0f} ms/run")
    print(f"time ratio on/off: {statistics.median(secs['on']) / statistics.median(secs['off']):.2f}x")


if __name__ == "__main__":
    main()
