"""Precedence, written once.

    1. built-in defaults      (schema.FIELDS)
    2. the preset chain       (the farthest `extends` ancestor first, the named preset last)
    3. the environment        (GGUFROPE_<FIELD>, e.g. GGUFROPE_CTX, GGUFROPE_SERVER_PORT)
    4. the command line       (--model, --ctx, --cache-type-k/-v, --set FIELD=VALUE, in order)

A later layer replaces a field an earlier one set; every value keeps its Origin, so
`ggufrope presets show` can say where it came from and a failing check can name the file and
line (or the variable, or the flag) to change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ggufrope.errors import PresetError, UsageError
from ggufrope.presets import load, schema, secrets


@dataclass(frozen=True)
class Origin:
    kind: str                   # default, preset, env, cli
    label: str                  # "built-in default", a path, GGUFROPE_CTX, --ctx
    line: int | None = None
    preset: str | None = None   # the preset that set it (kind preset)

    def __str__(self) -> str:
        if self.kind == "preset":
            return f"{self.label}:{self.line}" if self.line else self.label
        return self.label


@dataclass(frozen=True)
class Override:
    """One command-line setting: field, value as text, and the flag that gave it."""

    field: str
    value: Any
    flag: str

    @classmethod
    def parse_set(cls, item: str) -> Override:
        """`--set FIELD=VALUE` (FIELD dotted for tables: sampling.temperature=0.2)."""
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise PresetError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set sampling.temperature=0.2")
        return cls(name, value, f"--set {name}")


@dataclass(frozen=True)
class Resolved:
    """A preset resolved through every layer: values and where each came from."""

    name: str
    chain: tuple[load.PresetFile, ...]
    values: Mapping[str, Any]
    origins: Mapping[str, Origin]
    layers: tuple[str, ...] = field(default=())

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def origin(self, name: str) -> Origin:
        return self.origins[name]

    def at(self, name: str) -> str:
        """Where to fix a field, as an error prefix: "path:line: field", "GGUFROPE_CTX: ctx",
        "--ctx: ctx", "--set ctx", or "preset demo (path): field" for a default."""
        o = self.origins[name]
        if o.kind == "preset":
            return f"{o}: {name}"
        if o.kind in ("env", "cli"):
            return _flag_field(o.label, name)
        top = self.chain[-1] if self.chain else None
        return f"{top.path if top else self.name}: {name} (built-in default)"

    def error(self, name: str, msg: str) -> PresetError:
        return PresetError(f"{self.at(name)}: {msg}")

    @property
    def path(self) -> str | None:
        return self.chain[-1].path if self.chain else None

    def is_set(self, name: str) -> bool:
        return self.origins[name].kind != "default"


def env_layer(env: Mapping[str, str]) -> list[tuple[str, Any, Origin]]:
    out = []
    for var, spec in schema.BY_ENV.items():
        if var in env:
            try:
                out.append((spec.name, spec.coerce(env[var], text=True), Origin("env", var)))
            except ValueError as e:
                raise PresetError(f"{var}: {spec.name}: {e}") from None
    return out


def cli_layer(overrides: Sequence[Override]) -> list[tuple[str, Any, Origin]]:
    out = []
    for o in overrides:
        spec = schema.BY_NAME.get(o.field)
        if spec is None:
            raise PresetError(f"{o.flag}: {schema.unknown_field_message(o.field)}")
        if spec.secret and o.value and not secrets.is_reference(str(o.value)):
            raise UsageError(secrets.command_line_refusal(o.flag))
        try:
            out.append((spec.name, spec.coerce(o.value, text=isinstance(o.value, str)), Origin("cli", o.flag)))
        except ValueError as e:
            raise PresetError(f"{_flag_field(o.flag, spec.name)}: {e}") from None
    return out


def _flag_field(flag: str, name: str) -> str:
    """"--ctx: ctx", but "--set ctx" (which already names the field) as it is."""
    return flag if flag == f"--set {name}" else f"{flag}: {name}"


def resolve(top: load.PresetFile | None, env: Mapping[str, str], overrides: Sequence[Override] = (),
            name: str | None = None) -> Resolved:
    """Resolve top (None: defaults only) through the layers above."""
    files = load.chain(top, env) if top is not None else []
    layers: list[tuple[str, list[tuple[str, Any, Origin]]]] = [
        ("built-in defaults", [(n, v, Origin("default", "built-in default")) for n, v in schema.DEFAULTS.items()]),
        *[(f"preset {p.name} ({p.path})",
           [(n, v, Origin("preset", p.path, p.lines.get(n), p.name)) for n, v in p.values.items()])
          for p in files],
        ("environment", env_layer(env)),
        ("command line", cli_layer(overrides)),
    ]
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for _, items in layers:
        for n, v, o in items:
            values[n] = v
            origins[n] = o
    return Resolved(name=name or (top.name if top else "defaults"), chain=tuple(files), values=values,
                    origins=origins, layers=tuple(label for label, _ in layers))
