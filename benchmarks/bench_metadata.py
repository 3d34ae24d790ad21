"""Time ggufrope's metadata commands against gguf-py's tools and `cp`, in one run.

    .venv/bin/python benchmarks/bench_metadata.py [--runs N] [--slow-runs M] [--quick]

Fixture: a Llama-3.2-1B-shaped Q8_0 GGUF (1.32 GB, random tensor bytes) with the real
Llama-3 tokenizer in its header, written by gguf-py's GGUFWriter (benchmarks/make_fixture.py;
cached in benchmarks/out/, generated on the first run).

Every command runs as a subprocess, whole (Python start-up included). Wall time comes from
time.perf_counter around the run; peak RSS is wait4's ru_maxrss as reported by GNU time
(see spawn() for why not our own wait4). The page cache is warm for everyone: the fixture is
read once before any timing, and each fast command has an untimed warm-up run (the slow
gguf-py tools get none: the file is cached already). `sync` runs before and after every run,
untimed, so no run pays for an earlier run's dirty pages. The copy case runs ggufrope and
`cp FIX OUT && sync OUT` (the same durability: ggufrope fsyncs its output) as alternating
pairs, AB BA AB ..., so drift in the VM's disk speed and any carry-over from the previous run
hit both alike; it prints the ratio of the medians, the median of the per-pair ratios and the
system CPU time of each (GNU time's %S). Plain `cp` (no fsync) runs after, as the anchor of the
1.2x target. Ratios compare medians.

Cases and targets (from the issue):
  inspect      ggufrope inspect            vs gguf-dump --no-tensors     >= 30x faster, RSS < 64 MB
  in-place     ggufrope patch --in-place   vs gguf-set-metadata --force  >= 30x faster, RSS < 64 MB
               (one float, on a fresh fsynced copy of the fixture every run)
  copy         ggufrope patch -o OUT       vs cp                         <= 1.2x cp,     RSS < 100 MB
               (--rope-scaling yarn --rope-scale 4: the header grows -> streaming copy;
                gguf-new-metadata --general-name shown for comparison)
plus a start-up micro-benchmark on SmolLM2-135M (python -m ggufrope --help / inspect).

A markdown copy of the report is written to benchmarks/out/last-run.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from make_fixture import DEFAULT_OUT as FIXTURE, ensure_fixture  # noqa: E402

PY = sys.executable
BIN = os.path.dirname(PY)
SMOL = os.path.expanduser("~/.cache/ggufrope/models/SmolLM2-135M-Instruct.Q4_1.gguf")
GGUFROPE = [PY, "-m", "ggufrope"]


def tool(name: str) -> str:
    p = os.path.join(BIN, name)
    return p if os.path.exists(p) else (shutil.which(name) or name)


# --------------------------------------------------------------------------- measuring
@dataclass
class Sample:
    wall: float
    rss: int  # bytes
    rc: int
    sys: float = 0.0  # system CPU seconds (kernel time of the process and its children)


@dataclass
class Series:
    label: str
    argv: list[str]
    samples: list[Sample] = field(default_factory=list)
    max_runs: int | None = None   # cap on timed runs (slow tools)
    no_warmup: bool = False

    @property
    def best(self) -> float:
        return min(s.wall for s in self.samples)

    @property
    def median(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def sys_median(self) -> float:
        return statistics.median(s.sys for s in self.samples)

    @property
    def rss(self) -> int:
        return max(s.rss for s in self.samples)

    @property
    def ok(self) -> bool:
        return all(s.rc == 0 for s in self.samples)


_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
# Fallback launcher when GNU time is missing: a small process forks, execs, wait4s.
_LAUNCHER = (
    "import os,sys,time\n"
    "t=time.perf_counter();pid=os.fork()\n"
    "if pid==0:\n"
    "  try: os.execvp(sys.argv[2],sys.argv[2:])\n"
    "  finally: os._exit(127)\n"
    "_,st,ru=os.wait4(pid,0)\n"
    "open(sys.argv[1],'w').write('%d %.2f\\n'%(ru.ru_maxrss,ru.ru_stime))\n"
    "sys.exit(os.waitstatus_to_exitcode(st)&255)\n")


def spawn(argv: list[str], stderr_path: str | None = None) -> Sample:
    """Run argv to completion: wall time (perf_counter around spawn..exit) and its peak RSS.

    RSS is not taken from this process's own wait4: Linux carries the parent's RSS high-water
    mark into a forked child's ru_maxrss (it survives exec), so every child of this ~100 MB
    benchmark process would read >= 100 MB. GNU time (a ~2 MB process) forks the command and
    reads wait4's ru_maxrss for us."""
    err = open(stderr_path or os.devnull, "wb")
    fd, rss_file = tempfile.mkstemp(prefix="ggufrope-bench-rss-")
    os.close(fd)
    if _TIME:
        full = [_TIME, "-q", "-f", "%M %S", "-o", rss_file] + argv
    else:
        full = [PY, "-S", "-I", "-c", _LAUNCHER, rss_file] + argv
    try:
        t0 = time.perf_counter()
        p = subprocess.run(full, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO)
        wall = time.perf_counter() - t0
        with open(rss_file) as f:
            last = (f.read().strip().splitlines() or [""])[-1].split()
        ok = len(last) == 2 and last[0].isdigit()
        rss, sys_s = (int(last[0]) * 1024, float(last[1])) if ok else (0, 0.0)
    finally:
        err.close()
        os.unlink(rss_file)
    return Sample(wall, rss, p.returncode, sys_s)


