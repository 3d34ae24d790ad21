"""The record of original values, kept inside the file itself so `restore` works after the
file is copied anywhere. Key `ggufrope.original` holds JSON: {"v": 1, "keys": {key: entry}}
where entry is the base64 of the key's whole original raw entry, or null if it was absent.
A key is recorded the first time ggufrope changes it; later edits keep that first value.
"""
from __future__ import annotations

import base64
import json

from ggufrope.errors import GGUFFormatError, GgufropeError
from ggufrope.gguf import GGUFHeader, ValueType, encode_kv

HISTORY_KEY = "ggufrope.original"
OWN_PREFIX = "ggufrope."


def load(header: GGUFHeader) -> dict[str, bytes | None]:
    f = header.fields.get(HISTORY_KEY)
    if f is None:
        return {}
    try:
        doc = json.loads(header.value(f))
        hist = {k: (None if v is None else base64.b64decode(v, validate=True)) for k, v in doc["keys"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise GGUFFormatError(f"{header.path}: {HISTORY_KEY} is damaged ({e}); cannot restore") from None
    for key, raw in hist.items():
        if raw is not None and not _is_entry_for(raw, key, header.byteorder):
            raise GGUFFormatError(f"{header.path}: {HISTORY_KEY} is damaged (its record of {key!r} is not a "
                                  f"valid entry); cannot restore")
    return hist


def _is_entry_for(raw: bytes, key: str, byteorder: str) -> bool:
    """raw is exactly one well-formed key/value entry named key."""
    import struct
    from ggufrope.gguf.reader import parse_header
    pre = b"GGUF" + struct.pack(byteorder + "IQQ", 3, 0, 1)
    try:
        h = parse_header(pre + raw, len(pre) + len(raw))
    except GgufropeError:
        return False
    return list(h.fields) == [key] and h.kv_end == len(pre) + len(raw)


def record(header: GGUFHeader, entries: dict[str, bytes], touched: list[str]) -> dict[str, bytes]:
    """entries with the history key updated for the touched keys (first change wins)."""
    hist = load(header)
    changed = False
    for key in touched:
        if key.startswith(OWN_PREFIX) or key in hist:
            continue
        hist[key] = header.raw_entry(key) if key in header.fields else None
        changed = True
    if not changed:
        return entries
    doc = {"v": 1, "keys": {k: (None if v is None else base64.b64encode(v).decode()) for k, v in hist.items()}}
    out = dict(entries)
    out[HISTORY_KEY] = encode_kv(HISTORY_KEY, ValueType.STRING, json.dumps(doc, sort_keys=True),
                                 header.byteorder)
    return out
