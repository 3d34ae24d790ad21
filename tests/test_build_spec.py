"""Build specs map to the right cmake arguments (checked against expected lists for every
backend; CUDA, Metal and Vulkan cannot be built on this machine), and doctor says what is missing."""
import pytest

from ggufrope.build.doctor import World, backends, tools
from ggufrope.build.spec import BuildSpec, parse_kv_pairs
from ggufrope.errors import UsageError

SRC = "/src/llama.cpp"
PORTABLE = ["-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON"]
HEAD = [f"-DLLAMA_CPP_DIR={SRC}", "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_USE_PREBUILT_UI=OFF"]


@pytest.mark.parametrize("spec,kw,expect", [
    pytest.param(BuildSpec(), {}, HEAD + PORTABLE + ["-DGGML_METAL=OFF", "-DGGML_RPC=OFF"], id="cpu-portable"),
    pytest.param(BuildSpec(cpu="native"), {}, HEAD + ["-DGGML_NATIVE=ON", "-DGGML_METAL=OFF", "-DGGML_RPC=OFF"],
                 id="cpu-native"),
    pytest.param(BuildSpec(rpc=True), {}, HEAD + PORTABLE + ["-DGGML_METAL=OFF", "-DGGML_RPC=ON"], id="rpc"),
    pytest.param(BuildSpec(backend="cuda", cuda_archs="90", kv_pairs=parse_kv_pairs(None, ["q8_0-q4_0"])), {},
                 HEAD + PORTABLE + ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=90",
                                    "-DGGML_CUDA_FA_QUANTS=bf16-bf16;f16-f16;q4_0-q4_0;q8_0-q4_0;q8_0-q8_0",
                                    "-DGGML_METAL=OFF", "-DGGML_RPC=OFF"], id="cuda-mixed-pair"),
    pytest.param(BuildSpec(backend="cuda", kv_pairs="all"), {},
                 HEAD + PORTABLE + ["-DGGML_CUDA=ON", "-DGGML_CUDA_FA_QUANTS=all", "-DGGML_METAL=OFF",
                                    "-DGGML_RPC=OFF"], id="cuda-all"),
    pytest.param(BuildSpec(backend="cuda", kv_pairs=("q8_0-q4_0",)), {"has_fa_quants_option": False},
                 HEAD + PORTABLE + ["-DGGML_CUDA=ON", "-DGGML_CUDA_FA_ALL_QUANTS=ON", "-DGGML_METAL=OFF",
                                    "-DGGML_RPC=OFF"], id="cuda-old-tree-all-quants"),
    pytest.param(BuildSpec(backend="cuda"), {}, HEAD + PORTABLE + ["-DGGML_CUDA=ON", "-DGGML_METAL=OFF",
                                                                   "-DGGML_RPC=OFF"], id="cuda-default-set"),
    pytest.param(BuildSpec(backend="metal", rpc=True), {"machine": "arm64"},
                 HEAD + ["-DGGML_NATIVE=OFF", "-DGGML_METAL=ON", "-DGGML_RPC=ON"], id="metal-arm64"),
    pytest.param(BuildSpec(backend="vulkan"), {}, HEAD + PORTABLE + ["-DGGML_VULKAN=ON", "-DGGML_METAL=OFF",
                                                                     "-DGGML_RPC=OFF"], id="vulkan"),
])
def test_cmake_args(spec, kw, expect):
    assert spec.cmake_args(SRC, **kw) == expect


def test_version_is_passed_through():
    args = BuildSpec().cmake_args(SRC, version=("1234", "0c1e570"))
    assert "-DLLAMA_BUILD_NUMBER=1234" in args and "-DLLAMA_BUILD_COMMIT=0c1e570" in args


def test_rpc_adds_the_server_target():
    assert "ggml-rpc-server" in BuildSpec(rpc=True).targets
    assert "ggml-rpc-server" not in BuildSpec().targets


def test_spec_is_hashable_and_keyed_by_source():
    a, b = BuildSpec(), BuildSpec()
    assert hash(a) == hash(b) and a.key("s1") == b.key("s1") != a.key("s2")
    assert BuildSpec(rpc=True).key("s1") != a.key("s1")


def test_fa_pairs():
    s = BuildSpec(backend="cuda", kv_pairs=parse_kv_pairs(["q8_0,q4_0"], ["q8_0-q4_0"]))
    assert s.kv_pairs == ("q4_0-q4_0", "q8_0-q4_0", "q8_0-q8_0")
    assert s.has_fa_pair("q8_0", "q4_0") and not s.has_fa_pair("q4_0", "q8_0")
    assert BuildSpec(backend="cuda").has_fa_pair("q8_0", "q8_0")
    assert not BuildSpec(backend="cuda").has_fa_pair("q8_0", "q4_0")
    assert BuildSpec().has_fa_pair("q8_0", "q4_0")  # CPU runs every pair


@pytest.mark.parametrize("kwargs,msg", [
    pytest.param(dict(backend="rocm"), "backend", id="unknown-backend"),
    pytest.param(dict(kv_pairs=("q8_0-q4_0",)), "need --backend cuda", id="kv-on-cpu"),
    pytest.param(dict(cpu="fast"), "portable or native", id="bad-cpu"),
])
def test_bad_specs(kwargs, msg):
    with pytest.raises(UsageError, match=msg):
        BuildSpec(**kwargs)


@pytest.mark.parametrize("square,pairs,msg", [
    pytest.param(["q3_k"], None, "no CUDA flash-attention kernel", id="bad-type"),
    pytest.param(None, ["q8_0"], "expected K-V", id="not-a-pair"),
])
def test_bad_kv(square, pairs, msg):
    with pytest.raises(UsageError, match=msg):
        parse_kv_pairs(square, pairs)


