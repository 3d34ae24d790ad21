"""Carry out an EditPlan: a journaled in-place header write, or a streaming copy.

In place: journal the old header (journal.py), overwrite the header, fsync, drop the journal.
Copy: write the new header and move the tensor data with the kernel (copy_file_range, which
reflinks where the filesystem can, else sendfile) into a temp file in the target's directory,
fsync, rename over the target. Tensor bytes never pass through Python memory.
After either, the header is re-read and the tensor table compared with the original.
"""
from __future__ import annotations

import errno
import fcntl
import os
from contextlib import contextmanager
from typing import Callable, Iterator

from ggufrope.edit import journal
from ggufrope.edit.plan import EditPlan
from ggufrope.errors import FileAccessError, GgufropeError, IntegrityError, LockedError
from ggufrope.gguf import GGUFHeader

Progress = Callable[[int, int], None]
_CHUNK = 64 * 1024 * 1024


@contextmanager
def locked(path: str, write: bool = True) -> Iterator[None]:
    """An exclusive advisory lock on path: a second ggufrope editing the file is refused."""
    try:
        # O_NONBLOCK: a FIFO must not block the open (read_header then refuses it)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FileAccessError(f"{path}: no such file") from None
    except PermissionError:
        raise FileAccessError(f"{path}: permission denied") from None
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if write else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{path}: another ggufrope process is editing this file; "
                              f"try again when it has finished") from None
        yield
    finally:
        os.close(fd)


def _os_error(path: str, e: OSError, doing: str, hint: str = "") -> FileAccessError:
    why = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
           errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
           errno.EDQUOT: "disk quota exceeded"}.get(e.errno, e.strerror or str(e))
    return FileAccessError(f"{path}: {doing} failed: {why}{hint}")


def apply_inplace(plan: EditPlan, original: GGUFHeader) -> None:
    path = plan.path
    assert plan.mode == "inplace" and len(plan.header) == original.data_offset
    try:
        # open for writing now, not os.access: it reports a read-only file system as such
        os.close(os.open(path, os.O_WRONLY))
    except OSError as e:
        raise _os_error(path, e, "opening for an in-place edit", "; use -o OUT") from None
    lo, hi = changed_range(original, plan.header)
    # journal and write only the bytes that change (a one-float edit of a 7.5 MiB
    # Llama-3 header touches 4 bytes)
    journal.write(path, original.raw(lo, hi), original.file_size, offset=lo)
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, plan.header[lo:hi], lo)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        journal.rollback(path)  # we hold the lock: roll back directly
        raise _os_error(path, e, "in-place write") from None
    try:
        verify(original, path, plan)
    except GgufropeError:
        journal.rollback(path)
        raise
    journal.finish(path)


def changed_range(original: GGUFHeader, new: bytes, block: int = 1 << 16) -> tuple[int, int]:
    """[lo, hi) outside of which old and new header bytes are equal (memcmp in blocks)."""
    old = original.raw(0, len(new))
    n = len(new)
    if old == new:
        return 0, 0
    lo = 0
    while lo < n and old[lo:lo + block] == new[lo:lo + block]:
        lo += block
    while lo < n and old[lo] == new[lo]:
        lo += 1
    hi = n
    while hi - block > lo and old[hi - block:hi] == new[hi - block:hi]:
        hi -= block
    while hi > lo and old[hi - 1] == new[hi - 1]:
        hi -= 1
    return lo, hi


def apply_copy(plan: EditPlan, original: GGUFHeader, dest: str, progress: Progress | None = None) -> None:
    """Write plan's header plus the original's tensor data to dest (atomically)."""
    dest = os.path.abspath(dest)
    if os.path.isdir(dest):
        raise FileAccessError(f"{dest}: is a directory")
    tmp = journal.tmp_path(dest)
    src_fd = os.open(original.path, os.O_RDONLY)
    try:
        try:
            out_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            raise _os_error(dest, e, "creating the output") from None
        try:
            try:
                st = os.fstat(src_fd)
                os.fchmod(out_fd, st.st_mode & 0o777)
                os.write(out_fd, plan.header)
                _copy_range(src_fd, out_fd, plan.old_data_offset, plan.new_data_offset,
                            plan.data_size, progress)
                os.fsync(out_fd)
            except OSError as e:
                raise _os_error(dest, e, "copy") from None
            finally:
                os.close(out_fd)
            verify(original, tmp, plan)
            try:
                os.replace(tmp, dest)
            except OSError as e:
                raise _os_error(dest, e, "rename") from None
            journal.fsync_dir(os.path.dirname(dest))
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(src_fd)


def _copy_range(src: int, dst: int, src_off: int, dst_off: int, n: int, progress: Progress | None) -> None:
    done = 0
    use_cfr = hasattr(os, "copy_file_range")
    while done < n:
        step = min(_CHUNK, n - done)
        k = 0
        if use_cfr:
            try:
                k = os.copy_file_range(src, dst, step, src_off + done, dst_off + done)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                use_cfr = False
        if not use_cfr:
            os.lseek(dst, dst_off + done, os.SEEK_SET)
            k = os.sendfile(dst, src, src_off + done, step)
        if k == 0:
            raise OSError(errno.EIO, "source file ended early")
        if hasattr(os, "posix_fadvise"):
            # start writeback of what was just copied now, so the final fsync has little left
            os.posix_fadvise(dst, dst_off + done, k, os.POSIX_FADV_DONTNEED)
        done += k
        if progress:
            progress(done, n)


def verify(original: GGUFHeader, path: str, plan: EditPlan) -> None:
    """Re-read what was written: the header bytes must be the planned ones, and the tensor
    table in them (names, types, shapes, offsets) and the data placement the original's.
    The key/value section is not re-walked (the codec's round trip is tested; walking a
    400k-token vocabulary again would double the cost of an edit)."""
    from ggufrope.gguf.reader import parse_tensor_infos
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            written = os.pread(fd, plan.new_data_offset, 0)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if written != plan.header:
            raise IntegrityError(f"{plan.path}: the header read back differs from the one written; "
                                 f"nothing was changed")
        tensors, end = parse_tensor_infos(written, plan.infos_start, len(original.tensors),
                                          original.byteorder, plan.path)
    except GgufropeError as e:
        if isinstance(e, IntegrityError):
            raise
        raise IntegrityError(f"{plan.path}: the new header did not re-read ({e}); nothing was changed") from None
    except OSError as e:
        raise IntegrityError(f"{plan.path}: cannot re-read the new header ({e.strerror})") from None
    ok = (tensors == original.tensors and size - plan.new_data_offset == original.data_size
          and plan.new_data_offset == (end if not tensors else -(-end // original.alignment) * original.alignment))
    if not ok:
        raise IntegrityError(f"{plan.path}: the new header moved tensor data; nothing was changed")
