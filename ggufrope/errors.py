"""The one error tree. Library code raises these; only the CLI turns them into exit codes."""
from __future__ import annotations

import errno


class GgufropeError(Exception):
    """Base of every failure a user can cause. The message names the file and the problem."""

    exit_code = 1


class UsageError(GgufropeError):
    """A bad argument or value given on the command line or in a preset."""

    exit_code = 2


class GGUFFormatError(GgufropeError):
    """The file is not a well-formed GGUF file (truncated, wrong magic, absurd sizes...)."""

    exit_code = 3


class EditError(GgufropeError):
    """An edit that cannot be applied (wrong type, unknown original context, bad value...)."""

    exit_code = 4


class FileAccessError(GgufropeError):
    """The file system refused: missing file, directory, permission, read-only FS, full disk."""

    exit_code = 5


class LockedError(GgufropeError):
    """Another ggufrope process is editing the same file."""

    exit_code = 6


class IntegrityError(GgufropeError):
    """A written file did not re-read as intended (the write was rolled back)."""

    exit_code = 7


class FetchError(GgufropeError):
    """A model could not be fetched or failed its checksum."""

    exit_code = 8


class BuildError(GgufropeError):
    """A llama.cpp build failed or lacks what is needed."""

    exit_code = 9


class PresetError(GgufropeError):
    """A preset that cannot be used as written: bad TOML, unknown field, wrong type, a model or
    K/V pair that cannot work, a context that does not fit. The message names the file, the
    line and the field."""

    exit_code = 10


class EngineError(GgufropeError):
    """A llama.cpp process (or llama-cpp-python) failed to start or died while starting."""

    exit_code = 11


class WorkerError(GgufropeError):
    """A llama.cpp RPC worker does not answer, speaks another protocol version, or went away."""

    exit_code = 12


# what the file system said, in the words a user reads in a one-line error
_OS_REASONS = {errno.ENOENT: "no such file or directory", errno.EISDIR: "is a directory",
               errno.ENOTDIR: "a part of the path is not a directory", errno.EACCES: "permission denied",
               errno.EPERM: "operation not permitted", errno.EROFS: "read-only file system",
               errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}


def os_reason(e: OSError) -> str:
    """The reason an OSError gives, in lower-case words (the errno's strerror for the rare ones)."""
    return _OS_REASONS.get(e.errno, e.strerror or str(e))


def file_access_error(path: str, e: OSError, doing: str = "", hint: str = "") -> FileAccessError:
    """The one errno -> error mapping: `PATH: DOING failed: REASON HINT` (or `PATH: REASON HINT`)."""
    what = f"{doing} failed: " if doing else ""
    return FileAccessError(f"{path}: {what}{os_reason(e)}{hint}")
