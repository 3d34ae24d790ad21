"""Journal for in-place header writes: a crash at any instant leaves the old or the new file.

Before the header is overwritten, the bytes about to change are saved beside the model as
`.NAME.ggufrope-journal` and fsynced (with the directory). The journal is deleted once the new
header is fsynced. A journal is written whole to a private temp file and then renamed, so a
journal that exists is complete; its checksum guards against a torn disk write.

A journal says which file it belongs to: the device and inode of the file, its size, the
offset of the range, the old bytes and the new bytes. It is rolled back only into that file,
and only when each 4 KiB block of the range holds the old or the new bytes (a torn write mixes
them); anything else means the file was replaced or rewritten since the crash, and writing
the old bytes into it would corrupt another file. Such a journal is kept and the user told
(`ggufrope recover --discard FILE` drops it). Read-only commands only report a journal
(`pending`); they never write.

Every path is resolved (realpath) first: a journal sits beside the real file, not a link.
Temp files are created O_EXCL|O_NOFOLLOW, mode 0600, under names unique to the process and
call, so a link planted at a temp name is never followed. Copies leave `.NAME.ggufrope-tmp-*`
files only when killed; `recover` removes those whose process is gone.
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import secrets
import stat
import struct
from dataclasses import dataclass

from ggufrope.errors import EditError, FileAccessError, LockedError

MAGIC = b"GGUFROPE-JOURNAL2\n"
_OLD_MAGIC = b"GGUFROPE-JOURNAL1\n"   # ggufrope before the journal recorded its file
_BLOCK = 4096
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def journal_path(path: str) -> str:
    d, name = os.path.split(os.path.realpath(path))
    return os.path.join(d, f".{name}.ggufrope-journal")


def tmp_path(path: str) -> str:
    """A fresh temp name beside path's real file (pid, then a random token: unique per call)."""
    d, name = os.path.split(os.path.realpath(path))
    return os.path.join(d, f".{name}.ggufrope-tmp-{os.getpid()}-{secrets.token_hex(4)}")


def create_private(p: str) -> int:
    """Create p for writing: never an existing file or a link (O_EXCL|O_NOFOLLOW), mode 0600."""
    return os.open(p, _NEW_FILE, 0o600)


def fsync_dir(d: str) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write(path: str, old: bytes, new: bytes, offset: int = 0, st: os.stat_result | None = None) -> str:
    """Durably save old (the bytes at offset about to become new) for path's real file, whose
    stat is st (taken from the file descriptor the edit writes through, when the caller has
    one). Returns the journal's path."""
    assert len(old) == len(new)
    real = os.path.realpath(path)
    st = st if st is not None else os.stat(real)
    jp = journal_path(real)
    meta = json.dumps({"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "offset": offset,
                       "len": len(old), "old_sha256": hashlib.sha256(old).hexdigest(),
                       "new_sha256": hashlib.sha256(new).hexdigest()}).encode()
    tmp = f"{jp}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = create_private(tmp)
        try:
            _write_all(fd, MAGIC + struct.pack("<I", len(meta)) + meta + old + new)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, jp)
    except OSError as e:
        _unlink(tmp)
        raise FileAccessError(f"{path}: cannot write the edit journal {jp} ({e.strerror}); "
                              f"edit a copy with -o OUT instead") from None
    fsync_dir(os.path.dirname(jp))
    return jp


def finish(path: str) -> None:
    real = os.path.realpath(path)
    _unlink(journal_path(real))
    fsync_dir(os.path.dirname(real))


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


def _journal_tmps(jp: str) -> list[str]:
    """Temp files of journals never completed (the model was not touched yet). The bare
    `.tmp` name is what older ggufrope used."""
    return glob.glob(glob.escape(jp) + ".tmp*")


# ---------------------------------------------------------------------------- judging a journal
@dataclass(frozen=True)
class Verdict:
    """What a journal found beside a file means. action: "torn" (incomplete or damaged: the
    model was never touched), "unused" (the range still holds the old bytes), "rollback" (it
    holds the new bytes or a mix: the edit was interrupted), "stale" (it belongs to another
    file, or the file changed since; why says how)."""

    action: str
    why: str = ""
    offset: int = 0
    old: bytes = b""


