"""Carry out an EditPlan: a journaled in-place header write, or a streaming copy.

In place: journal the old header (journal.py), overwrite the header, fsync, drop the journal.
Copy: write the new header and move the tensor data with the kernel (a clone where the file
system shares extents, else O_DIRECT writes from the source's page cache, else copy_file_range;
see _copy_range) into a private temp file in the target's directory, fsync, rename over the
target. Tensor bytes never pass through Python objects.
After either, the header is re-read and the tensor table compared with the original.
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
import struct
from contextlib import contextmanager
from typing import Callable, Iterator

from ggufrope.edit import journal
from ggufrope.edit.plan import EditPlan
from ggufrope.errors import FileAccessError, GgufropeError, IntegrityError, LockedError, file_access_error
from ggufrope.gguf import GGUFHeader

Progress = Callable[[int, int], None]
_CHUNK = 64 * 1024 * 1024
_ALIGN = 4096   # O_DIRECT and clone alignment (the largest logical block size in use)
_DIRECT_CHUNK = 16 * 1024 * 1024  # bounds the mapped window (RSS) of an O_DIRECT write


@contextmanager
def locked(path: str, write: bool = True) -> Iterator[None]:
    """An exclusive advisory lock on path: a second ggufrope editing the file is refused."""
    try:
        # O_NONBLOCK: a FIFO must not block the open (read_header then refuses it)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise file_access_error(path, e) from None
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if write else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{path}: another ggufrope process is editing this file; "
                              f"try again when it has finished") from None
        yield
    finally:
        os.close(fd)


def check_writable(path: str, fd: int | None = None) -> os.stat_result:
    """The rule for every in-place edit (same size or growing): the file must open for writing
    and carry a write bit. Root can open a 0444 file, but the mode says "do not change me"
    (as `rm` asks before removing it), so it is refused for root too. Returns the file's stat."""
    try:
        # open for writing, not os.access: it reports a read-only file system as such
        own = fd is None
        if own:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
        finally:
            if own:
                os.close(fd)
    except OSError as e:
        raise file_access_error(path, e, "opening for an in-place edit", "; use -o OUT") from None
    if not st.st_mode & 0o222:
        raise FileAccessError(f"{path}: the file is read-only (mode {stat.S_IMODE(st.st_mode):04o}); "
                              f"make it writable (chmod u+w) to edit it in place, or write a copy with -o OUT")
    return st


def apply_inplace(plan: EditPlan, original: GGUFHeader) -> None:
    path = plan.path
    assert plan.mode == "inplace" and len(plan.header) == original.data_offset
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise file_access_error(path, e, "opening for an in-place edit", "; use -o OUT") from None
    try:
        st = check_writable(path, fd)
        lo, hi = changed_range(original, plan.header)
        # journal and write only the bytes that change (a one-float edit of a 7.5 MiB
        # Llama-3 header touches 4 bytes); the journal names this file by its inode
        old = original.raw(lo, hi)  # a copy: the header's buffer maps the file, which is about to change
        journal.write(path, old, plan.header[lo:hi], lo, st)
        try:
            os.pwrite(fd, plan.header[lo:hi], lo)
            os.fsync(fd)
        except OSError as e:
            journal.rollback(path)  # we hold the lock: roll back directly
            raise file_access_error(path, e, "in-place write") from None
    finally:
        os.close(fd)
    try:
        verify(original, path, plan)
    except GgufropeError:
        # what was read back is neither the old nor the new bytes, which the journal's judge
        # (rightly, for a journal found later) refuses to roll back; this journal is ours and we
        # hold the lock: put the old bytes back first, then let rollback drop the journal
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, old, lo)
            os.fsync(fd)
        finally:
            os.close(fd)
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


def apply_copy(plan: EditPlan, original: GGUFHeader, dest: str, progress: Progress | None = None,
               in_place: bool = False) -> None:
    """Write plan's header plus the original's tensor data to dest (atomically). in_place: dest
    is the original itself, which the new file replaces: it must be writable like any in-place
    edit, and the new file takes its owner, group and mode."""
    dest = os.path.realpath(dest)
    if os.path.isdir(dest):
        raise FileAccessError(f"{dest}: is a directory")
    src_fd = os.open(original.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = check_writable(dest) if in_place else os.fstat(src_fd)
        tmp = journal.tmp_path(dest)
        try:
            out_fd = journal.create_private(tmp)
        except OSError as e:
            raise file_access_error(dest, e, "creating the output") from None
        try:
            try:
                if in_place:
                    _take_owner(dest, out_fd, st)
                os.write(out_fd, plan.header)
                _copy_range(src_fd, out_fd, plan.old_data_offset, plan.new_data_offset,
                            plan.data_size, progress)
                # the temp file stays 0600 until its bytes are all there; the mode goes on
                # after fchown (which clears set-id bits) and before the fsync that makes it durable
                os.fchmod(out_fd, stat.S_IMODE(st.st_mode) if in_place else st.st_mode & 0o777)
                os.fsync(out_fd)
            except OSError as e:
                raise file_access_error(dest, e, "copy") from None
            finally:
                os.close(out_fd)
            verify(original, tmp, plan)
            try:
                os.replace(tmp, dest)
            except OSError as e:
                raise file_access_error(dest, e, "rename") from None
            journal.fsync_dir(os.path.dirname(dest))
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(src_fd)


def _take_owner(path: str, fd: int, st: os.stat_result) -> None:
    """Give the new file path's owner and group, before any data is copied: an in-place edit
    that cannot keep them does not happen."""
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) == (st.st_uid, st.st_gid):
        return
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except PermissionError:
        raise FileAccessError(f"{path}: the header grows, so the edit writes a new file and renames it over "
                              f"this one, which would not keep its owner (uid {st.st_uid}, gid {st.st_gid}); "
                              f"run as that user, or write a copy with -o OUT") from None


