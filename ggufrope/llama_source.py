"""The llama.cpp source ggufrope uses by default: the tree vendored in the pinned
llama-cpp-python sdist on PyPI (so the Python engine and our builds share one version),
downloaded once by its pinned URL and sha256 (ggufrope.fetch; never through pip, which would
run the sdist's build backend first) and unpacked into the cache with a completion marker."""
from __future__ import annotations

import os
from typing import Callable, Mapping

from ggufrope import fetch, paths

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# llama_cpp_python-0.3.36.tar.gz, sha256 as downloaded from PyPI on 2026-11-30 (equal to PyPI's own).
SDIST = fetch.Pinned(
    filename=f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz",
    url="https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/"
        "llama_cpp_python-0.3.36.tar.gz",
    size=76_589_250, sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e")
TOP = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}"
# 215,783,339 bytes in 3,884 files; the bound stops a runaway unpack, the pin already fixed the content.
UNPACKED_MAX = 256 << 20
# fetch.tree_digest of the unpacked sdist: lets a tree unpacked by an older ggufrope (before
# completion markers) be verified in place instead of downloaded again.
TREE_DIGEST = "f0c7a9c82d7eb5cd2c263b2ebd1eabe149f38587b07971b99ef87afefd3866c2"


def vendored_tree(env: Mapping[str, str] | None = None, log: Callable[[str], None] = lambda s: None) -> str:
    """Path of vendor/llama.cpp inside the unpacked, verified sdist, fetching it if needed."""
    root = fetch.fetch_tree(SDIST, os.path.join(paths.home(env), "src"), TOP, UNPACKED_MAX, log,
                            legacy_digest=TREE_DIGEST)
    return os.path.join(root, "vendor", "llama.cpp")
