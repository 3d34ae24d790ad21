"""Which toolchains are present and what each backend still lacks, in words a user can act on.
Every probe takes an injected `which`/`run`/`exists` so tests can describe any machine."""
from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Tool:
    name: str
    path: str | None
    version: str | None = None


@dataclass
class BackendStatus:
    backend: str
    ready: bool
    missing: list[str] = field(default_factory=list)


@dataclass
class World:
    """The machine as doctor sees it (injectable)."""

    which: Callable[[str], str | None] = shutil.which
    exists: Callable[[str], bool] = os.path.exists
    glob: Callable[[str], list[str]] = glob.glob
    system: str = platform.system()
    machine: str = platform.machine()
    env: dict = field(default_factory=lambda: dict(os.environ))

    def version(self, exe: str, *args: str) -> str | None:
        try:
            r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        m = re.search(r"(\d+\.\d+(\.\d+)?)", r.stdout + r.stderr)
        return m.group(1) if m else None


def _cuda_roots(w: World) -> list[str]:
    roots = []
    for var in ("CUDA_PATH", "CUDA_HOME", "CUDAToolkit_ROOT"):
        if w.env.get(var):
            roots.append(w.env[var])
    nvcc = w.which("nvcc")
    if nvcc:
        roots.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    roots += ["/usr/local/cuda"] + sorted(w.glob("/usr/local/cuda-*"))
    return list(dict.fromkeys(roots))


def find_cublas(w: World) -> str | None:
    for root in _cuda_roots(w):
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"):
            hits = w.glob(os.path.join(root, sub, "libcublas.so*"))
            if hits:
                return hits[0]
    hits = w.glob("/usr/lib/x86_64-linux-gnu/libcublas.so*") + w.glob("/usr/lib64/libcublas.so*")
    return hits[0] if hits else None


def tools(w: World) -> list[Tool]:
    out = []
    for name, args in (("cmake", ("--version",)), ("ninja", ("--version",)), ("c++", ("--version",)),
                       ("ccache", ("--version",)), ("git", ("--version",)), ("nvcc", ("--version",)),
                       ("glslc", ("--version",)), ("hipcc", ("--version",)), ("xcrun", ("--version",))):
        p = w.which(name)
        out.append(Tool(name, p, w.version(p, *args) if p else None))
    cublas = find_cublas(w)
    out.append(Tool("cuBLAS", cublas))
    vk = (w.glob("/usr/lib/x86_64-linux-gnu/libvulkan.so*") + w.glob("/usr/lib64/libvulkan.so*")
          + w.glob("/usr/lib/aarch64-linux-gnu/libvulkan.so*"))
    out.append(Tool("libvulkan", vk[0] if vk else None))
    out.append(Tool("vulkan headers", "/usr/include/vulkan/vulkan.h" if w.exists("/usr/include/vulkan/vulkan.h") else None))
    return out


def cpu_note(flags: set[str]) -> str:
    """What the CPU's features mean for the CPU build (docs/native.md, "CPU crash guard")."""
    have = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_fp16", "amx_tile") if f in flags]
    note = "CPU features: " + (", ".join(have) or "none of avx2/fma/f16c")
    if "avx2" not in flags and flags:
        note += "; no AVX2: build with --cpu native (the portable default assumes AVX2)"
    elif "amx_tile" in flags or "avx512f" in flags:
        note += ("; AMX/AVX-512 present: keep the portable default (a GGML_NATIVE build can crash on "
                 "quantized models through the AMX path, and will not run on CPUs without these)")
    return note


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def backends(w: World, ts: list[Tool] | None = None) -> list[BackendStatus]:
    t = {x.name: x for x in (ts or tools(w))}
    base = []
    if not t["cmake"].path:
        base.append("cmake (>= 3.18): apt install cmake / brew install cmake / pip install cmake")
    elif t["cmake"].version and tuple(int(x) for x in t["cmake"].version.split(".")[:2]) < (3, 18):
        base.append(f"cmake >= 3.18 (found {t['cmake'].version})")
    if not t["c++"].path:
        base.append("a C++17 compiler: apt install build-essential / xcode-select --install")
    out = [BackendStatus("cpu", not base, list(base)), BackendStatus("rpc", not base, list(base))]
    cuda = list(base)
    if not t["nvcc"].path:
        cuda.append("the CUDA toolkit (nvcc): install it from NVIDIA and put nvcc on PATH")
    if not t["cuBLAS"].path:
        cuda.append("cuBLAS (libcublas): nvcc is " + ("present" if t["nvcc"].path else "missing") +
                    " but the CUDA configure needs CUDA::cublas (\"Target ggml-cuda links to CUDA::cublas but "
                    "the target was not found\"); install libcublas-dev / cuda-libraries-dev for your CUDA version")
    out.append(BackendStatus("cuda", not cuda, cuda))
    metal = list(base)
    if w.system != "Darwin":
        metal.append(f"macOS: Metal exists only on Apple platforms (this is {w.system})")
    elif not t["xcrun"].path:
        metal.append("Xcode command line tools: xcode-select --install")
    out.append(BackendStatus("metal", not metal, metal))
    vulkan = list(base)
    if not t["glslc"].path:
        vulkan.append("glslc (shader compiler): apt install glslc, or the LunarG Vulkan SDK")
    if not t["libvulkan"].path:
        vulkan.append("the Vulkan loader: apt install libvulkan-dev")
    if not t["vulkan headers"].path and w.system == "Linux":
        vulkan.append("Vulkan headers: apt install libvulkan-dev")
    out.append(BackendStatus("vulkan", not vulkan, vulkan))
    return out
