"""The CUDA toolkit a `--backend cuda` build needs, and NVIDIA's PyPI wheels for what is missing.

llama.cpp's CUDA build (ggml/src/ggml-cuda/CMakeLists.txt) needs four pieces: nvcc (with its
crt headers and nvvm), the CUDA runtime (cudart), CCCL (cub/thrust/libcu++ headers) and cuBLAS.
A missing cuBLAS is the usual wall ("Target ggml-cuda links to CUDA::cublas but the target was
not found"). NVIDIA publishes each piece as a wheel on PyPI; a CUDA 13 wheel lays its files
out under `nvidia/cu13/{bin,include,lib,nvvm}`, the layout of a toolkit root. So a missing piece
is fetched (pinned version, sha256-checked by pip and again here) into
`$GGUFROPE_HOME/cuda/<release>/root/`, and the build is pointed at it:

- a system nvcc plus fetched cuBLAS: CUDA_cublas_LIBRARY / CUDA_cublasLt_LIBRARY (FindCUDAToolkit
  takes preset cache variables) and the headers on ggml-cuda's include path (the superbuild's
  GGUFROPE_CUDA_INCLUDE_DIRS);
- no usable system nvcc/cudart/CCCL: the whole compiler set is fetched and is the toolkit root
  (CMAKE_CUDA_COMPILER, CUDAToolkit_ROOT).

Either way the fetched lib/ is on the binaries' build rpath, so they run without
LD_LIBRARY_PATH. Without the driver's libcuda (a build box with no NVIDIA driver) ggml-cuda
cannot link CUDA::cuda_driver, so the build uses GGML_CUDA_NO_VMM=ON (the VMM memory pool is the
only user of the driver API) and says so.

Which release: the installed nvcc's (`nvcc --version`), else the driver's (`nvidia-smi`: the
newest pinned release it supports). Pins exist for the releases in RELEASES only; anything else
is refused with what to install instead.
"""
from __future__ import annotations

import glob as _glob
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ggufrope import paths
from ggufrope.build.world import World
from ggufrope.childproc import Runner
from ggufrope.errors import BuildError, FetchError

PIECES = ("nvcc", "cudart", "cccl", "cublas")
COMPILER_SET = ("nvcc", "cudart", "cccl")  # used together: fetched as one set when any is missing


@dataclass(frozen=True)
class Wheel:
    """One pinned PyPI wheel: its size and sha256 per machine (from PyPI's file list)."""

    name: str
    version: str
    files: Mapping[str, tuple[int, str]]
    """machine (x86_64, aarch64) -> (size in bytes, sha256)."""

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"

    def requirement(self) -> str:
        """A pip requirements line that only accepts the pinned files (--require-hashes)."""
        return self.pin + "".join(f" --hash=sha256:{h}" for _, h in self.files.values())


@dataclass(frozen=True)
class Release:
    """A CUDA release ggufrope can fetch: its wheels per piece, as pinned on PyPI."""

    version: str
    """major.minor, as nvcc and nvidia-smi print it."""
    prefix: str
    """Where the wheels put the toolkit root (stripped when unpacking)."""
    wheels: Mapping[str, tuple[Wheel, ...]]
    """piece -> the wheels that make it."""

    def wheels_for(self, pieces: Sequence[str]) -> list[Wheel]:
        out: list[Wheel] = []
        for p in pieces:
            out += [w for w in self.wheels[p] if w not in out]
        return out


