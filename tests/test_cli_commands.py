"""End-to-end runs of commands that had none (tests/test_cli_coverage.py lists what is left):
build list/show/clean, build's spec options with --dry-run, doctor, presets list --json."""
from __future__ import annotations

import json
import os

from conftest import run_cli


def test_build_list_on_an_empty_cache():
    r = run_cli("build", "list", "--json", check=True)
    assert json.loads(r.stdout) == []
    r = run_cli("build", "list", check=True)
    assert "Traceback" not in r.stderr


def test_build_dry_run_cuda_kv_pairs(llama_src):
    """docs/builds.md's `build --backend cuda --kv-pairs ... --dry-run`: the cmake commands, nothing run."""
    r = run_cli("build", "--backend", "cuda", "--kv-pairs", "q8_0-q4_0", "--kv", "q4_0", "--cuda-archs", "90",
                "--cpu", "portable", "--build-type", "Release", "--source", llama_src, "--dry-run", check=True)
    configure, build = [ln for ln in r.stdout.splitlines() if ln.startswith("cmake ")]
    assert f"-DLLAMA_CPP_DIR={llama_src}" in configure.split()
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in configure.split() and "-DGGML_CUDA=ON" in configure.split()
    assert "-DCMAKE_BUILD_TYPE=Release" in configure.split()
    assert build.split()[-9:] == ["llama-cli", "llama-completion", "llama-server", "llama-bench", "llama-perplexity",
                                  "llama-fit-params", "ggufrope-probe", "ggufrope-rope-angles", "ggufrope-gguf-oracle"]
    assert not os.path.exists(os.path.join(os.environ["GGUFROPE_HOME"], "builds"))


def test_doctor_json_lists_the_toolchain():
    r = run_cli("doctor", "--json", check=True)
    doc = json.loads(r.stdout)
    assert {t["name"] for t in doc["tools"]} >= {"cmake", "c++"}
    t = run_cli("doctor", check=True)
    assert "cmake" in t.stdout


def test_presets_list_json():
    r = run_cli("presets", "list", "--json", check=True)
    names = {p["name"]: p for p in json.loads(r.stdout)}
    assert names["demo"]["origin"] == "builtin" and names["demo"]["path"].endswith("presets/demo.toml")