def run_series(series: list[Series], runs: int, warmup: int = 1, setup=None, log=None) -> None:
    """Interleave the series: warm-up round(s) untimed, then `runs` timed rounds.
    setup(series) runs before every run (untimed), then a sync."""
    for r in range(warmup + runs):
        k = r % len(series)  # rotate the order every round: no command always goes first
        for s in series[k:] + series[:k]:
            if runs_for(s, r, warmup) is None:
                continue
            if setup:
                setup(s)
            smp = _timed(s)
            if r >= warmup:
                s.samples.append(smp)
            if log:
                tag = "warm-up" if r < warmup else f"run {r - warmup + 1}"
                log(f"  {s.label:<44} {tag:<8} {smp.wall:8.3f} s  {smp.rss / 2**20:7.1f} MB")
            os.sync()


def _timed(s: Series) -> Sample:
    """One run of s after a sync; a failure stops the benchmark with the command's stderr."""
    os.sync()
    errf = os.path.join(tempfile.gettempdir(), "ggufrope-bench.stderr")
    smp = spawn(s.argv, errf)
    if smp.rc != 0:
        with open(errf, "rb") as f:
            tail = f.read()[-2000:].decode("utf-8", "replace")
        raise SystemExit(f"FAILED (rc {smp.rc}): {' '.join(s.argv)}\n{tail}")
    return smp


def run_pairs(a: Series, b: Series, pairs: int, setup=None, log=None) -> tuple[list[float], list[Sample]]:
    """Alternating pairs: one untimed warm-up pair, then `pairs` timed ones in the order AB,
    BA, AB...; setup(series) and a sync before each run. Returns each pair's a/b wall ratio,
    and b's samples from the pairs where b ran first (not right after a)."""
    ratios, b_first = [], []
    for r in range(1 + pairs):
        order = (a, b) if r % 2 == 0 else (b, a)
        got = {}
        for s in order:
            if setup:
                setup(s)
            smp = _timed(s)
            got[id(s)] = smp
            if r >= 1:
                s.samples.append(smp)
            if log:
                tag = "warm-up" if r < 1 else f"pair {r}"
                log(f"  {s.label:<44} {tag:<8} {smp.wall:8.3f} s  sys {smp.sys:5.2f} s  {smp.rss / 2**20:7.1f} MB")
            os.sync()
        if r >= 1:
            ratios.append(got[id(a)].wall / got[id(b)].wall)
            if order[0] is b:
                b_first.append(got[id(b)])
    return ratios, b_first


