"""llama-cpp-python on ggufrope's own build, so llama.cpp is compiled once.

./bootstrap installs llama-cpp-python 0.3.36 without its native part (its CMake option
LLAMA_BUILD=OFF) and then links the shared libraries of ggufrope's build of the same vendored
llama.cpp into the package's `llama_cpp/lib/`, where llama-cpp-python looks when
LLAMA_CPP_LIB_PATH is unset (llama_cpp/llama_cpp.py: libllama; mtmd_cpp.py: libmtmd). So
`import llama_cpp` works in the venv for any script, with no environment variable, and ggufrope's
sessions still pick the build of their preset's spec through LLAMA_CPP_LIB_PATH (native.engine_env).

Symlinks, not copies: the libraries find each other (libllama -> libggml -> libggml-cpu...)
through their build rpath in the build directory, so they must stay there. A removed build
leaves dangling links; `ggufrope build --python` links again.
"""
from __future__ import annotations

import importlib.util
import os
import re

from ggufrope.errors import BuildError

# What llama-cpp-python loads from llama_cpp/lib, and what those load in turn.
_LIB = re.compile(r"lib(llama|mtmd|ggml[\w-]*)\.so(\.\d+)*$")


def package_lib_dir() -> str:
    """llama_cpp/lib of the installed llama-cpp-python, found without importing it (the import
    itself loads libllama, which may not be there yet)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("llama-cpp-python is not installed in this Python; run ./bootstrap")
    return os.path.join(list(spec.submodule_search_locations)[0], "lib")


def link_libraries(bin_dir: str, lib_dir: str) -> list[str]:
    """Point lib_dir's llama.cpp libraries at bin_dir's; returns the names linked. Replaces what
    was there (a compiled wheel's own copies, or links to an older build)."""
    names = sorted(f for f in os.listdir(bin_dir) if _LIB.match(f))
    if "libllama.so" not in names:
        raise BuildError(f"{bin_dir}: no libllama.so (a shared-library build is needed; BUILD_SHARED_LIBS=ON)")
    os.makedirs(lib_dir, exist_ok=True)
    for f in os.listdir(lib_dir):
        if _LIB.match(f):
            os.remove(os.path.join(lib_dir, f))
    for n in names:
        tmp = os.path.join(lib_dir, f".{n}.tmp")
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.symlink(os.path.join(bin_dir, n), tmp)
        os.replace(tmp, os.path.join(lib_dir, n))
    return names


def linked_build(lib_dir: str) -> str | None:
    """The build directory llama_cpp/lib points at, if it holds ggufrope's links."""
    p = os.path.join(lib_dir, "libllama.so")
    return os.path.dirname(os.readlink(p)) if os.path.islink(p) else None