# Pins from PyPI's simple index (files and sha256). 13.0 matches the nvcc 13.0.88 here; its
# wheels are what NVIDIA's own pip-installed toolkit is made of (see its dist-info folders).
# One row per wheel file: piece, package, version, machine, size in bytes, sha256.
_PINS_13_0 = """
nvcc    nvidia-cuda-nvcc     13.0.88    x86_64   37384532   56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03
nvcc    nvidia-cuda-nvcc     13.0.88    aarch64  32455430   c7ff28f86a24effdc6c034fa15230c549a273e4771b10a7fec14996f8cf3307f
nvcc    nvidia-cuda-crt      13.0.88    x86_64   134086     2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4
nvcc    nvidia-cuda-crt      13.0.88    aarch64  134086     ee2ea2a97073e02ee62bb27841f437332be2c248e3eac013df07997ada39c003
nvcc    nvidia-nvvm          13.0.88    x86_64   61601415   c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0
nvcc    nvidia-nvvm          13.0.88    aarch64  59234185   c4376a291d72d22a315d9d2f69bdae8f8cd83a627f75bad395cee49a0fe65dc1
cudart  nvidia-cuda-runtime  13.0.96    x86_64   2243632    7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
cudart  nvidia-cuda-runtime  13.0.96    aarch64  2261060    ef9bcbe90493a2b9d810e43d249adb3d02e98dd30200d86607d8d02687c43f55
cccl    nvidia-cuda-cccl     13.0.85    x86_64   3120526    e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649
cccl    nvidia-cuda-cccl     13.0.85    aarch64  3120528    6f0203e29fed809ee2b7fe9b1344df66ecab990c37d6a2e0e189b26d6c97ed7c
cublas  nvidia-cublas        13.0.2.14  x86_64   420882912  0cf238ffdbe46c00cb9aa98e7bca745c223a5ca5a53e686ac8b3e5a08fe80d6c
cublas  nvidia-cublas        13.0.2.14  aarch64  540253486  17165c296de689662b96e0ef4f21dfbff3092ff00d0e3e59470f5acb08c0f87d
"""


def _release(version: str, prefix: str, pins: str) -> Release:
    """A Release from a pin table (rows of one wheel's files are grouped; order is kept)."""
    files: dict[tuple[str, str, str], dict[str, tuple[int, str]]] = {}
    for line in pins.strip().splitlines():
        piece, name, ver, machine, size, sha = line.split()
        files.setdefault((piece, name, ver), {})[machine] = (int(size), sha)
    wheels: dict[str, list[Wheel]] = {}
    for (piece, name, ver), by_machine in files.items():
        wheels.setdefault(piece, []).append(Wheel(name, ver, by_machine))
    return Release(version, prefix, {piece: tuple(ws) for piece, ws in wheels.items()})


RELEASES: dict[str, Release] = {"13.0": _release("13.0", "nvidia/cu13/", _PINS_13_0)}

# What shows a piece is present under a toolkit root (any one pattern, relative to the root).
_MARKERS = {
    "nvcc": ("bin/nvcc",),
    "cudart": ("lib/libcudart.so*", "lib64/libcudart.so*", "targets/*/lib/libcudart.so*"),
    "cccl": ("include/cccl/cub/cub.cuh", "include/cub/cub.cuh", "targets/*/include/cccl/cub/cub.cuh",
             "targets/*/include/cub/cub.cuh"),
    "cublas": ("lib/libcublas.so*", "lib64/libcublas.so*", "targets/*/lib/libcublas.so*"),
}
_HEADERS = {"cudart": "cuda_runtime.h", "cublas": "cublas_v2.h"}
# Distribution layouts outside a toolkit root (Debian/Ubuntu's nvidia-cuda-toolkit, RPM distros).
_DISTRO_LIBS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64")
_DRIVER_LIBS = ("/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib/aarch64-linux-gnu/libcuda.so.1",
                "/usr/lib64/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1", "/usr/local/nvidia/lib64/libcuda.so.1")


@dataclass(frozen=True)
class Piece:
    name: str
    source: str
    """system, cached (fetched from PyPI into $GGUFROPE_HOME/cuda) or missing."""
    path: str | None = None


