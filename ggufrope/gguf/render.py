"""Short, faithful text for a value: arrays are abbreviated and never decoded whole."""
from __future__ import annotations

import json
import math

from ggufrope.gguf.constants import FLOAT_TYPES, ValueType
from ggufrope.gguf.floats import fmt_float
from ggufrope.gguf.reader import Field, GGUFHeader

_PREVIEW = 3


def scalar_text(vtype: ValueType, v) -> str:
    if vtype == ValueType.STRING:
        return json.dumps(v, ensure_ascii=False)
    if vtype == ValueType.BOOL:
        return "true" if v else "false"
    if vtype in FLOAT_TYPES:
        if vtype == ValueType.FLOAT32 and math.isfinite(v):
            return fmt_float(v)
        return repr(v)
    return str(v)


def render_value(header: GGUFHeader, f: Field, limit: int = 60) -> str:
    if f.vtype != ValueType.ARRAY:
        text = scalar_text(f.vtype, header.value(f))
        if len(text) > limit:
            text = text[: limit - 1] + "…" + (f' ({len(header.value(f))} chars)' if f.vtype == ValueType.STRING else "")
        return text
    head = _array_preview(header, f)
    return f"[{f.item_type.name} x {f.count}] {head}"


def _array_preview(header: GGUFHeader, f: Field) -> str:
    """The first few items, decoded without touching the rest."""
    if f.count == 0:
        return "[]"
    if f.item_type == ValueType.ARRAY:
        return "[…]"
    n = min(f.count, _PREVIEW)
    items, off = [], f.value_start
    for _ in range(n):
        v, off = header._decode_scalar(off, f.item_type)
        t = scalar_text(f.item_type, v)
        items.append(t if len(t) <= 24 else t[:23] + "…")
    return "[" + ", ".join(items) + (", …]" if f.count > n else "]")


def field_json(header: GGUFHeader, f: Field, full_arrays: bool = False):
    """A JSON-able value: scalars as themselves, arrays in full or as {type, count, head}."""
    if f.vtype != ValueType.ARRAY:
        v = header.value(f)
        if isinstance(v, float) and not math.isfinite(v):
            return repr(v)
        return v
    if full_arrays:
        return header.value(f)
    return {"array_of": f.item_type.name, "count": f.count, "head": _array_preview(header, f)}