def _copy_range(src: int, dst: int, src_off: int, dst_off: int, n: int, progress: Progress | None) -> None:
    """Move n bytes of tensor data from src to dst without passing them through Python.

    The 4 KiB-aligned middle (plan.py keeps source and destination offsets equal modulo
    4 KiB) is first cloned (FICLONERANGE: XFS and btrfs share the extents, nothing is copied),
    else written with O_DIRECT straight from the source's page cache (an mmap the kernel reads;
    Python never touches the bytes). That skips the destination's page cache: no second copy
    of the data in memory, and nothing left for the final fsync to write back. On ext4 this is
    a third of the kernel time of copy_file_range + fsync, which is what `cp` + `sync` pay
    (benchmarks/RESULTS.md). The unaligned head and tail, and file systems without O_DIRECT,
    go through copy_file_range (sendfile where that is missing)."""
    done = 0

    def tick(k: int) -> None:
        nonlocal done
        done += k
        if progress:
            progress(done, n)

    head = min(n, -dst_off % _ALIGN)
    mid = (n - head) // _ALIGN * _ALIGN if (src_off - dst_off) % _ALIGN == 0 else 0
    _kernel_copy(src, dst, src_off, dst_off, head, tick)
    if mid:
        s, d = src_off + head, dst_off + head
        if _clone(src, dst, s, d, mid):
            tick(mid)
            k = mid
        else:
            k = _direct_copy(src, dst, s, d, mid, tick)
        _kernel_copy(src, dst, s + k, d + k, mid - k, tick)
    _kernel_copy(src, dst, src_off + head + mid, dst_off + head + mid, n - head - mid, tick)


def _kernel_copy(src: int, dst: int, src_off: int, dst_off: int, n: int, tick: Callable[[int], None]) -> None:
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
        done += k
        tick(k)


_FICLONERANGE = 0x4020940D  # _IOW(0x94, 13, struct file_clone_range), linux/fs.h


def _clone(src: int, dst: int, src_off: int, dst_off: int, n: int) -> bool:
    """Share the extents of [src_off, src_off+n) at dst_off; False where the file system cannot."""
    try:
        fcntl.ioctl(dst, _FICLONERANGE, struct.pack("=qQQQ", src, src_off, n, dst_off))
    except OSError:
        return False  # EOPNOTSUPP (ext4, tmpfs), EXDEV, EINVAL, ENOTTY...: copy instead
    return True


def _direct_copy(src: int, dst: int, src_off: int, dst_off: int, n: int, tick: Callable[[int], None]) -> int:
    """Write n bytes (offsets and n 4 KiB-aligned) with O_DIRECT from an mmap of src; returns how
    many were written (0 where the file system takes no O_DIRECT: the caller copies the rest)."""
    direct = getattr(os, "O_DIRECT", 0)
    if not direct:
        return 0
    flags = fcntl.fcntl(dst, fcntl.F_GETFL)
    try:
        fcntl.fcntl(dst, fcntl.F_SETFL, flags | direct)
    except OSError:
        return 0
    done = 0
    try:
        while done < n:
            step = min(_DIRECT_CHUNK, n - done)
            if done + step < n and hasattr(os, "posix_fadvise"):
                # read the next chunk of an uncached source while this one is written
                os.posix_fadvise(src, src_off + done + step, min(_DIRECT_CHUNK, n - done - step),
                                 os.POSIX_FADV_WILLNEED)
            # one window at a time: the pages the kernel maps for the write count as this
            # process's RSS (shared page cache, but a whole-file map would show 1.3 GB)
            try:
                mm = mmap.mmap(src, step, offset=src_off + done, prot=mmap.PROT_READ)
            except (OSError, ValueError):
                break  # the caller copies the rest
            try:
                with memoryview(mm) as view:
                    k = os.pwritev(dst, [view], dst_off + done)
            except OSError as e:
                if e.errno == errno.EINVAL and done == 0:
                    return 0  # O_DIRECT accepted by fcntl, refused at write (some FUSE, NFS)
                if e.errno == errno.EFAULT:
                    raise OSError(errno.EIO, "source file ended early") from None
                raise
            finally:
                mm.close()
            if k <= 0:
                raise OSError(errno.EIO, "source file ended early")
            done += k
            tick(k)
            if k % _ALIGN:
                break  # a short write off alignment: the caller copies the rest
    finally:
        fcntl.fcntl(dst, fcntl.F_SETFL, flags)
    return done


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
