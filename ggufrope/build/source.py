"""Which llama.cpp source a build uses, and its version.

Order: `--source PATH`, else `LLAMA_CPP_DIR`, else the tree vendored in the pinned
llama-cpp-python sdist (ggufrope.llama_source), so the Python engine and our binaries are the
same llama.cpp. The version recorded with every build is the commit (from git when the tree
has one; the sdist carries a shallow submodule) and the build number (rev-list count, which a
shallow clone cannot know: then "unknown")."""
from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from typing import Callable, Mapping

from ggufrope.errors import UsageError
from ggufrope.llama_source import vendored_tree


@dataclass(frozen=True)
class SourceInfo:
    path: str
    commit: str
    build_number: str
    has_fa_quants_option: bool   # GGML_CUDA_FA_QUANTS (newer) vs only GGML_CUDA_FA_ALL_QUANTS
    tree_hash: str               # identifies the source for the build cache

    def to_dict(self) -> dict:
        return dict(path=self.path, commit=self.commit, build_number=self.build_number,
                    has_fa_quants_option=self.has_fa_quants_option, tree_hash=self.tree_hash)


def _git(tree: str, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", tree, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def _tree_hash(tree: str) -> str:
    """Hash of the build-relevant files' names, sizes and mtimes (fast; no content reads)."""
    h = hashlib.sha256()
    for sub in ("CMakeLists.txt", "ggml/CMakeLists.txt", "src", "ggml/src", "common", "tools", "include"):
        p = os.path.join(tree, sub)
        if os.path.isfile(p):
            st = os.stat(p)
            h.update(f"{sub}:{st.st_size}:{int(st.st_mtime)}\n".encode())
            continue
        for root, dirs, files in os.walk(p):
            dirs.sort()
            for f in sorted(files):
                fp = os.path.join(root, f)
                st = os.stat(fp)
                h.update(f"{os.path.relpath(fp, tree)}:{st.st_size}:{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


def source_info(tree: str) -> SourceInfo:
    tree = os.path.abspath(os.path.expanduser(tree))
    if not (os.path.isfile(os.path.join(tree, "CMakeLists.txt")) and
            os.path.isfile(os.path.join(tree, "include", "llama.h"))):
        raise UsageError(f"{tree}: not a llama.cpp source tree (no CMakeLists.txt and include/llama.h)")
    commit = "unknown"
    number = "unknown"
    top = _git(tree, "rev-parse", "--show-toplevel")
    if top and os.path.realpath(top) == os.path.realpath(tree):
        commit = _git(tree, "rev-parse", "--short=7", "HEAD") or "unknown"
        shallow = _git(tree, "rev-parse", "--is-shallow-repository") == "true"
        if not shallow:
            number = _git(tree, "rev-list", "--count", "HEAD") or "unknown"
    with open(os.path.join(tree, "ggml", "CMakeLists.txt")) as f:
        has_quants = "GGML_CUDA_FA_QUANTS" in f.read()
    return SourceInfo(tree, commit, number, has_quants, _tree_hash(tree))


def resolve_source(explicit: str | None, env: Mapping[str, str],
                   log: Callable[[str], None] = lambda s: None) -> SourceInfo:
    if explicit:
        return source_info(explicit)
    if env.get("LLAMA_CPP_DIR"):
        return source_info(env["LLAMA_CPP_DIR"])
    return source_info(vendored_tree(env, log))
