"""Configure, build, stamp and smoke-test a BuildSpec; cached by spec and source.

Layout: $GGUFROPE_HOME/builds/<name>-<key>/{build/, build.json, build.log, build.lock}. build.json is the
stamp: written last, only after the smoke test passed, so a build dir without it is unfinished
and gets rebuilt (cmake/ninja redo only what is missing). Asking for a built spec again reads
the stamp and returns without running cmake.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ggufrope import paths
from ggufrope.build import webui
from ggufrope.build.source import SourceInfo
from ggufrope.build.spec import BuildSpec
from ggufrope.childproc import log_tail
from ggufrope.errors import BuildError
from ggufrope.fetch import exclusive

Progress = Callable[[int, int, str], None]
_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]\s*(.*)")
# what a failed cmake or compiler step prints: its errors, not the lines after them
BUILD_ERROR_LINES = r"\berror\b|CMake Error|FAILED:|not found"


@dataclass(frozen=True)
class BuildResult:
    dir: str
    bin_dir: str
    spec: BuildSpec
    source: SourceInfo
    binaries: dict[str, str]
    seconds: float
    cached: bool
    checks: dict = field(default_factory=dict)
    """What the build verified about itself: CUDA toolkit, FA kernels, ldd, smoke test."""

    def binary(self, name: str) -> str:
        try:
            return self.binaries[name]
        except KeyError:
            raise BuildError(f"{self.dir}: this build has no {name} (built: {', '.join(sorted(self.binaries))})") from None

    def to_dict(self) -> dict:
        return {"dir": self.dir, "bin_dir": self.bin_dir, "spec": self.spec.to_dict(),
                "source": self.source.to_dict(), "binaries": self.binaries, "seconds": round(self.seconds, 1),
                "cached": self.cached, "checks": self.checks}


def builds_dir(env: Mapping[str, str] | None = None) -> str:
    return os.path.join(paths.home(env), "builds")


def build_dir(spec: BuildSpec, source: SourceInfo, env: Mapping[str, str] | None = None) -> str:
    return os.path.join(builds_dir(env), f"{spec.name()}-{spec.key(source.tree_hash)}")


def commands(spec: BuildSpec, source: SourceInfo, bdir: str, repo_root: str, jobs: int,
             generator: str | None, machine_args: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The exact configure and build argv lists. machine_args: what this machine adds to the
    spec's arguments (the CUDA toolkit's paths, GGML_CUDA_NO_VMM; CudaToolkit.cmake_args)."""
    import platform
    configure = ["cmake", "-S", repo_root, "-B", os.path.join(bdir, "build")]
    if generator:
        configure += ["-G", generator]
    version = (source.build_number if source.build_number != "unknown" else "0", source.commit)
    configure += spec.cmake_args(source.path, source.has_fa_quants_option, version, platform.machine())
    configure += list(machine_args)
    build = ["cmake", "--build", os.path.join(bdir, "build"), "--parallel", str(jobs), "--target", *spec.build_targets]
    return configure, build


