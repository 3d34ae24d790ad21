"""Crash safety of edits: a SIGKILL at any moment leaves the old file or the new one.

A driver process imports ggufrope, then runs the real CLI `main()`. It is killed
  * at random moments (fixed seed) between 0 and the measured duration of one edit, and
  * deterministically at every file-system call the edit makes (before it, after it, or in
    the middle of a write: half the bytes written, then SIGKILL).
After each kill, `ggufrope recover FILE` must roll the interrupted edit back (or forward, for
a completed copy): the file then parses with gguf-py, carries the same tensor bytes and the old
or the new metadata, and no journal or temp file is left behind. Every other kill of an
in-place edit runs `ggufrope inspect FILE` first, which must report the interrupted edit and
write nothing (read-only commands never roll back).
"""
from __future__ import annotations

import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, file_digest, gguf_py_metadata, run_cli, tensor_digests, write_tiny_llama
from ggufrope.edit import SetValue, journal, patch_file
from ggufrope.edit.apply import locked
from ggufrope.edit.plan import PAD_KEY, plan_edit
from ggufrope.gguf import ValueType, read_header

pytestmark = pytest.mark.slow

SEED = 20240611
N_RANDOM_KILLS = 25

DRIVER = r"""
import json, os, signal, sys, time
mode, argv = sys.argv[1], sys.argv[2:]
from ggufrope.cli.app import main, _register
_register()
_kill, _pid = os.kill, os.getpid()
calls, times, target, when = [], [], -1, ""
if mode.startswith("crash:"):
    _, t, when = mode.split(":")
    target = int(t)

def die():
    _kill(_pid, signal.SIGKILL)

def hook(name, orig):
    def call(*a, **k):
        n = len(calls)
        calls.append(name)
        times.append(time.perf_counter() - t_go)
        if n == target:
            if when == "before":
                die()
            if when == "torn":
                if name == "pwrite":
                    orig(a[0], a[1][: len(a[1]) // 2], a[2])
                elif name == "write":
                    orig(a[0], a[1][: len(a[1]) // 2])
                elif name == "copy_file_range":
                    orig(a[0], a[1], max(1, a[2] // 2), *a[3:])
                elif name == "sendfile":
                    orig(a[0], a[1], a[2], max(1, a[3] // 2))
                elif name == "pwritev":  # O_DIRECT: half, kept to whole 4 KiB blocks
                    orig(a[0], [b[: len(b) // 2 // 4096 * 4096] for b in a[1]], a[2])
                die()
        r = orig(*a, **k)
        if n == target and when == "after":
            die()
        return r
    return call

if mode != "wait":
    for name in ("write", "pwrite", "pwritev", "fsync", "replace", "rename", "unlink", "copy_file_range",
                 "sendfile", "ftruncate"):
        if hasattr(os, name):
            setattr(os, name, hook(name, getattr(os, name)))
# started ahead of time: run the command only when released (EOF: the test is gone)
sys.stdout.write("ready\n")
sys.stdout.flush()
if sys.stdin.readline() != "go\n":
    sys.exit(0)
t_go = time.perf_counter()
sys.argv = ["ggufrope", *argv]
try:
    main()
finally:
    if mode == "trace":
        with open(os.environ["GGUFROPE_TRACE"], "w") as f:
            json.dump({"calls": calls, "times": times}, f)
"""
TORN = ("pwrite", "pwritev", "write", "copy_file_range", "sendfile")


