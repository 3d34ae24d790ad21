"""Which toolchains are present and what each backend still lacks, in words a user can act on.
Every probe takes an injected `which`/`run`/`exists` so tests can describe any machine."""
from __future__ import annotations

from dataclasses import dataclass, field

from ggufrope.build import cuda_toolkit
from ggufrope.build.world import World


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


def tools(w: World) -> list[Tool]:
    out = []
    for name, args in (("cmake", ("--version",)), ("ninja", ("--version",)), ("c++", ("--version",)),
                       ("ccache", ("--version",)), ("git", ("--version",)), ("nvcc", ("--version",)),
                       ("glslc", ("--version",)), ("hipcc", ("--version",)), ("xcrun", ("--version",)),
                       ("node", ("--version",)), ("npm", ("--version",))):
        p = w.which(name)
        out.append(Tool(name, p, w.version(p, *args) if p else None))
    vk = (w.glob("/usr/lib/x86_64-linux-gnu/libvulkan.so*") + w.glob("/usr/lib64/libvulkan.so*")
          + w.glob("/usr/lib/aarch64-linux-gnu/libvulkan.so*"))
    out.append(Tool("libvulkan", vk[0] if vk else None))
    out.append(Tool("vulkan headers", "/usr/include/vulkan/vulkan.h" if w.exists("/usr/include/vulkan/vulkan.h") else None))
    return out


def web_ui_note(w: World) -> str:
    """Whether builds can embed llama-server's web chat page (built once with node/npm: build/webui.py)."""
    from ggufrope.build import webui
    why = webui.node_problem(w.which, lambda argv: w.run(argv))
    return "web UI: " + (why if why else "node and npm found: llama-server builds embed llama.cpp's chat page "
                                          "(npm runs once per llama.cpp UI source)")


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


def cuda_missing(w: World, tk: cuda_toolkit.Toolkit | None = None) -> list[str]:
    """What the CUDA backend lacks, each with the command that fixes it."""
    tk = tk or cuda_toolkit.detect(w)
    if not tk.missing:
        return []
    names = {"nvcc": "nvcc", "cudart": "the CUDA runtime (cudart)", "cccl": "CCCL (cub/thrust headers)",
             "cublas": "cuBLAS"}
    what = ", ".join(names[p] for p in tk.missing)
    if tk.release is None:
        return [f"{what}: no nvcc and no NVIDIA driver to tell which CUDA to fetch; install the CUDA toolkit "
                f"(https://developer.nvidia.com/cuda-downloads) or a driver, then `ggufrope doctor` again"]
    have = "nvcc " + (f"{tk.nvcc_version} is present" if tk.piece("nvcc").source != "missing" else "is missing")
    return [f"{what} ({have}; the CUDA configure needs CUDA::cublas and nvcc's headers): "
            + cuda_toolkit.fix_command(tk, w.machine)]


def backends(w: World, ts: list[Tool] | None = None, tk: cuda_toolkit.Toolkit | None = None) -> list[BackendStatus]:
    t = {x.name: x for x in (ts or tools(w))}
    base = []
    if not t["cmake"].path:
        base.append("cmake (>= 3.18): apt install cmake / brew install cmake / pip install cmake")
    elif t["cmake"].version and tuple(int(x) for x in t["cmake"].version.split(".")[:2]) < (3, 18):
        base.append(f"cmake >= 3.18 (found {t['cmake'].version})")
    if not t["c++"].path:
        base.append("a C++17 compiler: apt install build-essential / xcode-select --install")
    out = [BackendStatus("cpu", not base, list(base)), BackendStatus("rpc", not base, list(base))]
    cuda = list(base) + cuda_missing(w, tk)
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
