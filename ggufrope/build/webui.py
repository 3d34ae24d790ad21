"""llama-server's web chat page, built from the pinned llama.cpp tree's own UI source with npm,
once per UI source, and embedded by llama.cpp's own cmake.

llama.cpp (tools/ui/CMakeLists.txt, scripts/ui-assets.cmake) embeds the files of
`<build>/llama.cpp/tools/ui/dist` into ui.cpp: with LLAMA_BUILD_UI and LLAMA_USE_PREBUILT_UI both
OFF (the superbuild forces both: the prebuilt path downloads at build time, and npm inside cmake
would run once per build dir) it embeds "stale assets" that are there. So ggufrope builds the UI
itself, once, into $GGUFROPE_HOME/webui/<ui key>/dist, and copies that tree where llama.cpp's
script looks before `cmake --build`. The script fingerprints the assets, so a build dir that
already has them recompiles nothing.

The UI key is a content hash of tools/ui (without node_modules/dist): a new llama.cpp version
with the same UI source reuses the cached page. Without node/npm, or after a failed npm run
(recorded, not retried until `ggufrope build --force`), builds go on without the page.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from ggufrope import paths
from ggufrope.childproc import log_tail
from ggufrope.fetch import exclusive

MIN_NODE = (20, 0)
INSTALL_HINT = "install Node.js >= 20 and npm (Debian/Ubuntu: apt-get install nodejs npm)"
_SKIP = {"node_modules", "dist", ".svelte-kit", "build", "dev-dist", "test-results"}
# where llama.cpp's ui-assets.cmake looks for assets in the superbuild (UI_BINARY_DIR/dist)
EMBED_DIR = os.path.join("build", "llama.cpp", "tools", "ui", "dist")
Which = Callable[[str], "str | None"]


@dataclass(frozen=True)
class UiState:
    """What a build can embed: `dist` (a built asset tree) or None with `why` (one line)."""

    key: str | None
    dist: str | None
    why: str = ""

    @property
    def stamp(self) -> str | None:
        """The build stamp's "ui" value: the key of the embedded page, None without one."""
        return self.key if self.dist else None


def ui_source(source_dir: str) -> str:
    return os.path.join(source_dir, "tools", "ui")


def ui_key(source_dir: str) -> str | None:
    """Content hash of the UI source (names and bytes), None when the tree has no tools/ui."""
    root = ui_source(source_dir)
    if not os.path.isfile(os.path.join(root, "package-lock.json")):
        return None
    h = hashlib.sha256()
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in _SKIP)
        for f in sorted(files):
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                h.update(os.path.relpath(p, root).encode() + b"\0" + fh.read() + b"\0")
    return h.hexdigest()[:16]


def cache_dir(key: str, env: Mapping[str, str]) -> str:
    return os.path.join(paths.home(env), "webui", key)


def node_problem(which: Which, run: Callable[[list[str]], str | None]) -> str | None:
    """Why npm cannot build the UI here (one line), or None when node >= 20 and npm are present."""
    node, npm = which("node"), which("npm")
    if not node or not npm:
        return f"{'node' if not node else 'npm'} not found: {INSTALL_HINT}"
    m = re.search(r"v?(\d+)\.(\d+)", run([node, "--version"]) or "")
    if m and (int(m[1]), int(m[2])) < MIN_NODE:
        return f"node {m[0]} is too old for llama.cpp's UI (needs >= 20): {INSTALL_HINT}"
    return None


def _run_text(argv: list[str]) -> str | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None


def _failed(cdir: str) -> str | None:
    try:
        with open(os.path.join(cdir, "failed.json")) as f:
            return json.load(f).get("why")
    except (OSError, ValueError):
        return None


def state(source_dir: str, env: Mapping[str, str], which: Which = shutil.which,
          run: Callable[[list[str]], str | None] = _run_text) -> UiState:
    """What a build of source_dir would embed now, without running npm: the cached page, or
    the key alone when npm could build it (`dist` None, `why` empty), or why there is none."""
    key = ui_key(source_dir)
    if key is None:
        return UiState(None, None, f"{ui_source(source_dir)}: no UI source in this llama.cpp tree")
    cdir = cache_dir(key, env)
    if os.path.isfile(os.path.join(cdir, "dist", "index.html")):
        return UiState(key, os.path.join(cdir, "dist"))
    if (why := _failed(cdir)) is not None:
        return UiState(key, None, why)
    if (why := node_problem(which, run)) is not None:
        return UiState(key, None, why)
    return UiState(key, None)