@dataclass(frozen=True)
class Toolkit:
    """The CUDA toolkit a build will use, piece by piece."""

    release: str | None
    """major.minor the pieces must match; None when neither nvcc nor a driver tells."""
    nvcc_version: str | None
    driver_cuda: str | None
    """The CUDA version the NVIDIA driver supports (nvidia-smi), if a driver is installed."""
    driver_lib: str | None
    """libcuda.so.1 (the driver library); absent on a build box without an NVIDIA driver."""
    pieces: tuple[Piece, ...]
    cache_root: str | None
    """$GGUFROPE_HOME/cuda/<release>/root (may not exist yet)."""

    def piece(self, name: str) -> Piece:
        return next(p for p in self.pieces if p.name == name)

    @property
    def missing(self) -> list[str]:
        return [p.name for p in self.pieces if p.source == "missing"]

    @property
    def to_fetch(self) -> list[str]:
        """Pieces to fetch: the whole compiler set when any of it is missing (a fetched cudart
        or CCCL must match the nvcc that compiles against it), plus cuBLAS if missing."""
        miss = set(self.missing)
        out = [p for p in COMPILER_SET if miss & set(COMPILER_SET) and self.piece(p).source != "cached"]
        if "cublas" in miss:
            out.append("cublas")
        return out

    @property
    def uses_cached_compiler(self) -> bool:
        return self.piece("nvcc").source == "cached"

    @property
    def no_vmm(self) -> bool:
        return self.driver_lib is None

    def cmake_args(self) -> list[str]:
        """configure arguments that point llama.cpp's CUDA build at these pieces."""
        args: list[str] = []
        root = self.cache_root
        if self.uses_cached_compiler and root:
            args += [f"-DCMAKE_CUDA_COMPILER={os.path.join(root, 'bin', 'nvcc')}", f"-DCUDAToolkit_ROOT={root}"]
        elif self.piece("cublas").source == "cached" and root:
            lib = os.path.join(root, "lib")
            args += [f"-DCUDA_cublas_LIBRARY={os.path.join(lib, 'libcublas.so')}",
                     f"-DCUDA_cublasLt_LIBRARY={os.path.join(lib, 'libcublasLt.so')}",
                     f"-DGGUFROPE_CUDA_INCLUDE_DIRS={os.path.join(root, 'include')}"]
        if root and any(p.source == "cached" for p in self.pieces):
            # FindCUDAToolkit's imported libraries already put their directory on the build
            # rpath; said explicitly so it does not hinge on CMake's defaults.
            args.append(f"-DCMAKE_BUILD_RPATH={os.path.join(root, 'lib')}")
        if self.no_vmm:
            args.append("-DGGML_CUDA_NO_VMM=ON")
        return args

    def notes(self) -> list[str]:
        out = []
        if self.no_vmm:
            out.append("no NVIDIA driver library (libcuda.so.1) here: building with GGML_CUDA_NO_VMM=ON "
                       "(ggml-cuda's memory pool without CUDA virtual memory; the binaries still run on a GPU)")
        for p in self.pieces:
            if p.source == "cached":
                out.append(f"{p.name}: from PyPI wheels in {self.cache_root}")
        return out

    def to_dict(self) -> dict:
        return {"release": self.release, "nvcc_version": self.nvcc_version, "driver_cuda": self.driver_cuda,
                "driver_lib": self.driver_lib, "cache_root": self.cache_root, "no_vmm": self.no_vmm,
                "pieces": {p.name: {"source": p.source, "path": p.path} for p in self.pieces}}


def cuda_home(env: Mapping[str, str] | None = None) -> str:
    return os.path.join(paths.home(env), "cuda")


def nvcc_version(w: World) -> tuple[str | None, str | None]:
    """(nvcc path, full version like 13.0.88) from `nvcc --version` ("release 13.0, V13.0.88")."""
    nvcc = w.which("nvcc")
    if not nvcc:
        for root in _roots(w):
            if w.exists(os.path.join(root, "bin", "nvcc")):
                nvcc = os.path.join(root, "bin", "nvcc")
                break
    if not nvcc:
        return None, None
    out = w.run([nvcc, "--version"]) or ""
    m = re.search(r"release (\d+\.\d+), V(\d+\.\d+\.\d+)", out) or re.search(r"release (\d+\.\d+)", out)
    if not m:
        return nvcc, None
    return nvcc, m.group(2) if m.lastindex and m.lastindex >= 2 else m.group(1)


def nvcc_toolkit_root(w: World, nvcc: str) -> str:
    """The root nvcc takes its headers from: its TOP in a dry run (nvcc may be a wrapper
    script, as /usr/local/bin/nvcc is here), else the parent of its real directory."""
    out = w.run([nvcc, "-dryrun", "-c", "ggufrope-probe.cu"]) or ""
    m = re.search(r"^#\$ _HERE_=(.+)$", out, re.M)
    if m:
        return os.path.normpath(os.path.join(m.group(1).strip(), ".."))
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))


def driver_cuda_version(w: World) -> str | None:
    """The CUDA version the installed driver supports, from nvidia-smi's header."""
    smi = w.which("nvidia-smi")
    if not smi:
        return None
    m = re.search(r"CUDA Version:\s*(\d+\.\d+)", w.run([smi]) or "")
    return m.group(1) if m else None


