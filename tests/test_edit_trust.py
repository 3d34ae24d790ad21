"""The edit layer against an unlucky or hostile user (the audit of issue #10, items 1-4).

* A journal left by a crash rolls back only the file it was written for, and only when that
  file's bytes in the journaled range are the old or the new ones; read-only commands never
  write, they report the pending journal.
* A symlink is resolved once: every edit, its journal and `recover` act on the real file.
* An in-place edit that grows the header (a new file renamed over the old one) is refused on a
  read-only file like a same-size edit, and keeps owner, group and mode.
* Temp and journal files are created O_EXCL|O_NOFOLLOW, mode 0600, under unique names.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, file_digest, run_cli, write_tiny_llama
from ggufrope.edit import SetValue, journal, patch_file
from ggufrope.gguf import ValueType, read_header

FITS = ["--rope-freq-base", "20000"]                       # same-size edit: in place
GROWS = ["--set", "general.url=str:" + "u" * 60000]        # the header grows: copy + rename

# Run the real CLI, but die (SIGKILL) right after the in-place header write: a crash that
# leaves the new header on disk and the journal beside it.
KILL_AFTER_PWRITE = r"""
import os, signal, sys
_pwrite = os.pwrite
def pwrite(*a):
    r = _pwrite(*a)
    os.kill(os.getpid(), signal.SIGKILL)
    return r