def repo_root() -> str:
    """The directory holding the top-level CMakeLists.txt (the ggufrope checkout)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.isfile(os.path.join(here, "CMakeLists.txt")):
        raise BuildError(f"{here}: no CMakeLists.txt (the superbuild ships with the ggufrope source checkout)")
    return here


def forget_other_checkout(tree: str, root: str, log: Callable[[str], None]) -> None:
    """A build dir configured from another ggufrope checkout (moved, or a fresh clone such as CI's)
    makes cmake refuse: "The source ... does not match the source ... used to generate cache".
    Drop that checkout's cmake cache then; the object files stay, so ninja rebuilds only what
    really changed."""
    cache = os.path.join(tree, "CMakeCache.txt")
    try:
        with open(cache, encoding="utf-8", errors="replace") as f:
            home = next((ln.split("=", 1)[1].strip() for ln in f if ln.startswith("CMAKE_HOME_DIRECTORY:")), None)
    except OSError:
        return
    if home is None or os.path.realpath(home) == os.path.realpath(root):
        return
    log(f"{tree}: configured from another checkout ({home}); reconfiguring from {root}")
    os.unlink(cache)
    shutil.rmtree(os.path.join(tree, "CMakeFiles"), ignore_errors=True)


def native_hash(root: str) -> str:
    """Content hash of ggufrope's own build inputs (top-level CMakeLists.txt and native/).
    Not part of the cache key: a change re-runs the (incremental) build in the same dir."""
    import hashlib
    h = hashlib.sha256()
    files = [os.path.join(root, "CMakeLists.txt")] + sorted(
        os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "native")) for f in fs)
    for p in files:
        with open(p, "rb") as f:
            h.update(os.path.relpath(p, root).encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


def load_stamp(bdir: str) -> dict | None:
    try:
        with open(os.path.join(bdir, "build.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _result_from_stamp(bdir: str, stamp: dict, spec: BuildSpec, source: SourceInfo) -> BuildResult | None:
    bins = stamp.get("binaries", {})
    if not bins or not all(os.path.exists(p) for p in bins.values()):
        return None
    return BuildResult(bdir, stamp["bin_dir"], spec, source, bins, stamp.get("seconds", 0.0), True,
                       stamp.get("checks", {}))


def _run_logged(argv: list[str], log_path: str, env: Mapping[str, str], progress: Progress | None,
                what: str) -> None:
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                env=dict(env), bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            m = _NINJA_STEP.match(line)
            if m and progress:
                progress(int(m[1]), int(m[2]), m[3].strip())
        rc = proc.wait()
    if rc != 0:
        raise BuildError(f"{what} failed (exit {rc}):\n{log_tail(log_path, 12, BUILD_ERROR_LINES)}\n"
                         f"full log: {log_path}")


def build(spec: BuildSpec, source: SourceInfo, env: Mapping[str, str], progress: Progress | None = None,
          log: Callable[[str], None] = lambda s: None, force: bool = False,
          smoke: Callable[[BuildResult], str | None] | None = None, offline: bool = False) -> BuildResult:
    """Build spec from source, or return the cached build. One process at a time per build dir
    (a lock file in it): a second one waits, says so, and then finds the first one's stamp."""
    bdir = build_dir(spec, source, env)
    root = repo_root()
    nhash = native_hash(root)
    ui = webui.wanted(source.path, env) if _serves_ui(spec) else None
    if not force and (res := _cached(bdir, nhash, ui, spec, source)) is not None:
        return res
    os.makedirs(bdir, exist_ok=True)
    with exclusive(os.path.join(bdir, "build.lock"), log, f"building {bdir}"):
        if not force and (res := _cached(bdir, nhash, ui, spec, source)) is not None:
            return res
        return _build_locked(spec, source, env, progress, log, smoke, offline, bdir, root, nhash, force)


def _serves_ui(spec: BuildSpec) -> bool:
    return "llama-server" in spec.build_targets


def _cached(bdir: str, nhash: str, ui: str | None, spec: BuildSpec, source: SourceInfo) -> BuildResult | None:
    """The stamped build, unless ggufrope's native sources or the web UI it should embed changed
    (both rebuild incrementally in the same dir: the UI costs a ui.cpp compile and relinks)."""
    stamp = load_stamp(bdir)
    if stamp and stamp.get("native_hash") == nhash and stamp.get("ui") == ui:
        return _result_from_stamp(bdir, stamp, spec, source)
    return None


def _build_locked(spec: BuildSpec, source: SourceInfo, env: Mapping[str, str], progress: Progress | None,
                  log: Callable[[str], None], smoke: Callable[[BuildResult], str | None] | None, offline: bool,
                  bdir: str, root: str, nhash: str, force: bool = False) -> BuildResult:
    """Configure, build, check and stamp; the caller holds bdir's lock."""
    log_path = os.path.join(bdir, "build.log")
    generator = "Ninja" if shutil.which("ninja") else None
    if shutil.which("cmake") is None:
        raise BuildError("cmake not found: install cmake (>= 3.18); `ggufrope doctor` lists what is missing")
    checks: dict = {}
    machine_args: list[str] = []
    if spec.backend == "cuda":
        import platform
        from ggufrope.build import cuda_toolkit
        tk = cuda_toolkit.prepare(env, offline or cuda_toolkit.is_offline(env), platform.machine(), log)
        for n in tk.notes():
            log(n)
        machine_args = tk.cmake_args()
        checks["cuda_toolkit"] = tk.to_dict()
    configure, build_cmd = commands(spec, source, bdir, root, os.cpu_count() or 2, generator, machine_args)
    forget_other_checkout(os.path.join(bdir, "build"), root, log)
    t0 = time.monotonic()
    log(f"configuring {spec.name()} ({source.path} @ {source.commit}); log: {log_path}")
    _run_logged(configure, log_path, env, None, "cmake configure")
    ui = webui.ensure(source.path, env, log, force) if _serves_ui(spec) else webui.UiState(None, None, "")
    webui.place(ui, bdir)   # before the build: llama.cpp's ui-assets step embeds what is there
    if ui.why:
        log(f"llama-server without its web UI: {ui.why}")
    checks["ui"] = {"key": ui.stamp, "why": ui.why}
    log(f"building {len(spec.build_targets)} targets")
    _run_logged(build_cmd, log_path, env, progress, "build")
    bin_dir = os.path.join(bdir, "build", "bin")
    bins = {t: os.path.join(bin_dir, t) for t in spec.build_targets if os.path.exists(os.path.join(bin_dir, t))}
    missing = [t for t in spec.build_targets if t not in bins]
    if missing:
        raise BuildError(f"build finished without {', '.join(missing)}; full log: {log_path}")
    if spec.backend == "cuda":
        from ggufrope.build import cuda_check
        checks["cuda"] = cuda_check.inspect(bin_dir, spec)
        log(f"FA kernels compiled in ({cuda_check.CUDA_LIB}): {', '.join(checks['cuda']['fa_kernels'])}")
    res = BuildResult(bdir, bin_dir, spec, source, bins, time.monotonic() - t0, False, checks)
    if smoke is not None:
        checks["smoke"] = smoke(res) or "passed"
    with open(os.path.join(bdir, "build.json.tmp"), "w") as f:
        json.dump({**res.to_dict(), "native_hash": nhash, "ui": ui.stamp, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                   "python": sys.version.split()[0]}, f, indent=2)
    os.replace(os.path.join(bdir, "build.json.tmp"), os.path.join(bdir, "build.json"))
    return res


def list_builds(env: Mapping[str, str] | None = None) -> list[dict]:
    out = []
    root = builds_dir(env)
    if not os.path.isdir(root):
        return out
    for name in sorted(os.listdir(root)):
        stamp = load_stamp(os.path.join(root, name))
        out.append({"name": name, "dir": os.path.join(root, name), "complete": stamp is not None,
                    **({"spec": stamp["spec"], "source": stamp["source"], "bin_dir": stamp["bin_dir"],
                        "binaries": stamp["binaries"], "seconds": stamp.get("seconds"),
                        "built_at": stamp.get("built_at")} if stamp else {})})
    return out
