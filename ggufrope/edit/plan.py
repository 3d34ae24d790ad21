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


def _pad_entry(n: int, bo: str) -> bytes:
    return encode_kv(PAD_KEY, ValueType.STRING, " " * n, bo)


def render_entry(header: GGUFHeader, key: str, limit: int = 60) -> str:
    from ggufrope.gguf.render import render_value
    f = header.fields[key]
    return render_value(header, f, limit)


def plan_edit(header: GGUFHeader, ops: list, to_new_file: bool = False,
              record_history: bool = True) -> EditPlan:
    """Plan ops against header. to_new_file plans a copy with fresh reserved space."""
    bo = header.byteorder
    entries: dict[str, bytes] = {k: header.raw_entry(k) for k in header.fields}
    entries.pop(PAD_KEY, None)
    changes: list[Change] = []
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

    for key in dict.fromkeys(touched):
        before = render_entry(header, key) if key in header.fields else None
        after = None if key not in entries else _render_raw(header, key, entries[key])
        changes.append(Change(key, before, after))

    D, A = header.data_offset, header.alignment
    if not changes and not to_new_file:
        return EditPlan(header.path, "noop", header.header_bytes, D, D, header.data_size, [])

    with_record = history.record(header, entries, touched) if record_history else entries
    layout = _layout(header, with_record, to_new_file)
    if layout is None and with_record is not entries and not to_new_file:
        # The undo record does not fit but the edit itself does (a same-size change in a file
        # without spare header space): edit in place rather than copy a whole model for
        # bookkeeping; the CLI prints the original values instead.
        layout = _layout(header, entries, False)
        if layout is not None:
            return EditPlan(header.path, "inplace", layout, D, D, header.data_size, changes,
                            unrecorded=[c for c in changes if not c.key.startswith(history.OWN_PREFIX)])
    if layout is not None:
        return EditPlan(header.path, "inplace", layout, D, D, header.data_size, changes)
    hdr = _build(header, with_record, None)
    new_d = align_up(len(hdr) + _PAD_OVERHEAD + RESERVE, A)
    hdr = _build(header, with_record, new_d - len(hdr) - _PAD_OVERHEAD)
    assert len(hdr) == new_d
    return EditPlan(header.path, "copy", hdr, D, new_d, header.data_size, changes)


def _build(header: GGUFHeader, entries: dict[str, bytes], pad: int | None) -> bytes:
    bo = header.byteorder
    n_kv = len(entries) + (pad is not None)
    pre = header.raw(0, 8) + struct.pack(bo + "QQ", len(header.tensors), n_kv)
    kv = b"".join(entries.values()) + (_pad_entry(pad, bo) if pad is not None else b"")
    return pre + kv + header.tensor_info_bytes


def _layout(header: GGUFHeader, entries: dict[str, bytes], to_new_file: bool) -> bytes | None:
    """The in-place header for entries, or None if it does not fit."""
    if to_new_file:
        return None
    D, A = header.data_offset, header.alignment
    bare = _build(header, entries, None)
    window = A if header.tensors else 1
    if D - window < len(bare) <= D:
        return bare + b"\0" * (D - len(bare))
    if len(bare) + _PAD_OVERHEAD <= D:
        hdr = _build(header, entries, D - len(bare) - _PAD_OVERHEAD)
        assert len(hdr) == D
        return hdr
    return None


def _render_raw(header: GGUFHeader, key: str, raw: bytes) -> str:
    from ggufrope.gguf.reader import parse_header
    from ggufrope.gguf.render import render_value
    # parse a one-entry header to render the new value with the same code path
    pre = b"GGUF" + struct.pack(header.byteorder + "IQQ", 3, 0, 1)
    h = parse_header(pre + raw, len(pre) + len(raw))
    return render_value(h, h.fields[key], 60)
