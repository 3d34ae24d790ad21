"""Encode key/value entries (the inverse of reader.py's layout), in the file's byte order."""
from __future__ import annotations

import math
import struct
from typing import Any

from ggufrope.gguf.constants import FLOAT_TYPES, INT_RANGES, SCALAR_FORMAT, ValueType


def _string(s: str | bytes, bo: str) -> bytes:
    b = s if isinstance(s, bytes) else s.encode("utf-8", "surrogateescape")
    return struct.pack(bo + "Q", len(b)) + b


def encode_value(vtype: ValueType, value: Any, byteorder: str = "<",
                 item_type: ValueType | None = None) -> bytes:
    """Bytes of a value of the given type (without key or type tag, except inside arrays)."""
    vtype = ValueType(vtype)
    if vtype == ValueType.STRING:
        if not isinstance(value, (str, bytes)):
            raise ValueError(f"expected a string, got {value!r}")
        return _string(value, byteorder)
    if vtype == ValueType.ARRAY:
        if item_type is None:
            raise ValueError("an array needs an item type")
        items = list(value)
        head = struct.pack(byteorder + "IQ", int(item_type), len(items))
        if item_type == ValueType.ARRAY:
            # nested: each item is a (item_type, items) pair
            return head + b"".join(encode_value(ValueType.ARRAY, sub, byteorder, sub_type)
                                   for sub_type, sub in items)
        if item_type == ValueType.STRING:
            return head + b"".join(_string(s, byteorder) for s in items)
        for v in items:
            check_scalar(item_type, v)
        return head + struct.pack(f"{byteorder}{len(items)}{SCALAR_FORMAT[item_type]}", *items)
    check_scalar(vtype, value)
    return struct.pack(byteorder + SCALAR_FORMAT[vtype], value)


def check_scalar(vtype: ValueType, value: Any) -> None:
    """Raise ValueError if value does not fit the fixed-size type."""
    if vtype == ValueType.BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
    elif vtype in FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        if vtype == ValueType.FLOAT32 and math.isfinite(value) and abs(value) > 3.4028234663852886e38:
            raise ValueError(f"{value} does not fit in a 32-bit float")
    else:
        lo, hi = INT_RANGES[vtype]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"{value} is out of range for {vtype.name} [{lo}, {hi}]")


def encode_kv(key: str, vtype: ValueType, value: Any, byteorder: str = "<",
              item_type: ValueType | None = None) -> bytes:
    """A whole key/value entry: key string, u32 type, value."""
    return _string(key, byteorder) + struct.pack(byteorder + "I", int(vtype)) + encode_value(
        vtype, value, byteorder, item_type)
