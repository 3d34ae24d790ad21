"""Shared fixtures. State is hermetic: every test gets its own GGUFROPE_HOME, except the slow
shared artefacts (the llama.cpp source with its vocab files, the SmolLM2 model), which come
from the real cache once per session."""
from __future__ import annotations

import contextlib
import glob
import os
import signal
import subprocess
import sys
from typing import Callable

import numpy as np
import pytest

from ggufrope import paths
from ggufrope.build.tiny_model import write_tiny_llama  # noqa: F401 (used by tests)

REAL_HOME = paths.home()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _hermetic_home(tmp_path, monkeypatch):
    home = tmp_path / "ggufrope-home"
    monkeypatch.setenv("GGUFROPE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def llama_src() -> str:
    from ggufrope.llama_source import vendored_tree
    return vendored_tree({"GGUFROPE_HOME": REAL_HOME})


@pytest.fixture(scope="session")
def vocab_files(llama_src) -> list[str]:
    files = sorted(glob.glob(os.path.join(llama_src, "models", "ggml-vocab-*.gguf")))
    assert len(files) >= 10
    return files


@pytest.fixture(scope="session")
def smollm2() -> str:
    from ggufrope.models import fetch
    return fetch("smollm2", {"GGUFROPE_HOME": REAL_HOME})


@pytest.fixture
def tiny_model(tmp_path) -> Callable[..., str]:
    counter = iter(range(10**6))

    def make(**kw) -> str:
        return write_tiny_llama(str(tmp_path / f"tiny-{next(counter)}.gguf"), **kw)
    return make


def serve_once(*args: str, ready: str = "serving ") -> str:
    """Start `ggufrope serve ARGS`, wait for its line starting with `ready`, SIGTERM it (it must
    exit 0); its stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "ggufrope", "serve", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(ready), (line, proc.poll(), proc.stderr.read()[-2000:] if proc.poll() is not None else "")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        return proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_cli(*args: str, env_extra: dict | None = None, check: bool = False,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m ggufrope ARGS` as a user would (argv list, real process)."""
    env = dict(os.environ)
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-m", "ggufrope", *args], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"ggufrope {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


@contextlib.contextmanager
def hang_guard(seconds: float, what: str = "this step"):
    """Fail (instead of waiting forever) when the body runs past `seconds`: a guard against a
    hang, far above any normal duration, never a speed claim (those are in benchmarks/)."""
    def fire(signum, frame):
        raise TimeoutError(f"{what} hung: still running after {seconds:.0f}s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def file_digest(path: str) -> str:
    from ggufrope.models import sha256_file
    return sha256_file(path)


def tensor_digests(path: str) -> dict[str, tuple]:
    """name -> (type, shape, sha256 of the data bytes), read with gguf-py (the independent reader)."""
    import hashlib
    import gguf
    r = gguf.GGUFReader(path)
    return {t.name: (int(t.tensor_type), tuple(int(x) for x in t.shape),
                     hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).hexdigest())
            for t in r.tensors}


def gguf_py_metadata(path: str) -> dict:
    """key -> python value, read with gguf-py."""
    import gguf
    r = gguf.GGUFReader(path)
    out = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        out[k] = f.contents()
    return out


@pytest.fixture(scope="session")
def cpu_build():
    """The default (portable CPU) build of llama.cpp + ggufrope's native tools, from the real
    cache: built once per machine (minutes), then returned from its stamp."""
    from ggufrope.build.ensure import ensure_build
    env = {k: v for k, v in os.environ.items() if k != "GGUFROPE_HOME"}
    env["GGUFROPE_HOME"] = REAL_HOME
    return ensure_build(env=env, log=lambda s: sys.stderr.write(s + "\n"))


def counting_header_opens(monkeypatch) -> list[str]:
    """Every path the codec maps for its header from now on, in order (to count header reads)."""
    from ggufrope.gguf import reader
    opened: list[str] = []
    real = reader._open_map

    def counting(p, *a, **kw):
        opened.append(str(p))
        return real(p, *a, **kw)
    monkeypatch.setattr(reader, "_open_map", counting)
    return opened


@pytest.fixture(scope="session")
def rpc_build():
    """The portable CPU build with the RPC backend (a second cached build: minutes, once)."""
    from ggufrope.build.ensure import ensure_build
    from ggufrope.build.spec import BuildSpec
    env = {k: v for k, v in os.environ.items() if k != "GGUFROPE_HOME"}
    env["GGUFROPE_HOME"] = REAL_HOME
    return ensure_build(BuildSpec(rpc=True), env=env, log=lambda s: sys.stderr.write(s + "\n"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