def driver(mode: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    """Start the driver; it imports everything, then waits to be released (`release`)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-c", DRIVER, mode, *args], cwd=REPO, env=e,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def release(p: subprocess.Popen) -> None:
    line = p.stdout.readline()
    assert line == b"ready\n", (line, p.stderr.read().decode()[-2000:])
    p.stdin.write(b"go\n")
    p.stdin.flush()


def ahead(specs):
    """Drivers for specs, each started while the previous one is used (start-up overlaps)."""
    it = iter(specs)
    nxt = driver(*next(it))
    try:
        for spec in it:
            cur, nxt = nxt, driver(*spec)
            yield cur
        cur, nxt = nxt, None
        yield cur
    finally:  # a failed test: the started driver must not run
        if nxt is not None:
            nxt.kill()
            nxt.communicate()


def run_released(p: subprocess.Popen) -> subprocess.CompletedProcess:
    release(p)
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out.decode(), err.decode())


def leftovers(d: str) -> list[str]:
    return sorted(glob.glob(os.path.join(glob.escape(d), ".*.ggufrope-*")))


@dataclass
class Scenario:
    """One edit: its arguments, the file it changes and what that file is before and after."""
    name: str
    pristine: str       # a copy of the file before the edit
    target: str         # the path the edit writes (the model itself, or -o OUT)
    model: str          # the path given to ggufrope
    args: list[str]
    old_digest: str | None   # None: the target does not exist before (-o OUT)
    new_digest: str
    old_meta: dict | None
    new_meta: dict
    tensors: dict
    mode: str           # "inplace" or "copy"

    def reset(self) -> None:
        shutil.copyfile(self.pristine, self.model)
        if self.target != self.model and os.path.exists(self.target):
            os.unlink(self.target)
        assert leftovers(os.path.dirname(self.target)) == []

    def argv(self) -> list[str]:
        return ["patch", self.model, *self.args]


def make_scenario(name: str, work: Path, src: str, args: list[str], to_output: bool = False) -> Scenario:
    work.mkdir(parents=True, exist_ok=True)
    pristine = str(work / "pristine.gguf")
    shutil.copyfile(src, pristine)
    model = str(work / "model.gguf")
    shutil.copyfile(pristine, model)
    target = str(work / "out.gguf") if to_output else model
    full = [*args, "-o", target] if to_output else [*args, "--in-place"]
    r = run_cli("patch", model, *full, check=True)
    mode = "inplace" if "in place" in r.stdout else "copy"
    new_digest = file_digest(target)
    new_meta = gguf_py_metadata(target)
    tensors = tensor_digests(target)
    assert tensors == tensor_digests(pristine)
    sc = Scenario(name, pristine, target, model, full, None if to_output else file_digest(pristine),
                  new_digest, None if to_output else gguf_py_metadata(pristine), new_meta, tensors, mode)
    assert sc.old_digest != sc.new_digest
    sc.reset()
    return sc


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Pristine models: a big one (~63 MB, so a copy takes measurable time), a small one, and
    each of them once through a ggufrope copy (reserved header space: edits fit in place)."""
    d = tmp_path_factory.mktemp("crash-models")
    out = {}
    for size, n_ff in (("big", 40960), ("small", 1024)):
        p = write_tiny_llama(str(d / f"{size}.gguf"), n_ff=n_ff)
        r = str(d / f"{size}-reserved.gguf")
        run_cli("patch", p, "-o", r, "--set", "general.description=str:" + "reserve " * 20, check=True)
        with read_header(r) as h:
            assert PAD_KEY in h.fields  # later edits fit in place
        out[size], out[f"{size}-reserved"] = p, r
    return out


INPLACE_ARGS = ["--rope-scaling", "yarn", "--rope-scale", "4"]
COPY_ARGS = ["--rope-scaling", "yarn", "--rope-scale", "4", "--set", "general.url=str:" + "u" * 300]


@pytest.fixture(scope="module")
def scenarios(models, tmp_path_factory):
    base = tmp_path_factory.mktemp("crash-scenarios")
    out = {
        "big-inplace": make_scenario("big-inplace", base / "bi", models["big-reserved"], INPLACE_ARGS),
        "big-copy": make_scenario("big-copy", base / "bc", models["big"], COPY_ARGS),
        "small-inplace": make_scenario("small-inplace", base / "si", models["small-reserved"], INPLACE_ARGS),
        "small-copy": make_scenario("small-copy", base / "sc", models["small"], COPY_ARGS),
        "small-output": make_scenario("small-output", base / "so", models["small"], COPY_ARGS, to_output=True),
    }
    for name, sc in out.items():
        assert sc.mode == ("inplace" if name.endswith("inplace") else "copy"), name
    return out


def inspect_first(sc: Scenario, k: int) -> bool:
    """Every other kill of an in-place scenario: `ggufrope inspect FILE` before `recover` (a
    -o OUT copy may never have reached OUT)."""
    return k % 2 == 1 and sc.old_digest is not None


def check_inspect_writes_nothing(sc: Scenario) -> None:
    """After a kill, `inspect` reports what the crash left and changes nothing."""
    d = os.path.dirname(sc.target)
    before, left = file_digest(sc.target), leftovers(d)
    r = run_cli("inspect", sc.target)
    assert "Traceback" not in r.stderr, r.stderr
    assert file_digest(sc.target) == before, "`inspect` wrote into the file"
    assert leftovers(d) == left, "`inspect` removed or added files"
    if os.path.exists(journal.journal_path(sc.target)):
        assert f"ggufrope recover {sc.target}" in r.stderr, r.stderr


def check_after_kill(sc: Scenario, recoverer: subprocess.Popen) -> str:
    """Run the (pre-started) `ggufrope recover TARGET`; the target must then be the old or the
    new file, parse with gguf-py, keep its tensor bytes, and nothing may be left over."""
    d = os.path.dirname(sc.target)
    interrupted = os.path.exists(journal.journal_path(sc.target))
    had_temp = bool(glob.glob(os.path.join(glob.escape(d), ".*.ggufrope-tmp-*")))
    r = run_released(recoverer)
    assert r.returncode == 0 and "Traceback" not in r.stderr, (r.args, r.stdout, r.stderr)
    said = r.stdout + r.stderr
    if interrupted:
        assert "rolled back" in said or "discarded" in said, said
    if had_temp:
        assert "temp file" in said, said
    assert leftovers(d) == [], leftovers(d)
    if not os.path.exists(sc.target):
        assert sc.old_digest is None, "the model disappeared"
        return "old"
    digest = file_digest(sc.target)
    assert digest in (sc.old_digest, sc.new_digest), "the file is neither the old nor the new one"
    assert tensor_digests(sc.target) == sc.tensors  # parses with gguf-py, same tensor bytes
    meta = gguf_py_metadata(sc.target)
    assert meta == (sc.new_meta if digest == sc.new_digest else sc.old_meta)
    return "new" if digest == sc.new_digest else "old"


def _trace(sc: Scenario, tmp_path: Path) -> tuple[list[str], list[float], float]:
    """The file-system calls one uninterrupted edit makes, when it makes them, and how long
    the edit takes (seconds from release to exit)."""
    sc.reset()
    trace = str(tmp_path / f"{sc.name}.trace.json")
    p = driver("trace", *sc.argv(), env={"GGUFROPE_TRACE": trace})
    release(p)
    t0 = time.perf_counter()
    _, err = p.communicate(timeout=120)
    duration = time.perf_counter() - t0
    assert p.returncode == 0, err.decode()
    assert file_digest(sc.target) == sc.new_digest
    with open(trace) as f:
        t = json.load(f)
    return t["calls"], t["times"], duration


@pytest.mark.parametrize("name", ["big-inplace", "big-copy"])
def test_sigkill_at_random_moments(scenarios, name, tmp_path):
    """Half the kills land anywhere in the edit (0 to its measured duration), half inside the
    window where it writes (first to last file-system call, measured the same way)."""
    sc = scenarios[name]
    rng = random.Random(f"{SEED}-{name}")
    calls, times, duration = _trace(sc, tmp_path)
    first, last = times[0], times[-1]
    n = N_RANDOM_KILLS
    edits = ahead(("wait", *sc.argv()) for _ in range(n))
    recoverers = ahead(("wait", "recover", sc.target) for k in range(n))
    outcomes = {"old": 0, "new": 0, "interrupted": 0, "killed": 0}
    for k in range(n):
        delay = rng.uniform(0, duration) if k % 2 == 0 else rng.uniform(first, last)
        sc.reset()
        p = next(edits)
        release(p)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
        outcomes["killed"] += p.returncode == -signal.SIGKILL
        outcomes["interrupted"] += bool(leftovers(os.path.dirname(sc.target)))
        if inspect_first(sc, k):
            check_inspect_writes_nothing(sc)
        outcomes[check_after_kill(sc, next(recoverers))] += 1  # asserts: old or new file, nothing left
    print(f"{name}: edit {duration * 1000:.0f} ms, writes from {first * 1000:.1f} to {last * 1000:.1f} ms; "
          f"after {n} kills: {outcomes}")
    # some kills landed before the edit had finished (else every outcome would be "new"):
    # each of those had to come back as exactly the old file, with nothing left over
    assert outcomes["old"] >= 1 and outcomes["killed"] >= 1, outcomes


@pytest.mark.parametrize("name", ["small-inplace", "small-copy", "small-output"])
def test_sigkill_at_every_file_system_call(scenarios, name, tmp_path):
    """Kill before, after and (for writes) in the middle of each call the edit makes."""
    sc = scenarios[name]
    calls, _, _ = _trace(sc, tmp_path)
    assert ("pwrite" in calls) == (sc.mode == "inplace"), calls
    points = [(i, w) for i, c in enumerate(calls) for w in ("before", "after") + (("torn",) if c in TORN else ())]
    edits = ahead((f"crash:{i}:{when}", *sc.argv()) for i, when in points)
    recoverers = ahead(("wait", "recover", sc.target) for k in range(len(points)))
    seen = {"old": 0, "new": 0, "interrupted": 0, "inspected": 0}
    for k, (i, when) in enumerate(points):
        sc.reset()
        r = run_released(next(edits))
        assert r.returncode == -signal.SIGKILL, (calls[i], when, r.returncode, r.stderr[-2000:])
        interrupted = bool(leftovers(os.path.dirname(sc.target)))
        seen["interrupted"] += interrupted
        if interrupted and inspect_first(sc, k):
            check_inspect_writes_nothing(sc)
            seen["inspected"] += 1
        seen[check_after_kill(sc, next(recoverers))] += 1
    # the sweep reached both outcomes and left interrupted state, which `recover` cleaned up
    # (and which `inspect`, run first on half of the in-place kills, left alone)
    assert seen["old"] and seen["new"] and seen["interrupted"], seen
    assert seen["inspected"] or sc.old_digest is None, seen
    print(f"{name}: calls {calls}; outcomes {seen}")


# ---------------------------------------------------------------------------- deterministic
def _inplace_setup(tmp_path: Path, models) -> tuple[str, bytes, bytes]:
    """A model with reserved space, and the header an in-place edit of it would write."""
    p = str(tmp_path / "m.gguf")
    shutil.copyfile(models["small-reserved"], p)
    with read_header(p) as h:
        plan = plan_edit(h, [SetValue("llama.context_length", ValueType.UINT32, 4096),
                             SetValue("general.name", ValueType.STRING, "edited by a dying process")])
        assert plan.mode == "inplace"
        return p, h.header_bytes, plan.header


def _half_written(p: str, old: bytes, new: bytes) -> None:
    """What a crash leaves: the journal written, the header half overwritten."""
    journal.write(p, old, new)
    with open(p, "r+b") as f:
        f.write(new[: len(new) // 2])


@pytest.mark.parametrize("next_command", ["recover", "patch", "restore"])
def test_journal_with_half_written_header_is_rolled_back(models, tmp_path, next_command):
    p, old, new = _inplace_setup(tmp_path, models)
    original = Path(p).read_bytes()
    _half_written(p, old, new)
    assert Path(p).read_bytes() != original
    args = {"recover": ["recover", p],
            "patch": ["patch", p, "--in-place", "--set", "general.name=str:after"],
            "restore": ["restore", p]}[next_command]
    r = run_cli(*args)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "rolled back" in r.stdout + r.stderr
    assert leftovers(str(tmp_path)) == []
    if next_command == "recover":
        assert Path(p).read_bytes() == original
    elif next_command == "patch":
        # rolled back first, then edited: only general.name differs from the original
        from ggufrope.report import metadata_diff
        diff = metadata_diff(models["small-reserved"], p)
        assert [row["key"] for row in diff if not row["key"].startswith("ggufrope.")] == ["general.name"]
    assert tensor_digests(p) == tensor_digests(models["small-reserved"])


@pytest.mark.parametrize("command", ["inspect", "plan"])
def test_read_only_command_leaves_a_half_written_header_alone(models, tmp_path, command):
    """`inspect` and `plan` never roll back: they say what to run, and write nothing."""
    p, old, new = _inplace_setup(tmp_path, models)
    _half_written(p, old, new)
    crashed, jp = Path(p).read_bytes(), journal.journal_path(p)
    r = run_cli(command, p, *(["--ctx", "1024"] if command == "plan" else []))
    assert "Traceback" not in r.stderr, r.stderr
    assert f"run `ggufrope recover {p}`" in r.stderr, r.stderr
    assert Path(p).read_bytes() == crashed and leftovers(str(tmp_path)) == [jp]


def test_torn_journal_is_discarded_and_model_untouched(models, tmp_path):
    """A journal whose checksum fails was cut short before the model was touched."""
    p, old, new = _inplace_setup(tmp_path, models)
    original = Path(p).read_bytes()
    jp = journal.write(p, old, new)
    blob = bytearray(Path(jp).read_bytes())
    blob[-10] ^= 0xFF
    Path(jp).write_bytes(bytes(blob))
    r = run_cli("recover", p)
    assert r.returncode == 0 and "discarded" in r.stdout, r.stdout + r.stderr
    assert Path(p).read_bytes() == original and leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("blob", [
    pytest.param(journal.MAGIC, id="magic-only"),
    pytest.param(journal.MAGIC + b"\xff\xff", id="short-length"),
    pytest.param(journal.MAGIC + b"\x05\x00\x00\x00garbage", id="bad-json"),
    pytest.param(journal.MAGIC + b"\x02\x00\x00\x00[]", id="json-not-object"),
    pytest.param(b"\x00" * 100, id="zeros"),
    pytest.param(b"", id="empty"),
])
def test_damaged_journal_is_discarded(models, tmp_path, blob):
    """`inspect` reports it and leaves it; `recover` removes it, the model untouched."""
    p, _, _ = _inplace_setup(tmp_path, models)
    original = Path(p).read_bytes()
    jp = journal.journal_path(p)
    Path(jp).write_bytes(blob)
    r = run_cli("inspect", p)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "incomplete edit journal" in r.stderr and leftovers(str(tmp_path)) == [jp], r.stderr
    r = run_cli("recover", p)
    assert r.returncode == 0 and "discarded" in r.stdout, r.stdout + r.stderr
    assert Path(p).read_bytes() == original and leftovers(str(tmp_path)) == []


def test_incomplete_journal_tmp_is_removed(models, tmp_path):
    p, old, _ = _inplace_setup(tmp_path, models)
    original = Path(p).read_bytes()
    Path(journal.journal_path(p) + ".tmp").write_bytes(journal.MAGIC + old[:100])
    r = run_cli("recover", p)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert Path(p).read_bytes() == original and leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("replacement", ["big-reserved", "small-reserved"], ids=["other-size", "same-size"])
def test_stale_journal_of_a_replaced_file_is_not_applied(models, tmp_path, replacement):
    """A journal left by a crash, then the model replaced by a different file before any
    ggufrope command ran (another model, or the same one downloaded again: same size):
    writing the old header into the new file would corrupt it. The journal is kept until
    the user drops it; every command says how."""
    p, old, new = _inplace_setup(tmp_path, models)
    _half_written(p, old, new)
    jp = journal.journal_path(p)
    shutil.copyfile(models[replacement], p + ".download")
    os.replace(p + ".download", p)
    replaced = file_digest(p)
    r = run_cli("inspect", p)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"ggufrope recover --discard {p}" in r.stderr, r.stderr
    assert file_digest(p) == replaced, "a stale journal was written into a different file"
    assert leftovers(str(tmp_path)) == [jp]
    for args in (["recover", p], ["patch", p, "--in-place", "--rope-scale", "2"]):
        r = run_cli(*args)
        assert r.returncode == 4, (args, r.returncode, r.stderr)
        line = _one_error_line(r)
        assert p in line and "does not match" in line and "--discard" in line, line
        assert file_digest(p) == replaced and leftovers(str(tmp_path)) == [jp]
    r = run_cli("recover", "--discard", p)
    assert r.returncode == 0 and "discarded" in r.stdout, r.stdout + r.stderr
    assert file_digest(p) == replaced and leftovers(str(tmp_path)) == []


def test_stale_temp_file_of_a_dead_copy_is_removed_live_one_kept(models, tmp_path):
    p = str(tmp_path / "m.gguf")
    shutil.copyfile(models["small"], p)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = os.path.join(str(tmp_path), f".m.gguf.ggufrope-tmp-{dead.pid}")
    live = os.path.join(str(tmp_path), f".m.gguf.ggufrope-tmp-{os.getpid()}")
    for t in (stale, live):
        Path(t).write_bytes(b"partial copy")
    r = run_cli("recover", p)
    assert r.returncode == 0 and "temp file" in r.stdout, r.stdout + r.stderr
    assert not os.path.exists(stale) and os.path.exists(live)
    os.unlink(live)


# ---------------------------------------------------------------------------- concurrency
def _one_error_line(r) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_concurrent_edit_is_refused(models, tmp_path):
    p = str(tmp_path / "m.gguf")
    shutil.copyfile(models["small-reserved"], p)
    before = file_digest(p)
    out = str(tmp_path / "out.gguf")
    with locked(p):
        for args in (["--in-place", "--rope-scale", "2"], ["-o", out, "--rope-scale", "2"],
                     ["--in-place", "--rope-scaling", "yarn", "--rope-scale", "4", "--set",
                      "general.url=str:" + "u" * 20000]):
            r = run_cli("patch", p, *args)
            assert r.returncode == 6, (args, r.returncode, r.stderr)
            line = _one_error_line(r)
            assert p in line and "another ggufrope process" in line, line
        r = run_cli("restore", p)
        assert r.returncode == 6 and "another ggufrope process" in _one_error_line(r)
    assert file_digest(p) == before and not os.path.exists(out) and leftovers(str(tmp_path)) == []


def test_recovery_never_rolls_back_a_live_edit(models, tmp_path):
    """While an editor holds the lock its journal is live, not the trace of a crash: another
    `inspect`, `recover` or `patch` must not write the old header back under it."""
    p, old, new = _inplace_setup(tmp_path, models)
    with locked(p):
        journal.write(p, old, new)
        with open(p, "r+b") as f:
            f.write(new)
        for args in (["inspect", p], ["recover", p], ["patch", p, "--in-place", "--rope-scale", "2"]):
            r = run_cli(*args)
            assert "Traceback" not in r.stderr, r.stderr
            assert Path(p).read_bytes()[: len(new)] == new, f"`{args[0]}` rolled back a live edit"
            assert os.path.exists(journal.journal_path(p)), f"`{args[0]}` removed a live journal"
            if r.returncode != 0:
                assert "another ggufrope process" in _one_error_line(r)
        journal.finish(p)
    assert leftovers(str(tmp_path)) == []


# ---------------------------------------------------------------------------- precondition
def test_copy_to_new_file_reserves_header_space(models, tmp_path):
    """Journaled in-place edits need spare header space; a `-o` copy must create it even for an
    edit that would have fitted the old header (else the next edit is a whole-model copy, and
    the undo record is lost)."""
    out = str(tmp_path / "out.gguf")
    plan, _ = patch_file(models["small"], lambda h: [SetValue("llama.context_length", ValueType.UINT32, 512)],
                         out=out)
    assert plan.mode == "copy"
    with read_header(out) as h:
        assert PAD_KEY in h.fields and "ggufrope.original" in h.fields
