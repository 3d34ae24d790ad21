"""A build dir configured from one ggufrope checkout is reused from another (a moved checkout,
or CI's fresh clone in another folder): cmake refuses a cache made from another source dir, so
the builder drops that cache first (build/builder.forget_other_checkout). Real cmake, on a
minimal project."""
from __future__ import annotations

import os
import subprocess

from ggufrope.build.builder import forget_other_checkout


def _checkout(root) -> str:
    os.makedirs(root)
    with open(os.path.join(root, "CMakeLists.txt"), "w") as f:
        f.write("cmake_minimum_required(VERSION 3.16)\nproject(relocate NONE)\n")
    return str(root)


def _configure(src: str, tree: str) -> subprocess.CompletedProcess:
    return subprocess.run(["cmake", "-S", src, "-B", tree], capture_output=True, text=True, timeout=300)


def test_a_build_dir_from_another_checkout_is_reconfigured(tmp_path):
    a, b = _checkout(tmp_path / "a"), _checkout(tmp_path / "b")
    tree = str(tmp_path / "build")
    assert _configure(a, tree).returncode == 0
    r = _configure(b, tree)   # what the builder met in CI before the fix
    assert r.returncode != 0 and "does not match the source" in r.stderr
    said: list[str] = []
    forget_other_checkout(tree, b, said.append)
    assert said and "configured from another checkout" in said[0]
    assert _configure(b, tree).returncode == 0


def test_the_same_checkout_keeps_its_cache(tmp_path):
    a = _checkout(tmp_path / "a")
    tree = str(tmp_path / "build")
    assert _configure(a, tree).returncode == 0
    before = os.stat(os.path.join(tree, "CMakeCache.txt")).st_mtime_ns
    said: list[str] = []
    forget_other_checkout(tree, a, said.append)
    forget_other_checkout(str(tmp_path / "never-configured"), a, said.append)
    assert said == [] and os.stat(os.path.join(tree, "CMakeCache.txt")).st_mtime_ns == before