def runs_for(s: Series, r: int, warmup: int):
    if s.max_runs is not None and r >= warmup + s.max_runs:
        return None
    if s.no_warmup and r < warmup:
        return None
    return True


# --------------------------------------------------------------------------- helpers
def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def fs_type(path: str) -> str:
    out = sh(["df", "-T", path]).splitlines()
    if len(out) < 2:
        return "?"
    parts = out[1].split()
    return f"{parts[1]} ({parts[0]}, mounted on {parts[-1]})"


def fresh_copy(src: str, dst: str) -> None:
    """A fresh, durable copy of src (so a timed fsync never flushes the copy's dirty pages)."""
    d, n = os.path.split(dst)
    rm(dst)
    rm(os.path.join(d, f".{n}.ggufrope-journal"))  # never left behind, but be sure
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rm(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def prefetch(path: str) -> float:
    t0 = time.perf_counter()
    buf = bytearray(1 << 20)  # small: keep this process lean
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    return time.perf_counter() - t0


def reflink_check(src: str, dst: str) -> str:
    """Did dst share extents with src? (filefrag's `shared` flag; physical overlap)."""
    if not shutil.which("filefrag"):
        return "unknown (no filefrag)"

    def extents(p):
        out = sh(["filefrag", "-v", "-b4096", p])
        ext, shared = set(), False
        for line in out.splitlines():
            m = re.match(r"\s*\d+:\s*\d+\.\.\s*\d+:\s*(\d+)\.\.\s*(\d+):", line)
            if m:
                ext.add(int(m.group(1)))
                shared = shared or "shared" in line
        return ext, shared

    se, _ = extents(src)
    de, dshared = extents(dst)
    overlap = len(se & de)
    if dshared or overlap:
        return f"YES (shared flag: {dshared}, {overlap} extents start at the source's blocks)"
    return "no (no shared extents: the bytes were copied)"


def plan_mode(path: str, flags: list[str]) -> str:
    """What ggufrope plans for this edit (--dry-run --json: reads only)."""
    import json
    try:
        j = json.loads(sh(GGUFROPE + ["patch", path, *flags, "--dry-run", "--json"]))
    except ValueError:
        return "?"
    mode = j.get("mode", "?")
    if mode == "copy" and "--in-place" in flags:
        mode = "in-place request done as a full rewrite"
    if j.get("unrecorded"):
        mode += ", no undo record"
    return mode


def git_revision() -> str:
    rev = sh(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]) or "?"
    dirty = sh(["git", "-C", REPO, "status", "--porcelain", "--", "ggufrope"])
    return f"git {rev}" + (f" + uncommitted changes in {len(dirty.splitlines())} path(s) under ggufrope/" if dirty else "")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def mb(n: int) -> str:
    return f"{n / 2**20:.0f}"


