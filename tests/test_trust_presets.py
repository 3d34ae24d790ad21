"""Presets, secrets and serving, as a hostile or unlucky user would meet them (issue 10, items
5, 6 and 9): API keys never on an argv, never printed, never in a world-readable file, and an
unset $VAR is an error; `serve` warns off loopback without a key, refuses a host or port hidden
in extra llama.cpp arguments, checks the port first and trusts only its own child's /health;
one-line errors instead of tracebacks (a huge system prompt, deeply nested TOML, a worker that
reports absurd devices); RoPE values checked by one validator for every route.

Everything goes through the real CLI; no llama.cpp build is needed (the one launch test uses a
stand-in binary in build.bin_dir)."""
from __future__ import annotations

import json
import os
import shlex
import socket
import socketserver
import stat
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from conftest import run_cli, write_tiny_llama
from ggufrope.presets import schema

KEY = "s3cr3t-key-do-not-leak"


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    """User presets in tmp, and no GGUFROPE_* field variables from the caller."""
    cfg = tmp_path / "config"
    monkeypatch.setenv("GGUFROPE_CONFIG", str(cfg))
    for var in list(os.environ):
        if var in schema.BY_ENV:
            monkeypatch.delenv(var)
    monkeypatch.delenv("NOPE_UNSET", raising=False)
    return cfg


@pytest.fixture
def model(tmp_path) -> str:
    return write_tiny_llama(str(tmp_path / "tiny.gguf"), n_ctx=256)


def preset(tmp_path, text: str, name: str = "p") -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


def one_error(r, code: int | None = None) -> str:
    """The single `ggufrope: error:` line of a failed run (no traceback)."""
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode != 0, (r.stdout, r.stderr)
    if code is not None:
        assert r.returncode == code, (r.returncode, r.stderr)
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("ggufrope: error:")]
    assert len(errs) == 1 and len(errs[0]) < 600, r.stderr
    return errs[0]


def warnings(r) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if "warning" in ln.lower()]


# -- 5. secrets ------------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", [("presets", "check"), ("serve", "--dry-run"), ("run", "--dry-run"),
                                 ("presets", "export", "--to", "llama-swap")],
                         ids=["check", "serve-dry-run", "run-dry-run", "export"])
def test_unset_variable_in_api_key_is_an_error(tmp_path, model, cmd):
    f = preset(tmp_path, '[server]\napi_key = "$NOPE_UNSET"\n')
    r = run_cli(*cmd, "--preset-file", f, "--model", model, "--ctx", "256")
    line = one_error(r, 10)
    assert "server.api_key" in line and "NOPE_UNSET" in line and "not set" in line


def test_api_key_variable_that_is_set_reaches_llama_server_by_environment_only(tmp_path, model):
    f = preset(tmp_path, '[server]\napi_key = "${MY_KEY}"\n')
    r = run_cli("serve", "--preset-file", f, "--model", model, "--ctx", "256", "--dry-run",
                env_extra={"MY_KEY": KEY})
    assert r.returncode == 0, r.stderr
    assert KEY not in r.stdout + r.stderr and "--api-key" not in r.stdout
    assert "LLAMA_API_KEY" in r.stderr


def test_api_key_on_ggufrope_command_line_is_refused_without_echoing_it(model):
    r = run_cli("serve", "demo", "--model", model, "--ctx", "256", "--dry-run", "--set", f"server.api_key={KEY}")
    line = one_error(r, 2)
    assert KEY not in r.stdout + r.stderr
    assert "server.api_key" in line and "GGUFROPE_SERVER_API_KEY" in line and "api_key_file" in line


def test_api_key_reference_on_the_command_line_is_fine(model):
    r = run_cli("serve", "demo", "--model", model, "--ctx", "256", "--dry-run", "--set", "server.api_key=$MY_KEY",
                env_extra={"MY_KEY": KEY})
    assert r.returncode == 0, r.stderr
    assert KEY not in r.stdout + r.stderr


