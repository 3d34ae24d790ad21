"""`build` options that would compile or download for minutes, run end to end without doing so:
--force and --offline reach the step after the cache / the fetch (a stand-in cmake on PATH
records whether it was called and fails), --python as --dry-run (the real linking into
llama-cpp-python's package is test_build_spec's; doing it here would change the shared venv),
`build show` against the real default build, `build clean`, and `build cuda-toolkit
--fetch/--offline/--json` against a stand-in nvcc whose toolkit has none of the other pieces
(pip is pointed at no index, so nothing is downloaded)."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import REAL_HOME, run_cli

NVCC = """#!/bin/sh
case "$1" in
  --version) echo "Cuda compilation tools, release 13.0, V13.0.88";;
  -dryrun) echo "#$ _HERE_={root}/bin";;
esac
"""
CMAKE = """#!/bin/sh
echo "$@" >> {log}
exit 1
"""
OFFLINE_REFUSAL = "missing and fetching is off (--offline or GGUFROPE_OFFLINE=1); install "


@pytest.fixture
def stand_ins(tmp_path):
    """A bin dir with a cmake that logs its argv and fails, and an nvcc (CUDA 13.0) whose own
    toolkit root holds nothing else; PATH = that dir + /usr/bin:/bin."""
    d = tmp_path / "bin"
    root = tmp_path / "toolkit"
    (root / "bin").mkdir(parents=True)
    d.mkdir()
    log = tmp_path / "cmake.calls"
    (d / "cmake").write_text(CMAKE.format(log=log))
    (d / "nvcc").write_text(NVCC.format(root=root))
    for f in ("cmake", "nvcc"):
        os.chmod(d / f, 0o755)
    env = {"PATH": f"{d}:/usr/bin:/bin", "CUDA_HOME": "", "CUDA_PATH": "", "CUDAToolkit_ROOT": "",
           "GGUFROPE_OFFLINE": ""}
    return env, log


def _calls(log) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _cached_default_build(cpu_build, llama_src) -> str:
    """The default spec's build dir in this test's GGUFROPE_HOME, stamped as the real build
    (whose binaries it names): `build` finds it cached."""
    from ggufrope.build import builder
    from ggufrope.build.source import resolve_source
    from ggufrope.build.spec import BuildSpec
    bdir = builder.build_dir(BuildSpec(), resolve_source(llama_src, dict(os.environ)), dict(os.environ))
    os.makedirs(bdir)
    shutil.copy(os.path.join(cpu_build.dir, "build.json"), os.path.join(bdir, "build.json"))
    return bdir


def test_build_force_skips_the_cached_build(cpu_build, llama_src, stand_ins):
    env, log = stand_ins
    _cached_default_build(cpu_build, llama_src)
    r = run_cli("build", "--source", llama_src, env_extra=env, check=True)
    assert r.stdout.splitlines() == [f"cpu-portable: cached; llama.cpp {cpu_build.source.commit}", cpu_build.bin_dir]
    assert _calls(log) == []
    r = run_cli("build", "--source", llama_src, "--force", env_extra=env)
    assert r.returncode == 9, r.stderr
    assert "ggufrope: error: cmake configure failed (exit 1)" in r.stderr
    (configure,) = _calls(log)                  # it configured again, in the same build dir
    assert f"-DLLAMA_CPP_DIR={llama_src}" in configure.split()


def test_build_offline_refuses_to_fetch_the_cuda_toolkit(llama_src, stand_ins):
    env, log = stand_ins
    r = run_cli("build", "--backend", "cuda", "--source", llama_src, "--offline", env_extra=env)
    assert r.returncode == 9, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("ggufrope: error: CUDA 13.0: nvcc, cudart, cccl") and OFFLINE_REFUSAL in line
    assert "fetching CUDA" not in r.stderr and _calls(log) == []
    # without --offline the same build goes to PyPI for the pieces (no index here: exit 8)
    r = run_cli("build", "--backend", "cuda", "--source", llama_src, env_extra={**env, "PIP_NO_INDEX": "1"})
    assert r.returncode == 8, r.stderr
    assert "note: fetching CUDA 13.0 nvcc, cudart, cccl" in r.stderr and "pip download of" in r.stderr


def test_build_python_dry_run_names_the_libraries_it_would_link(cpu_build):
    # the real cache: its llama.cpp tree is the one llama-cpp-python vendors, so no second compile
    env = {"GGUFROPE_HOME": REAL_HOME}
    r = run_cli("build", "--python", "--dry-run", env_extra=env, check=True)
    configure, build, python = r.stdout.splitlines()
    assert configure.split()[configure.split().index("-B") + 1] == os.path.join(cpu_build.dir, "build")
    import llama_cpp
    lib = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    assert python == f"python engine: would link {cpu_build.bin_dir}/lib*.so into {lib}"
    assert len(run_cli("build", "--dry-run", env_extra=env, check=True).stdout.splitlines()) == 2


def test_build_show_the_real_default_build(cpu_build):
    env = {"GGUFROPE_HOME": REAL_HOME}
    stamp = json.loads(run_cli("build", "show", "--json", env_extra=env, check=True).stdout)
    with open(os.path.join(cpu_build.dir, "build.json")) as f:
        assert stamp == json.load(f)
    assert stamp["bin_dir"] == cpu_build.bin_dir and "llama-completion" in stamp["binaries"]
    rows = dict(ln.split(None, 1) for ln in run_cli("build", "show", env_extra=env, check=True).stdout.splitlines())
    assert rows["spec"].strip() == "cpu-portable" and rows["bin_dir"].strip() == cpu_build.bin_dir
    assert rows["smoke"].strip() == "test  passed"
    # a spec never built: exit 9 and the command that builds it
    r = run_cli("build", "--build-type", "Debug", "show", "--json", env_extra=env)
    assert r.returncode == 9 and "not built yet" in r.stderr and r.stdout == ""


def test_build_clean_one_unknown_and_all(cpu_build, llama_src):
    bdir = _cached_default_build(cpu_build, llama_src)
    builds = os.path.dirname(bdir)
    os.makedirs(os.path.join(builds, "cpu-native-unfinished"))
    r = run_cli("build", "clean", "no-such-build")
    assert r.returncode == 2
    assert r.stderr.strip() == ("ggufrope: error: no-such-build: no such build (known: cpu-native-unfinished, "
                                f"{os.path.basename(bdir)})")
    r = run_cli("build", "clean", "cpu-native-unfinished", check=True)
    assert r.stdout.splitlines() == ["removed cpu-native-unfinished"] and os.listdir(builds) == [os.path.basename(bdir)]
    r = run_cli("build", "clean", check=True)
    assert r.stdout.splitlines() == [f"removed {os.path.basename(bdir)}"] and os.listdir(builds) == []
    assert os.path.exists(cpu_build.bin_dir)           # only the stamp copy went; the real build stays
    assert run_cli("build", "clean", check=True).stdout.strip() == f"nothing to clean in {builds}"


def test_cuda_toolkit_json_fetch_and_offline(stand_ins):
    env, _ = stand_ins
    doc = json.loads(run_cli("build", "cuda-toolkit", "--json", env_extra=env, check=True).stdout)
    assert doc["release"] == "13.0" and doc["nvcc_version"] == "13.0.88"
    assert doc["pieces"]["nvcc"]["path"].endswith("/bin/nvcc")
    assert {"cudart", "cccl"} <= set(doc["to_fetch"])    # the compiler set comes whole from nvcc's root
    home = os.environ["GGUFROPE_HOME"]
    assert doc["cache_root"] == os.path.join(home, "cuda", "13.0", "root")
    # --fetch --offline: refused, naming what to install; nothing written
    r = run_cli("build", "cuda-toolkit", "--fetch", "--offline", "--json", env_extra=env)
    assert r.returncode == 9 and r.stdout == ""
    assert r.stderr.startswith("ggufrope: error: CUDA 13.0: ") and OFFLINE_REFUSAL in r.stderr
    assert not os.path.exists(os.path.join(home, "cuda"))
    # --fetch alone asks pip (no index here: exit 8 from pip's answer); without --fetch nothing is asked
    r = run_cli("build", "cuda-toolkit", "--fetch", env_extra={**env, "PIP_NO_INDEX": "1"})
    assert r.returncode == 8 and "pip download of nvidia-cuda-nvcc==13.0.88" in r.stderr
    r = run_cli("build", "cuda-toolkit", env_extra={**env, "PIP_NO_INDEX": "1"}, check=True)
    assert "fix: ggufrope build cuda-toolkit --fetch" in r.stdout and "pip download" not in r.stderr
