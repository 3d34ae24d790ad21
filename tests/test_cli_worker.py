"""`ggufrope worker` options end to end: the llama.cpp RPC server it starts gets them (read back
from the worker process's own argv and from the wire probe), its refusals are one line with
exit 2, and `worker probe --timeout` bounds the wait on a peer that never answers. A GPU
`--backend` needs a GPU build this machine cannot run; it is checked as far as the refusal of
an unknown backend (before any build). Uses the cached RPC build (conftest.rpc_build)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from conftest import REAL_HOME, REPO, free_port, run_cli

ENV = {"GGUFROPE_HOME": REAL_HOME}


def _serve_worker(*args: str) -> tuple[dict, list[str], str]:
    """Start `ggufrope worker --json ARGS`, read its JSON, read the llama.cpp worker's argv from
    /proc, stop it with SIGTERM; (json, argv, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "ggufrope", "worker", "--json", *args], cwd=REPO,
                            env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.rstrip() == "}":
                break
        assert lines, proc.stderr.read()
        info = json.loads("".join(lines))
        with open(f"/proc/{info['pid']}/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        return info, argv, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _after(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_worker_backend_mem_threads_cache_host_reach_the_rpc_server(rpc_build):
    port = free_port()
    info, argv, err = _serve_worker("--host", "127.0.0.1", "--port", str(port), "--backend", "cpu", "--mem", "0.25",
                                    "--threads", "1", "--cache")
    assert os.path.basename(argv[0]) == "rpc-server" or argv[0].startswith(rpc_build.bin_dir), argv
    assert (_after(argv, "--host"), _after(argv, "--port")) == ("127.0.0.1", str(port))
    assert _after(argv, "--device") == "CPU"              # --backend cpu: the CPU device only
    assert _after(argv, "--mem-mib") == "256" and _after(argv, "--threads") == "1" and "--cache" in argv
    assert info["endpoint"] == f"127.0.0.1:{port}" and info["mem_cap_bytes"] == 256 << 20
    (dev,) = info["devices"]
    assert dev["free"] == dev["total"] == 256 << 20       # what the worker advertises on the wire
    assert "stopped the RPC worker" in err
    # the defaults: no cap, no cache, llama.cpp's own thread count
    info, argv, _ = _serve_worker("--port", str(free_port()), "-t", "2")
    assert "--mem-mib" not in argv and "--cache" not in argv and _after(argv, "--threads") == "2"
    assert info["mem_cap_bytes"] is None and info["devices"][0]["total"] > 256 << 20


@pytest.mark.parametrize("args,msg", [
    (["--backend", "nope"], "backend 'nope': choose from cpu, cuda, metal, vulkan"),
    (["--host", "::1"], "--host '::1': give a host name or an IPv4 address (llama.cpp's RPC takes no IPv6)"),
    (["--mem", "0"], "--mem 0: give a positive number of GB"),
    (["--threads", "0"], "--threads 0: at least 1"),
    (["--port", "70000"], "--port 70000: not a TCP port (1-65535)"),
], ids=["backend", "host", "mem", "threads", "port"])
def test_worker_refuses_bad_options_before_building(args, msg):
    r = run_cli("worker", *args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [f"ggufrope: error: {msg}"]


def test_worker_probe_timeout_on_a_silent_peer():
    with socket.socket() as s:      # accepts the connection (the kernel's backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        ep = "127.0.0.1:%d" % s.getsockname()[1]
        r = run_cli("worker", "probe", ep, "--timeout", "1", env_extra=ENV, timeout=120)
        assert r.returncode == 12
        assert r.stdout.startswith(f"{ep}: no answer within 1s while waiting for its HELLO")
        r = run_cli("worker", "probe", ep, "--timeout", "2.5", "--json", env_extra=ENV, timeout=120)
        assert r.returncode == 12
        (row,) = json.loads(r.stdout)["workers"]
        assert "no answer within 2.5s" in row["message"]
