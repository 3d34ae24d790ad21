"""Turn edit operations into a plan: the new header bytes and whether they fit in place.

A plan never touches a file. Unchanged entries and the tensor-info table are copied as raw
bytes from the old header; only edited entries are encoded. Tensor offsets are relative to
the data section, so the tensor table is valid wherever the data section starts.

Fitting in place: readers put the data at align_up(end of header, alignment) (ggml's
gguf_init_from_reader; gguf-py's GGUFReader). The new header must therefore end at the old
data offset exactly, or (with tensors) less than one alignment before it. A padding key
(`ggufrope.padding`, a string of spaces) fills the gap exactly; files ggufrope writes carry
RESERVE bytes of it, so later edits fit in place.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from ggufrope.errors import EditError
from ggufrope.gguf import GGUFHeader, ValueType, encode_kv
from ggufrope.gguf.constants import ALIGNMENT_KEY, align_up
from ggufrope.edit import history

PAD_KEY = "ggufrope.padding"
RESERVE = 16 * 1024
_PAD_OVERHEAD = 8 + len(PAD_KEY) + 4 + 8  # key string, type, string length


@dataclass(frozen=True)
class SetValue:
    key: str
    vtype: ValueType
    value: Any
    item_type: ValueType | None = None


@dataclass(frozen=True)
class RemoveKey:
    key: str
    missing_ok: bool = False


@dataclass(frozen=True)
class SetRaw:
    """Put back a whole raw entry (restore), or remove the key when raw is None."""

    key: str
    raw: bytes | None


@dataclass(frozen=True)
class Change:
    key: str
    before: str | None   # rendered old value, None = absent
    after: str | None    # rendered new value, None = removed


@dataclass
class EditPlan:
    path: str
    mode: str                     # "inplace", "copy" or "noop"
    header: bytes                 # the whole new header, up to new_data_offset
    old_data_offset: int
    new_data_offset: int
    data_size: int
    changes: list[Change] = field(default_factory=list)
    unrecorded: list[Change] = field(default_factory=list)  # changes `restore` cannot undo
    infos_start: int = 0          # offset of the tensor-info table in the new header


def _pad_entry(n: int, bo: str) -> bytes:
    return encode_kv(PAD_KEY, ValueType.STRING, " " * n, bo)


def render_entry(header: GGUFHeader, key: str, limit: int = 60) -> str:
    from ggufrope.gguf.render import render_value
    f = header.fields[key]
    return render_value(header, f, limit)


def _apply_ops(header: GGUFHeader, ops: list) -> tuple[dict[str, bytes | memoryview], list[str]]:
    """The header's entries after ops (raw key/value bytes by key, in file order) and the keys
    whose bytes changed, in the order the ops touched them."""
    bo = header.byteorder
    # unchanged entries stay zero-copy views of the mapped header until the one final join
    entries: dict[str, bytes | memoryview] = {k: header.view(f.start, f.end) for k, f in header.fields.items()}
    entries.pop(PAD_KEY, None)
    touched: list[str] = []

    for op in ops:
        key = op.key
        if key == ALIGNMENT_KEY:
            raise EditError(f"{header.path}: {ALIGNMENT_KEY} cannot be changed (it would move the tensor data)")
        if isinstance(op, SetValue):
            try:
                new = encode_kv(key, op.vtype, op.value, bo, op.item_type)
            except (ValueError, TypeError, OverflowError) as e:
                raise EditError(f"{header.path}: bad value for {key!r} ({op.vtype.name}): {e}") from None
        elif isinstance(op, RemoveKey):
            if key not in entries:
                if op.missing_ok:
                    continue
                raise EditError(f"{header.path}: cannot remove {key!r}: no such key")
            new = None
        else:
            new = op.raw
        old = entries.get(key)
        if new == old:
            continue
        if key not in header.fields and new is None and old is not None:
            # added and removed again within this edit: no net change for this key
            del entries[key]
            touched = [k for k in touched if k != key]
            continue
        if new is None:
            del entries[key]
        else:
            entries[key] = new  # replacing keeps the key's position; new keys go last
        touched.append(key)
    return entries, touched


def plan_edit(header: GGUFHeader, ops: list, to_new_file: bool = False,
              record_history: bool = True) -> EditPlan:
    """Plan ops against header. to_new_file plans a copy with fresh reserved space."""
    entries, touched = _apply_ops(header, ops)
    changes: list[Change] = []
    for key in dict.fromkeys(touched):
        before = render_entry(header, key) if key in header.fields else None
        after = None if key not in entries else _render_raw(header, key, entries[key])
        changes.append(Change(key, before, after))

    D = header.data_offset
    if not changes and not to_new_file:
        return EditPlan(header.path, "noop", header.header_bytes, D, D, header.data_size, [],
                        infos_start=header.kv_end)

    with_record = history.record(header, entries, touched) if record_history else entries
    pad = None if to_new_file else _fit(header, with_record)
    unrecorded: list[Change] = []
    if pad is None and with_record is not entries and not to_new_file:
        # The undo record does not fit but the edit itself does (a same-size change in a file
        # without spare header space): edit in place rather than copy a whole model for
        # bookkeeping; the CLI prints the original values instead.
        pad = _fit(header, entries)
        if pad is not None:
            with_record = entries
            unrecorded = [c for c in changes if not c.key.startswith(history.OWN_PREFIX)]
    if pad is not None:
        hdr, infos_start = _build(header, with_record, None if pad < 0 else pad, D)
        return EditPlan(header.path, "inplace", hdr, D, D, header.data_size, changes, unrecorded, infos_start)
    return _copy_plan(header, with_record, changes)


def _copy_plan(header: GGUFHeader, entries: dict, changes: list[Change]) -> EditPlan:
    """A copy with a new layout: the header grows by whole alignment steps, with fresh reserve."""
    D, A = header.data_offset, header.alignment
    bare = _kv_size(entries) + 24 + (header.infos_end - header.kv_end)
    # keep the data at the same offset modulo 4096 so the kernel can reflink the tensor
    # data on filesystems that share extents (XFS, btrfs); costs < 4 KiB of extra reserve
    step = max(A, 4096)
    need = bare + _PAD_OVERHEAD + RESERVE
    new_d = D + align_up(max(need - D, 0), step)
    hdr, infos_start = _build(header, entries, new_d - bare - _PAD_OVERHEAD, new_d)
    return EditPlan(header.path, "copy", hdr, D, new_d, header.data_size, changes, [], infos_start)


def _kv_size(entries: dict) -> int:
    return sum(len(e) for e in entries.values())


def _fit(header: GGUFHeader, entries: dict) -> int | None:
    """How entries fit in place before the old data offset: -1 = without a padding key (the
    gap, under one alignment, is zeros), n >= 0 = with a padding key of n spaces, None = not."""
    D, A = header.data_offset, header.alignment
    bare = 24 + _kv_size(entries) + (header.infos_end - header.kv_end)
    window = A if header.tensors else 1
    if D - window < bare <= D:
        return -1
    if bare + _PAD_OVERHEAD <= D:
        return D - bare - _PAD_OVERHEAD
    return None


def _build(header: GGUFHeader, entries: dict, pad: int | None, total: int) -> tuple[bytes, int]:
    """The whole header (zero-filled up to total) and the offset of its tensor-info table."""
    bo = header.byteorder
    n_kv = len(entries) + (pad is not None)
    parts = [header.raw(0, 8), struct.pack(bo + "QQ", len(header.tensors), n_kv), *entries.values()]
    if pad is not None:
        parts.append(_pad_entry(pad, bo))
    infos_start = sum(len(x) for x in parts)
    parts.append(header.view(header.kv_end, header.infos_end))
    hdr = b"".join(parts)
    assert len(hdr) <= total, (len(hdr), total)
    return hdr + b"\0" * (total - len(hdr)), infos_start


def _render_raw(header: GGUFHeader, key: str, raw: bytes) -> str:
    from ggufrope.gguf.reader import parse_header
    from ggufrope.gguf.render import render_value
    # parse a one-entry header to render the new value with the same code path
    pre = b"GGUF" + struct.pack(header.byteorder + "IQQ", 3, 0, 1)
    h = parse_header(pre + raw, len(pre) + len(raw))
    return render_value(h, h.fields[key], 60)
