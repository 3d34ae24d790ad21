"""Faults injected into the real CLI process at one system call, as any user, no mounts needed:

  * a write whose bytes do not read back (one byte flipped on its way to the disk): the edit
    is rolled back, exit 7 (IntegrityError), the original unchanged, nothing left behind;
  * the file system refusing (ENOSPC, EROFS, EACCES) at the open, the write or the copy:
    exit 5 (FileAccessError) in one line naming the file and the reason, nothing changed.

A driver process installs the fault on `os.<call>` for one file (by name), then runs ggufrope's
`main()` with the command's argv; the fault fires once, every other call goes through.
tests/test_bad_input.py runs the same file-system errors for real (another user, a read-only or
full tmpfs) where this machine allows it."""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from conftest import REPO, file_digest, run_cli, write_tiny_llama

DRIVER = r"""
import errno, os, sys
calls, action, where = sys.argv[1].split(":", 2)
argv = sys.argv[2:]

def named(p):
    b = os.path.basename(os.fspath(p))
    return b == where[1:] if where.startswith("=") else where in b

def fd_path(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""

fired = []

def fault(name, orig):
    def call(*a, **k):
        if not fired:
            if name == "open":
                hit = bool(a[1] & (os.O_WRONLY | os.O_RDWR)) and named(a[0])
            else:  # the file written to: copy_file_range(src, dst, ...), the others (dst, ...)
                hit = named(fd_path(a[1] if name == "copy_file_range" else a[0]))
            if hit:
                fired.append(name)
                if action == "flip":  # the bytes reach the disk with one bit pattern changed
                    data = bytearray(a[1])
                    data[-1] ^= 0xFF
                    return orig(a[0], bytes(data), *a[2:], **k)
                code = getattr(errno, action)
                raise OSError(code, os.strerror(code))
        return orig(*a, **k)
    return call

for name in calls.split(","):
    setattr(os, name, fault(name, getattr(os, name)))
from ggufrope.cli.app import main
sys.argv = ["ggufrope", *argv]
try:
    main()
finally:
    sys.stderr.write(f"\nfault fired at: {fired}\n")
"""


def faulty_cli(fault: str, *argv: str) -> subprocess.CompletedProcess:
    """`ggufrope ARGV` with FAULT (calls:action:file) installed; asserts the fault fired."""
    r = subprocess.run([sys.executable, "-c", DRIVER, fault, *argv], capture_output=True, text=True,
                       cwd=REPO, timeout=600)  # hang guard only
    assert "fault fired at: []" not in r.stderr, f"the fault {fault} never fired:\n{r.stderr}"
    return r


def error_line(r: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("ggufrope: error: ")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def leftovers(d: str) -> list[str]:
    return sorted(glob.glob(os.path.join(glob.escape(d), ".*.ggufrope-*")))


@pytest.fixture
def model(tmp_path):
    """A model with header room (written by `patch -o`), so a one-value edit is done in place."""
    src = write_tiny_llama(str(tmp_path / "src.gguf"))
    m = str(tmp_path / "m.gguf")
    run_cli("patch", src, "-o", m, "--rope-scale", "2", check=True)
    return m


# ------------------------------------------------------------------ a write that does not read back
def test_in_place_write_that_reads_back_wrong_is_rolled_back(model, tmp_path):
    before = file_digest(model)
    r = faulty_cli("pwrite:flip:=m.gguf", "patch", model, "--in-place", "--rope-scale", "3")
    assert r.returncode == 7, r.stderr
    assert error_line(r) == (f"ggufrope: error: {model}: the header read back differs from the one written; "
                             f"nothing was changed")
    assert file_digest(model) == before
    assert leftovers(str(tmp_path)) == []
    # and the file is usable: the same edit without the fault goes through
    run_cli("patch", model, "--in-place", "--rope-scale", "3", check=True)
    assert file_digest(model) != before


def test_copy_that_reads_back_wrong_leaves_no_output(model, tmp_path):
    out = str(tmp_path / "out.gguf")
    before = file_digest(model)
    r = faulty_cli("write:flip:.out.gguf.ggufrope-tmp-", "patch", model, "-o", out, "--rope-scaling", "yarn",
                   "--rope-scale", "4")
    assert r.returncode == 7, r.stderr
    assert error_line(r).startswith(f"ggufrope: error: {model}: the header read back differs")
    assert not os.path.exists(out) and file_digest(model) == before
    assert leftovers(str(tmp_path)) == []


# ------------------------------------------------------------------ the file system refuses
CASES = [
    pytest.param("open:EACCES:=m.gguf", ["--in-place", "--rope-scale", "3"],
                 "{m}: opening for an in-place edit failed: permission denied; use -o OUT", id="in-place-EACCES"),
    pytest.param("open:EROFS:=m.gguf", ["--in-place", "--rope-scale", "3"],
                 "{m}: opening for an in-place edit failed: read-only file system; use -o OUT", id="in-place-EROFS"),
    pytest.param("pwrite:ENOSPC:=m.gguf", ["--in-place", "--rope-scale", "3"],
                 "{m}: in-place write failed: no space left on the device", id="in-place-write-ENOSPC"),
    pytest.param("open:EACCES:.out.gguf.ggufrope-tmp-", ["-o", "{out}", "--rope-scale", "3"],
                 "{out}: creating the output failed: permission denied", id="copy-create-EACCES"),
    pytest.param("open:EROFS:.out.gguf.ggufrope-tmp-", ["-o", "{out}", "--rope-scale", "3"],
                 "{out}: creating the output failed: read-only file system", id="copy-create-EROFS"),
    pytest.param("copy_file_range,sendfile,pwritev:ENOSPC:.out.gguf.ggufrope-tmp-", ["-o", "{out}", "--rope-scale", "3"],
                 "{out}: copy failed: no space left on the device", id="copy-data-ENOSPC"),
    pytest.param("write:ENOSPC:.out.gguf.ggufrope-tmp-", ["-o", "{out}", "--rope-scale", "3"],
                 "{out}: copy failed: no space left on the device", id="copy-header-ENOSPC"),
]


@pytest.mark.parametrize("fault,args,message", CASES)
def test_file_system_refusal_is_exit_5_and_changes_nothing(model, tmp_path, fault, args, message):
    out = str(tmp_path / "out.gguf")
    before = file_digest(model)
    r = faulty_cli(fault, "patch", model, *[a.format(out=out) for a in args])
    assert r.returncode == 5, r.stderr
    assert error_line(r) == "ggufrope: error: " + message.format(m=model, out=out)
    assert file_digest(model) == before and not os.path.exists(out)
    assert leftovers(str(tmp_path)) == []
