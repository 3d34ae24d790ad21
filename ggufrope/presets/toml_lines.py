"""Line numbers for the keys of a TOML document. tomllib gives values, not positions; error
messages must name the line, so this scanner maps every dotted key to the line it is set on.

It understands what presets use: `[table]` headers, `key = value`, dotted and quoted keys,
inline tables (their keys get the line of the table) and multi-line strings and arrays (whose
inner lines are skipped). A key it cannot place falls back to its table's header line.
"""
from __future__ import annotations

import re

_HEADER = re.compile(r'^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$')
_KEY = re.compile(r'^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\'))*)\s*=')
_INLINE_KEY = re.compile(r'(?:^|[{,])\s*([A-Za-z0-9_-]+|"[^"]*")\s*=')


def _split_key(k: str) -> list[str]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+', k)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def key_lines(text: str) -> dict[str, int]:
    """dotted key -> 1-based line number where it is assigned (tables: their header line)."""
    out: dict[str, int] = {}
    table: list[str] = []
    in_ml: str | None = None   # the closing quote of an open multi-line string
    depth = 0                  # open [ of a multi-line array
    for no, line in enumerate(text.splitlines(), 1):
        if in_ml is not None:
            if line.count(in_ml) % 2 == 1:
                in_ml = None
            continue
        if depth > 0:
            depth += _bracket_delta(line)
            continue
        m = _HEADER.match(line)
        if m and not line.lstrip().startswith("[["):
            table = _split_key(m.group(1))
            out.setdefault(".".join(table), no)
            continue
        m = _KEY.match(line)
        if not m:
            continue
        key = ".".join(table + _split_key(m.group(1)))
        out.setdefault(key, no)
        rest = line[m.end():]
        for q in ('"""', "'''"):
            if rest.count(q) % 2 == 1:
                in_ml = q
        if in_ml is None:
            stripped = rest.strip()
            if stripped.startswith("{"):
                for im in _INLINE_KEY.finditer(stripped):
                    out.setdefault(f"{key}.{_split_key(im.group(1))[0]}", no)
            elif stripped.startswith("["):
                depth = _bracket_delta(rest)
    return out


def _bracket_delta(s: str) -> int:
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'[^\']*\'', '""', s).split("#", 1)[0]
    return s.count("[") - s.count("]")


def line_of(lines: dict[str, int], dotted: str) -> int | None:
    """The line of dotted, else of its nearest enclosing table."""
    parts = dotted.split(".")
    while parts:
        n = lines.get(".".join(parts))
        if n is not None:
            return n
        parts.pop()
    return None
