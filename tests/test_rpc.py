"""RPC workers, for real: `ggufrope worker` processes (llama.cpp's RPC server from an RPC build)
on 127.0.0.1, probed over llama.cpp's wire protocol, and llama-server sessions spread over two
of them. The machine has 2 cores: every process gets one thread."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import REAL_HOME, REPO, free_port, hang_guard, run_cli
from ggufrope.errors import WorkerError
from ggufrope.rpc import (Endpoint, ProtoVersion, compatibility, parse_endpoints, probe, probe_all,
                          source_proto_version)

pytestmark = pytest.mark.slow
FAST = ["--set", "threads=1", "--set", "n_predict=24", "--set", "sampling.temperature=0", "--set", "sampling.seed=0",
        "--ctx", "2048"]


class Worker:
    """`ggufrope worker --json` in the background (the real cache, so it finds the RPC build)."""

    def __init__(self, *extra: str, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        env = dict(os.environ, GGUFROPE_HOME=REAL_HOME)
        self.proc = subprocess.Popen([sys.executable, "-m", "ggufrope", "worker", "--host", host, "--port",
                                      str(self.port), "--threads", "1", "--json", *extra],
                                     cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            if line.rstrip() == "}":
                break
        assert lines, self.proc.stderr.read()
        self.info = json.loads("".join(lines))
        self.ep = Endpoint("127.0.0.1", self.port)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.info['pid']}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def stop(self, sig=signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        return rc, self.proc.stderr.read()

    def kill_engine(self) -> None:
        """SIGKILL the llama.cpp worker process itself (the machine dies, as far as clients see)."""
        os.kill(self.info["pid"], signal.SIGKILL)


@pytest.fixture
def workers(rpc_build):
    made: list[Worker] = []

    def make(*extra: str, **kw) -> Worker:
        w = Worker(*extra, **kw)
        made.append(w)
        return w
    yield make
    for w in made:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()
        try:
            os.kill(w.info["pid"], signal.SIGKILL)
        except (ProcessLookupError, KeyError):
            pass


def _preset(tmp_path, name: str, rpc: list[Endpoint] | None, extra: str = "") -> str:
    lines = ['extends = "demo"', 'engine = "server"']
    if rpc is not None:
        lines.append("rpc = [" + ", ".join(f'"{e}"' for e in rpc) + "]")
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return str(path)


def _completion(port: int, n: int = 24, timeout: float = 120, ignore_eos: bool = False) -> str:
    body = json.dumps({"prompt": "The capital of France is", "n_predict": n, "temperature": 0, "seed": 0,
                       "ignore_eos": ignore_eos}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())["content"]


def _wait_generating(port: int, limit: float = 120) -> None:
    """Until llama-server's /slots shows a slot processing a request (the hang guard: limit)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/slots", timeout=10) as r:
            slots = json.loads(r.read())
        if any(sl.get("is_processing") for sl in slots):
            return
        time.sleep(0.05)
    raise AssertionError(f"llama-server on port {port} did not start generating within {limit:.0f}s")


