"""Pinned downloads and verified caches: the one place ggufrope fetches anything.

Every download is a file on PyPI's file host pinned by URL, size and sha256. It is fetched
with urllib (never `pip download`: for an sdist pip runs the package's build backend to read
its metadata before any hash check) and read no further than its pinned size; nothing opens
the archive before its hash matched. Archive members are size-checked before they are read.

A cached file carries a stamp beside it (size, mtime, ctime, inode + the sha256 it was
verified against); when the file's stat no longer matches the stamp it is hashed again, and a
mismatch is an error, never a silently returned modified file. An unpacked tree carries a
manifest written after unpacking; a tree without one is unfinished or damaged and is redone.
Fetches of one destination are serialised by a lock file (fcntl.flock) beside it.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import posixpath
import tempfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Callable, Iterator

from ggufrope.errors import FetchError

Log = Callable[[str], None]
Opener = Callable[[str], IO[bytes]]
_CHUNK = 1 << 20
# Parts of an unpacked tree that tools may rewrite legitimately (git keeps its own metadata).
_UNCHECKED_PREFIXES = (".git/",)
# urllib.request (with ssl, http, email), tarfile, zipfile and gzip are imported where they are
# used: every command that resolves a model imports this module, and they cost ~25 ms at start-up


def _archive_errors() -> tuple[type[BaseException], ...]:
    import gzip
    import tarfile
    import zipfile
    return (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


@dataclass(frozen=True)
class Pinned:
    """A file to download, pinned by what it must be."""

    filename: str
    """Name it is saved under (the file's name on PyPI)."""
    url: str
    """Where it is downloaded from (PyPI's file host)."""
    size: int
    """Exact size in bytes; the download stops one byte past it."""
    sha256: str
    """Hex sha256 of the whole file, checked before anything opens it."""


@dataclass(frozen=True)
class Member:
    """One file inside a pinned archive, itself pinned."""

    archive: Pinned
    """The archive (wheel/zip or .tar.gz) that carries it."""
    name: str
    """Its path inside the archive."""
    size: int
    """Exact size in bytes, checked from the archive's index before reading."""
    sha256: str
    """Hex sha256 of its bytes."""


def _open_url(url: str) -> IO[bytes]:
    import urllib.request
    return urllib.request.urlopen(url, timeout=60)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def exclusive(lock_path: str, log: Log, what: str) -> Iterator[None]:
    """Hold an exclusive flock on lock_path; say so through log when another process holds it.
    The lock file stays (removing it would let a third process lock a different inode)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another ggufrope process that is {what} (lock: {lock_path})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def download(pin: Pinned, dest_dir: str, opener: Opener = _open_url) -> str:
    """Download pin into dest_dir and check its size and sha256; the path of the checked file."""
    path = os.path.join(dest_dir, pin.filename)
    h = hashlib.sha256()
    n = 0
    try:
        with opener(pin.url) as src, open(path, "wb") as out:
            while chunk := src.read(min(_CHUNK, pin.size + 1 - n)):
                n += len(chunk)
                if n > pin.size:
                    raise FetchError(f"{pin.url}: larger than the pinned {pin.size} bytes (not the pinned file); "
                                     f"nothing was unpacked")
                h.update(chunk)
                out.write(chunk)
    except OSError as e:  # urllib's URLError is an OSError
        raise FetchError(f"{pin.url}: download failed ({e}); check the connection to PyPI and run again") from None
    got = h.hexdigest()
    if n != pin.size or got != pin.sha256:
        raise FetchError(f"{pin.filename}: downloaded {n} bytes with sha256 {got[:16]}…, but the pinned file has "
                         f"{pin.size} bytes and sha256 {pin.sha256[:16]}… (truncated or altered download); "
                         f"nothing was unpacked: run again")
    return path


def _damaged(archive: str, e: BaseException) -> FetchError:
    return FetchError(f"{archive}: damaged or truncated archive ({type(e).__name__}: {e}); delete it and run again")


def _copy_bounded(src: IO[bytes], out: IO[bytes], size: int, what: str) -> str:
    """Copy exactly size bytes (no more are read); their sha256."""
    h = hashlib.sha256()
    left = size
    while left > 0:
        chunk = src.read(min(_CHUNK, left))
        if not chunk:
            raise FetchError(f"{what}: ends {left} bytes early (truncated archive); delete it and run again")
        left -= len(chunk)
        h.update(chunk)
        out.write(chunk)
    return h.hexdigest()


def extract_member(archive: str, m: Member, out_path: str) -> None:
    """Write member m of a checked archive to out_path, reading only its pinned size, and check its sha256."""
    import tarfile
    import zipfile
    what = f"{os.path.basename(archive)}:{m.name}"
    try:
        if archive.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as z:
                try:
                    info = z.getinfo(m.name)
                except KeyError:
                    raise FetchError(f"{archive}: does not contain {m.name}") from None
                if info.file_size != m.size:
                    raise FetchError(f"{what}: {info.file_size} bytes, not the pinned {m.size}")
                with z.open(info) as src, open(out_path, "wb") as out:
                    got = _copy_bounded(src, out, m.size, what)
        else:
            with tarfile.open(archive) as t:
                try:
                    info = t.getmember(m.name)
                except KeyError:
                    raise FetchError(f"{archive}: does not contain {m.name}") from None
                if not info.isreg() or info.size != m.size:
                    raise FetchError(f"{what}: not a regular file of the pinned {m.size} bytes")
                src = t.extractfile(info)
                assert src is not None  # a regular file
                with src, open(out_path, "wb") as out:
                    got = _copy_bounded(src, out, m.size, what)
    except _archive_errors() as e:
        raise _damaged(archive, e) from None
    if got != m.sha256:
        raise FetchError(f"{what}: sha256 {got[:16]}… does not match the pinned {m.sha256[:16]}…")


def _member_path(archive: str, name: str, top: str) -> str:
    """The member's path relative to top/; raises for anything that would land outside it.
    Our own check instead of tarfile's filter='data', which Python 3.10.0-3.10.11 lack."""
    norm = posixpath.normpath(name)
    parts = norm.split("/")
    if name.startswith("/") or ".." in parts or parts[0] != top or "\\" in name:
        raise FetchError(f"{archive}: member {name!r} lies outside {top}/; refusing to unpack it")
    return "/".join(parts[1:])


def extract_tree(archive: str, dest: str, top: str, max_bytes: int) -> dict[str, list]:
    """Unpack a checked tar archive whose members all live under top/ into dest/top.
    Only regular files and folders are unpacked (links, devices and the like are refused), file
    modes lose setuid/setgid/sticky and group/other write, mtimes are kept (the build cache keys on
    them), and at most max_bytes are written. Returns the manifest {relpath: [size, mtime, sha256]}."""
    import tarfile
    manifest: dict[str, list] = {}
    total = 0
    root = os.path.join(dest, top)
    os.makedirs(root, exist_ok=True)
    try:
        with tarfile.open(archive) as t:
            for info in t:
                rel = _member_path(archive, info.name, top)
                target = os.path.join(root, rel) if rel else root
                if info.isdir():
                    os.makedirs(target, exist_ok=True)
                    continue
                if not info.isreg():
                    raise FetchError(f"{archive}: member {info.name!r} is not a regular file or folder; "
                                     f"refusing to unpack it")
                total += info.size
                if total > max_bytes:
                    raise FetchError(f"{archive}: unpacks to more than {max_bytes} bytes; refusing to unpack it")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                src = t.extractfile(info)
                assert src is not None
                mode = 0o755 if info.mode & 0o100 else 0o644
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
                with src, os.fdopen(fd, "wb") as out:
                    digest = _copy_bounded(src, out, info.size, f"{os.path.basename(archive)}:{info.name}")
                os.utime(target, (info.mtime, info.mtime))
                if not rel.startswith(_UNCHECKED_PREFIXES):
                    manifest[rel] = [info.size, info.mtime, digest]
    except _archive_errors() as e:
        raise _damaged(archive, e) from None
    except FileExistsError as e:
        raise FetchError(f"{archive}: member {e.filename} appears twice; refusing to unpack it") from None
    return manifest


# --- verified caches -------------------------------------------------------------------------

def _stamp_path(path: str) -> str:
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.verified")


def _stat_key(st: os.stat_result) -> dict:
    # ctime too: a writer can put mtime back, not ctime.
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
            "ino": st.st_ino, "dev": st.st_dev}