def driver_library(w: World) -> str | None:
    for p in _DRIVER_LIBS:
        if w.exists(p):
            return p
    out = w.run(["ldconfig", "-p"]) or ""
    m = re.search(r"libcuda\.so\.1 \([^)]*\) => (\S+)", out)
    return m.group(1) if m else None


def release_for(nvcc_ver: str | None, driver_cuda: str | None) -> str | None:
    """The release to match: nvcc's major.minor; else the newest pinned release the driver
    supports (same major, minor not above the driver's)."""
    if nvcc_ver:
        return ".".join(nvcc_ver.split(".")[:2])
    if driver_cuda:
        major, minor = (int(x) for x in driver_cuda.split(".")[:2])
        ok = [r for r in RELEASES if int(r.split(".")[0]) == major and int(r.split(".")[1]) <= minor]
        if ok:
            return max(ok, key=lambda r: tuple(int(x) for x in r.split(".")))
        return driver_cuda
    return None


def _roots(w: World, first: str | None = None) -> list[str]:
    roots = [first] if first else []
    for var in ("CUDA_PATH", "CUDA_HOME", "CUDAToolkit_ROOT"):
        if w.env.get(var):
            roots.append(w.env[var])
    nvcc = w.which("nvcc")
    if nvcc:
        roots.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    roots += ["/usr/local/cuda"] + sorted(w.glob("/usr/local/cuda-*"))
    return list(dict.fromkeys(roots))


def _find_under(g: Callable[[str], list[str]], root: str, piece: str) -> str | None:
    for pat in _MARKERS[piece]:
        hits = g(os.path.join(root, pat))
        if hits:
            hdr = _HEADERS.get(piece)
            if hdr and not (g(os.path.join(root, "include", hdr))
                            or g(os.path.join(root, "targets", "*", "include", hdr))):
                continue  # the runtime library without its -dev headers cannot be compiled against
            return sorted(hits)[0]
    return None


def _system_piece(w: World, piece: str, nvcc_root: str | None) -> str | None:
    # The compiler set must come from nvcc's own root (its headers are the ones nvcc uses).
    roots = [nvcc_root] if piece in COMPILER_SET and nvcc_root else _roots(w, nvcc_root)
    for root in roots:
        hit = _find_under(w.glob, root, piece)
        if hit:
            return hit
    if piece == "cublas" and w.exists("/usr/include/cublas_v2.h"):
        for d in _DISTRO_LIBS:
            hits = w.glob(os.path.join(d, "libcublas.so*"))
            if hits:
                return sorted(hits)[0]
    if piece in ("cudart", "cccl") and nvcc_root and nvcc_root.startswith("/usr/lib/nvidia-cuda-toolkit"):
        # Debian's nvidia-cuda-toolkit: nvcc's headers live in /usr/include
        probe = {"cudart": "/usr/include/cuda_runtime.h", "cccl": "/usr/include/cub/cub.cuh"}[piece]
        if w.exists(probe):
            return probe
    return None


def _cached_pieces(root: str) -> set[str]:
    """Pieces fetched into ggufrope's own cache (the real file system, whatever the World)."""
    stamp = os.path.join(os.path.dirname(root), "pieces.json")
    try:
        with open(stamp) as f:
            done = set(json.load(f).get("pieces", []))
    except (OSError, ValueError):
        return set()
    return {p for p in done if _find_under(_glob.glob, root, p)}


def detect(w: World, env: Mapping[str, str] | None = None) -> Toolkit:
    """Each piece: from the system, from ggufrope's PyPI cache, or missing. Fetches nothing."""
    env = w.env if env is None else env
    nvcc, nv_ver = nvcc_version(w)
    drv = driver_cuda_version(w)
    rel = release_for(nv_ver, drv)
    root = os.path.join(cuda_home(env), rel, "root") if rel else None
    cached = _cached_pieces(root) if root else set()
    nvcc_root = nvcc_toolkit_root(w, nvcc) if nvcc else None
    # The compiler set is used whole: the system's when nvcc's root has cudart and CCCL too,
    # else the fetched one (a fetched cudart must match the nvcc compiling against it).
    system_compiler = nvcc is not None and all(_system_piece(w, p, nvcc_root) for p in ("cudart", "cccl"))
    pieces = []
    for name in PIECES:
        sys_hit = nvcc if name == "nvcc" else _system_piece(w, name, nvcc_root)
        in_cache = _find_under(_glob.glob, root, name) if name in cached else None
        if name in COMPILER_SET and not system_compiler and in_cache:
            pieces.append(Piece(name, "cached", in_cache))
        elif sys_hit:
            pieces.append(Piece(name, "system", sys_hit))
        elif in_cache:
            pieces.append(Piece(name, "cached", in_cache))
        else:
            pieces.append(Piece(name, "missing"))
    return Toolkit(rel, nv_ver, drv, driver_library(w), tuple(pieces), root)


