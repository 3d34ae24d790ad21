"""User requests (RoPE settings, `--set KEY=TYPE:VALUE`, `--remove KEY`) -> typed edit ops.

Typing rules: an existing key keeps its stored type; a RoPE key takes the type llama.cpp
insists on (settings/keys.py), fixing a wrong stored type; another new key takes its type
from KNOWN_TYPES or from the request. `--set` uses llama.cpp's `--override-kv` syntax
(types int, float, bool, str) so values paste between the two; explicit GGUF types
(u8..u64, i8..i64, f32, f64) are accepted too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ggufrope.booleans import parse_bool
from ggufrope.edit.history import OWN_PREFIX
from ggufrope.edit.plan import RemoveKey, SetValue
from ggufrope.errors import EditError, UsageError
from ggufrope.gguf import GGUFHeader, ValueType
from ggufrope.gguf.constants import FLOAT_TYPES, INT_RANGES, TYPE_ALIASES
from ggufrope.settings.keys import BY_FIELD, KNOWN_TYPES, ROPE_KEYS, rope_key_for
from ggufrope.settings.rope_settings import RopeSettings, check_value

_OVERRIDE_KINDS = ("int", "float", "bool", "str")


@dataclass(frozen=True)
class Assignment:
    """One `KEY=TYPE:VALUE` as written by the user."""

    key: str
    kind: str      # int/float/bool/str or a GGUF type alias
    text: str

    @classmethod
    def parse(cls, s: str) -> Assignment:
        key, eq, rest = s.partition("=")
        kind, colon, text = rest.partition(":")
        if not eq or not colon or not key:
            raise UsageError(f"--set {s!r}: expected KEY=TYPE:VALUE (TYPE one of "
                             f"{', '.join(_OVERRIDE_KINDS)} or a GGUF type like u32, f32)")
        kind = kind.strip().lower()
        if kind not in _OVERRIDE_KINDS and kind not in TYPE_ALIASES:
            raise UsageError(f"--set {s!r}: unknown type {kind!r}; use int, float, bool, str, or u8..u64, "
                             f"i8..i64, f32, f64")
        return cls(key.strip(), kind, text)


def _kind_of(vtype: ValueType) -> str:
    if vtype == ValueType.STRING:
        return "str"
    if vtype == ValueType.BOOL:
        return "bool"
    if vtype in FLOAT_TYPES:
        return "float"
    if vtype in INT_RANGES:
        return "int"
    return "array"


def _parse_text(kind: str, text: str, key: str, path: str):
    try:
        if kind == "int":
            return int(text, 0)
        if kind == "float":
            return float(text)
        if kind == "bool":
            b = parse_bool(text)
            if b is None:
                raise ValueError(text)
            return b
        return text
    except ValueError:
        raise UsageError(f"{path}: --set {key}: {text!r} is not a valid {kind}") from None


def assignment_op(header: GGUFHeader, a: Assignment, arch: str) -> tuple[SetValue, list[str]]:
    notes: list[str] = []
    if a.key.startswith(OWN_PREFIX):
        raise EditError(f"{header.path}: {a.key!r} is ggufrope's own bookkeeping key")
    explicit = TYPE_ALIASES.get(a.kind)
    existing = header.fields.get(a.key)
    rk = rope_key_for(a.key, arch)
    if rk is not None:
        vtype = rk.vtype
        if explicit is not None and explicit != vtype:
            raise EditError(f"{header.path}: {a.key} must be {vtype.name} for llama.cpp, not {explicit.name}")
        if existing is not None and existing.vtype != vtype:
            notes.append(f"{a.key}: stored as {existing.vtype.name}, which llama.cpp rejects; "
                         f"rewriting it as {vtype.name}")
    elif existing is not None:
        vtype = existing.vtype
        if vtype == ValueType.ARRAY:
            raise EditError(f"{header.path}: {a.key} is an array; --set changes scalar values only")
        if explicit is not None and explicit != vtype:
            raise EditError(f"{header.path}: {a.key} is stored as {vtype.name}, not {explicit.name}; "
                            f"--remove it first to change its type")
    elif explicit is not None:
        vtype = explicit
    elif a.key in KNOWN_TYPES:
        vtype = KNOWN_TYPES[a.key]
    else:
        vtype = {"int": ValueType.INT32, "float": ValueType.FLOAT32, "bool": ValueType.BOOL,
                 "str": ValueType.STRING}[a.kind]
    kind = _kind_of(vtype)
    given = a.kind if a.kind in _OVERRIDE_KINDS else _kind_of(TYPE_ALIASES[a.kind])
    if given != kind and not (given == "int" and kind == "float"):
        raise EditError(f"{header.path}: {a.key} is {vtype.name}; a {given} value does not fit")
    value = _parse_text(kind, a.text, a.key, header.path)
    if vtype == ValueType.INT32 and a.kind == "int" and existing is None and not -(2**31) <= value < 2**31:
        vtype = ValueType.INT64
    if rk is not None:
        try:
            check_value(rk.field, value)  # the rule the RoPE flags follow
        except UsageError as e:
            raise UsageError(f"{header.path}: {e}") from None
    return SetValue(a.key, vtype, value), notes


@dataclass
class PatchRequest:
    """Everything `ggufrope patch` was asked to do."""

    rope: RopeSettings = field(default_factory=RopeSettings)
    ctx: int | None = None
    sets: list[Assignment] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.rope.as_dict() or self.ctx or self.sets or self.removes)


def _int_key(header: GGUFHeader, current: RopeSettings, field_name: str) -> int | None:
    v = getattr(current, field_name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise EditError(f"{header.path}: {BY_FIELD[field_name].suffix} is stored as {v!r}, not an integer; "
                        f"give --yarn-orig-ctx N")
    return v


def resolve_rope(header: GGUFHeader, req: PatchRequest) -> tuple[RopeSettings, list[str]]:
    """The RoPE fields to write, with context_length derived from the factor (llama-server
    caps each slot at context_length, so a factor without it would not reach further)."""
    arch = header.get("general.architecture") or ""
    current = RopeSettings.from_metadata(header, arch)
    want = req.rope
    notes: list[str] = []
    vals = want.as_dict()
    if req.ctx is not None:
        vals["context_length"] = req.ctx
    new_type = want.scaling_type or current.scaling_type or "linear"
    factor_given = want.scaling_factor is not None or want.scale_linear is not None
    if factor_given and new_type in ("linear", "yarn", "longrope"):
        orig = want.original_context_length or _int_key(header, current, "original_context_length") \
            or _int_key(header, current, "context_length")
        if orig is None:
            raise EditError(f"{header.path}: the original (trained) context is unknown: "
                            f"give --yarn-orig-ctx N")
        vals["original_context_length"] = orig
        if req.ctx is None:
            vals["context_length"] = int(round(want.factor * orig))
    if want.scaling_type == "none" and (factor_given or current.factor != 1.0):
        notes.append("rope.scaling.type none makes llama.cpp ignore the scaling factor")
    if new_type == "yarn" and not factor_given and current.factor == 1.0:
        notes.append("YaRN with factor 1 changes nothing: add --rope-scale N")
    if new_type == "longrope" and not any(t.name.startswith("rope_factors") for t in header.tensors):
        notes.append("longrope needs rope_factors_long/short tensors, which this file lacks")
    settings = RopeSettings(**vals)
    for rk in ROPE_KEYS:
        if getattr(settings, rk.field) is None or rk.read_for(arch):
            continue
        how = (f"pass {rk.flag} at run time instead" if rk.flag
               else "no llama.cpp flag sets it either")
        notes.append(f"{rk.key(arch)}: written, but llama.cpp does not read it for '{arch}' "
                     f"models; {how}")
    return settings, notes


def request_ops(header: GGUFHeader, req: PatchRequest) -> tuple[list, list[str]]:
    arch = header.get("general.architecture") or ""
    if not arch and (req.rope.as_dict() or req.ctx):
        raise EditError(f"{header.path}: no general.architecture key, so the RoPE key names are unknown")
    settings, notes = resolve_rope(header, req)
    ops: list = [SetValue(k, t, v) for k, t, v in settings.to_gguf(arch)]
    for a in req.sets:
        op, n = assignment_op(header, a, arch)
        ops.append(op)
        notes += n
    for key in req.removes:
        if key.startswith(OWN_PREFIX):
            raise EditError(f"{header.path}: {key!r} is ggufrope's own key; use `ggufrope restore`")
        if rope_key_for(key, arch) is BY_FIELD["context_length"]:
            raise EditError(f"{header.path}: {key} is required by llama.cpp and cannot be removed")
        ops.append(RemoveKey(key))
    return ops, notes
