"""run / serve / chat options with real engines, and their output checked for content: greedy
sampling (temperature 0) on the real SmolLM2 gives one answer, which `run --prompt` must print
exactly as the same llama-completion argv run directly does, and `chat --prompt` as
llama-cpp-python called with the same kwargs does. Also --cache-type-k/-v reaching llama.cpp,
--verbose, --preset-file, --set, `restore --dry-run` and `demo --factor`."""
from __future__ import annotations

import ast
import os
import shlex
import subprocess

import pytest

from conftest import file_digest, run_cli, serve_once

QUESTION = "What is the capital of France?"
GREEDY = ["--set", "threads=1", "--set", "n_predict=8", "--set", "sampling.temperature=0",
          "--set", "sampling.seed=1"]


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch, cpu_build):
    monkeypatch.setenv("GGUFROPE_CONFIG", str(tmp_path / "config"))
    # the real build's binaries (GGUFROPE_HOME is per test; the build lives in the real cache)
    monkeypatch.setenv("GGUFROPE_BUILD_BIN_DIR", cpu_build.bin_dir)


def test_run_prompt_greedy_answer_is_llama_completions_own(smollm2):
    args = ["run", "demo", "--model", smollm2, "--ctx", "512", "--prompt", QUESTION, "--cache-type-k", "f16",
            "--cache-type-v", "q8_0", *GREEDY]
    argv = shlex.split(run_cli(*args, "--dry-run", check=True).stdout)
    assert os.path.basename(argv[0]) == "llama-completion"
    # the cache types on ggufrope's command line are llama.cpp's -ctk/-ctv (the preset says q8_0/q8_0)
    assert argv[argv.index("-ctk") + 1] == "f16" and argv[argv.index("-ctv") + 1] == "q8_0"
    assert argv[argv.index("--temp") + 1] == "0" and argv[argv.index("-n") + 1] == "8"
    r = run_cli(*args, timeout=300)
    assert r.returncode == 0, r.stderr
    direct = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert direct.returncode == 0, direct.stderr
    assert r.stdout == direct.stdout
    # a single chat turn: the transcript, then SmolLM2's greedy answer
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert lines[:3] == ["user", QUESTION, "assistant"]
    assert lines[3].startswith("The capital of France is Paris"), r.stdout
    assert r.stderr == ""                                  # llama.cpp's log goes to the log file


def test_run_verbose_shows_llama_cpps_log(smollm2):
    # (SmolLM2, not the tiny model: a random-weight model's bytes need not be UTF-8)
    quiet = run_cli("run", "demo", "--model", smollm2, "--ctx", "512", "--prompt", QUESTION, *GREEDY, timeout=300)
    log = os.path.join(os.environ["GGUFROPE_HOME"], "logs", "demo.llama-completion.log")
    with open(log, errors="replace") as f:
        assert "generate: n_ctx = 512" in f.read()              # without --verbose: in the log file
    loud = run_cli("run", "demo", "--model", smollm2, "--ctx", "512", "--prompt", QUESTION, "--verbose", *GREEDY,
                   timeout=300)
    assert quiet.returncode == loud.returncode == 0, (quiet.stderr, loud.stderr)
    assert "generate: n_ctx = 512" in loud.stderr and "n_predict = 8" in loud.stderr
    assert "generate:" not in quiet.stderr and quiet.stdout == loud.stdout


def _kwargs(text: str) -> dict:
    call = ast.parse(text.strip()).body[0].value
    assert ast.unparse(call.func) == "llama_cpp.Llama"
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def test_chat_prompt_greedy_answer_is_llama_cpp_pythons_own(tmp_path, smollm2):
    preset = tmp_path / "greedy.toml"
    preset.write_text('extends = "demo"\nn_predict = 8\n[sampling]\ntemperature = 0\n')
    args = ["chat", "--preset-file", str(preset), "--model", smollm2, "--ctx", "512", "--cache-type-k", "f16",
            "--cache-type-v", "q8_0", "--set", "threads=1"]
    kw = _kwargs(run_cli(*args, "-p", QUESTION, "--dry-run", check=True).stdout)
    import llama_cpp
    assert (kw["type_k"], kw["type_v"]) == (llama_cpp.GGML_TYPE_F16, llama_cpp.GGML_TYPE_Q8_0)
    assert kw["n_ctx"] == 512 and kw["n_threads"] == 1
    r = run_cli(*args, "--prompt", QUESTION, timeout=300)
    assert r.returncode == 0, r.stderr
    answer = r.stdout.rstrip("\n")
    assert answer.startswith("The capital of France is Paris"), r.stdout
    # the same kwargs and the same turn through llama-cpp-python directly: the same greedy tokens
    llm = llama_cpp.Llama(**kw)
    try:
        out = llm.create_chat_completion(messages=[{"role": "user", "content": QUESTION}], temperature=0,
                                         max_tokens=8)
    finally:
        llm.close()
    assert answer == out["choices"][0]["message"]["content"]
    # --set on chat's command line reaches the model's context (n_predict: a shorter answer)
    r = run_cli(*args, "--set", "n_predict=3", "-p", QUESTION, timeout=300)
    assert r.returncode == 0 and answer.startswith(r.stdout.strip()) and len(r.stdout.strip()) < len(answer)


