"""`ggufrope serve A B`: two presets behind one llama-server in router mode, asked by name with
the real `openai` client; each answers with its own settings (the router shows each model's
llama-server argv, /props?model=NAME its context and sampling); an unknown model name is
llama.cpp's error at once; Ctrl-C/SIGTERM stops the router and its model processes. Bad
presets, unknown names and a memory plan that does not fit fail before anything starts, with
one line naming the preset. --all, --models-max, server.load_on_startup."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from conftest import REPO, hang_guard, run_cli

LINEAR = """extends = "demo"
description = "demo with linear 2x RoPE and an f16 KV cache"
cache_type_k = "f16"
cache_type_v = "f16"
[rope]
plan = "linear:16384"
[sampling]
temperature = 0.7
"""
BAD = """extends = "demo"
cache_type_v = "q4_0"
flash_attn = "off"
"""


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch, cpu_build):
    cfg = tmp_path / "config"
    (cfg / "presets").mkdir(parents=True)
    (cfg / "presets" / "demo-linear.toml").write_text(LINEAR)
    monkeypatch.setenv("GGUFROPE_CONFIG", str(cfg))
    monkeypatch.setenv("GGUFROPE_BUILD_BIN_DIR", cpu_build.bin_dir)
    return cfg


COMMON = ["--ctx", "2048", "--port", "auto", "--set", "threads=1", "--set", "n_predict=8"]


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _options(argv: list[str]) -> dict[str, str]:
    """llama-server's argv as the router shows it (long names, in its own order) -> {option: value}."""
    out, i = {}, 1
    while i < len(argv):
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out[argv[i]] = argv[i + 1]
            i += 2
        else:
            out[argv[i]] = "true"
            i += 1
    return out


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def test_two_presets_answer_by_name_with_their_own_settings(smollm2):
    import openai
    args = ["serve", "demo", "demo-linear", "--model", smollm2, *COMMON, "--models-max", "2"]
    ini = run_cli(*args, "--dry-run", check=True).stdout
    assert "[demo]" in ini and "[demo-linear]" in ini and "--models-max 2" in ini
    proc = subprocess.Popen([sys.executable, "-m", "ggufrope", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        with hang_guard(300, "serve demo demo-linear"):
            line = proc.stdout.readline()
            assert line.startswith("serving demo, demo-linear at http://127.0.0.1:"), (line, proc.poll())
            url = line.split(" at ", 1)[1].split()[0]
            # openai's default retries: the router may close a kept-alive connection after a proxied
            # answer (llama.cpp 0c1e570), which the client sees as a disconnect and retries
            client = openai.OpenAI(base_url=url + "/v1", api_key="none", timeout=120, max_retries=2)
            for name in ("demo", "demo-linear"):
                r = client.chat.completions.create(model=name, max_tokens=8,
                                                   messages=[{"role": "user", "content": "Say hello."}])
                assert r.choices[0].message.content.strip(), (name, r)
            # each model's llama-server got its preset's RoPE flags, cache types and sampling
            models = {m["id"]: m for m in _get(url + "/models")["data"]}
            assert set(models) >= {"demo", "demo-linear"}
            a = {n: _options(models[n]["status"]["args"]) for n in ("demo", "demo-linear")}
            assert {k: a["demo"][k] for k in ("--rope-scaling", "--rope-scale", "--yarn-orig-ctx", "--cache-type-k",
                                              "--temperature")} == {
                "--rope-scaling": "yarn", "--rope-scale": "4", "--yarn-orig-ctx": "8192", "--cache-type-k": "q8_0",
                "--temperature": "0.2"}, a["demo"]
            assert {k: a["demo-linear"][k] for k in ("--rope-scaling", "--rope-scale", "--override-kv",
                                                     "--cache-type-k", "--temperature")} == {
                "--rope-scaling": "linear", "--rope-scale": "2", "--override-kv": "llama.context_length=int:16384",
                "--cache-type-k": "f16", "--temperature": "0.7"}, a["demo-linear"]
            props = {n: _get(f"{url}/props?model={n}") for n in ("demo", "demo-linear")}
            assert props["demo"]["default_generation_settings"]["n_ctx"] == 2048
            temps = {n: props[n]["default_generation_settings"]["params"]["temperature"] for n in props}
            assert temps == {"demo": pytest.approx(0.2), "demo-linear": pytest.approx(0.7)}
            # a name that is not a preset: llama.cpp's own error, at once
            with pytest.raises(openai.APIStatusError) as e:
                client.chat.completions.create(model="nosuch", max_tokens=4,
                                               messages=[{"role": "user", "content": "hi"}])
            assert e.value.status_code in (400, 404) and "nosuch" in str(e.value)
            router = [c for c in _children(proc.pid)]
            assert len(router) == 1
            models_procs = _children(router[0])
            assert len(models_procs) == 2   # one llama-server per loaded preset
            proc.send_signal(signal.SIGTERM)
            assert proc.wait() == 0
        assert not any(_alive(p) for p in router + models_procs)
        assert "stopped llama-server and its models (SIGTERM" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_verbose_shows_the_routers_log(smollm2):
    proc = subprocess.Popen([sys.executable, "-m", "ggufrope", "serve", "demo", "demo-linear", "--model", smollm2,
                             *COMMON, "--verbose"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with hang_guard(300, "serve demo demo-linear --verbose"):
            line = proc.stdout.readline()
            assert line.startswith("serving demo, demo-linear at http://127.0.0.1:"), (line, proc.poll())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait() == 0
        err = proc.stderr.read()
        assert "listening on http://127.0.0.1:" in err and "router" in err, err[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _fails_before_start(*args: str) -> str:
    r = run_cli("serve", *args, timeout=300)
    assert r.returncode != 0
    assert not os.path.isdir(os.path.join(os.environ["GGUFROPE_HOME"], "router"))   # no INI, no router
    return r.stderr.strip()


def test_unknown_and_bad_presets_fail_before_anything_starts(smollm2, _config):
    err = _fails_before_start("demo", "nosuch", "--model", smollm2, *COMMON)
    assert err.startswith("ggufrope: error: preset 'nosuch': no preset named 'nosuch'"), err
    assert len(err.splitlines()) == 1
    (_config / "presets" / "demo-bad.toml").write_text(BAD)
    err = _fails_before_start("demo", "demo-bad", "--model", smollm2, *COMMON)
    assert err.splitlines()[0].startswith("ggufrope: error: preset 'demo-bad': "), err
    assert "flash" in err
    # the models that may be loaded at once must fit together
    meminfo = _config / "meminfo"
    meminfo.write_text("MemAvailable: 900000 kB\n")   # ~880 MiB: one demo and 600 MiB headroom fit, two do not
    r = run_cli("serve", "demo", "demo-linear", "--model", smollm2, *COMMON, "--set", "memory.headroom_mib=600",
                "--dry-run", env_extra={"GGUFROPE_MEMINFO": str(meminfo)}, timeout=300)
    assert r.returncode != 0 and "loaded together need" in r.stderr and "--models-max 1" in r.stderr, r.stderr
    r = run_cli("serve", "demo", "demo-linear", "--model", smollm2, *COMMON, "--set", "memory.headroom_mib=600",
                "--models-max", "1", "--dry-run", env_extra={"GGUFROPE_MEMINFO": str(meminfo)}, check=True)
    assert "--models-max 1" in r.stdout


def test_all_serves_every_user_preset_and_load_on_startup(smollm2, _config):
    (_config / "presets" / "demo-fast.toml").write_text('extends = "demo"\n[server]\nload_on_startup = true\n')
    r = run_cli("serve", "--all", "--model", smollm2, *COMMON, "--dry-run", check=True)
    sections = [ln for ln in r.stdout.splitlines() if ln.startswith("[")]
    assert sections == ["[demo-fast]", "[demo-linear]"]
    fast, linear = r.stdout.split("[demo-fast]", 1)[1].split("[demo-linear]")
    assert re.search(r"^load-on-startup\s*= true$", fast, re.M) and re.search(r"^load-on-startup\s*= false$", linear, re.M)
