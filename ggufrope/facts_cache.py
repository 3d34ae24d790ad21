"""A model's facts kept per file version, so a second `run`/`serve`/`plan` of the same file skips
the header walk (~15 ms for SmolLM2's 49k-token vocabulary, ~90 ms for a Llama-3 header with
128k tokens and 280k merges: every string of those arrays has to be stepped over to reach the
tensor table).

The key is the file's identity and version as the kernel reports it: real path, device, inode,
size, mtime and ctime (ctime cannot be set back by a tool, so an in-place edit that restores the
mtime still misses), plus the code that computed the value (its modules' mtimes). Entries live
under $GGUFROPE_HOME/cache/facts, written whole (temp file, O_EXCL|O_NOFOLLOW, 0600, rename).
They are pickles: that folder is the user's own, beside the llama.cpp binaries ggufrope runs, so
reading them trusts nothing the builds do not already. A cache that cannot be read or written
only costs time; split models are not cached (their facts span several files)."""
from __future__ import annotations

import hashlib
import os
import pickle
import secrets
from typing import Any, Callable, Mapping, TypeVar

from ggufrope import paths

T = TypeVar("T")
_VERSION = 1


def _code_stamp() -> tuple:
    here = os.path.dirname(os.path.abspath(__file__))
    mods = ("model_facts.py", "kv_model.py", "layer_rope.py", os.path.join("settings", "model_info.py"),
            os.path.join("settings", "rope_settings.py"), os.path.join("settings", "keys.py"))
    out = []
    for m in mods:
        try:
            out.append((m, os.stat(os.path.join(here, m)).st_mtime_ns))
        except OSError:
            out.append((m, None))
    return tuple(out)


def file_key(path: str) -> str | None:
    """The cache key of path's current version, or None when it cannot be had."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    ident = (_VERSION, real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, _code_stamp())
    return hashlib.sha256(repr(ident).encode()).hexdigest()[:32]


def _entry(key: str, env: Mapping[str, str] | None) -> str:
    return os.path.join(paths.home(env), "cache", "facts", key + ".pickle")


def cached(path: str, compute: Callable[[str], T], env: Mapping[str, str] | None = None) -> T:
    """compute(path), or the value computed for this very version of the file before."""
    key = file_key(path)
    if key is None:
        return compute(path)
    entry = _entry(key, env)
    got = _load(entry, key)
    if got is not None:
        return got
    value = compute(path)
    if file_key(path) == key:   # unchanged while it was read: safe to keep
        _store(entry, key, value)
    return value


def _load(entry: str, key: str) -> Any | None:
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            return None   # not ours, or writable by others: ignore it
        with os.fdopen(fd, "rb") as f:
            fd = -1
            doc = pickle.load(f)
        return doc["value"] if isinstance(doc, dict) and doc.get("key") == key else None
    except Exception:   # a damaged entry only costs the header read
        return None
    finally:
        if fd >= 0:
            os.close(fd)


def _store(entry: str, key: str, value: Any) -> None:
    tmp = f"{entry}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        os.makedirs(os.path.dirname(entry), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            pickle.dump({"key": key, "value": value}, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, entry)
    except Exception:
        try:
            os.unlink(tmp)
        except OSError:
            pass
