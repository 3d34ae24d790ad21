"""Journal for in-place header writes: a crash at any instant leaves the old or the new file.

Before the header is overwritten, the original header bytes are saved beside the model as
`.NAME.ggufrope-journal` and fsynced (with the directory). The journal is deleted once the
new header is fsynced. If a journal is found, the edit was interrupted: its bytes are written
back (roll back) and the journal removed. A journal is written whole to a temp name and then
renamed, so a journal that exists is complete; its checksum guards against a torn disk write.

Copies leave `.NAME.ggufrope-tmp-PID` files only when killed; `recover` removes them.
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import struct

from ggufrope.errors import FileAccessError, LockedError

MAGIC = b"GGUFROPE-JOURNAL1\n"


def journal_path(path: str) -> str:
    d, name = os.path.split(os.path.abspath(path))
    return os.path.join(d, f".{name}.ggufrope-journal")


def tmp_path(path: str) -> str:
    d, name = os.path.split(os.path.abspath(path))
    return os.path.join(d, f".{name}.ggufrope-tmp-{os.getpid()}")


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


def write(path: str, old_header: bytes, file_size: int, offset: int = 0) -> str:
    """Durably save the bytes about to be overwritten (old_header, at offset) for path;
    returns the journal's path. Only the changed range is saved, not the whole header."""
    jp = journal_path(path)
    meta = json.dumps({"size": file_size, "len": len(old_header), "offset": offset,
                       "sha256": hashlib.sha256(old_header).hexdigest()}).encode()
    tmp = jp + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack("<I", len(meta)) + meta + old_header)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, jp)
    except OSError as e:
        _unlink(tmp)
        raise FileAccessError(f"{path}: cannot write the edit journal {jp} ({e.strerror}); "
                              f"edit a copy with -o OUT instead") from None
    fsync_dir(os.path.dirname(jp))
    return jp


def finish(path: str) -> None:
    _unlink(journal_path(path))
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass



def recover(path: str) -> str | None:
    """Roll back an interrupted in-place edit of path. Returns what was done, or None.
    A journal whose editor still runs (it holds the file's lock) is live, not the trace of a
    crash: that raises LockedError and touches nothing."""
    jp = journal_path(path)
    if not (os.path.exists(jp) or os.path.exists(jp + ".tmp")):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        fd = None  # no file to lock (rollback reports what is wrong)
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockedError(f"{path}: another ggufrope process is editing this file; "
                                  f"try again when it has finished") from None
        return rollback(path)
    finally:
        if fd is not None:
            os.close(fd)


def _read(blob: bytes) -> tuple[dict, bytes] | None:
    """(meta, old header) of a journal, or None if it is torn or damaged."""
    try:
        if not blob.startswith(MAGIC):
            return None
        (n,) = struct.unpack_from("<I", blob, len(MAGIC))
        meta = json.loads(blob[len(MAGIC) + 4: len(MAGIC) + 4 + n])
        old = blob[len(MAGIC) + 4 + n:]
        if len(old) == meta["len"] and hashlib.sha256(old).hexdigest() == meta["sha256"]:
            return meta, old
    except (struct.error, ValueError, KeyError, TypeError):
        pass
    return None


def rollback(path: str) -> str | None:
    """recover() for a caller that already holds path's lock."""
    jp = journal_path(path)
    if os.path.exists(jp + ".tmp"):
        _unlink(jp + ".tmp")  # a journal never completed: the model was not touched yet
    try:
        with open(jp, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise FileAccessError(f"{path}: cannot read edit journal {jp} ({e.strerror})") from None
    got = _read(blob)
    if got is None:
        # torn journal: the journal is written before the model, so the model is untouched
        _unlink(jp)
        return f"{path}: discarded an incomplete edit journal (the model was not modified)"
    meta, old = got
    try:
        size = os.path.getsize(path)
    except OSError:
        size = None
    if size != meta.get("size"):
        # in-place edits never change the size: this journal belongs to a file since replaced
        # (or deleted); writing its header into this one would corrupt it
        _unlink(jp)
        return (f"{path}: discarded the journal of an interrupted edit; the file was replaced since "
                f"(its size is {size}, the edited file's was {meta.get('size')}), so it was not touched")
    try:
        with open(path, "r+b") as f:
            off = meta.get("offset", 0)
            if not isinstance(off, int) or off < 0 or off + len(old) > size:
                raise OSError(22, "journal offset out of range")
            f.seek(off)
            f.write(old)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise FileAccessError(f"{path}: an interrupted edit needs rolling back, but the file cannot be "
                              f"written ({e.strerror}); fix permissions and run `ggufrope recover`") from None
    finish(path)
    return f"{path}: rolled back an interrupted in-place edit"


def stale_tmp_files(path: str) -> list[str]:
    """Temp files of copies by ggufrope processes that no longer run."""
    d, name = os.path.split(os.path.abspath(path))
    out = []
    for p in glob.glob(os.path.join(glob.escape(d), f".{glob.escape(name)}.ggufrope-tmp-*")):
        pid = p.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
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