def wanted(source_dir: str, env: Mapping[str, str], which: Which = shutil.which,
           run: Callable[[list[str]], str | None] = _run_text) -> str | None:
    """The stamp value a current build of source_dir should carry: the UI key when the page is
    cached or npm can build it, None when it cannot (node/npm missing, an earlier npm failure)."""
    s = state(source_dir, env, which, run)
    return s.key if (s.dist or not s.why) else None


def ensure(source_dir: str, env: Mapping[str, str], log: Callable[[str], None] = lambda s: None,
           force: bool = False, which: Which = shutil.which) -> UiState:
    """The built page for source_dir: from the cache, or built now with `npm ci` + `npm run build`
    (minutes, once per UI source; one process at a time). Never raises for npm's failures: they
    come back as `why` and are remembered (force: try again)."""
    s = state(source_dir, env, which)
    if s.dist or s.key is None:
        return s
    cdir = cache_dir(s.key, env)
    if s.why and not (force and _failed(cdir) is not None and node_problem(which, _run_text) is None):
        return s
    os.makedirs(cdir, exist_ok=True)
    with exclusive(os.path.join(cdir, "build.lock"), log, "building the web UI"):
        if force and os.path.exists(os.path.join(cdir, "failed.json")):
            os.remove(os.path.join(cdir, "failed.json"))
        s = state(source_dir, env, which)
        if s.dist or s.why:
            return s
        return _npm_build(source_dir, s.key, cdir, env, log, which)


def _npm_build(source_dir: str, key: str, cdir: str, env: Mapping[str, str], log: Callable[[str], None],
               which: Which) -> UiState:
    """Stage tools/ui, `npm ci` against its lock file, `npm run build` into dist.tmp, then
    rename it to dist (the cache entry exists only when complete)."""
    work, out, log_path = os.path.join(cdir, "src"), os.path.join(cdir, "dist.tmp"), os.path.join(cdir, "npm.log")
    for d in (work, out):
        shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(ui_source(source_dir), work, ignore=shutil.ignore_patterns(*_SKIP))
    npm = which("npm") or "npm"
    child_env = {**env, "LLAMA_UI_OUT_DIR": out, "CI": "1", "npm_config_update_notifier": "false",
                 "npm_config_fund": "false", "npm_config_audit": "false"}
    log(f"building llama.cpp's web UI with npm (once per UI source; minutes); log: {log_path}")
    t0 = time.monotonic()
    with open(log_path, "w") as lf:
        for argv in ([npm, "ci", "--no-audit", "--no-fund"], [npm, "run", "build"]):
            lf.write(f"$ {' '.join(argv)}\n")
            lf.flush()
            rc = subprocess.run(argv, cwd=work, env=child_env, stdin=subprocess.DEVNULL, stdout=lf,
                                stderr=subprocess.STDOUT).returncode
            if rc != 0 or (argv[-1] == "build" and not os.path.isfile(os.path.join(out, "index.html"))):
                last = (log_tail(log_path, 1) or "").strip()
                why = (f"`npm {' '.join(argv[1:])}` failed (exit {rc}) building the web UI ({last}); log: {log_path}; "
                       f"`ggufrope build --force` tries again")
                with open(os.path.join(cdir, "failed.json"), "w") as f:
                    json.dump({"why": why, "tail": log_tail(log_path, 12)}, f)
                shutil.rmtree(work, ignore_errors=True)
                return UiState(key, None, why)
    os.replace(out, os.path.join(cdir, "dist"))
    # src/ (the staging copy with node_modules, ~250 MB) stays: removing it takes minutes on a
    # slow disk, and nothing reads it again; deleting it by hand is safe
    with open(os.path.join(cdir, "ui.json"), "w") as f:
        json.dump({"key": key, "source": ui_source(source_dir), "seconds": round(time.monotonic() - t0, 1),
                   "built_at": time.strftime("%Y-%m-%dT%H:%M:%S")}, f, indent=2)
    log(f"web UI built in {time.monotonic() - t0:.0f}s (cached in {cdir})")
    return UiState(key, os.path.join(cdir, "dist"))


def place(ui: UiState, bdir: str) -> None:
    """Put the page where llama.cpp's ui-assets.cmake embeds it from (or clear it: no page)."""
    dest = os.path.join(bdir, EMBED_DIR)
    shutil.rmtree(dest, ignore_errors=True)
    if ui.dist:
        shutil.copytree(ui.dist, dest)


def embedded(log_path: str) -> int | None:
    """How many UI assets the build's last ui-assets step embedded (from build.log), None if
    the log does not say."""
    n = None
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                if m := re.search(r"UI: embedded (\d+) assets", line):
                    n = int(m[1])
                elif "UI: assets unchanged" in line and n is None:
                    n = -1
    except OSError:
        return None
    return n