def test_api_key_in_extra_llama_arguments_is_refused(model):
    r = run_cli("serve", "demo", "--model", model, "--ctx", "256", "--dry-run", "--", "--api-key", KEY)
    line = one_error(r, 10)
    assert "--api-key" in line and "server.api_key" in line
    assert KEY not in r.stdout + r.stderr


def test_api_key_file(tmp_path, model):
    kf = tmp_path / "key"
    kf.write_text(f"# the key\n{KEY}\n")
    kf.chmod(0o600)
    f = preset(tmp_path, f'[server]\napi_key_file = "{kf}"\n')
    r = run_cli("serve", "--preset-file", f, "--model", model, "--ctx", "256", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert KEY not in r.stdout + r.stderr and "LLAMA_API_KEY" in r.stderr
    # a key file others can read is flagged; a missing or empty one is an error
    kf.chmod(0o644)
    r = run_cli("serve", "--preset-file", f, "--model", model, "--ctx", "256", "--dry-run")
    assert r.returncode == 0 and any("readable by other users" in w for w in warnings(r)), r.stderr
    kf.write_text("# nothing here\n")
    r = run_cli("serve", "--preset-file", f, "--model", model, "--ctx", "256", "--dry-run")
    assert "server.api_key_file" in one_error(r, 10)
    r = run_cli("serve", "--preset-file", preset(tmp_path, '[server]\napi_key_file = "/nonexistent/k"\n', "q"),
                "--model", model, "--ctx", "256", "--dry-run")
    assert "/nonexistent/k" in one_error(r, 10)


def test_presets_show_masks_the_api_key(tmp_path):
    f = preset(tmp_path, f'[server]\napi_key = "{KEY}"\n')
    for extra in ((), ("--json",)):
        r = run_cli("presets", "show", "--preset-file", f, *extra, check=True)
        assert KEY not in r.stdout and "server.api_key" in r.stdout
    r = run_cli("presets", "show", "demo", "--json", env_extra={"GGUFROPE_SERVER_API_KEY": KEY}, check=True)
    assert KEY not in r.stdout
    assert json.loads(r.stdout)["fields"]["server.api_key"]["value"] == "(set, hidden)"
    # a reference is not a secret: it is shown as written
    r = run_cli("presets", "show", "--preset-file", preset(tmp_path, '[server]\napi_key = "$MY_KEY"\n', "r"),
                check=True)
    assert "$MY_KEY" in r.stdout


@pytest.mark.parametrize("fmt", ["llama-swap", "llama-cpp-server"])
def test_export_with_a_key_is_written_0600(tmp_path, model, fmt):
    f = preset(tmp_path, '[server]\napi_key = "$MY_KEY"\n')
    out = tmp_path / f"out.{fmt}"
    out.write_text("old")
    out.chmod(0o644)   # an existing, readable file is tightened too
    r = run_cli("presets", "export", "--preset-file", f, "--model", model, "--ctx", "256", "--to", fmt,
                "-o", str(out), env_extra={"MY_KEY": KEY})
    assert r.returncode == 0, r.stderr
    assert KEY in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_import_of_an_ini_with_a_key_writes_the_preset_0600(tmp_path, _config):
    ini = tmp_path / "router.ini"
    ini.write_text(f"version = 1\n\n[m]\nmodel = /models/m.gguf\napi-key = {KEY}\n")
    r = run_cli("presets", "import", str(ini), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    written = tmp_path / "out" / "m.toml"
    assert KEY in written.read_text() and stat.S_IMODE(written.stat().st_mode) == 0o600


# -- 6. serve --------------------------------------------------------------------------------
def test_serve_off_loopback_without_a_key_warns(model):
    r = run_cli("serve", "demo", "--model", model, "--ctx", "256", "--host", "0.0.0.0", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert any("0.0.0.0" in w and "no API key" in w for w in warnings(r)), r.stderr
    r = run_cli("serve", "demo", "--model", model, "--ctx", "256", "--host", "0.0.0.0", "--dry-run",
                env_extra={"GGUFROPE_SERVER_API_KEY": KEY})
    assert r.returncode == 0 and not warnings(r), r.stderr
    r = run_cli("serve", "demo", "--model", model, "--ctx", "256", "--dry-run")
    assert r.returncode == 0 and not warnings(r), r.stderr


@pytest.mark.parametrize("extra, preset_extra", [
    (["--", "--port", "9999"], None),
    (["--", "--port=9999"], None),
    (["--", "--host", "0.0.0.0"], None),
    ([], ["--host", "0.0.0.0"]),
], ids=["port-after-dashes", "port-equals", "host-after-dashes", "host-in-extra_args"])
def test_serve_refuses_host_or_port_in_extra_arguments(tmp_path, model, extra, preset_extra):
    args = ["serve", "demo", "--model", model, "--ctx", "256", "--dry-run"]
    if preset_extra:
        args[1:2] = ["--preset-file", preset(tmp_path, f'extra_args = {json.dumps(preset_extra)}\n')]
    r = run_cli(*args, *extra)
    line = one_error(r, 10)
    flag = (extra[1:] or preset_extra)[0].split("=")[0]
    assert flag in line and f"{flag[2:]}" in line
    if preset_extra:
        assert "extra_args" in line


def test_serve_checks_the_port_is_free_before_anything_else(tmp_path, model):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        # build.bin_dir with no llama-server: the port check must come first
        r = run_cli("serve", "demo", "--model", model, "--ctx", "256", "--port", str(port),
                    env_extra={"GGUFROPE_BUILD_BIN_DIR": str(tmp_path)}, timeout=60)
    line = one_error(r, 11)
    assert f"127.0.0.1:{port}" in line and "--port" in line


def test_readiness_is_our_child_not_whoever_answers_the_port(tmp_path):
    """Something else answers /health on the port (a race after the port check): the child we
    started does not listen there, so it is not reported as serving."""
    from ggufrope import childproc
    from ggufrope.errors import EngineError
    from ggufrope.presets.launch import Server

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"status":"ok"}')

        def log_message(self, *a):
            pass
    other = HTTPServer(("127.0.0.1", 0), Health)
    t = threading.Thread(target=other.serve_forever, daemon=True)
    t.start()
    srv = Server([sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ), str(tmp_path / "log"),
                 "127.0.0.1", other.server_address[1])
    try:
        srv.proc = childproc.start(srv.argv, srv.log, srv.env)   # start() itself refuses the busy port
        with pytest.raises(EngineError, match="not the llama-server ggufrope started"):
            srv.wait_ready(30)
    finally:
        srv.stop(grace=1)
        other.shutdown()


# -- 9. one-line errors ------------------------------------------------------------------------
def _fake_tool(bin_dir, name: str) -> None:
    """A stand-in llama.cpp tool that prints the system prompt it was given (-sys or -sysf)."""
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / name
    exe.write_text(f"#!{sys.executable}\n" + """import sys
a = sys.argv[1:]
if "-sys" in a:
    text = a[a.index("-sys") + 1]
else:
    with open(a[a.index("-sysf") + 1]) as f:
        text = f.read()
    text = text[:-1] if text.endswith("\\n") else text   # as llama.cpp's read_file + pop_back
print("system prompt", len(text), text[:5], repr(text[-5:]))
""")
    exe.chmod(0o755)


def test_huge_system_prompt_goes_through_a_file(tmp_path, model):
    big = "start" + "x" * 200_000 + "end!\n"
    f = preset(tmp_path, f"system_prompt = {json.dumps(big)}\n")
    r = run_cli("run", "--preset-file", f, "--model", model, "--ctx", "256", "--prompt", "hi", "--dry-run")
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout.strip().splitlines()[-1])
    assert "-sysf" in argv and "-sys" not in argv and len(r.stdout) < 10_000
    bins = tmp_path / "bin"
    _fake_tool(bins, "llama-completion")
    r = run_cli("run", "--preset-file", f, "--model", model, "--ctx", "256", "--prompt", "hi",
                env_extra={"GGUFROPE_BUILD_BIN_DIR": str(bins)}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"system prompt {len(big)} start 'end!\\n'", r.stdout
    prompt_file = argv[argv.index("-sysf") + 1]
    assert stat.S_IMODE(os.stat(prompt_file).st_mode) == 0o600
    # a short one stays on the command line
    r = run_cli("run", "--preset-file", preset(tmp_path, 'system_prompt = "be brief"\n', "s"), "--model", model,
                "--ctx", "256", "--prompt", "hi", "--dry-run", check=True)
    assert "-sys 'be brief'" in r.stdout


def test_toml_nested_100k_deep_is_one_line(tmp_path):
    f = tmp_path / "deep.toml"
    f.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    r = run_cli("presets", "show", "--preset-file", str(f))
    line = one_error(r, 10)
    assert str(f) in line and "nested" in line


def test_user_preset_extending_its_own_name_says_so(_config):
    d = _config / "presets"
    d.mkdir(parents=True)
    (d / "self.toml").write_text('extends = "self"\n')
    r = run_cli("presets", "show", "self")
    line = one_error(r, 10)
    assert "extends itself" in line and "did you mean" not in line


@pytest.mark.parametrize("assignment", ["llama.rope.freq_base=f32:nan", "llama.rope.freq_base=f32:-1",
                                        "llama.rope.freq_base=float:inf", "llama.context_length=int:0",
                                        "llama.rope.scaling.factor=float:0"],
                         ids=["nan", "negative", "inf", "zero-ctx", "zero-factor"])
def test_set_on_rope_keys_is_checked_like_the_rope_flags(tmp_path, model, assignment):
    before = open(model, "rb").read()
    r = run_cli("patch", model, "--set", assignment, "-o", str(tmp_path / "out.gguf"))
    line = one_error(r, 2)
    key = assignment.split("=")[0]
    assert key.split(".", 1)[1] in line
    assert not (tmp_path / "out.gguf").exists() and open(model, "rb").read() == before
    # the flag route says the same sentence (one validator)
    flag = {"llama.rope.freq_base": "--rope-freq-base", "llama.context_length": "--ctx",
            "llama.rope.scaling.factor": "--rope-scale"}[key]
    r2 = run_cli("patch", model, f"{flag}={assignment.split(':', 1)[1]}", "-o", str(tmp_path / "out.gguf"))
    line2 = one_error(r2, 2)
    if flag != "--ctx":   # (--ctx has its own wording: "--ctx must be positive")
        assert line2.endswith(line.rsplit(": ", 1)[-1]), (line, line2)


def test_output_naming_the_source_through_a_link_says_it_is_the_same_file(tmp_path, model):
    link = tmp_path / "link.gguf"
    link.symlink_to(model)
    r = run_cli("patch", model, "--set", "general.name=str:x", "-o", str(link))
    assert "another" not in r.stderr and "Traceback" not in r.stderr
    assert f"-o {link}: is the same file as {model}" in r.stderr, r.stderr


class _Worker(socketserver.BaseRequestHandler):
    """A fake RPC worker that says it has 2**32 - 1 devices and answers every memory query."""

    def handle(self):
        s = self.request
        try:
            while True:
                head = _recv(s, 9)
                cmd, size = struct.unpack("<BQ", head)
                _recv(s, size)
                if cmd == 14:
                    s.sendall(struct.pack("<Q", 28) + bytes([3, 0, 0, 0]) + bytes(24))
                elif cmd == 15:
                    s.sendall(struct.pack("<QI", 4, 2**32 - 1))
                else:
                    s.sendall(struct.pack("<QQQ", 16, 1 << 30, 2 << 30))
        except (ConnectionError, OSError):
            pass


def _recv(s, n):
    buf = b""
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            raise ConnectionError
        buf += c
    return buf


def test_rpc_probe_bounds_the_device_count():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Worker)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        ep = f"127.0.0.1:{srv.server_address[1]}"
        r = run_cli("worker", "probe", ep, "--timeout", "5", timeout=60)
        assert "Traceback" not in r.stderr and r.returncode == 12, (r.returncode, r.stdout, r.stderr)
        assert "4294967295 devices" in r.stdout + r.stderr
    finally:
        srv.shutdown()
        srv.server_close()