def _serve_once(*args: str) -> str:
    return serve_once(*args, ready="serving demo at http://127.0.0.1:")


SERVE = ["demo", "--ctx", "512", "--port", "auto", "--set", "threads=1"]


def test_serve_cache_types_reach_llama_server(tiny_model):
    m = tiny_model(n_ctx=256)
    argv = shlex.split(run_cli("serve", *SERVE, "--model", m, "--cache-type-k", "q4_0", "--cache-type-v", "f16",
                               "--dry-run", check=True).stdout)
    assert os.path.basename(argv[0]) == "llama-server"
    assert argv[argv.index("-ctk") + 1] == "q4_0" and argv[argv.index("-ctv") + 1] == "f16"
    _serve_once(*SERVE, "--model", m, "--cache-type-k", "q4_0", "--cache-type-v", "f16")
    with open(os.path.join(os.environ["GGUFROPE_HOME"], "logs", "demo.llama-server.log"), errors="replace") as f:
        started = f.read()
    # the same argv started: llama-server accepted those cache types and listened
    assert "llama_server: listening on http://127.0.0.1:" in started, started[-3000:]


def test_serve_verbose_shows_llama_servers_log(tiny_model):
    m = tiny_model(n_ctx=256)
    quiet = _serve_once(*SERVE, "--model", m)
    loud = _serve_once(*SERVE, "--model", m, "--verbose")
    assert "listening on http://127.0.0.1:" not in quiet
    assert "llama_server: listening on http://127.0.0.1:" in loud


def test_restore_dry_run_changes_nothing(tmp_path, tiny_model):
    m = tiny_model(n_ctx=256)
    patched = str(tmp_path / "p.gguf")
    run_cli("patch", m, "--rope-scaling", "yarn", "--rope-scale", "2", "-o", patched, check=True)
    before, files = file_digest(patched), sorted(os.listdir(tmp_path))
    r = run_cli("restore", patched, "--dry-run", check=True)
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{patched}: would change 4 key(s)")
    assert [ln.split()[0] for ln in lines[1:]] == ["llama.context_length", "llama.rope.scaling.factor",
                                                   "llama.rope.scaling.original_context_length",
                                                   "llama.rope.scaling.type"]
    assert lines[1].split()[1:] == ["512", "->", "256"]
    assert file_digest(patched) == before and sorted(os.listdir(tmp_path)) == files
    # without --dry-run (to a copy) the same four keys change
    r = run_cli("restore", patched, "-o", str(tmp_path / "back.gguf"), check=True)
    assert r.stdout.splitlines()[1:] == lines[1:]


def test_demo_factor(smollm2):
    # the real SmolLM2 file, found by the named-model cache of this test's home (no download)
    home = os.environ["GGUFROPE_HOME"]
    os.makedirs(os.path.join(home, "models"))
    os.symlink(smollm2, os.path.join(home, "models", os.path.basename(smollm2)))
    r = run_cli("demo", "--factor", "2", timeout=300)
    assert r.returncode == 0, r.stderr
    out = os.path.join(home, "models", "SmolLM2-135M-Instruct.Q4_1.yarn2x.gguf")
    assert f"--rope-scaling yarn --rope-scale 2 -o {out}" in r.stdout
    from ggufrope.gguf import read_header
    with read_header(out) as h:
        assert h.get("llama.rope.scaling.type") == "yarn" and h.get("llama.rope.scaling.factor") == 2.0
        assert h.get("llama.context_length") == 2 * 8192
