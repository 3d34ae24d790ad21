"""What to build: a frozen, hashable spec that maps to cmake arguments in one place.

cmake options are llama.cpp's own (ggml/CMakeLists.txt, docs/build.md): GGML_CUDA / GGML_METAL /
GGML_VULKAN / GGML_RPC; GGML_NATIVE for host-specific CPU code; the CUDA flash-attention K/V
type pairs through GGML_CUDA_FA_QUANTS (`all` or `K-V;K-V`), which older trees only know as the
boolean GGML_CUDA_FA_ALL_QUANTS (everything, much slower to compile).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from ggufrope.errors import UsageError

BACKENDS = ("cpu", "cuda", "metal", "vulkan")
# ggml/src/ggml-cuda/CMakeLists.txt: the types FA kernels can be compiled for
FA_TYPES = ("f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0")
DEFAULT_FA_PAIRS = ("q4_0-q4_0", "q8_0-q8_0", "f16-f16", "bf16-bf16")  # this llama.cpp's default
# Portable x86-64 CPU flags: runs on any AVX2 machine. GGML_NATIVE=ON on these hosts
# crashes on quantized models (docs/native.md, "CPU crash guard").
PORTABLE_X86 = ("-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON")
LLAMA_TARGETS = ("llama-cli", "llama-completion", "llama-server", "llama-bench", "llama-perplexity",
                 "llama-fit-params")
NATIVE_TARGETS = ("ggufrope-probe", "ggufrope-rope-angles", "ggufrope-gguf-oracle")
RPC_TARGET = "ggml-rpc-server"
# ggufrope's worker (native/rpc_worker.cpp): ggml-rpc-server's engine with a capacity cap. Built
# with every RPC build (build_targets) but not part of the spec's cache key, so adding it did not
# orphan the RPC builds made before it existed.
RPC_WORKER_TARGET = "ggufrope-rpc-worker"


def parse_kv_pairs(square: list[str] | None = None, pairs: list[str] | None = None) -> tuple[str, ...] | str:
    """`--kv q8_0,q4_0` (square pairs) and `--kv-pairs q8_0-q4_0` -> sorted K-V pairs, or "all"."""
    out: set[str] = set()
    for item in square or []:
        for t in filter(None, (x.strip() for x in item.split(","))):
            if t == "all":
                return "all"
            _check_type(t)
            out.add(f"{t}-{t}")
    for item in pairs or []:
        for p in filter(None, (x.strip() for x in item.replace(";", ",").split(","))):
            if p == "all":
                return "all"
            k, sep, v = p.partition("-")
            if not sep:
                raise UsageError(f"--kv-pairs {p!r}: expected K-V, e.g. q8_0-q4_0")
            _check_type(k)
            _check_type(v)
            out.add(f"{k}-{v}")
    return tuple(sorted(out))


def _check_type(t: str) -> None:
    if t not in FA_TYPES:
        raise UsageError(f"KV cache type {t!r} has no CUDA flash-attention kernel; choose from {', '.join(FA_TYPES)}")


@dataclass(frozen=True)
class BuildSpec:
    """A llama.cpp + ggufrope native build."""

    backend: str = "cpu"
    """cpu, cuda, metal or vulkan (the CPU backend is always built too)."""
    rpc: bool = False
    """Also build the RPC backend and ggml-rpc-server."""
    cpu: str = "portable"
    """portable (AVX2/FMA/F16C, runs on any x86-64-v3 host) or native (-march=native)."""
    cuda_archs: str | None = None
    """CMAKE_CUDA_ARCHITECTURES, e.g. "90" or "86;89"; None lets llama.cpp pick (native)."""
    kv_pairs: tuple[str, ...] | str = ()
    """CUDA FA K/V pairs to compile in addition to llama.cpp's default set, or "all"."""
    build_type: str = "Release"
    targets: tuple[str, ...] = LLAMA_TARGETS + NATIVE_TARGETS

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UsageError(f"backend {self.backend!r}: choose from {', '.join(BACKENDS)}")
        if self.cpu not in ("portable", "native"):
            raise UsageError(f"cpu {self.cpu!r}: choose portable or native")
        if self.kv_pairs and self.backend != "cuda":
            raise UsageError("--kv/--kv-pairs select CUDA flash-attention kernels; they need --backend cuda "
                             "(the CPU, Metal and Vulkan backends run every K/V pair)")
        if self.rpc and RPC_TARGET not in self.targets:
            object.__setattr__(self, "targets", tuple(self.targets) + (RPC_TARGET,))

    @property
    def fa_pairs(self) -> tuple[str, ...] | str:
        """The FA pairs a CUDA build will have: the default set plus what was asked for."""
        if self.kv_pairs == "all":
            return "all"
        return tuple(sorted(set(DEFAULT_FA_PAIRS) | set(self.kv_pairs)))

    def has_fa_pair(self, k: str, v: str) -> bool:
        if self.backend != "cuda":
            return True
        return self.fa_pairs == "all" or f"{k}-{v}" in self.fa_pairs

    def cmake_args(self, source_dir: str, has_fa_quants_option: bool = True,
                   version: tuple[str, str] | None = None, machine: str = "x86_64") -> list[str]:
        """configure arguments for the top-level CMakeLists.txt (-S/-B are the caller's)."""
        args = [f"-DLLAMA_CPP_DIR={source_dir}", f"-DCMAKE_BUILD_TYPE={self.build_type}",
                "-DLLAMA_USE_PREBUILT_UI=OFF"]
        if version is not None:
            args += [f"-DLLAMA_BUILD_NUMBER={version[0]}", f"-DLLAMA_BUILD_COMMIT={version[1]}"]
        if self.cpu == "portable":
            x86 = machine.lower() in ("x86_64", "amd64")
            args += list(PORTABLE_X86) if x86 else ["-DGGML_NATIVE=OFF"]
        else:
            args += ["-DGGML_NATIVE=ON"]
        if self.backend == "cuda":
            args.append("-DGGML_CUDA=ON")
            if self.cuda_archs:
                args.append(f"-DCMAKE_CUDA_ARCHITECTURES={self.cuda_archs}")
            if self.kv_pairs:
                if has_fa_quants_option:
                    value = "all" if self.fa_pairs == "all" else ";".join(self.fa_pairs)
                    args.append(f"-DGGML_CUDA_FA_QUANTS={value}")
                else:
                    # older llama.cpp: only the all-or-nothing switch exists
                    args.append("-DGGML_CUDA_FA_ALL_QUANTS=ON")
        elif self.backend == "metal":
            args.append("-DGGML_METAL=ON")
        elif self.backend == "vulkan":
            args.append("-DGGML_VULKAN=ON")
        if self.backend != "metal":
            args.append("-DGGML_METAL=OFF")
        args.append(f"-DGGML_RPC={'ON' if self.rpc else 'OFF'}")
        return args

    @property
    def build_targets(self) -> tuple[str, ...]:
        """What cmake --build makes: the targets, plus the ggufrope RPC worker in an RPC build."""
        extra = (RPC_WORKER_TARGET,) if self.rpc and RPC_WORKER_TARGET not in self.targets else ()
        return tuple(self.targets) + extra

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kv_pairs"] = self.kv_pairs if isinstance(self.kv_pairs, str) else list(self.kv_pairs)
        d["targets"] = list(self.targets)
        return d

    def key(self, source_hash: str) -> str:
        """Cache key: the spec and the source it builds."""
        blob = json.dumps({"spec": self.to_dict(), "source": source_hash}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def name(self) -> str:
        parts = [self.backend] + (["rpc"] if self.rpc else []) + ([self.cpu] if self.backend == "cpu" else [])
        if self.kv_pairs:
            parts.append("fa-all" if self.kv_pairs == "all" else "fa-" + "+".join(self.kv_pairs))
        return "-".join(parts)
