"""What spreading a model over RPC workers costs: the same greedy completion from llama-server
running SmolLM2 alone (the anchor) and spread over two `ggufrope worker`s on 127.0.0.1, in one
run. Prints prompt and generation speed (llama-server's own timings), the ratios, the time to
load, and whether the texts are identical.

    .venv/bin/python benchmarks/bench_rpc.py [--reps 3] [--n 64] [--threads 1]

On one machine the workers share its cores with llama-server, so this measures the protocol's
overhead (serialisation, loopback TCP, one round trip per graph split), not the gain of real
extra machines: that gain is memory (a model that fits nowhere alone), not speed.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = "Here is a short story about a lighthouse keeper who finds a message in a bottle."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list[str], env: dict) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return p, p.stdout.readline()


def complete(port: int, n: int) -> dict:
    body = json.dumps({"prompt": PROMPT, "n_predict": n, "temperature": 0, "seed": 0, "ignore_eos": True,
                       "cache_prompt": False}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def session(label: str, extra: list[str], env: dict, reps: int, n: int, threads: int) -> dict:
    port = free_port()
    t0 = time.perf_counter()
    proc, line = start([sys.executable, "-m", "ggufrope", "serve", "demo", "--ctx", "2048", "--port", str(port),
                        "--set", f"threads={threads}", *extra], env)
    load = time.perf_counter() - t0
    if not line.startswith("serving"):
        proc.kill()
        sys.exit(f"{label}: serve did not start: {line!r}")
    try:
        runs = [complete(port, n) for _ in range(reps)]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    pp = [r["timings"]["prompt_per_second"] for r in runs]
    tg = [r["timings"]["predicted_per_second"] for r in runs]
    return {"label": label, "load_s": load, "pp": statistics.median(pp), "tg": statistics.median(tg),
            "text": runs[0]["content"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="threads for llama-server and for each worker")
    args = ap.parse_args()
    env = dict(os.environ)
    workers = []
    try:
        eps = []
        for _ in range(2):
            port = free_port()
            p, _ = start([sys.executable, "-m", "ggufrope", "worker", "--port", str(port), "--threads",
                          str(args.threads)], env)
            workers.append(p)
            eps.append(f"127.0.0.1:{port}")
        local = session("local (anchor)", [], env, args.reps, args.n, args.threads)
        spread = session("2 RPC workers", ["--rpc", ",".join(eps)], env, args.reps, args.n, args.threads)
    finally:
        for p in workers:
            p.terminate()
            p.wait(timeout=30)
    print(f"SmolLM2-135M Q4_1, ctx 2048, greedy, {args.n} tokens, median of {args.reps}, "
          f"{args.threads} thread(s) per process")
    print(f"{'':16} {'load s':>7} {'prompt t/s':>11} {'gen t/s':>8}")
    for r in (local, spread):
        print(f"{r['label']:16} {r['load_s']:7.2f} {r['pp']:11.1f} {r['tg']:8.1f}")
    print(f"ratio (workers / local): prompt {spread['pp'] / local['pp']:.2f}x, generation "
          f"{spread['tg'] / local['tg']:.2f}x; identical text: {spread['text'] == local['text']}")


if __name__ == "__main__":
    main()
