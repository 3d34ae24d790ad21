"""Write preset TOML text (no third-party writer): scalars, string lists, and one level of
tables, with comments. Output reads back with tomllib to the same values (tested)."""
from __future__ import annotations

import json
import math
from typing import Any, Iterable

from ggufrope.presets.schema import FIELDS, TABLES


def value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"TOML presets take finite numbers, not {v}")
        r = repr(v)
        return r if any(c in r for c in ".eE") else r + ".0"
    if isinstance(v, str):
        # a JSON string is a valid TOML basic string except for a few escapes JSON allows and TOML
        # does not; ensure_ascii=False keeps text readable, and \u escapes are TOML too
        s = json.dumps(v, ensure_ascii=False)
        return s.replace("\x7f", "\\u007f")  # TOML forbids a raw DEL; JSON leaves it
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value_text(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to a preset")


def preset_text(values: dict[str, Any], header: Iterable[str] = (), comments: dict[str, str] | None = None,
                extends: str | None = None) -> str:
    """TOML for dotted field values, top-level fields first, then one [table] per group, in
    schema order; comments[field] is written on the line above it."""
    comments = comments or {}
    order = {f.name: i for i, f in enumerate(FIELDS)}
    names = sorted(values, key=lambda n: order.get(n, len(order)))
    out = [f"# {h}" if h else "#" for h in header]
    if out:
        out.append("")
    if extends:
        out.append(f"extends = {value_text(extends)}")
    for n in names:
        if "." not in n:
            _emit(out, n, values[n], comments.get(n))
    for t in TABLES:
        sub = [n for n in names if n.startswith(t + ".")]
        if not sub:
            continue
        out.append("")
        if comments.get(t):
            out.append(f"# {comments[t]}")
        out.append(f"[{t}]")
        for n in sub:
            _emit(out, n.split(".", 1)[1], values[n], comments.get(n))
    return "\n".join(out) + "\n"


def _emit(out: list[str], key: str, v: Any, comment: str | None) -> None:
    if comment:
        for c in comment.splitlines():
            out.append(f"# {c}")
    out.append(f"{key} = {value_text(v)}")