def fix_command(tk: Toolkit, machine: str = "x86_64") -> str:
    """What to run to get the missing pieces."""
    if not tk.missing:
        return ""
    rel = RELEASES.get(tk.release or "")
    if rel is None:
        return ("install the CUDA toolkit with cuBLAS from NVIDIA (https://developer.nvidia.com/cuda-downloads)"
                + (f"; ggufrope has PyPI pins for CUDA {', '.join(RELEASES)} only" if tk.release else ""))
    wheels = rel.wheels_for(tk.to_fetch)
    size = sum(w.files.get(_arch(machine), (0, ""))[0] for w in wheels)
    return (f"ggufrope build cuda-toolkit --fetch (pip downloads {', '.join(w.pin for w in wheels)}, "
            f"{_mib(size)}, into {os.path.dirname(tk.cache_root or '')})")


def offline_message(tk: Toolkit) -> str:
    rel = RELEASES.get(tk.release or "")
    pins = " ".join(w.pin for w in rel.wheels_for(tk.to_fetch)) if rel else ""
    what = ", ".join(tk.to_fetch)
    apt = {"cublas": "libcublas-dev", "cudart": "cuda-cudart-dev", "cccl": "cuda-cccl", "nvcc": "cuda-nvcc"}
    ver = (tk.release or "X.Y").replace(".", "-")
    pkgs = " ".join(f"{apt[p]}-{ver}" for p in tk.to_fetch)
    return (f"CUDA {tk.release or '(unknown release)'}: {what} missing and fetching is off (--offline or "
            f"GGUFROPE_OFFLINE=1); install {pkgs} from NVIDIA's package repository"
            + (f", or allow ggufrope to fetch the wheels {pins} from PyPI" if pins else ""))


def _arch(machine: str) -> str:
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine.lower())


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def fetch(tk: Toolkit, env: Mapping[str, str], machine: str, log: Callable[[str], None] = lambda s: None,
          runner: Runner = subprocess.run, python: str = sys.executable,
          pieces: Sequence[str] | None = None) -> list[str]:
    """Download the pinned wheels for tk.to_fetch (or `pieces`) with pip, check their sha256,
    unpack them into the cache root, record them in pieces.json. Returns the pieces fetched."""
    want = list(tk.to_fetch if pieces is None else pieces)
    if not want:
        return []
    arch = _arch(machine)
    rel = RELEASES.get(tk.release or "")
    if rel is None:
        raise BuildError(f"CUDA {tk.release or '(no nvcc, no driver)'}: {', '.join(want)} missing and ggufrope "
                         f"has PyPI pins for CUDA {', '.join(RELEASES)} only; {fix_command(tk, machine)}")
    wheels = rel.wheels_for(want)
    if any(arch not in w.files for w in wheels):
        raise BuildError(f"CUDA {rel.version}: no pinned wheels for {machine}; install the CUDA toolkit from NVIDIA")
    base = os.path.join(cuda_home(env), rel.version)
    root = os.path.join(base, "root")
    wdir = os.path.join(base, "wheels")
    os.makedirs(wdir, exist_ok=True)
    total = sum(w.files[arch][0] for w in wheels)
    log(f"fetching CUDA {rel.version} {', '.join(want)} from PyPI ({_mib(total)}): "
        + ", ".join(f"{w.pin} ({_mib(w.files[arch][0])})" for w in wheels) + f" -> {base}")
    req = os.path.join(wdir, "requirements.txt")
    with open(req, "w") as f:
        f.write("\n".join(w.requirement() for w in wheels) + "\n")
    argv = [python, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--only-binary=:all:",
            "--no-deps", "--require-hashes", "-r", req, "-d", wdir]
    r = runner(argv, capture_output=True, text=True, errors="replace")
    if r.returncode != 0:
        raise FetchError(f"pip download of {', '.join(w.pin for w in wheels)} failed: "
                         f"{(r.stderr or r.stdout).strip()[-400:]}")
    for w in wheels:
        path = _downloaded(wdir, w)
        digest = _sha256(path)
        if digest != w.files[arch][1]:
            os.remove(path)
            raise FetchError(f"{path}: sha256 {digest} is not the pinned {w.files[arch][1]} ({w.pin}); removed it; retry")
        log(f"unpacking {os.path.basename(path)}")
        _unpack(path, rel.prefix, root)
    _link_unversioned(os.path.join(root, "lib"))
    stamp = os.path.join(base, "pieces.json")
    done = set(want)
    try:
        with open(stamp) as f:
            done |= set(json.load(f).get("pieces", []))
    except (OSError, ValueError):
        pass
    with open(stamp + ".tmp", "w") as f:
        json.dump({"release": rel.version, "pieces": sorted(done), "machine": arch,
                   "wheels": {w.pin: w.files[arch][1] for w in rel.wheels_for(sorted(done))}}, f, indent=2)
    os.replace(stamp + ".tmp", stamp)
    for w in wheels:  # unpacked: the root is the cache; the archives would double the disk use
        os.remove(_downloaded(wdir, w))
    return want


