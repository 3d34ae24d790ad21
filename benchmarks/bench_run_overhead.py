"""ggufrope's own start-up overhead on `run`: the same one-shot answer through
`ggufrope run demo --prompt ...` and through the llama-completion command it prints with
--dry-run, called directly. Also times `run --dry-run` alone (everything ggufrope does before
exec: argument parsing, preset resolution, header read, RoPE plan, memory plan, build lookup).

    .venv/bin/python benchmarks/bench_run_overhead.py [--runs 7] [--model PATH]
    .venv/bin/python benchmarks/bench_run_overhead.py --against /tmp/before [--runs 15]

Target: under 150 ms added. Prints medians, the overhead and the ratio.

--against TREE compares start-up with another checkout instead (`git worktree add /tmp/before
REV`): `run --dry-run`, `inspect` and `patch --in-place --dry-run` from each tree, interleaved in alternating order, after
byte-compiling both (a sandbox with PYTHONDONTWRITEBYTECODE would otherwise time the compiler).
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


def compare_trees(other: str, model: str, env: dict[str, str], runs: int, only: set[str] | None = None) -> None:
    """`run --dry-run`, `inspect` and `patch --dry-run` from this tree and from `other`, interleaved (the order
    alternates each round, so a load change hits both alike)."""
    import compileall
    for tree in (REPO, other):
        compileall.compile_dir(os.path.join(tree, "ggufrope"), quiet=1)
    cases = {"run --dry-run": ["run", "demo", "--model", model, "--ctx", "2048", "--prompt", "x", "--dry-run"],
             "inspect": ["inspect", model],
             "patch --dry-run": ["patch", model, "--in-place", "--dry-run", "--rope-freq-base", "500000"]}
    cases = {c: a for c, a in cases.items() if only is None or c.split()[0] in only}
    trees = {"this tree": REPO, "other": other}
    res: dict[tuple[str, str], list[float]] = {(c, t): [] for c in cases for t in trees}

    def once(case: str, tree: str) -> float:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "ggufrope", *cases[case]], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=trees[tree])
        if r.returncode != 0:
            sys.exit(f"failed ({r.returncode}) in {trees[tree]}: {case}")
        return time.perf_counter() - t0
    for c in cases:   # warm the page cache
        for t in trees:
            once(c, t)
    for i in range(runs):
        for c in cases:
            for t in (trees if i % 2 == 0 else reversed(list(trees))):
                res[(c, t)].append(once(c, t))
    print(f"model: {model}; {runs} runs each, interleaved; other = {other}")
    for c in cases:
        a, b = res[(c, "this tree")], res[(c, "other")]
        ma, mb = statistics.median(a) * 1000, statistics.median(b) * 1000
        print(f"{c:<16} this tree median {ma:6.1f} ms (min {min(a) * 1000:5.1f})   other median {mb:6.1f} ms "
              f"(min {min(b) * 1000:5.1f})   ratio {ma / mb:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--model", default=None, help="GGUF file (default: the cached SmolLM2)")
    ap.add_argument("--against", default=None, metavar="TREE",
                    help="compare run --dry-run, inspect and patch --dry-run start-up with another checkout")
    ap.add_argument("--cases", type=lambda v: set(v.split(",")), default=None,
                    help="with --against: a subset of run,inspect,patch")
    args = ap.parse_args()
    sys.path.insert(0, REPO)
    from ggufrope.models import fetch
    model = args.model or fetch("smollm2")
    env = dict(os.environ, GGUFROPE_CONFIG=tempfile.mkdtemp(prefix="ggufrope-bench-cfg-"))
    # an installed package has its bytecode compiled (pip does it); a PYTHONDONTWRITEBYTECODE
    # environment would recompile every module on every start and measure that instead
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.against:
        compare_trees(os.path.abspath(args.against), model, env, args.runs, args.cases)
        return
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