def _parse(blob: bytes) -> tuple[dict, bytes, bytes] | None:
    """(meta, old, new) of a journal, or None if it is torn or damaged."""
    try:
        if not blob.startswith(MAGIC):
            return None
        (n,) = struct.unpack_from("<I", blob, len(MAGIC))
        meta = json.loads(blob[len(MAGIC) + 4: len(MAGIC) + 4 + n])
        body = blob[len(MAGIC) + 4 + n:]
        k = meta["len"]
        old, new = body[:k], body[k:]
        if (isinstance(k, int) and len(old) == len(new) == k
                and hashlib.sha256(old).hexdigest() == meta["old_sha256"]
                and hashlib.sha256(new).hexdigest() == meta["new_sha256"]
                and isinstance(meta["offset"], int) and meta["offset"] >= 0):
            return meta, old, new
    except (struct.error, ValueError, KeyError, TypeError):
        pass
    return None


def _is_mix(cur: bytes, old: bytes, new: bytes) -> bool:
    """Each 4 KiB block of cur is old's or new's (a torn write ends mid-block: that block is
    compared byte by byte)."""
    for i in range(0, len(cur), _BLOCK):
        c, o, n = cur[i:i + _BLOCK], old[i:i + _BLOCK], new[i:i + _BLOCK]
        if c != o and c != n and not all(x in (y, z) for x, y, z in zip(c, o, n)):
            return False
    return True


def _judge(fd: int, blob: bytes, jst: os.stat_result) -> Verdict:
    if blob.startswith(_OLD_MAGIC):
        return Verdict("stale", "it was written by an older ggufrope and does not say which file it belongs to")
    got = _parse(blob)
    if got is None:
        return Verdict("torn")
    meta, old, new = got
    st = os.fstat(fd)
    if jst.st_uid not in (os.geteuid(), st.st_uid):
        return Verdict("stale", f"the journal is owned by uid {jst.st_uid}, neither you nor the file's owner")
    if (st.st_dev, st.st_ino) != (meta.get("dev"), meta.get("ino")):
        return Verdict("stale", "the file was replaced since: it is another inode")
    if st.st_size != meta.get("size"):
        return Verdict("stale", f"the file's size changed since, from {meta.get('size')} to {st.st_size} bytes")
    off = meta["offset"]
    cur = os.pread(fd, len(old), off)
    if cur == old:
        return Verdict("unused", offset=off, old=old)
    if cur == new or _is_mix(cur, old, new):
        return Verdict("rollback", offset=off, old=old)
    return Verdict("stale", f"the bytes at 0x{off:x}..0x{off + len(old):x} are neither the old nor "
                            f"the new ones, so the file was rewritten since")


def _read_journal(path: str, jp: str) -> tuple[bytes, os.stat_result] | None:
    try:
        # O_NOFOLLOW: a link planted at the journal's name is not a journal
        fd = os.open(jp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise FileAccessError(f"{path}: cannot read the edit journal {jp} ({e.strerror}); "
                              f"remove it with `ggufrope recover --discard {path}`") from None
    try:
        jst = os.fstat(fd)
        if not stat.S_ISREG(jst.st_mode):
            return b"", jst
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), jst
    finally:
        os.close(fd)


def _stale_error(path: str, jp: str, why: str) -> EditError:
    return EditError(f"{path}: the journal {jp} of an interrupted edit does not match this file ({why}); "
                     f"nothing was written. If the file is good, drop the journal with "
                     f"`ggufrope recover --discard {path}`")


# ---------------------------------------------------------------------------- acting on it
def pending(path: str) -> list[str]:
    """Read-only: notes on what an interrupted edit left beside path (nothing if nothing).
    Never writes, never removes."""
    real = os.path.realpath(path)
    jp = journal_path(real)
    notes = []
    try:
        got = _read_journal(path, jp)
    except FileAccessError as e:
        return [str(e)]
    if got is not None:
        blob, jst = got
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            fd = None
        try:
            if fd is None:
                v = Verdict("stale", "the file cannot be read")
            elif not _lock_free(fd):
                return [f"{path}: another ggufrope process is editing this file right now"]
            else:
                v = _judge(fd, blob, jst)
        finally:
            if fd is not None:
                os.close(fd)
        if v.action == "stale":
            notes.append(f"{path}: the journal {jp} of an interrupted edit does not match this file ({v.why}); "
                         f"it was left alone. If the file is good, drop it with `ggufrope recover --discard {path}`")
        else:
            what = {"torn": "an incomplete edit journal (the file was not modified)",
                    "unused": "the journal of an edit interrupted before it wrote (the file was not modified)",
                    "rollback": "an in-place edit was interrupted; this command read the half-edited file"}[v.action]
            notes.append(f"{path}: {what}; run `ggufrope recover {path}` to clean up (this command writes nothing)")
    tmps = _journal_tmps(jp) + stale_tmp_files(real)
    if tmps and got is None:
        notes.append(f"{path}: {len(tmps)} temp file(s) of an interrupted edit are left over; "
                     f"run `ggufrope recover {path}` to remove them")
    return notes