def _downloaded(wdir: str, w: Wheel) -> str:
    stem = w.name.replace("-", "_") + "-" + w.version + "-"
    hits = [f for f in os.listdir(wdir) if f.startswith(stem) and f.endswith(".whl")]
    if not hits:
        raise FetchError(f"{wdir}: pip reported success but left no {w.pin} wheel")
    return os.path.join(wdir, sorted(hits)[0])


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _unpack(whl: str, prefix: str, root: str) -> None:
    """Extract the members under prefix into root, keeping the executable bits wheels carry."""
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            if not info.filename.startswith(prefix) or info.is_dir():
                continue
            rel = info.filename[len(prefix):]
            if not rel or rel.startswith("/") or ".." in rel.split("/"):
                raise FetchError(f"{whl}: unsafe member {info.filename!r}")
            dest = os.path.join(root, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            tmp = dest + ".part"
            with z.open(info) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(tmp, mode or 0o644)
            os.replace(tmp, dest)


def _link_unversioned(lib: str) -> None:
    """libX.so -> libX.so.N: wheels ship only the soname files, CMake's find_library wants libX.so."""
    if not os.path.isdir(lib):
        return
    for f in os.listdir(lib):
        m = re.fullmatch(r"(lib[\w+-]+\.so)\.\d+", f)
        if m and not os.path.lexists(os.path.join(lib, m.group(1))):
            os.symlink(f, os.path.join(lib, m.group(1)))
    if os.path.isdir(lib) and not os.path.lexists(os.path.join(os.path.dirname(lib), "lib64")):
        os.symlink("lib", os.path.join(os.path.dirname(lib), "lib64"))


def prepare(env: Mapping[str, str], offline: bool, machine: str, log: Callable[[str], None] = lambda s: None,
            world: World | None = None, runner: Runner = subprocess.run) -> Toolkit:
    """The toolkit for a CUDA build: detect, fetch what is missing (unless offline), detect again."""
    w = world or World(env=dict(env))
    tk = detect(w, env)
    if not tk.to_fetch:
        return tk
    if offline:
        raise BuildError(offline_message(tk))
    fetch(tk, env, machine, log, runner)
    tk = detect(w, env)
    if tk.missing:
        raise BuildError(f"CUDA {tk.release}: still missing after the fetch: {', '.join(tk.missing)} "
                         f"(looked in {tk.cache_root})")
    return tk


def is_offline(env: Mapping[str, str]) -> bool:
    return env.get("GGUFROPE_OFFLINE", "").lower() in ("1", "true", "yes", "on")


__all__ = ["PIECES", "RELEASES", "Piece", "Release", "Toolkit", "Wheel", "cuda_home", "detect", "fetch",
           "fix_command", "is_offline", "offline_message", "prepare", "release_for"]