os.pwrite = pwrite
from ggufrope.cli.app import main
sys.argv = ["ggufrope", *sys.argv[1:]]
main()
"""


def leftovers(d) -> list[str]:
    return sorted(glob.glob(os.path.join(glob.escape(str(d)), ".*.ggufrope-*")))


def one_error_line(r) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def reserved(tmp_path_factory) -> str:
    """A tiny model that went through a ggufrope copy once: it has reserved header space, so
    same-size and small growing edits both fit in place (journaled)."""
    d = tmp_path_factory.mktemp("trust")
    p = write_tiny_llama(str(d / "base.gguf"), n_ff=256)
    out = str(d / "reserved.gguf")
    run_cli("patch", p, "-o", out, "--set", "general.description=str:" + "reserve " * 20, check=True)
    return out


@pytest.fixture
def model(reserved, tmp_path) -> str:
    p = str(tmp_path / "m.gguf")
    shutil.copyfile(reserved, p)
    return p


def crash_in_place_edit(path: str, *args: str) -> None:
    """`ggufrope patch PATH --in-place ARGS`, SIGKILLed right after it wrote the new header."""
    r = subprocess.run([sys.executable, "-c", KILL_AFTER_PWRITE, "patch", path, "--in-place", *args],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    assert os.path.exists(journal.journal_path(path)), "the crash left no journal"


def same_size_other_model(reserved: str, tmp_path: Path) -> str:
    """Another GGUF of exactly the same size (another quant or fine-tune often is)."""
    other = str(tmp_path / "other.gguf")
    shutil.copyfile(reserved, other)
    run_cli("patch", other, "--in-place", "--rope-freq-base", "500000", "--set", "general.name=str:other",
            check=True)
    assert os.path.getsize(other) == os.path.getsize(reserved)
    return other


# ---------------------------------------------------------------------------- item 1: stale journals
@pytest.mark.parametrize("how", ["replaced", "rewritten-in-place"])
def test_stale_journal_never_touches_a_same_size_different_file(reserved, model, tmp_path, how):
    """The audit's data loss: a crash leaves a journal, the model is replaced by another GGUF of
    the same size (or rewritten in place by another tool), then plain `inspect` ran."""
    crash_in_place_edit(model, "--rope-scaling", "yarn", "--rope-scale", "4")
    other = same_size_other_model(reserved, tmp_path)
    if how == "replaced":
        shutil.copyfile(other, model + ".new")
        os.replace(model + ".new", model)
    else:
        with open(model, "r+b") as f:
            f.write(Path(other).read_bytes())
    before = file_digest(model)

    for args in (["inspect", model], ["plan", model, "--ctx", "1024"]):
        r = run_cli(*args)
        assert "Traceback" not in r.stderr, r.stderr
        assert file_digest(model) == before, f"`{args[0]}` wrote a stale journal into another file"
        assert "recover" in r.stderr, r.stderr  # the pending journal is reported
    for args in (["recover", model], ["patch", model, "--in-place", *FITS], ["restore", model]):
        r = run_cli(*args)
        assert r.returncode != 0, (args, r.stdout, r.stderr)
        line = one_error_line(r)
        assert model in line and "--discard" in line, line
        assert file_digest(model) == before, f"`{args[0]}` wrote a stale journal into another file"
        assert os.path.exists(journal.journal_path(model)), f"`{args[0]}` dropped the journal"
    r = run_cli("recover", "--discard", model)
    assert r.returncode == 0 and "discarded" in r.stdout, r.stdout + r.stderr
    assert file_digest(model) == before and leftovers(tmp_path) == []


def test_read_only_commands_report_a_pending_journal_and_never_write(reserved, model, tmp_path):
    """After a genuine crash `inspect` and `plan` leave the file and its journal alone and say
    what to run; `recover` then rolls back to the original bytes."""
    original = file_digest(model)
    crash_in_place_edit(model, "--rope-scaling", "yarn", "--rope-scale", "4")
    crashed = file_digest(model)
    assert crashed != original
    for args in (["inspect", model], ["plan", model, "--ctx", "1024"]):
        r = run_cli(*args)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert f"ggufrope recover {model}" in r.stderr, r.stderr
        assert file_digest(model) == crashed, f"`{args[0]}` wrote"
        assert os.path.exists(journal.journal_path(model)), f"`{args[0]}` removed the journal"
    r = run_cli("recover", model)
    assert r.returncode == 0 and "rolled back" in r.stdout, r.stdout + r.stderr
    assert file_digest(model) == original and leftovers(tmp_path) == []


def test_journal_of_a_copy_with_the_same_bytes_is_not_applied(model, tmp_path):
    """Identity is the inode, not the bytes: a copy of the crashed file put in its place (same
    size, same bytes in the range) is not the file the journal was written for."""
    crash_in_place_edit(model, "--rope-scaling", "yarn", "--rope-scale", "4")
    shutil.copyfile(model, model + ".copy")
    os.replace(model + ".copy", model)
    before = file_digest(model)
    r = run_cli("recover", model)
    assert r.returncode != 0 and "--discard" in one_error_line(r)
    assert file_digest(model) == before and os.path.exists(journal.journal_path(model))


def test_crash_before_the_write_discards_the_journal(model, tmp_path):
    """A journal whose range still holds the old bytes: nothing to roll back, nothing written."""
    with read_header(model) as h:
        old = h.raw(0, 64)
    journal.write(model, old, b"\xee" * 64)
    original = file_digest(model)
    r = run_cli("recover", model)
    assert r.returncode == 0 and "not modified" in r.stdout, r.stdout + r.stderr
    assert file_digest(model) == original and leftovers(tmp_path) == []


# ---------------------------------------------------------------------------- item 2: symlinks
@pytest.mark.parametrize("args", [pytest.param(FITS, id="same-size"), pytest.param(GROWS, id="grows")])
def test_in_place_edit_through_a_symlink_edits_the_real_file(model, tmp_path, args):
    link = str(tmp_path / "link.gguf")
    os.symlink(model, link)
    before = file_digest(model)
    r = run_cli("patch", link, "--in-place", *args)
    assert r.returncode == 0, r.stderr
    assert ("streaming copy" in r.stdout) == (args is GROWS), r.stdout
    assert "through a symlink" in r.stdout + r.stderr, r.stdout + r.stderr
    assert os.path.islink(link) and os.readlink(link) == model, "the link was replaced"
    assert file_digest(model) != before, "the real file was not edited"
    assert leftovers(tmp_path) == []


def test_journal_of_an_edit_through_a_symlink_sits_beside_the_real_file(model, tmp_path):
    sub = tmp_path / "links"
    sub.mkdir()
    link = str(sub / "link.gguf")
    os.symlink(model, link)
    original = file_digest(model)
    crash_in_place_edit(link, "--rope-scaling", "yarn", "--rope-scale", "4")
    assert leftovers(sub) == [], "the journal sits beside the link"
    r = run_cli("recover", model)
    assert r.returncode == 0 and "rolled back" in r.stdout, r.stdout + r.stderr
    assert file_digest(model) == original and leftovers(tmp_path) == []


def test_output_naming_the_source_through_a_symlink_is_an_in_place_edit(model, tmp_path):
    link = str(tmp_path / "link.gguf")
    os.symlink(model, link)
    before = file_digest(model)
    r = run_cli("patch", model, "-o", link, *FITS)
    assert r.returncode == 0, r.stderr
    assert os.path.islink(link) and file_digest(model) != before


# ---------------------------------------------------------------------------- item 3: permissions
@pytest.mark.parametrize("args", [pytest.param(FITS, id="same-size"), pytest.param(GROWS, id="grows")])
def test_in_place_edit_of_a_read_only_file_is_refused(model, tmp_path, args):
    os.chmod(model, 0o444)
    before = file_digest(model)
    r = run_cli("patch", model, "--in-place", *args)
    assert r.returncode == 5, (r.returncode, r.stdout, r.stderr)
    line = one_error_line(r)
    assert model in line and "read-only" in line and "-o OUT" in line, line
    assert file_digest(model) == before and stat.S_IMODE(os.stat(model).st_mode) == 0o444
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
@pytest.mark.parametrize("args", [pytest.param(FITS, id="same-size"), pytest.param(GROWS, id="grows")])
def test_in_place_edit_keeps_owner_group_and_mode(model, tmp_path, args):
    os.chown(model, 1234, 2345)
    os.chmod(model, 0o640)
    r = run_cli("patch", model, "--in-place", *args)
    assert r.returncode == 0, r.stderr
    assert ("streaming copy" in r.stdout) == (args is GROWS), r.stdout
    st = os.stat(model)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o640)


# ---------------------------------------------------------------------------- item 4: temp files
def test_planted_link_at_the_journal_temp_name_is_not_followed(model, tmp_path):
    victim = tmp_path / "victim"
    planted = os.path.join(str(tmp_path), ".m.gguf.ggufrope-journal.tmp")
    os.symlink(str(victim), planted)
    r = run_cli("patch", model, "--in-place", *FITS)
    assert r.returncode == 0, r.stderr
    assert not victim.exists(), "the edit wrote its journal through a planted symlink"


def test_journal_and_copy_temp_files_are_private(model, tmp_path):
    with read_header(model) as h:
        old = h.raw(0, 64)
    jp = journal.write(model, old, b"\xee" * 64)
    assert stat.S_IMODE(os.lstat(jp).st_mode) == 0o600
    journal.finish(model)

    seen: list[tuple[str, int]] = []

    def progress(done: int, total: int) -> None:
        for t in glob.glob(os.path.join(str(tmp_path), ".m.gguf.ggufrope-tmp-*")):
            seen.append((os.path.basename(t), stat.S_IMODE(os.lstat(t).st_mode)))

    os.chmod(model, 0o644)
    patch_file(model, lambda h: [SetValue("general.url", ValueType.STRING, "u" * 60000)], in_place=True,
               progress=progress)
    assert seen and all(mode == 0o600 for _, mode in seen), seen
    assert stat.S_IMODE(os.stat(model).st_mode) == 0o644
    # unique per run, not only per process
    patch_file(model, lambda h: [SetValue("general.url", ValueType.STRING, "v" * 120000)], in_place=True,
               progress=progress)
    assert len({name for name, _ in seen}) == 2, seen


@pytest.mark.parametrize("args", [pytest.param(["restore", "--dry-run"], id="restore"),
                                  pytest.param(["patch", "--dry-run", "--in-place", *FITS], id="patch")])
def test_dry_run_reports_a_pending_journal_and_writes_nothing(model, tmp_path, args):
    crash_in_place_edit(model, "--rope-scaling", "yarn", "--rope-scale", "4")
    crashed = file_digest(model)
    r = run_cli(args[0], model, *args[1:])
    assert r.returncode == 0, r.stderr
    assert f"ggufrope recover {model}" in r.stdout + r.stderr, r.stdout + r.stderr
    assert file_digest(model) == crashed and os.path.exists(journal.journal_path(model))


def test_planted_link_at_the_journal_name_is_not_followed(model, tmp_path):
    """A link at `.NAME.ggufrope-journal` (to a crafted journal elsewhere) is not a journal:
    `recover` refuses without writing, `recover --discard` removes the link, not its target."""
    crafted = tmp_path / "crafted"
    crafted.write_bytes(journal.MAGIC + b"\x02\x00\x00\x00{}")
    os.symlink(str(crafted), journal.journal_path(model))
    before = file_digest(model)
    r = run_cli("recover", model)
    assert r.returncode == 5 and "--discard" in one_error_line(r), r.stderr
    r = run_cli("recover", "--discard", model)
    assert r.returncode == 0 and "discarded" in r.stdout, r.stdout + r.stderr
    assert not os.path.lexists(journal.journal_path(model)) and crafted.exists()
    assert file_digest(model) == before


def test_inspect_during_a_live_edit_says_so(model, tmp_path):
    from ggufrope.edit.apply import locked
    with read_header(model) as h:
        old = h.raw(0, 64)
    with locked(model):
        journal.write(model, old, b"\xee" * 64)
        r = run_cli("inspect", model)
        assert r.returncode == 0 and "another ggufrope process is editing" in r.stderr, r.stderr
        journal.finish(model)
