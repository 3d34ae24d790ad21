"""Preset files: where they live, reading one strictly, and finding one by name.

Search order for a name: the user's presets ($GGUFROPE_CONFIG/presets, else
$XDG_CONFIG_HOME/ggufrope/presets, else ~/.config/ggufrope/presets), then the built-in presets
shipped in the package (ggufrope.builtin_presets, the repository's presets/ directory). A user
preset with a built-in's name shadows it, and may `extends` that same name to build on it.

Reading is strict: unknown keys fail with a "did you mean", wrong types fail with what was
expected, and every message names the file, the line and the field.
"""
from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any, Mapping

from ggufrope.errors import PresetError
from ggufrope.paths import xdg_dir
from ggufrope.presets import schema
from ggufrope.presets.toml_lines import key_lines, line_of

BUILTIN = "builtin"
USER = "user"
FILE = "file"


def config_dir(env: Mapping[str, str]) -> str:
    """The user config folder. One variable moves it: GGUFROPE_CONFIG (tests point it at tmp)."""
    if env.get("GGUFROPE_CONFIG"):
        return os.path.expanduser(env["GGUFROPE_CONFIG"])
    return os.path.join(xdg_dir("config", env), "ggufrope")


def user_dir(env: Mapping[str, str]) -> str:
    return os.path.join(config_dir(env), "presets")


def builtin_dir() -> str:
    """The built-in presets: the installed ggufrope.builtin_presets package, or presets/ beside
    the ggufrope package in a source checkout that was never installed."""
    try:
        import ggufrope.builtin_presets as pkg
        d = os.path.dirname(os.path.abspath(pkg.__file__))
        if os.path.isdir(d):
            return d
    except ImportError:
        pass
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "presets")


@dataclass(frozen=True)
class PresetFile:
    """One preset file as written: its typed values with the line each was set on."""

    name: str
    path: str
    origin: str                                # builtin, user or file
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    extends: str | None = None
    extends_line: int | None = None

    def where(self, name: str | None = None) -> str:
        """"path:line" of a field (or of the file)."""
        line = self.lines.get(name) if name else None
        return f"{self.path}:{line}" if line else self.path

    @property
    def description(self) -> str:
        return self.values.get("description") or ""


def _fail(path: str, line: int | None, fieldname: str | None, msg: str) -> PresetError:
    loc = f"{path}:{line}" if line else path
    return PresetError(f"{loc}: {fieldname}: {msg}" if fieldname else f"{loc}: {msg}")


def read_file(path: str, origin: str = FILE, name: str | None = None) -> PresetFile:
    path = os.path.abspath(os.path.expanduser(path))
    name = name or os.path.splitext(os.path.basename(path))[0]
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise PresetError(f"{path}: no such preset file") from None
    except OSError as e:
        raise PresetError(f"{path}: cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as e:
        raise PresetError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise PresetError(f"{path}: invalid TOML: {e}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively; no preset nests like this
        raise PresetError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    return parse(data, text, path, origin, name)


def parse(data: dict[str, Any], text: str, path: str, origin: str, name: str) -> PresetFile:
    lines = key_lines(text)
    values: dict[str, Any] = {}
    where: dict[str, int] = {}
    extends = extends_line = None

    def line(dotted: str) -> int | None:
        return line_of(lines, dotted)

    for key, v in data.items():
        if key == "extends":
            if not isinstance(v, str) or not v.strip():
                raise _fail(path, line(key), key, "expected the name of another preset")
            extends, extends_line = v.strip(), line(key)
            continue
        if key in schema.TABLES:
            if not isinstance(v, dict):
                raise _fail(path, line(key), key, f"expected a table ([{key}]), not {schema._show(v)}")
            for sub, sv in v.items():
                dotted = f"{key}.{sub}"
                spec = schema.BY_NAME.get(dotted)
                if spec is None:
                    raise _fail(path, line(dotted), dotted, schema.unknown_field_message(dotted))
                values[dotted] = _coerce(spec, sv, path, line(dotted))
                where[dotted] = line(dotted) or 0
            continue
        spec = schema.BY_NAME.get(key)
        if spec is None or spec.table is not None:
            raise _fail(path, line(key), key, schema.unknown_field_message(key))
        values[key] = _coerce(spec, v, path, line(key))
        where[key] = line(key) or 0
    return PresetFile(name=name, path=path, origin=origin, values=values,
                      lines={k: n for k, n in where.items() if n}, extends=extends, extends_line=extends_line)


def _coerce(spec: schema.FieldSpec, v: Any, path: str, line: int | None) -> Any:
    if isinstance(v, dict):
        raise _fail(path, line, spec.name, f"expected {spec.type_text()}, not a table")
    try:
        return spec.coerce(v)
    except ValueError as e:
        raise _fail(path, line, spec.name, str(e)) from None


# -- finding presets ------------------------------------------------------------------------

def _candidates(env: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(USER, user_dir(env)), (BUILTIN, builtin_dir())]


def available(env: Mapping[str, str]) -> dict[str, list[tuple[str, str]]]:
    """name -> [(origin, path), ...] in search order (a user preset first shadows a built-in)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for origin, d in _candidates(env):
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for fn in names:
            if fn.endswith(".toml") and not fn.startswith("."):
                out.setdefault(fn[:-5], []).append((origin, os.path.join(d, fn)))
    return out


def find(name: str, env: Mapping[str, str], below: str | None = None,
         asked_in: tuple[str, int | None] | None = None) -> PresetFile:
    """The preset called name. below=USER skips user presets (a user preset extending the
    built-in of the same name). asked_in=(path, line) names the `extends` that asked for it."""
    found = available(env).get(name, [])
    if below == USER:
        found = [f for f in found if f[0] != USER]
        if not found:   # a user preset may extend the built-in of its own name; there is none
            raise _fail(asked_in[0] if asked_in else user_dir(env), asked_in[1] if asked_in else None, "extends",
                        f"preset {name!r} extends itself (a user preset may extend only a built-in of the same "
                        f"name, and there is no built-in {name!r}); name another preset, or remove `extends`")
    if not found:
        known = sorted(available(env))
        m = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean {m[0]!r}?)" if m else f"; known: {', '.join(known) or 'none'}"
        msg = f"no preset named {name!r}{hint}"
        if asked_in is not None:
            raise _fail(asked_in[0], asked_in[1], "extends", msg)
        raise PresetError(f"{msg}; user presets live in {user_dir(env)}")
    origin, path = found[0]
    return read_file(path, origin, name)


def chain(top: PresetFile, env: Mapping[str, str]) -> list[PresetFile]:
    """top and its `extends` ancestors, farthest ancestor first."""
    seen = [top]
    cur = top
    while cur.extends:
        below = USER if cur.extends == cur.name and cur.origin == USER else None
        if cur.extends == cur.name and below is None:
            raise _fail(cur.path, cur.extends_line, "extends", f"preset {cur.name!r} extends itself")
        nxt = find(cur.extends, env, below=below, asked_in=(cur.path, cur.extends_line))
        if any(p.path == nxt.path for p in seen):
            loop = " -> ".join([p.name for p in seen] + [nxt.name])
            raise _fail(cur.path, cur.extends_line, "extends", f"extends loop: {loop}")
        seen.append(nxt)
        cur = nxt
    return list(reversed(seen))