class Serve:
    def __init__(self, preset_file: str, *extra: str, bin_dir: str) -> None:
        self.port = free_port()
        env = dict(os.environ, GGUFROPE_BUILD_BIN_DIR=bin_dir)
        self.proc = subprocess.Popen([sys.executable, "-m", "ggufrope", "serve", "--preset-file", preset_file,
                                      "--port", str(self.port), *FAST, *extra], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.line = self.proc.stdout.readline()

    def ready(self) -> bool:
        return self.line.startswith("serving ")

    def finish(self, sig=None, timeout: float = 60) -> tuple[int, str]:
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        return rc, self.proc.stderr.read()


# -- the worker ------------------------------------------------------------------------------
def test_worker_reports_capacity_protocol_and_stops_cleanly(workers, rpc_build):
    w = workers("--mem", "0.5")
    local = source_proto_version(rpc_build.source.path)
    assert w.info["protocol"] == str(local) and w.info["llama_cpp"] == rpc_build.source.commit
    (dev,) = w.info["devices"]
    assert dev["free"] == dev["total"] == 512 << 20      # --mem 0.5 (GiB) is what the worker advertises
    assert dev["name"].startswith("CPU")
    info = probe(w.ep)                                    # an independent connection sees the same
    assert info.version == local and info.free == 512 << 20
    rc, err = w.stop()
    assert rc == 0 and "stopped the RPC worker" in err
    with pytest.raises(WorkerError, match="connection refused"):
        probe(w.ep, timeout=2)


def test_worker_without_cap_reports_the_host_memory(workers):
    w = workers()
    (dev,) = w.info["devices"]
    with open("/proc/meminfo") as f:
        total = int(re.search(r"MemTotal:\s+(\d+) kB", f.read()).group(1)) * 1024
    assert abs(dev["total"] - total) < 64 << 20


def test_worker_off_loopback_warns_about_the_protocol(workers):
    w = workers(host="0.0.0.0")
    rc, err = w.stop()
    assert rc == 0 and "no authentication and no encryption" in err and "0.0.0.0" in err


def test_worker_probe_command_and_build_version_check(workers, tmp_path):
    w = workers()
    dead = Endpoint("127.0.0.1", free_port())
    r = run_cli("worker", "probe", str(w.ep), "--json", env_extra={"GGUFROPE_HOME": REAL_HOME}, check=True)
    row = json.loads(r.stdout)["workers"][0]
    assert row["verdict"] == "same" and row["devices"] == 1
    r = run_cli("worker", "probe", f"{w.ep},{dead}", env_extra={"GGUFROPE_HOME": REAL_HOME})
    assert r.returncode == 12 and f"RPC worker {dead}: connection refused" in r.stderr
    # `build` says plainly whether the workers come from this llama.cpp (the protocol they speak)
    r = run_cli("build", "--rpc", "--workers", str(w.ep), env_extra={"GGUFROPE_HOME": REAL_HOME}, check=True)
    assert f"worker {w.ep}: same: same RPC protocol" in r.stdout
    r = run_cli("build", "--workers", f"{w.ep},{dead}", env_extra={"GGUFROPE_HOME": REAL_HOME})
    assert r.returncode == 12 and f"worker {dead}: unreachable" in r.stdout


def test_compatibility_follows_llama_cpp_rule():
    v = ProtoVersion(7, 0, 0)
    assert compatibility(v, ProtoVersion(7, 0, 0))[0] == "same"
    assert compatibility(v, ProtoVersion(7, 0, 3))[0] == "patch"
    assert compatibility(ProtoVersion(7, 1, 0), ProtoVersion(7, 0, 0))[0] == "patch"   # an older minor connects
    assert compatibility(v, ProtoVersion(7, 1, 0))[0] == "incompatible"   # a newer worker is refused
    verdict, why = compatibility(v, ProtoVersion(6, 0, 0))
    assert verdict == "incompatible" and "6.0.0" in why and "7.0.0" in why


def test_source_proto_version_reads_the_header(tmp_path, llama_src):
    v = source_proto_version(llama_src)
    text = open(os.path.join(llama_src, "ggml", "include", "ggml-rpc.h")).read()
    assert f"#define RPC_PROTO_MAJOR_VERSION    {v.major}" in text
    (tmp_path / "ggml" / "include").mkdir(parents=True)
    (tmp_path / "ggml" / "include" / "ggml-rpc.h").write_text("#pragma once\n")
    from ggufrope.errors import BuildError
    with pytest.raises(BuildError, match="ggml-rpc.h: no RPC_PROTO"):
        source_proto_version(str(tmp_path))


# -- the probe against peers that are not workers ----------------------------------------------
def _listener(behaviour):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    stop = threading.Event()

    def loop():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            behaviour(c)
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return Endpoint("127.0.0.1", srv.getsockname()[1]), lambda: (stop.set(), t.join(), srv.close())


def test_probe_times_out_on_a_silent_peer():
    held = []
    ep, close = _listener(held.append)          # accepts, never answers (a worker busy with a client)
    try:
        # the probe's own 0.5 s timeout is what is tested; hang_guard only stops a probe that ignores it
        with hang_guard(60, "probe"), \
                pytest.raises(WorkerError, match="no answer within 0.5s while waiting for its HELLO.*one client"):
            probe(ep, timeout=0.5)
    finally:
        close()
        for c in held:
            c.close()


def test_probe_rejects_a_peer_that_is_not_a_worker():
    def http(c):
        c.recv(64)
        c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        c.close()
    ep, close = _listener(http)
    try:
        with pytest.raises(WorkerError, match="not a llama.cpp RPC worker"):
            probe(ep, timeout=2)
    finally:
        close()


def test_probe_all_reports_each_worker_in_order():
    dead1, dead2 = Endpoint("127.0.0.1", free_port()), Endpoint("127.0.0.1", free_port())
    out = probe_all([dead1, dead2], timeout=1)
    assert [str(e).startswith(f"RPC worker {ep}") for e, ep in zip(out, (dead1, dead2))] == [True, True]


def test_endpoints_parse_and_fail_plainly():
    assert parse_endpoints(["10.0.0.2:50052,10.0.0.3:50052"]) == (Endpoint("10.0.0.2", 50052),
                                                                 Endpoint("10.0.0.3", 50052))
    from ggufrope.errors import UsageError
    for bad, msg in (("localhost", "expected HOST:PORT"), ("h:0", "not a TCP port"), ("h:x", "not a TCP port"),
                     ("::1:5", "expected HOST:PORT")):
        with pytest.raises(UsageError, match=msg):
            parse_endpoints([bad])
    with pytest.raises(UsageError, match="listed twice"):
        parse_endpoints(["a:1", "a:1"])


# -- presets over workers ----------------------------------------------------------------------
def test_serve_over_two_workers_gives_the_single_process_completion(workers, rpc_build, cpu_build, tmp_path,
                                                                     smollm2):
    a, b = workers(), workers()
    rss0 = (a.rss_kib(), b.rss_kib())
    local = Serve(_preset(tmp_path, "local", None), bin_dir=cpu_build.bin_dir)
    assert local.ready(), local.finish(timeout=5)
    try:
        want = _completion(local.port)
    finally:
        assert local.finish(signal.SIGTERM)[0] == 0
    spread = Serve(_preset(tmp_path, "spread", [a.ep, b.ep]), bin_dir=rpc_build.bin_dir)
    assert spread.ready(), spread.finish(timeout=5)
    try:
        got = _completion(spread.port)
        grown = (a.rss_kib() - rss0[0], b.rss_kib() - rss0[1])
    finally:
        rc, err = spread.finish(signal.SIGTERM)
    assert got == want and len(want) > 10
    # the layers really live in the workers: each holds tens of MiB more than when idle
    assert min(grown) > 20 * 1024, grown
    assert rc == 0 and "stopped llama-server" in err
    assert f"RPC worker {a.ep}: RPC protocol" in err and f"RPC worker {b.ep}: RPC protocol" in err
    # the workers outlive the session and are free for the next client
    assert probe(a.ep).version == probe(b.ep).version


def test_run_prompt_over_a_worker(workers, rpc_build, tmp_path, smollm2):
    a = workers()
    path = _preset(tmp_path, "one", [a.ep])
    env = {"GGUFROPE_BUILD_BIN_DIR": rpc_build.bin_dir}
    r = run_cli("run", "--preset-file", path, "--set", "engine=cli", "--prompt", "Say hello.", *FAST,
                env_extra=env, timeout=300)
    assert r.returncode == 0, r.stderr
    dry = run_cli("run", "--preset-file", path, "--set", "engine=cli", "--prompt", "x", *FAST, "--dry-run",
                  env_extra=env, check=True)
    assert f"--rpc {a.ep}" in dry.stdout


def test_killed_worker_ends_the_session_with_a_clear_error(workers, rpc_build, tmp_path, smollm2):
    a, b = workers(), workers()
    s = Serve(_preset(tmp_path, "spread", [a.ep, b.ep]), bin_dir=rpc_build.bin_dir)
    assert s.ready(), s.finish(timeout=5)
    result: dict = {}

    def long_request():
        try:
            result["text"] = _completion(s.port, n=1500, timeout=90, ignore_eos=True)
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            result["error"] = e
    t = threading.Thread(target=long_request)
    t.start()
    _wait_generating(s.port)          # the kill lands mid-request, not before or after it
    b.kill_engine()
    rc, err = s.finish(timeout=60)    # timeouts here are hang guards
    t.join(timeout=90)
    assert not t.is_alive()
    assert rc == 12, err
    assert f"RPC worker {b.ep} went away" in err and "Traceback" not in err
    assert "error" in result and "text" not in result  # the client got an error, not a hang or an answer


def test_unreachable_worker_stops_the_launch_before_loading(rpc_build, tmp_path, smollm2):
    dead = Endpoint("127.0.0.1", free_port())
    path = _preset(tmp_path, "dead", [dead])
    r = run_cli("serve", "--preset-file", path, *FAST, env_extra={"GGUFROPE_BUILD_BIN_DIR": rpc_build.bin_dir},
                timeout=120)  # hang guard
    assert r.returncode == 10
    assert "dead.toml" in r.stderr and f"RPC worker {dead}: connection refused" in r.stderr
    assert "llama-server pid" not in r.stderr
    # the command line too, and a dry run only warns
    r = run_cli("serve", "demo", "--rpc", str(dead), *FAST, "--dry-run",
                env_extra={"GGUFROPE_BUILD_BIN_DIR": rpc_build.bin_dir})
    assert r.returncode == 0 and f"--rpc {dead}" in r.stdout and "connection refused" in r.stderr


def test_workers_memory_is_in_the_plan(workers, rpc_build, tmp_path, smollm2):
    a, b = workers("--mem", "0.03"), workers("--mem", "0.03")      # 30 MiB each: SmolLM2 is 92 MiB
    path = _preset(tmp_path, "small", [a.ep, b.ep])
    r = run_cli("presets", "check", "--preset-file", path, "--model", smollm2, *FAST)
    assert r.returncode == 10
    assert "does not fit" in r.stderr and f"rpc {a.ep}" in r.stderr and "of 30.0 MiB free" in r.stderr
    # a tensor split gives one worker the larger share; -ts reaches llama.cpp
    big = workers()
    path = _preset(tmp_path, "split", [big.ep, a.ep], "tensor_split = [9, 1]\n")
    r = run_cli("presets", "check", "--preset-file", path, "--model", smollm2, *FAST, check=True)
    shares = dict(re.findall(r"rpc (127\.0\.0\.1:\d+) ([\d.]+) MiB of", r.stdout))
    assert float(shares[str(big.ep)]) > 8 * float(shares[str(a.ep)])
    dry = run_cli("serve", "--preset-file", path, "--model", smollm2, *FAST, "--dry-run",
                  env_extra={"GGUFROPE_BUILD_BIN_DIR": rpc_build.bin_dir}, check=True)
    assert "-ts 9,1" in dry.stdout


def test_rpc_fields_are_checked(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "demo"\nrpc = ["localhost"]\n')
    r = run_cli("presets", "show", "--preset-file", str(bad))
    assert r.returncode == 10 and "bad.toml:2" in r.stderr and "expected HOST:PORT" in r.stderr
    bad.write_text('extends = "demo"\nrpc = ["127.0.0.1:1"]\ntensor_split = [1, -2]\n')
    r = run_cli("presets", "show", "--preset-file", str(bad))
    assert r.returncode == 10 and "tensor_split" in r.stderr and ">= 0" in r.stderr
    r = run_cli("presets", "show", "demo", "--set", "rpc=10.0.0.2:50052,10.0.0.3:50052", check=True)
    assert "10.0.0.2:50052" in r.stdout and "10.0.0.3:50052" in r.stdout


def test_worker_on_a_taken_port_fails_without_claiming_the_other(workers):
    w = workers()
    r = run_cli("worker", "--port", str(w.port), env_extra={"GGUFROPE_HOME": REAL_HOME}, timeout=120)
    assert r.returncode == 12 and f"cannot listen on {w.ep}" in r.stderr
    assert "listening" not in r.stdout
    assert probe(w.ep).version    # the first worker is untouched


def test_watch_tells_a_worker_that_left_from_a_client_that_hung_up(tmp_path):
    """The session watch on real sockets: a child process (the client) connects to a listener
    (the worker). Before `armed` the client's own hang-up is not a loss (llama.cpp does that while
    loading); the worker closing its side is, at any time; after `armed` a vanished connection is."""
    from ggufrope.rpc.watch import Watch
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    ep = Endpoint("127.0.0.1", srv.getsockname()[1])
    script = ("import socket, sys, time\n"
              "for line in sys.stdin:\n"
              "    if line.startswith('connect'): s = socket.create_connection(('127.0.0.1', %d))\n"
              "    if line.startswith('close'): s.close()\n"
              "    print('ok', flush=True)\n" % ep.port)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def do(cmd):
        child.stdin.write(cmd + "\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "ok"

    try:
        w = Watch(child.pid, [ep], interval=0)
        do("connect")
        conn, _ = srv.accept()
        assert not w.check()
        do("close")                     # the client hangs up while "loading": not a loss
        conn.close()
        assert not w.check()
        do("connect")
        conn, _ = srv.accept()
        w.armed = True
        assert not w.check() and ep in w.seen
        conn.close()                    # the worker leaves: the client's socket is CLOSE_WAIT
        time.sleep(0.2)
        assert w.check() and w.lost == [(ep, "it closed its connection")]
        w2 = Watch(child.pid, [ep], interval=0)
        do("close")
        do("connect")
        conn, _ = srv.accept()
        w2.armed = True
        assert not w2.check()
        do("close")                     # after the server is ready, a vanished connection is a loss
        assert w2.check() and w2.lost == [(ep, "its connection is gone")]
        conn.close()
    finally:
        child.kill()
        child.wait()
        srv.close()
