"""CUDA builds without a GPU: which release and wheels to fetch, what each machine lacks, the
fetch itself (pinned, sha256-checked, unpacked into a toolkit root), the kernel and ldd checks on
a finished build, the smoke test on a machine without a CUDA device, and, every run, a real
CMake configure of the CUDA spec with cuBLAS fetched from PyPI (no compile: that takes 30+ min on
two cores; docs/cuda.md records the full build).

Worlds are injected (doctor's World): the machines described here do not exist. pip is replaced
by a function only in the fetch tests that must see a bad or synthetic wheel; the configure test
downloads the real one."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest

from conftest import REAL_HOME
from ggufrope.build import cuda_check, cuda_toolkit
from ggufrope.build.cuda_toolkit import Release, Wheel, detect, release_for
from ggufrope.build.spec import BuildSpec
from ggufrope.build.world import World
from ggufrope.errors import BuildError, FetchError
from test_build_spec import fake_glob

NVCC_13 = {"nvcc --version": "Cuda compilation tools, release 13.0, V13.0.88",
           "nvcc -dryrun": "#$ _HERE_=/usr/local/cuda-13.0/bin\n#$ TOP=/usr/local/cuda-13.0/bin/.."}
SMI_13 = {"nvidia-smi": "| NVIDIA-SMI 580.82.07   Driver Version: 580.82.07   CUDA Version: 13.0 |"}
SMI_12 = {"nvidia-smi": "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |"}
TOOLKIT_13 = ["/usr/local/cuda-13.0/bin/nvcc", "/usr/local/cuda-13.0/lib64/libcudart.so.13",
              "/usr/local/cuda-13.0/include/cuda_runtime.h", "/usr/local/cuda-13.0/include/cccl/cub/cub.cuh"]
DRIVER = ["/usr/lib/x86_64-linux-gnu/libcuda.so.1"]
NVCC = {"nvcc": "/usr/local/bin/nvcc"}   # a wrapper script, as here: the root comes from nvcc -dryrun


def world(home, which: dict, files: list[str], outputs: dict) -> World:
    return World(which=lambda n: which.get(n), exists=lambda p: p in files, glob=fake_glob(files),
                 run=lambda argv: next((v for k, v in outputs.items()
                                        if " ".join([os.path.basename(argv[0]), *argv[1:]]).startswith(k)), None),
                 machine="x86_64", env={"GGUFROPE_HOME": str(home)})


@pytest.mark.parametrize("nvcc,driver,expect", [
    pytest.param("13.0.88", None, "13.0", id="nvcc-decides"),
    pytest.param("13.0.88", "13.2", "13.0", id="nvcc-over-driver"),
    pytest.param(None, "13.0", "13.0", id="driver-exact"),
    pytest.param(None, "13.2", "13.0", id="driver-newer-minor-takes-newest-pin"),
    pytest.param(None, "12.4", "12.4", id="driver-without-pin"),
    pytest.param(None, None, None, id="nothing-tells"),
])
def test_release_selection(nvcc, driver, expect):
    assert release_for(nvcc, driver) == expect


def _sources(tk) -> dict[str, str]:
    return {p.name: p.source for p in tk.pieces}


@pytest.mark.parametrize("which,files,outputs,sources,to_fetch,no_vmm", [
    pytest.param(NVCC, TOOLKIT_13, NVCC_13,
                 dict(nvcc="system", cudart="system", cccl="system", cublas="missing"), ["cublas"], True,
                 id="this-machine-nvcc-without-cublas"),
    pytest.param({**NVCC, "nvidia-smi": "/usr/bin/nvidia-smi"}, TOOLKIT_13 + DRIVER, {**NVCC_13, **SMI_13},
                 dict(nvcc="system", cudart="system", cccl="system", cublas="missing"), ["cublas"], False,
                 id="gpu-box-nvcc-without-cublas"),
    pytest.param({"nvidia-smi": "/usr/bin/nvidia-smi"}, DRIVER, SMI_13,
                 dict(nvcc="missing", cudart="missing", cccl="missing", cublas="missing"),
                 ["nvcc", "cudart", "cccl", "cublas"], False, id="driver-only"),
    pytest.param(NVCC, ["/usr/local/cuda-13.0/bin/nvcc", "/usr/local/cuda-13.0/include/cccl/cub/cub.cuh"], NVCC_13,
                 dict(nvcc="system", cudart="missing", cccl="system", cublas="missing"),
                 ["nvcc", "cudart", "cccl", "cublas"], True, id="nvcc-without-cudart-fetches-the-set"),
])
def test_detect(tmp_path, which, files, outputs, sources, to_fetch, no_vmm):
    tk = detect(world(tmp_path, which, files, outputs))
    assert _sources(tk) == sources
    assert tk.to_fetch == to_fetch
    assert tk.no_vmm is no_vmm
    assert ("-DGGML_CUDA_NO_VMM=ON" in tk.cmake_args()) is no_vmm


def test_driver_without_pinned_release_names_what_to_install(tmp_path):
    from ggufrope.build.doctor import cuda_missing
    w = world(tmp_path, {"nvidia-smi": "/usr/bin/nvidia-smi"}, DRIVER, SMI_12)
    msg = cuda_missing(w)[0]
    assert "install the CUDA toolkit with cuBLAS from NVIDIA" in msg and "PyPI pins for CUDA 13.0 only" in msg
    with pytest.raises(BuildError, match=r"CUDA 12\.4: nvcc, cudart, cccl, cublas missing"):
        cuda_toolkit.prepare(w.env, offline=False, machine="x86_64", world=w)


def _fake_cache(home, pieces: dict[str, list[str]]) -> str:
    """A cache root as fetch leaves it (files + pieces.json); returns the root."""
    root = os.path.join(home, "cuda", "13.0", "root")
    for files in pieces.values():
        for f in files:
            os.makedirs(os.path.dirname(os.path.join(root, f)), exist_ok=True)
            open(os.path.join(root, f), "w").close()
    with open(os.path.join(home, "cuda", "13.0", "pieces.json"), "w") as f:
        json.dump({"pieces": sorted(pieces)}, f)
    return root


CUBLAS_FILES = ["lib/libcublas.so.13", "lib/libcublasLt.so.13", "include/cublas_v2.h"]


def test_cached_cublas_next_to_system_nvcc(tmp_path):
    root = _fake_cache(tmp_path, {"cublas": CUBLAS_FILES})
    tk = detect(world(tmp_path, NVCC, TOOLKIT_13, NVCC_13))
    assert _sources(tk) == dict(nvcc="system", cudart="system", cccl="system", cublas="cached")
    assert tk.to_fetch == []
    assert tk.cmake_args() == [f"-DCUDA_cublas_LIBRARY={root}/lib/libcublas.so",
                               f"-DCUDA_cublasLt_LIBRARY={root}/lib/libcublasLt.so",
                               f"-DGGUFROPE_CUDA_INCLUDE_DIRS={root}/include",
                               f"-DCMAKE_BUILD_RPATH={root}/lib", "-DGGML_CUDA_NO_VMM=ON"]


def test_cached_compiler_set_is_the_toolkit_root(tmp_path):
    root = _fake_cache(tmp_path, {"nvcc": ["bin/nvcc"], "cudart": ["lib/libcudart.so.13", "include/cuda_runtime.h"],
                                  "cccl": ["include/cccl/cub/cub.cuh"], "cublas": CUBLAS_FILES})
    tk = detect(world(tmp_path, {"nvidia-smi": "/usr/bin/nvidia-smi"}, DRIVER, SMI_13))
    assert _sources(tk) == dict(nvcc="cached", cudart="cached", cccl="cached", cublas="cached")
    assert tk.cmake_args() == [f"-DCMAKE_CUDA_COMPILER={root}/bin/nvcc", f"-DCUDAToolkit_ROOT={root}",
                               f"-DCMAKE_BUILD_RPATH={root}/lib"]


def test_doctor_reports_cached_pieces_as_ready(tmp_path):
    from ggufrope.build.doctor import cuda_missing
    _fake_cache(tmp_path, {"cublas": CUBLAS_FILES})
    assert cuda_missing(world(tmp_path, NVCC, TOOLKIT_13, NVCC_13)) == []


def test_offline_refuses_and_names_what_to_install(tmp_path):
    w = world(tmp_path, NVCC, TOOLKIT_13, NVCC_13)
    with pytest.raises(BuildError) as e:
        cuda_toolkit.prepare(w.env, offline=True, machine="x86_64", world=w)
    msg = str(e.value)
    assert msg.startswith("CUDA 13.0: cublas missing and fetching is off (--offline or GGUFROPE_OFFLINE=1)")
    assert "libcublas-dev-13-0" in msg and "nvidia-cublas==13.0.2.14" in msg
    assert not os.path.exists(tmp_path / "cuda")


def _synthetic_wheel(path: str, members: dict[str, tuple[bytes, int]]) -> tuple[int, str]:
    with zipfile.ZipFile(path, "w") as z:
        for name, (data, mode) in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            z.writestr(info, data)
    with open(path, "rb") as f:
        blob = f.read()
    return len(blob), hashlib.sha256(blob).hexdigest()


def _fake_pip(src: str, calls: list):
    """Stands in for `pip download` (the real one runs in test_cuda_configure_with_fetched_cublas):
    copies a prepared wheel into -d."""
    def run(argv, **kw):
        calls.append(argv)
        shutil.copy(src, argv[argv.index("-d") + 1])
        return subprocess.CompletedProcess(argv, 0, "", "")
    return run


def test_fetch_unpacks_a_pinned_wheel_into_a_toolkit_root(tmp_path, monkeypatch):
    whl = str(tmp_path / "nvidia_cublas-9.9.1-py3-none-manylinux_2_27_x86_64.whl")
    size, sha = _synthetic_wheel(whl, {"nvidia/cu99/lib/libcublas.so.99": (b"elf", 0o755),
                                       "nvidia/cu99/include/cublas_v2.h": (b"/* h */", 0o644),
                                       "nvidia/cu99/bin/tool": (b"#!", 0o755),
                                       "nvidia_cublas-9.9.1.dist-info/RECORD": (b"", 0o644)})
    wheel = Wheel("nvidia-cublas", "9.9.1", {"x86_64": (size, sha), "aarch64": (1, "0" * 64)})
    monkeypatch.setitem(cuda_toolkit.RELEASES, "99.0", Release("99.0", "nvidia/cu99/", {"cublas": (wheel,)}))
    tk = cuda_toolkit.Toolkit("99.0", "99.0.1", None, None, (cuda_toolkit.Piece("nvcc", "system", "/x/nvcc"),
                              cuda_toolkit.Piece("cudart", "system"), cuda_toolkit.Piece("cccl", "system"),
                              cuda_toolkit.Piece("cublas", "missing")), str(tmp_path / "cuda" / "99.0" / "root"))
    calls: list = []
    logs: list = []
    got = cuda_toolkit.fetch(tk, {"GGUFROPE_HOME": str(tmp_path)}, "x86_64", logs.append, _fake_pip(whl, calls))
    assert got == ["cublas"]
    argv = calls[0]
    assert argv[1:5] == ["-m", "pip", "download", "--disable-pip-version-check"]
    assert {"--only-binary=:all:", "--no-deps", "--require-hashes"} <= set(argv)
    req = open(argv[argv.index("-r") + 1]).read()
    assert req == f"nvidia-cublas==9.9.1 --hash=sha256:{sha} --hash=sha256:{'0' * 64}\n"
    assert logs[0].startswith("fetching CUDA 99.0 cublas from PyPI (0 MiB): nvidia-cublas==9.9.1")
    root = tmp_path / "cuda" / "99.0" / "root"
    assert (root / "include" / "cublas_v2.h").read_bytes() == b"/* h */"
    assert os.readlink(root / "lib" / "libcublas.so") == "libcublas.so.99"
    assert os.stat(root / "bin" / "tool").st_mode & stat.S_IXUSR
    assert not (root / "nvidia_cublas-9.9.1.dist-info").exists()
    assert json.load(open(tmp_path / "cuda" / "99.0" / "pieces.json"))["pieces"] == ["cublas"]
    assert not os.path.exists(tmp_path / "cuda" / "99.0" / "wheels" / os.path.basename(whl))


def test_fetch_refuses_a_wheel_with_another_sha256(tmp_path):
    whl = str(tmp_path / "nvidia_cublas-13.0.2.14-py3-none-manylinux_2_27_x86_64.whl")
    _synthetic_wheel(whl, {"nvidia/cu13/lib/libcublas.so.13": (b"not the real one", 0o755)})
    tk = detect(world(tmp_path, NVCC, TOOLKIT_13, NVCC_13))
    with pytest.raises(FetchError, match=r"sha256 \w+ is not the pinned 0cf238ff"):
        cuda_toolkit.fetch(tk, {"GGUFROPE_HOME": str(tmp_path)}, "x86_64", runner=_fake_pip(whl, []))
    assert not (tmp_path / "cuda" / "13.0" / "root").exists()


NM_SAMPLE = """\
00000000001a2b30 t void flash_attn_ext_vec<128, 1, (ggml_type)8, (ggml_type)2, false>(char const*, char const*)
00000000001a2c30 t void flash_attn_ext_vec<64, 2, (ggml_type)1, (ggml_type)1, true>(char const*, char const*)
00000000001a2d30 t __device_stub__flash_attn_ext_vec<256, 1, (ggml_type)30, (ggml_type)30, false>(char const*)
00000000001a2e30 t void flash_attn_ext_vec<128, 1, (ggml_type)2, (ggml_type)2, false>(char const*, char const*)
00000000001a2f30 t void flash_attn_ext_vec<128, 1, (ggml_type)8, (ggml_type)8, false>(char const*, char const*)
00000000001a3030 T ggml_cuda_flash_attn_ext_vec(ggml_backend_cuda_context&, ggml_tensor*)
"""


def test_fa_pairs_from_nm_symbols():
    assert cuda_check.fa_pairs_in(NM_SAMPLE) == ("bf16-bf16", "f16-f16", "q4_0-q4_0", "q8_0-q4_0", "q8_0-q8_0")
    spec = BuildSpec(backend="cuda", kv_pairs=("q8_0-q4_0",))
    assert cuda_check.expected_pairs(spec) == cuda_check.fa_pairs_in(NM_SAMPLE)
    assert len(cuda_check.expected_pairs(BuildSpec(backend="cuda", kv_pairs="all"))) == 49


def test_ldd_lines():
    out = ("\tlibcudart.so.13 => /usr/local/cuda-13.0/lib/libcudart.so.13 (0x1)\n"
           "\tlibcublas.so.13 => /home/u/.cache/ggufrope/cuda/13.0/root/lib/libcublas.so.13 (0x2)\n"
           "\tlibcublasLt.so.13 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x3)\n")
    assert cuda_check.ldd("x.so", run=lambda argv: out) == {
        "libcudart.so.13": "/usr/local/cuda-13.0/lib/libcudart.so.13",
        "libcublas.so.13": "/home/u/.cache/ggufrope/cuda/13.0/root/lib/libcublas.so.13",
        "libcublasLt.so.13": None}


def test_smoke_of_a_cuda_build_on_a_machine_without_a_device(cpu_build):
    """The CPU part of the smoke test runs (a real build's llama-completion); the CUDA part
    reports that it did not run instead of failing."""
    from dataclasses import replace

    from ggufrope.build.smoke import smoke_test
    res = replace(cpu_build, spec=BuildSpec(backend="cuda"))
    assert smoke_test(res, has_cuda_device=lambda: False) == "CPU passed; CUDA not run: no CUDA device"


def _real_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GGUFROPE_HOME"}
    env["GGUFROPE_HOME"] = REAL_HOME   # the ~420 MB cuBLAS wheel is fetched once per machine
    return env


def test_cuda_configure_with_fetched_cublas(tmp_path, llama_src):
    """CMake-level check of the CUDA spec on every run: cuBLAS fetched from PyPI (cached in the
    real cache), configure only, no compile. The FA pairs asked for are the instances CMake
    compiles, the others are not."""
    from ggufrope.build import builder
    from ggufrope.build.source import source_info
    w = World(env=_real_env())
    tk = detect(w)
    if tk.release is None:
        pytest.skip("no nvcc and no NVIDIA driver: nothing tells which CUDA release to fetch")
    tk = cuda_toolkit.prepare(w.env, offline=False, machine=platform.machine(),
                              log=lambda s: sys.stderr.write(s + "\n"), world=w)
    spec = BuildSpec(backend="cuda", cuda_archs="90", kv_pairs=("q8_0-q4_0",))
    src = source_info(llama_src)
    configure, _ = builder.commands(spec, src, str(tmp_path), builder.repo_root(), 2,
                                    "Ninja" if shutil.which("ninja") else None, tk.cmake_args())
    r = subprocess.run(configure, capture_output=True, text=True, errors="replace", timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "Including CUDA backend" in r.stdout
    cache = open(tmp_path / "build" / "CMakeCache.txt").read()
    assert "GGML_CUDA_FA_QUANTS:STRING=bf16-bf16;f16-f16;q4_0-q4_0;q8_0-q4_0;q8_0-q8_0" in cache
    if tk.piece("cublas").source == "cached":
        assert f"CUDA_cublas_LIBRARY:FILEPATH={tk.cache_root}/lib/libcublas.so" in cache
    gen = open(tmp_path / "build" / ("build.ninja" if shutil.which("ninja") else "Makefile")).read()
    for pair in ("q8_0-q4_0", "q8_0-q8_0", "q4_0-q4_0", "f16-f16", "bf16-bf16"):
        assert f"fattn-vec-instance-{pair}.cu" in gen
    for pair in ("q4_0-q8_0", "q5_0-q5_0", "f16-q8_0"):
        assert f"fattn-vec-instance-{pair}.cu" not in gen
