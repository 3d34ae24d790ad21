"""The llama.cpp source ggufrope uses by default: the tree vendored in the pinned
llama-cpp-python sdist on PyPI (so the Python engine and our builds share one version),
downloaded once with pip and unpacked into the cache."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from typing import Callable, Mapping

from ggufrope import paths
from ggufrope.errors import FetchError

LLAMA_CPP_PYTHON_VERSION = "0.3.36"


def vendored_tree(env: Mapping[str, str] | None = None, log: Callable[[str], None] = lambda s: None) -> str:
    """Path of vendor/llama.cpp inside the unpacked sdist, fetching it if needed."""
    root = os.path.join(paths.home(env), "src", f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}")
    tree = os.path.join(root, "vendor", "llama.cpp")
    if os.path.isfile(os.path.join(tree, "CMakeLists.txt")):
        return tree
    os.makedirs(os.path.dirname(root), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(root)) as tmp:
        req = f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"
        log(f"downloading the {req} sdist (carries llama.cpp's source)")
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "--disable-pip-version-check", "-q", "-d", tmp, req], capture_output=True, text=True)
        sdists = [f for f in os.listdir(tmp) if f.endswith(".tar.gz")]
        if r.returncode != 0 or not sdists:
            raise FetchError(f"{req}: pip download failed: {(r.stderr or r.stdout).strip()[-300:]}")
        with tarfile.open(os.path.join(tmp, sdists[0])) as t:
            t.extractall(tmp, filter="data")
        os.replace(os.path.join(tmp, f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}"), root)
    return tree