# --------------------------------------------------------------------------- the benchmark
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each fast command (default 5)")
    ap.add_argument("--slow-runs", type=int, default=3, help="timed runs of the slow gguf-py tools (default 3)")
    ap.add_argument("--startup-runs", type=int, default=10, help="runs of the start-up micro-benchmark")
    ap.add_argument("--copy-pairs", type=int, default=7,
                    help="alternating ggufrope / cp+sync pairs in the copy case (default 7)")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds to wait (untimed) after deleting the last copy (default 3)")
    ap.add_argument("--fixture", default=FIXTURE, help="the fixture (generated there if missing)")
    ap.add_argument("--workdir", default=os.path.join(HERE, "out", "work"),
                    help="where copies are written (same file system as the fixture)")
    ap.add_argument("--quick", action="store_true", help="3 runs, skip the gguf-new-metadata copy")
    ap.add_argument("--only", type=lambda v: set(v.split(",")), default=None,
                    help="comma-separated subset of: inspect,inplace,repeat,copy,startup")
    ap.add_argument("--profile", action="store_true",
                    help="only profile ggufrope's commands (cProfile, tracemalloc) on the fixture")
    ap.add_argument("--md", default=os.path.join(HERE, "out", "last-run.md"), help="markdown report path")
    a = ap.parse_args()
    if a.quick:
        a.runs = 3
        a.startup_runs = 5
        a.slow_runs = 1
    runs = max(a.runs, 1)

    def log(s: str = "") -> None:
        print(s, file=sys.stderr, flush=True)

    fix = ensure_fixture(a.fixture, log=lambda *s, **k: print(*s, **k, file=sys.stderr, flush=True))
    os.makedirs(a.workdir, exist_ok=True)
    if a.profile:
        prefetch(fix)
        print(profile_commands(fix, a.workdir, lambda s: None))
        return
    work = os.path.join(a.workdir, "work.gguf")
    work_patched = os.path.join(a.workdir, "work-repatch.gguf")
    base_patched = os.path.join(a.workdir, "base-patched.gguf")
    out_rope = os.path.join(a.workdir, "out-ggufrope.gguf")
    out_cp = os.path.join(a.workdir, "out-cp.gguf")
    out_cpsync = os.path.join(a.workdir, "out-cp-sync.gguf")
    out_newmeta = os.path.join(a.workdir, "out-gguf-new-metadata.gguf")

    env = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{os.cpu_count()} cores ({cpu_model()}), "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
                   f"Linux {platform.release()}",
        "ggufrope": git_revision(),
        "python": platform.python_version(),
        "gguf-py": sh([PY, "-c", "import importlib.metadata as m; print(m.version('gguf'))"]),
        "coreutils": sh(["cp", "--version"]).splitlines()[0] if sh(["cp", "--version"]) else "?",
        "fixture": f"{os.path.relpath(fix, REPO)} ({os.path.getsize(fix) / 1e9:.2f} GB)",
        "fs (fixture/workdir)": fs_type(a.workdir),
        "fs (/tmp)": fs_type("/tmp"),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    log("== environment")
    for k, v in env.items():
        log(f"  {k}: {v}")
    log(f"== prefetching the fixture into the page cache: {prefetch(fix):.2f} s")

    rows: list[list[str]] = []

    def row(case, s: Series, anchor: Series | None, ratio_kind: str, target: str, met: bool | None):
        if anchor is None:
            ratio = ""
        elif ratio_kind == "speedup":
            ratio = f"{anchor.median / s.median:.1f}x faster"
        else:
            ratio = f"{s.median / anchor.median:.2f}x {anchor.label.split()[0]}"
        rows.append([case, s.label, str(len(s.samples)), f"{s.best:.3f}", f"{s.median:.3f}", mb(s.rss),
                     ratio, target, "" if met is None else ("PASS" if met else "FAIL")])

    def slow(label: str, argv: list[str]) -> Series:
        # gguf-py tools: fewer runs, no warm-up (the fixture is cached, their .pyc files are warm)
        return Series(label, argv, max_runs=a.slow_runs, no_warmup=True)

    extra: list[str] = []
    want = lambda case: a.only is None or case in a.only  # noqa: E731

    # ---- 1. inspect
    if want("inspect"):
        log("== inspect")
        s_insp = Series("ggufrope inspect", GGUFROPE + ["inspect", fix])
        s_dump = slow("gguf-dump --no-tensors", [tool("gguf-dump"), "--no-tensors", fix])
        run_series([s_insp], runs, log=log)
        run_series([s_dump], a.slow_runs, warmup=0, log=log)
        sp = s_dump.median / s_insp.median
        row("inspect", s_insp, s_dump, "speedup", ">=30x, <64 MB", sp >= 30 and s_insp.rss < 64 << 20)
        row("", s_dump, None, "", "(anchor)", None)

    # ---- 2. in-place patch of one float, on a fresh copy every run
    if want("inplace"):
        log("== in-place patch (first edit of a gguf-py-written file; fresh fsynced copy each run)")
        s_inpl = Series("ggufrope patch --in-place",
                        GGUFROPE + ["patch", work, "--rope-freq-base", "1000000", "--in-place"])
        s_setm = slow("gguf-set-metadata --force", [tool("gguf-set-metadata"), "--force", work,
                                                    "llama.rope.freq_base", "1000000"])
        setup_work = lambda s: fresh_copy(fix, work)  # noqa: E731
        run_series([s_inpl], runs, setup=setup_work, log=log)
        run_series([s_setm], a.slow_runs, warmup=0, setup=setup_work, log=log)
        mode = plan_mode(fix, ["--rope-freq-base", "1000000", "--in-place"])
        log(f"  ggufrope's plan: {mode}")
        rm(work)
        sp = s_setm.median / s_inpl.median
        row(f"in-place, 1st edit [{mode}]", s_inpl, s_setm, "speedup", ">=30x, <64 MB",
            sp >= 30 and s_inpl.rss < 64 << 20)
        row("", s_setm, None, "", "(anchor)", None)

    # ---- 2b. in-place patch of a file ggufrope wrote before (it carries 16 KiB of reserve)
    if want("repeat"):
        log("== in-place patch (repeat edit: a file ggufrope already patched)")
        rm(base_patched)
        # a copy that grows the header, so it carries ggufrope's reserve and undo record
        subprocess.run(GGUFROPE + ["patch", fix, "-o", base_patched, "--rope-scaling", "yarn", "--rope-scale", "4"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        s_inpl2 = Series("ggufrope patch --in-place (repeat edit)",
                         GGUFROPE + ["patch", work_patched, "--rope-freq-base", "1000000", "--in-place"])
        s_setm2 = slow("gguf-set-metadata --force (same file)", [tool("gguf-set-metadata"), "--force",
                                                                 work_patched, "llama.rope.freq_base", "1000000"])
        setup_work2 = lambda s: fresh_copy(base_patched, work_patched)  # noqa: E731
        run_series([s_inpl2], runs, setup=setup_work2, log=log)
        run_series([s_setm2], a.slow_runs, warmup=0, setup=setup_work2, log=log)
        mode = plan_mode(base_patched, ["--rope-freq-base", "1000000", "--in-place"])
        log(f"  ggufrope's plan: {mode}")
        for p in (work_patched, base_patched):
            rm(p)
        sp = s_setm2.median / s_inpl2.median
        row(f"in-place, repeat edit [{mode}]", s_inpl2, s_setm2, "speedup", "(>=30x, <64 MB)",
            sp >= 30 and s_inpl2.rss < 64 << 20)
        row("", s_setm2, None, "", "(anchor)", None)
    os.sync()

    # ---- 3. copy patch (header grows -> streaming copy) vs cp
    if want("copy"):
        log("== copy patch vs cp (interleaved)")
        s_copy = Series("ggufrope patch -o OUT", GGUFROPE + ["patch", fix, "-o", out_rope, "--rope-scaling", "yarn",
                                                              "--rope-scale", "4"])
        s_cp = Series("cp", ["cp", fix, out_cp])
        s_cps = Series("cp && sync OUT (durable, like ggufrope)",
                       ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", fix, out_cpsync])

        def setup_copy(s: Series) -> None:
            for p in (out_rope, out_cp, out_cpsync, out_newmeta):
                rm(p)
            # the FS is mounted with online discard here: freeing the last run's 1.3 GB goes on
            # in the background after the sync and slowed whichever command came next
            os.sync()
            time.sleep(a.settle)

        mode = plan_mode(fix, ["-o", out_rope, "--rope-scaling", "yarn", "--rope-scale", "4"])
        log(f"  ggufrope's plan: {mode}")
        log(f"  alternating pairs, ggufrope vs cp && sync OUT: 1 warm-up + {a.copy_pairs}")
        pair_ratios, cps_first = run_pairs(s_copy, s_cps, max(a.copy_pairs, 1), setup=setup_copy, log=log)
        cps_first_median = statistics.median(x.wall for x in cps_first)
        log(f"  ggufrope / (cp && sync): ratio of medians {s_copy.median / s_cps.median:.2f}, median of "
            f"per-pair ratios {statistics.median(pair_ratios):.2f} "
            f"({' '.join(f'{x:.2f}' for x in pair_ratios)}); system time {s_copy.sys_median:.2f} s vs "
            f"{s_cps.sys_median:.2f} s")
        # cp && sync ran slower right after ggufrope than right after itself on the test VM;
        # the conservative ratio uses only its runs that came first in their pair
        log(f"  conservative: against cp && sync's runs that came first in their pair only "
            f"(median {cps_first_median:.3f} s of {len(cps_first)}): {s_copy.median / cps_first_median:.2f}")
        log("  plain cp (no fsync; the anchor of the 1.2x target)")
        run_series([s_cp], runs, setup=setup_copy, log=log)
        # reflink? one more (untimed) copy each, then look at the extents
        setup_copy(s_copy)
        subprocess.run(s_copy.argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        subprocess.run(s_cp.argv, check=True)
        os.sync()
        reflink = f"reflink on copy: ggufrope {reflink_check(fix, out_rope)}; cp {reflink_check(fix, out_cp)}"
        log(f"  {reflink}")
        extra.append(reflink)
        setup_copy(s_copy)
        s_newm = None
        if not a.quick:
            s_newm = slow("gguf-new-metadata --general-name", [tool("gguf-new-metadata"), "--force", fix, out_newmeta,
                                                               "--general-name", "Llama 3.2 1B renamed"])
            run_series([s_newm], a.slow_runs, warmup=0, setup=setup_copy, log=log)
            setup_copy(s_newm)
        os.sync()
        r = s_copy.median / s_cp.median
        row(f"copy patch [{mode}]", s_copy, s_cp, "ratio", "<=1.2x cp, <100 MB", r <= 1.2 and s_copy.rss < 100 << 20)
        row("", s_cp, None, "", "(anchor)", None)
        row("", s_cps, s_copy, "speedup", "(reference)", None)
        rows[-1][6] = (f"ggufrope = {s_copy.median / s_cps.median:.2f}x this (pairs: median "
                       f"{statistics.median(pair_ratios):.2f}x; vs its runs first in a pair: "
                       f"{s_copy.median / cps_first_median:.2f}x; sys {s_copy.sys_median:.2f} vs "
                       f"{s_cps.sys_median:.2f} s)")
        if s_newm:
            row("", s_newm, s_copy, "speedup", "(reference)", None)
            rows[-1][6] = f"ggufrope {s_newm.median / s_copy.median:.1f}x faster"

    # ---- 4. start-up micro-benchmark (SmolLM2-135M)
    if want("startup"):
        log("== start-up (SmolLM2-135M-Instruct Q4_1)")
        st = [Series("python -c pass (interpreter floor)", [PY, "-c", "pass"]),
              Series("python -c 'import typer'", [PY, "-c", "import typer"]),
              Series("python -m ggufrope --help", GGUFROPE + ["--help"])]
        if os.path.exists(SMOL):
            st += [Series("python -m ggufrope inspect SmolLM2", GGUFROPE + ["inspect", SMOL]),
                   Series("gguf-dump --no-tensors SmolLM2", [tool("gguf-dump"), "--no-tensors", SMOL], max_runs=3)]
        else:
            log(f"  {SMOL} missing: run `python -m ggufrope fetch` to include inspect on SmolLM2")
        run_series(st, a.startup_runs, log=log)
        for s in st:
            row("start-up", s, None, "", "", None)
        for args in (["--help"], ["inspect", SMOL] if os.path.exists(SMOL) else None):
            if args:
                extra.append(f"slowest imports of `python -m ggufrope {' '.join(os.path.basename(x) for x in args)}` "
                             f"(-X importtime, best of 3, cumulative us):")
                extra += [f"    {us:>8}  {name}" for us, name in import_profile(GGUFROPE + args)]

    env["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    log(f"  load average at end: {env['load average at end']}")

    # ---- report
    head = ["case", "command", "runs", "best s", "median s", "peak RSS MB", "ratio (medians)", "target", "met"]
    print(format_table(head, rows))
    print()
    print("\n".join(extra))
    md = [f"Run {env['date']}", ""] + [f"- {k}: {v}" for k, v in env.items()] + [
        "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + \
        ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows] + [""] + extra
    os.makedirs(os.path.dirname(a.md), exist_ok=True)
    with open(a.md, "w") as f:
        f.write("\n".join(md) + "\n")
    log(f"markdown report: {a.md}")


_PROFILER = r"""
import cProfile, io, os, pstats, resource, sys, time, tracemalloc
argv = sys.argv[1:]
tracemalloc.start()
t0 = time.perf_counter()
prof = cProfile.Profile()
prof.enable()
sys.argv = ["ggufrope", *argv]
from ggufrope.cli.app import main
try:
    main()
except SystemExit:
    pass
prof.disable()
wall = time.perf_counter() - t0
cur, peak = tracemalloc.get_traced_memory()
out = io.StringIO()
st = pstats.Stats(prof, stream=out)
st.sort_stats("cumulative").print_stats(r"ggufrope[/\\]", 18)
body = out.getvalue()
body = body[body.find("   ncalls"):]
sys.stderr.write(f"wall under cProfile {wall:.3f} s (cProfile inflates tight loops); "
                 f"Python heap peak (tracemalloc) {peak / 2**20:.1f} MB\n{body}")
"""


def profile_commands(fix: str, workdir: str, log) -> str:
    """cProfile + tracemalloc of each ggufrope command, in a fresh process; returns the text."""
    work = os.path.join(workdir, "profile.gguf")
    out = os.path.join(workdir, "profile-out.gguf")
    cases = [("inspect", ["inspect", fix], None),
             ("patch --in-place (fresh copy)", ["patch", work, "--rope-freq-base", "1000000", "--in-place"],
              lambda: fresh_copy(fix, work)),
             ("patch -o OUT (streaming copy)", ["patch", fix, "-o", out, "--rope-scaling", "yarn",
                                                "--rope-scale", "4"], lambda: rm(out))]
    text = []
    for label, args, setup in cases:
        if setup:
            setup()
        os.sync()
        p = subprocess.run([PY, "-c", _PROFILER, *args], capture_output=True, text=True, cwd=REPO)
        lines = [ln for ln in p.stderr.splitlines() if "copying tensor data" not in ln]
        text.append(f"### {label}\n\n" + "\n".join("    " + ln for ln in lines) + "\n")
        log(text[-1])
    for p in (work, out):
        rm(p)
    return "\n".join(text)


def import_profile(argv: list[str], top: int = 12) -> list[tuple[int, str]]:
    """Top-level imports by cumulative time from -X importtime (best of 3)."""
    best: dict[str, int] = {}
    for _ in range(3):
        p = subprocess.run([argv[0], "-X", "importtime"] + argv[1:], capture_output=True, text=True, cwd=REPO)
        for line in p.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
            if m and len(m.group(3)) <= 3:  # packages imported directly (depth 1-2)
                name = ("  " * (len(m.group(3)) - 1)) + m.group(4)
                us = int(m.group(2))
                best[name] = min(best.get(name, us), us)
    return sorted(((us, n) for n, us in best.items()), reverse=True)[:top]


def format_table(head: list[str], rows: list[list[str]]) -> str:
    w = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * x for x in w])] + [line(r) for r in rows])


if __name__ == "__main__":
    main()
