"""run / serve / chat with real processes: llama-completion, llama-server (answered by the
openai client, stopped by SIGTERM and Ctrl-C without leaving a process), llama-cpp-python
streaming in a subprocess driven through stdin. One thread each: the machine is small."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from conftest import REPO, run_cli

pytestmark = pytest.mark.slow
FAST = ["--set", "threads=1", "--set", "n_predict=8"]


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch, cpu_build):
    monkeypatch.setenv("GGUFROPE_CONFIG", str(tmp_path / "config"))
    # the real build's binaries (GGUFROPE_HOME is per test; the build lives in the real cache)
    monkeypatch.setenv("GGUFROPE_BUILD_BIN_DIR", cpu_build.bin_dir)


def test_run_prompt_patched_copy_with_tiny_model(tiny_model):
    m = tiny_model(n_ctx=256)
    r = subprocess.run([sys.executable, "-m", "ggufrope", "run", "demo", "--model", m, "--ctx", "1024", "--set",
                        "apply=patched", "--prompt", "a b c", *FAST], capture_output=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    # (not asserting on the random-weight model's text: llama-completion prints through an
    # asynchronous logger that it does not drain at exit, so a run this short can lose its tail
    # when stdout is a pipe; see llama.cpp common/log.cpp common_log_main)
    home = os.environ["GGUFROPE_HOME"]
    (copy,) = os.listdir(os.path.join(home, "patched"))
    from ggufrope.gguf import read_header
    with read_header(os.path.join(home, "patched", copy)) as h:
        assert h.get("llama.rope.scaling.type") == "yarn" and h.get("llama.rope.scaling.factor") == 128.0
    assert os.path.getmtime(m) <= os.path.getmtime(os.path.join(home, "patched", copy))


def test_run_reports_llama_cpp_failure(tiny_model):
    m = tiny_model(n_ctx=256)
    r = run_cli("run", "demo", "--model", m, "--ctx", "1024", "--prompt", "a", *FAST, "--", "--no-such-flag",
                timeout=120)
    assert r.returncode == 11
    assert "llama-completion exited with exit code" in r.stderr and "full log:" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_serve_answers_openai_client_and_stops_cleanly(smollm2, sig):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ggufrope", "serve", "demo", "--model", smollm2, "--ctx", "2048",
                             "--port", str(port), *FAST], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()   # printed once /health answers
        assert line.startswith(f"serving demo at http://127.0.0.1:{port}"), (line, proc.stderr.read()
                                                                             if proc.poll() is not None else "")
        from openai import OpenAI
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
        out = client.chat.completions.create(model="demo", max_tokens=8,
                                             messages=[{"role": "user", "content": "Say hello."}])
        assert out.choices[0].message.content
        assert out.usage.completion_tokens >= 1
        err_so_far = ""
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
        err_so_far = proc.stderr.read()
        assert rc == 0, err_so_far
        pid = int(re.search(r"llama-server pid (\d+)", err_so_far).group(1))
        assert not _alive(pid)
        assert f"stopped llama-server ({sig.name}" in err_so_far
        with socket.socket() as s:   # nothing listens on the port any more (TIME_WAIT is fine)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_chat_streams_through_llama_cpp_python(tmp_path, smollm2):
    """Interactive chat over stdin: its first turn is, token for token, the one-shot `chat -p`
    answer (which test_cli_run holds to llama-cpp-python's own), then a reply to the second line."""
    preset = tmp_path / "greedy.toml"
    preset.write_text('extends = "demo"\nn_predict = 8\n[sampling]\ntemperature = 0\n')
    args = [sys.executable, "-m", "ggufrope", "chat", "--preset-file", str(preset), "--model", smollm2,
            "--ctx", "512", "--set", "threads=1"]
    one = subprocess.run([*args, "-p", "What is the capital of France?"], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert one.returncode == 0 and one.stdout.strip(), one.stderr
    r = subprocess.run(args, input="What is the capital of France?\nAnd of Italy?\n", capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(one.stdout), (r.stdout, one.stdout)
    assert r.stdout[len(one.stdout):].strip(), r.stdout     # the second line got its own reply


def test_serve_failure_is_reported_not_hung(tiny_model):
    m = tiny_model(n_ctx=256)
    r = run_cli("serve", "demo", "--model", m, "--ctx", "1024", "--port", "auto", *FAST, "--", "--no-such-flag",
                timeout=120)  # the timeout is the hang guard: a failed start must not wait for requests
    assert r.returncode == 11 and "llama-server exited with" in r.stderr


def test_run_interactive_llama_cli_reads_stdin(smollm2):
    r = subprocess.run([sys.executable, "-m", "ggufrope", "run", "demo", "--model", smollm2, "--ctx", "2048", *FAST],
                       input="What is 2+2?\n", capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "> What is 2+2?" in r.stdout and "Generation:" in r.stdout


def test_exported_llama_ini_is_what_llama_cpp_reads(tmp_path, tiny_model, cpu_build):
    """The INI export, used as llama.cpp's own config file (~/.config/llama.cpp/config.ini, whose
    [*] section every tool reads), gives llama.cpp the preset's context and RoPE settings."""
    m = tiny_model(n_ctx=256)
    r = run_cli("presets", "export", "llama-2-7b-yarn-16k-kv-q8", "--model", m, "--ctx", "2048", "--to", "llama-ini",
                check=True)
    ini = re.sub(r"(?m)^\[.*\]$", "[*]", r.stdout)
    (tmp_path / "xdg" / "llama.cpp").mkdir(parents=True)
    (tmp_path / "xdg" / "llama.cpp" / "config.ini").write_text(ini)
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    # one run: native/log_flush.cpp drains llama.cpp's async logger at exit (llama.cpp#22142)
    out = subprocess.run([cpu_build.binaries["llama-completion"], "-p", "a", "-n", "1", "-t", "1", "-no-cnv",
                          "-lv", "4"], env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    log = out.stderr.decode(errors="replace")
    assert out.returncode == 0, log[-2000:]
    assert "using config file" in log and "ignoring option" not in log
    assert re.search(r"llama_context: n_ctx += 2048", log)
    assert re.search(r"llama_context: freq_scale += 0.25", log)
    assert re.search(r"llama_kv_cache: size = .*K \(q8_0\).*V \(q8_0\)", log)


def test_serve_with_an_api_key_from_a_file_keeps_it_off_every_argv(tmp_path, tiny_model):
    """The key reaches llama-server through LLAMA_API_KEY: /v1/models refuses a client without
    it and answers one with it, and neither ggufrope's nor llama-server's argv holds it."""
    import urllib.error
    import urllib.request
    key = "k3y-from-a-file-0123456789"
    kf = tmp_path / "key"
    kf.write_text(key + "\n")
    kf.chmod(0o600)
    preset = tmp_path / "keyed.toml"
    preset.write_text(f'engine = "server"\n[server]\napi_key_file = "{kf}"\n')
    m = tiny_model(n_ctx=256)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ggufrope", "serve", "--preset-file", str(preset), "--model", m,
                             "--ctx", "256", "--port", str(port), *FAST], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving keyed at http://127.0.0.1:{port}"), (line, proc.stderr.read()
                                                                              if proc.poll() is not None else "")
        url = f"http://127.0.0.1:{port}/v1/models"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url, timeout=30)
        assert e.value.code == 401
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
        for pid in (proc.pid, *[int(p) for p in os.listdir("/proc") if p.isdigit()]):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    assert key.encode() not in f.read()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

