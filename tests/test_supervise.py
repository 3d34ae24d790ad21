"""ggufrope.supervise: the one lifecycle llama-server and RPC workers share (start, wait until
ready while the child lives, serve, stop the whole process group, report how it ended), driven
with small Python children instead of llama.cpp."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from ggufrope.errors import EngineError, WorkerError
from ggufrope.rpc.endpoint import Endpoint
from ggufrope.rpc.worker import Worker
from ggufrope.supervise import Child, supervise


class Flag(Child):
    """Ready once the child has written its log line."""

    def probe(self):
        try:
            with open(self.log) as f:
                return "up" if "up" in f.read() else None
        except OSError:
            return None


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


SERVE = "import sys, time; print('up', flush=True); time.sleep(60)"


def test_ready_then_stopped_by_the_caller(tmp_path):
    seen = []
    c = Flag(_py(SERVE), str(tmp_path / "log"), "the child")
    end = supervise(c, ready_timeout=20, ready_poll=0.05, grace=5, on_started=lambda ch: seen.append("started"),
                    on_ready=lambda r: seen.append(r), should_stop=lambda: len(seen) >= 2)
    assert seen == ["started", "up"] and end.ready == "up" and end.signal == ""
    assert end.code == -signal.SIGTERM and c.proc.poll() is not None


def test_echo_log_gets_the_childs_whole_log_and_the_file_keeps_it(tmp_path):
    """--verbose: every line the child wrote, up to its last before the stop, reaches echo_log."""
    got: list[str] = []
    code = "import time; print('up', flush=True); print('second line', flush=True); time.sleep(60)"
    c = Flag(_py(code), str(tmp_path / "log"), "the child")
    supervise(c, ready_timeout=20, ready_poll=0.05, grace=5, echo_log=got.append,
              should_stop=lambda: "second line" in open(c.log).read())
    assert "".join(got) == "up\nsecond line\n" == open(c.log).read()


def test_sigterm_stops_the_child_and_says_so(tmp_path):
    c = Flag(_py(SERVE), str(tmp_path / "log"), "the child")
    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    end = supervise(c, ready_timeout=20, ready_poll=0.05, grace=5)
    assert end.signal == "SIGTERM" and end.code == -signal.SIGTERM


def test_the_whole_process_group_is_stopped(tmp_path):
    # the child starts a grandchild in its group; stopping the child must end both
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
            "time.sleep(60)']); print('up', p.pid, flush=True); time.sleep(60)")
    c = Flag(_py(code), str(tmp_path / "log"), "the child")
    supervise(c, ready_timeout=20, ready_poll=0.05, grace=5, should_stop=lambda: c.probe() is not None)
    grandchild = int(open(c.log).read().split()[1])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the grandchild outlived the stop")


@pytest.mark.parametrize("code,match", [
    pytest.param("import sys; print('error: no model', flush=True); sys.exit(3)",
                 r"the child exited with exit code 3 while starting:\nerror: no model\nfull log: ", id="dies-starting"),
    pytest.param("import os, time; print('up', flush=True); time.sleep(0.5); os._exit(4)",
                 r"the child exited with exit code 4:\nup\nfull log: ", id="dies-serving"),
])
def test_a_child_that_ends_by_itself_is_an_error_with_its_log(tmp_path, code, match):
    c = Flag(_py(code), str(tmp_path / "log"), "the child")
    with pytest.raises(EngineError, match=match):
        supervise(c, ready_timeout=20, ready_poll=0.05, grace=5)


def test_not_ready_in_time(tmp_path):
    c = Flag(_py("import time; time.sleep(60)"), str(tmp_path / "log"), "the child")
    t0 = time.monotonic()
    with pytest.raises(EngineError, match="the child did not answer within 0.5s"):
        supervise(c, ready_timeout=0.5, ready_poll=0.05, grace=5)
    assert time.monotonic() - t0 < 10 and c.proc.poll() is not None


def test_worker_that_dies_while_starting_is_a_worker_error(tmp_path):
    w = Worker(_py("import sys; sys.exit(1)"), Endpoint("127.0.0.1", 1), str(tmp_path / "log"))
    w.check_port = lambda: None   # port 1 needs no check here: the child never listens
    with pytest.raises(WorkerError, match=r"the RPC worker on 127.0.0.1:1 exited with exit code 1 while starting"):
        supervise(w, ready_timeout=20, ready_poll=0.05, grace=5)