def fake_glob(files: list[str]):
    """glob over a list of files (and the directories they imply), component by component."""
    import fnmatch

    def g(pat: str) -> list[str]:
        depth = pat.count("/")
        cands = {"/".join(f.split("/")[:depth + 1]) for f in files if f.count("/") >= depth}
        return sorted(c for c in cands if fnmatch.fnmatch(c, pat))
    return g


def _world(found: dict[str, str], files: list[str], system="Linux", outputs: dict | None = None):
    outputs = outputs or {}
    return World(which=lambda n: found.get(n), exists=lambda p: p in files, glob=fake_glob(files),
                 run=lambda argv: next((v for k, v in outputs.items() if k in " ".join(argv)), None),
                 system=system, env={"GGUFROPE_HOME": "/nonexistent/ggufrope-home"})


NVCC_13 = {"--version": "Cuda compilation tools, release 13.0, V13.0.88",
           "-dryrun": "#$ _HERE_=/usr/local/cuda-13.0/bin\n#$ TOP=/usr/local/cuda-13.0/bin/.."}
TOOLKIT_13 = ["/usr/local/cuda-13.0/bin/nvcc", "/usr/local/cuda-13.0/lib64/libcudart.so.13",
              "/usr/local/cuda-13.0/include/cuda_runtime.h", "/usr/local/cuda-13.0/include/cccl/cub/cub.cuh"]


def test_doctor_nvcc_without_cublas():
    w = _world({"cmake": "/usr/bin/cmake", "c++": "/usr/bin/c++", "nvcc": "/usr/local/bin/nvcc"}, TOOLKIT_13,
               outputs=NVCC_13)
    w.version = lambda exe, *a: "3.25.1" if "cmake" in exe else "13.0"
    st = {b.backend: b for b in backends(w, tools(w))}
    assert st["cpu"].ready and st["rpc"].ready
    msg = st["cuda"].missing[0]
    assert not st["cuda"].ready and msg.startswith("cuBLAS (nvcc 13.0.88 is present")
    assert "ggufrope build cuda-toolkit --fetch (pip downloads nvidia-cublas==13.0.2.14, 401 MiB" in msg
    assert not st["metal"].ready and "Apple" in st["metal"].missing[0]


def test_doctor_cuda_ready_with_system_cublas():
    files = TOOLKIT_13 + ["/usr/local/cuda-13.0/lib64/libcublas.so.13", "/usr/local/cuda-13.0/include/cublas_v2.h"]
    w = _world({"cmake": "/usr/bin/cmake", "c++": "/usr/bin/c++", "nvcc": "/usr/local/bin/nvcc"}, files,
               outputs=NVCC_13)
    w.version = lambda exe, *a: "3.28.0"
    st = {b.backend: b for b in backends(w, tools(w))}
    assert st["cuda"].ready, st["cuda"].missing


def test_doctor_cublas_library_without_headers_is_missing():
    files = TOOLKIT_13 + ["/usr/local/cuda-13.0/lib64/libcublas.so.13"]  # runtime package, no -dev
    w = _world({"cmake": "/usr/bin/cmake", "c++": "/usr/bin/c++", "nvcc": "/usr/local/bin/nvcc"}, files,
               outputs=NVCC_13)
    w.version = lambda exe, *a: "3.28.0"
    st = {b.backend: b for b in backends(w, tools(w))}
    assert st["cuda"].missing[0].startswith("cuBLAS (")


def test_doctor_no_cmake():
    w = _world({"c++": "/usr/bin/c++"}, [])
    w.version = lambda exe, *a: None
    st = {b.backend: b for b in backends(w, tools(w))}
    assert not st["cpu"].ready and "cmake" in st["cpu"].missing[0]


def test_doctor_cpu_note():
    from ggufrope.build.doctor import cpu_note
    assert "keep the portable default" in cpu_note({"avx2", "fma", "f16c", "avx512f"})
    assert "--cpu native" in cpu_note({"sse4_2"})


def test_python_engine_links_the_build_libraries(tmp_path):
    """llama_cpp/lib gets links to the build's shared libraries (what llama-cpp-python loads when
    LLAMA_CPP_LIB_PATH is unset), replacing a compiled wheel's own copies; other files stay."""
    import os

    from ggufrope.build.python_engine import link_libraries, linked_build
    bin_dir, lib_dir = tmp_path / "bin", tmp_path / "llama_cpp" / "lib"
    bin_dir.mkdir()
    lib_dir.mkdir(parents=True)
    for n in ("libllama.so", "libggml.so", "libggml-base.so.0", "libggml-base.so.0.25.3", "libggml-cpu.so",
              "libmtmd.so", "llama-server", "libcommon.a"):
        (bin_dir / n).write_text(n)
    (lib_dir / "libllama.so").write_text("the wheel's own copy")
    (lib_dir / "README").write_text("kept")
    names = link_libraries(str(bin_dir), str(lib_dir))
    assert names == ["libggml-base.so.0", "libggml-base.so.0.25.3", "libggml-cpu.so", "libggml.so", "libllama.so",
                     "libmtmd.so"]
    assert sorted(os.listdir(lib_dir)) == sorted(names + ["README"])
    assert (lib_dir / "libllama.so").read_text() == "libllama.so" and linked_build(str(lib_dir)) == str(bin_dir)


def test_python_engine_needs_a_shared_build(tmp_path):
    from ggufrope.build.python_engine import link_libraries
    from ggufrope.errors import BuildError
    (tmp_path / "bin").mkdir()
    with pytest.raises(BuildError, match="no libllama.so"):
        link_libraries(str(tmp_path / "bin"), str(tmp_path / "lib"))