def _write_json(path: str, value: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    with os.fdopen(fd, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def verify_cached(path: str, sha256: str, hint: str, log: Log) -> str:
    """path, once its bytes are known to hash to sha256: by its stamp while the file's stat is
    unchanged, else by hashing it again. A mismatch raises FetchError ending with hint."""
    st = os.stat(path)
    try:
        with open(_stamp_path(path)) as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        stamp = None
    if stamp == {"sha256": sha256, **_stat_key(st)}:
        return path
    log(f"checking sha256 of {path} ({'changed since it was last verified' if stamp else 'not checked before'})")
    got = sha256_file(path)
    if got != sha256:
        raise FetchError(f"{path}: sha256 {got[:16]}… is not the pinned {sha256[:16]}… "
                         f"(the cached file was modified or damaged); {hint}")
    _write_stamp(path, sha256, st)  # the stat from before hashing
    return path


def _write_stamp(path: str, sha256: str, st: os.stat_result) -> None:
    _write_json(_stamp_path(path), {"sha256": sha256, **_stat_key(st)})


def fetch_member(m: Member, dest: str, log: Log, hint: str,
                 transform: Callable[[str, str], None] | None = None, dest_sha256: str | None = None,
                 opener: Opener = _open_url) -> str:
    """dest, verified: from the cache, or by downloading m's archive, checking it, taking m out of it
    (and writing transform(member_path, out_path) instead when given, whose output must hash to
    dest_sha256) and moving the result into place."""
    want = dest_sha256 or m.sha256
    if os.path.exists(dest):
        return verify_cached(dest, want, hint, log)
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    with exclusive(os.path.join(parent, f".{os.path.basename(dest)}.lock"), log, f"fetching {dest}"):
        if os.path.exists(dest):  # the process we waited for fetched it
            return verify_cached(dest, want, hint, log)
        with tempfile.TemporaryDirectory(dir=parent, prefix=f".{os.path.basename(dest)}.") as tmp:
            log(f"downloading {m.archive.filename} ({m.archive.size / 1e6:.1f} MB) from {m.archive.url}")
            archive = download(m.archive, tmp, opener)
            part = os.path.join(tmp, "member")
            extract_member(archive, m, part)
            if transform is not None:
                out = os.path.join(tmp, "out")
                transform(part, out)
                got = sha256_file(out)
                if got != want:
                    raise FetchError(f"{dest}: converted text has sha256 {got[:16]}…, not the pinned {want[:16]}…")
                part = out
            os.replace(part, dest)  # part was checked in a 0700 folder of our own
        _write_stamp(dest, want, os.stat(dest))
    log(f"verified sha256 {want[:16]}… -> {dest}")
    return dest


# --- unpacked trees --------------------------------------------------------------------------

MARKER = ".ggufrope-unpacked.json"


def tree_digest(root: str) -> str:
    """sha256 over the (path, sha256) of every file under root that a tree check covers."""
    return _digest(_hash_tree(root))


def _digest(files: dict[str, list]) -> str:
    h = hashlib.sha256()
    for rel, (_size, _mtime, sha) in sorted(files.items()):
        h.update(f"{rel}\0{sha}\n".encode())
    return h.hexdigest()


def _hash_tree(root: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in files:
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root).replace(os.sep, "/")
            if rel == MARKER or rel.startswith(_UNCHECKED_PREFIXES) or "__pycache__" in rel.split("/"):
                continue
            st = os.lstat(p)
            out[rel] = [st.st_size, st.st_mtime, sha256_file(p)]
    return out


def tree_problem(root: str, sha256: str) -> str | None:
    """Why the unpacked tree at root cannot be used (None when it can): no marker (unfinished), a
    marker for another archive, or a file missing or changed. A file whose size and mtime differ from
    the manifest is hashed again."""
    try:
        with open(os.path.join(root, MARKER)) as f:
            marker = json.load(f)
        files = marker["files"]
    except FileNotFoundError:
        return "unfinished (no completion marker)"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable completion marker ({e})"
    if marker.get("sha256") != sha256:
        return "unpacked from another archive"
    for rel, (size, mtime, sha) in files.items():
        p = os.path.join(root, rel)
        try:
            st = os.lstat(p)
        except OSError:
            return f"{rel} is missing"
        if st.st_size == size and int(st.st_mtime) == int(mtime):
            continue
        if not os.path.isfile(p) or os.path.islink(p) or sha256_file(p) != sha:
            return f"{rel} was changed"
    return None


def fetch_tree(pin: Pinned, parent: str, top: str, max_bytes: int, log: Log,
               legacy_digest: str | None = None, opener: Opener = _open_url) -> str:
    """parent/top, the unpacked archive pin: reused when its manifest checks out, else (re)fetched.
    A tree unpacked before markers existed is adopted when its tree_digest equals legacy_digest."""
    root = os.path.join(parent, top)
    if tree_problem(root, pin.sha256) is None:
        return root
    os.makedirs(parent, exist_ok=True)
    with exclusive(os.path.join(parent, f".{top}.lock"), log, f"fetching {root}"):
        problem = tree_problem(root, pin.sha256) if os.path.lexists(root) else None
        if os.path.lexists(root) and problem is None:  # the process we waited for fetched it
            return root
        if problem == "unfinished (no completion marker)" and legacy_digest and os.path.isdir(root):
            log(f"checking {root} (unpacked by an older ggufrope) against its pinned digest")
            files = _hash_tree(root)
            if _digest(files) == legacy_digest:
                _write_json(os.path.join(root, MARKER), {"archive": pin.filename, "sha256": pin.sha256,
                                                          "files": files})
                return root
            problem = "files differ from the pinned archive"
        with tempfile.TemporaryDirectory(dir=parent, prefix=f".{top}.") as tmp:
            if problem is not None:
                log(f"{root}: {problem}; removing it and fetching it again")
                os.rename(root, os.path.join(tmp, "old"))  # out of the way in one step, removed with tmp
            log(f"downloading {pin.filename} ({pin.size / 1e6:.1f} MB) from {pin.url}")
            archive = download(pin, tmp, opener)
            files = extract_tree(archive, os.path.join(tmp, "new"), top, max_bytes)
            os.remove(archive)
            tree = os.path.join(tmp, "new", top)
            _write_json(os.path.join(tree, MARKER), {"archive": pin.filename, "sha256": pin.sha256, "files": files})
            os.replace(tree, root)
    return root