def _lock_free(fd: int) -> bool:
    """No editor holds the file's lock (a shared lock taken and dropped at once: writes nothing)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def recover(path: str, discard: bool = False) -> str | None:
    """Roll back an interrupted in-place edit of path (discard: drop its journal instead,
    writing nothing into the file). Returns what was done, or None.
    A journal whose editor still runs (it holds the file's lock) is live, not the trace of a
    crash: that raises LockedError and touches nothing."""
    real = os.path.realpath(path)
    jp = journal_path(real)
    if not (os.path.lexists(jp) or _journal_tmps(jp)):
        return None
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        fd = None  # no file to lock (rollback reports what is wrong)
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockedError(f"{path}: another ggufrope process is editing this file; "
                                  f"try again when it has finished") from None
        return rollback(path, discard)
    finally:
        if fd is not None:
            os.close(fd)


def _remove(path: str, jp: str, note: str) -> str:
    try:
        _unlink(jp)
    except OSError as e:
        raise FileAccessError(f"{path}: cannot remove the edit journal {jp} ({e.strerror}); "
                              f"fix the directory's permissions and run `ggufrope recover {path}`") from None
    fsync_dir(os.path.dirname(jp))
    return note


def rollback(path: str, discard: bool = False) -> str | None:
    """recover() for a caller that already holds path's lock. Raises EditError, keeping the
    journal, when it does not match the file."""
    real = os.path.realpath(path)
    jp = journal_path(real)
    for t in _journal_tmps(jp):
        try:
            _unlink(t)  # a journal never completed: the model was not touched yet
        except OSError:
            pass
    if discard:
        if not os.path.lexists(jp):
            return None
        # whatever sits at the name (a link is removed, not followed)
        return _remove(path, jp, f"{path}: discarded the journal {jp} without writing into the file")
    got = _read_journal(path, jp)
    if got is None:
        return None
    blob, jst = got
    try:
        fd = os.open(real, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            raise _stale_error(path, jp, f"the file cannot be opened: {e.strerror}") from None
        writable_error = e
    else:
        writable_error = None
    try:
        v = _judge(fd, blob, jst)
        if v.action == "torn":
            # the journal is complete before the model is touched: the model is untouched
            return _remove(path, jp, f"{path}: discarded an incomplete edit journal (the model was not modified)")
        if v.action == "stale":
            raise _stale_error(path, jp, v.why)
        if v.action == "unused":
            return _remove(path, jp, f"{path}: discarded the journal of an edit interrupted before it wrote "
                                     f"(the model was not modified)")
        if writable_error is not None:
            raise FileAccessError(f"{path}: an interrupted edit needs rolling back, but the file cannot be "
                                  f"written ({writable_error.strerror}); fix that and run "
                                  f"`ggufrope recover {path}`")
        try:
            view = memoryview(v.old)
            off = v.offset
            while view:
                k = os.pwrite(fd, view, off)
                view, off = view[k:], off + k
            os.fsync(fd)
        except OSError as e:
            raise FileAccessError(f"{path}: an interrupted edit needs rolling back, but the file cannot be "
                                  f"written ({e.strerror}); fix that and run `ggufrope recover {path}`") from None
    finally:
        os.close(fd)
    return _remove(path, jp, f"{path}: rolled back an interrupted in-place edit")


_TMP_PID = re.compile(r"\.ggufrope-tmp-(\d+)(?:-[0-9a-f]+)?$")


def stale_tmp_files(path: str) -> list[str]:
    """Temp files of copies by ggufrope processes that no longer run."""
    d, name = os.path.split(os.path.realpath(path))
    out = []
    for p in glob.glob(os.path.join(glob.escape(d), f".{glob.escape(name)}.ggufrope-tmp-*")):
        m = _TMP_PID.search(p)
        if m and not _alive(int(m.group(1))):
            out.append(p)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
