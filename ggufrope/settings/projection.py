"""One RoPE launch, projected onto every engine and format.

A `Projection` is the value every launch route is computed from: the RoPE settings asked for,
the model file's RoPE keys, its trained context, the context the engine starts with, the
architecture and how the settings are applied:

* ``runtime``  the file is untouched; flags (and --override-kv for keys without a flag) carry all.
* ``patched``  a patched copy holds the keys llama.cpp reads for the architecture; the keys it
               ignores there (RopeKey.read_for) still travel as flags.
* ``override`` as patched, but the copy's keys travel as --override-kv (the plan's third dialect).

Its methods give llama.cpp's argv (`llama_args`, `rope_flags`), the `--override-kv` items, the
llama-cpp-python kwargs (`llama_cpp_kwargs`), llama.cpp's INI lines (`ini_pairs`), the keys a
patched copy holds (`patched_keys`) and the Hugging Face / vLLM forms. Every per-key fact (flag,
kwarg, override type, llama.cpp's defaults) comes from the key table, settings/keys.py.

Three llama.cpp rules (0c1e570) shape it, each written once here:
* float values: the file stores float32; `--rope-scale N` sets freq_scale = 1.0f / stof(N)
  (common/arg.cpp l.2347) and the loader 1.0f / factor (src/llama-model.cpp); kwargs pass the same
  float32 numbers (`f32`), so every route hands llama.cpp identical bits.
* the context cap: llama-server caps each slot at n_ctx_train. llama.cpp raises n_ctx_train itself
  to (uint32)(n_ctx_orig_yarn / freq_scale) when the resolved type is yarn and the runtime
  freq_scale differs from the file's (src/llama-context.cpp l.3891); otherwise
  `--override-kv ARCH.context_length=int:N` lifts it (`ctx_override`).
* llama-cpp-python passes yarn_attn_factor 1, yarn_beta_fast 32, yarn_beta_slow 1 of its own,
  which beat the file (src/llama-context.cpp l.114-117), so the resolved values are passed.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable

from ggufrope.settings.keys import BY_FIELD, ROPE_KEYS
from ggufrope.settings.rope_settings import RopeSettings, f32, fmt_float, vllm_args

APPLY_MODES = ("runtime", "patched", "override")
# llama_rope_scaling_type (llama.h), as llama-cpp-python's rope_scaling_type takes it
LLAMA_ROPE_SCALING_IDS = {"none": 0, "linear": 1, "yarn": 2, "longrope": 3}
_STRETCHING = ("linear", "yarn", "longrope")
_FLAGS_FIRST = ("scaling_type", "scaling_factor")  # argv reads "--rope-scaling yarn --rope-scale 4 ..."


def freq_scale(factor: float | None) -> float:
    """llama.cpp's freq_scale for a scaling factor: 1.0f / (float)factor, in float32
    (an absent or zero factor is 1)."""
    return 1.0 if not factor else f32(1.0 / f32(factor))


def split_by_reader(settings: RopeSettings, arch: str) -> tuple[RopeSettings, RopeSettings]:
    """(fields llama.cpp reads from an `arch` file, fields it takes only from runtime flags)."""
    read: dict[str, Any] = {}
    runtime: dict[str, Any] = {}
    for rk in ROPE_KEYS:
        v = getattr(settings, rk.field)
        if v is not None:
            (read if rk.read_for(arch) else runtime)[rk.field] = v
    return RopeSettings(**read), RopeSettings(**runtime)


def settings_flags(settings: RopeSettings, arch: str | None = None) -> list[str]:
    """llama.cpp runtime flags for settings alone (no model facts, no -c, so no context
    override). `arch` names the --override-kv keys of settings that have no flag; without it
    they are left out."""
    args = Projection(arch or "", settings).llama_args()
    if arch:
        return args
    keep: list[str] = []
    for i, a in enumerate(args):
        if a == "--override-kv" or (i and args[i - 1] == "--override-kv"):
            continue
        keep.append(a)
    return keep


def settings_reach(want: RopeSettings, file_rope: RopeSettings, trained: int) -> int:
    """How far RoPE settings reach: context_length when set, else original x factor for a
    scaling type that stretches, else the file's context_length."""
    if want.context_length:
        return want.context_length
    typ = want.scaling_type or file_rope.effective_type
    factor = want.factor if (want.scaling_factor is not None or want.scale_linear is not None) else file_rope.factor
    if typ != "none" and factor > 1.0:
        orig = want.original_context_length or file_rope.original_context_length or trained
        return int(round(orig * factor))
    return max(file_rope.context_length or trained, trained)


def patch_fields(want: RopeSettings, file_rope: RopeSettings) -> RopeSettings:
    """The keys a patch writes for `want`: with a factor and a stretching type, the original
    context is pinned and context_length is original x factor unless given (llama-server caps each
    slot at context_length; edit/requests.py honours fields given here as they are)."""
    vals = want.as_dict()
    typ = want.scaling_type or file_rope.scaling_type or "linear"
    if (want.scaling_factor is not None or want.scale_linear is not None) and typ in _STRETCHING:
        orig = want.original_context_length or file_rope.original_context_length or file_rope.context_length
        if isinstance(orig, int) and orig > 0:
            vals["original_context_length"] = orig
            vals.setdefault("context_length", int(round(want.factor * orig)))
    return RopeSettings(**vals)


def _text(rk_field: str, v: Any) -> str:
    return fmt_float(v) if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class Projection:
    arch: str
    want: RopeSettings                 # asked for: a plan's settings with explicit fields over them
    file_rope: RopeSettings = field(default_factory=RopeSettings)  # the file's RoPE keys now
    trained_ctx: int = 0               # ModelFacts.trained_ctx
    n_ctx: int = 0                     # the context the engine starts with (0: none given)
    apply: str = "runtime"

    def __post_init__(self) -> None:
        if self.apply not in APPLY_MODES:
            raise ValueError(f"apply {self.apply!r} is not one of {APPLY_MODES}")

    # -- who carries what --------------------------------------------------------------------
    @cached_property
    def _parts(self) -> tuple[RopeSettings, RopeSettings]:
        if self.apply == "runtime":
            return RopeSettings(), self.want
        read, runtime = split_by_reader(patch_fields(self.want, self.file_rope), self.arch)
        return read, runtime

    @property
    def file_part(self) -> RopeSettings:
        """Keys the patched copy (or, for apply = override, --override-kv) holds."""
        return self._parts[0]

    @property
    def flag_part(self) -> RopeSettings:
        """Settings given as runtime flags / kwargs, with the original context pinned when a
        context override would otherwise move llama.cpp's default for it."""
        flags = self._parts[1]
        if self.ctx_override() is not None and self._loaded.original_context_length is None \
                and flags.original_context_length is None and self._loaded.context_length:
            flags = flags.merged(RopeSettings(original_context_length=self._loaded.context_length))
        return flags

    def _flagless(self) -> RopeSettings:
        """Runtime settings no flag carries (they go as --override-kv / kv_overrides)."""
        fp = self._parts[1]
        vals = {rk.field: getattr(fp, rk.field) for rk in ROPE_KEYS
                if rk.flag is None and getattr(fp, rk.field) is not None}
        if fp.scaling_type == "longrope":  # --rope-scaling has no longrope; the key selects it
            vals["scaling_type"] = "longrope"
        return RopeSettings(**vals)

    @cached_property
    def _loaded(self) -> RopeSettings:
        """The keys llama.cpp's loader sees, before any context override: the file, the patched
        keys, the flag-less overrides."""
        seen = self.file_rope
        if self.apply != "runtime":
            seen = _lenient_merge(seen, self.file_part)
        return _lenient_merge(seen, self._flagless())

    def _file_value(self, name: str) -> Any:
        """The hparams value llama.cpp loads for a key on this architecture."""
        rk = BY_FIELD[name]
        v = getattr(self._loaded, name)
        return v if (v is not None and rk.read_for(self.arch)) else rk.default_for(self.arch)

    # -- the context cap ---------------------------------------------------------------------
    def _loaded_ctx(self) -> int:
        c = self._loaded.context_length
        return c if isinstance(c, int) and not isinstance(c, bool) and c > 0 else self.trained_ctx

    def resolved_type(self) -> str:
        fp = self._parts[1]
        if fp.scaling_type is not None and fp.scaling_type != "longrope":
            return fp.scaling_type
        return self._loaded.scaling_type or "linear"

    def _train_freq_scale(self) -> float:
        return freq_scale(self._loaded.factor)

    def resolved_freq_scale(self) -> float:
        """cparams.rope_freq_scale: the runtime factor's, else the file's; 1 for type none."""
        if self.resolved_type() == "none":
            return 1.0
        fp = self._parts[1]
        given = fp.scaling_factor is not None or fp.scale_linear is not None
        return freq_scale(fp.factor) if given else self._train_freq_scale()

    def resolved_orig_ctx(self) -> int:
        return self.flag_part.original_context_length or self._loaded.original_context_length or self._loaded_ctx()

    def _lifted_ctx(self) -> int | None:
        """n_ctx_train as llama.cpp re-adjusts it for a runtime YaRN factor, or None."""
        fs = self.resolved_freq_scale()
        if self.resolved_type() != "yarn" or fs == self._train_freq_scale():
            return None
        orig = self._parts[1].original_context_length or self._loaded.original_context_length or self._loaded_ctx()
        return int(f32(f32(float(orig)) / fs))  # uint32 = float / float (truncated)

    def ctx_override(self) -> int | None:
        """The context_length --override-kv / kv_overrides carries, if any: when llama.cpp does
        not lift n_ctx_train itself, the key is set to what the settings ask (runtime) and at
        least to n_ctx."""
        if self._lifted_ctx() is not None:
            return None
        loaded = self._loaded_ctx()
        desired = self.want.context_length if (self.apply == "runtime" and self.want.context_length) else loaded
        desired = max(desired, self.n_ctx)
        return desired if desired != loaded else None

    def ctx_cap(self) -> int:
        """n_ctx_train after loading: llama-server's per-slot cap."""
        lifted = self._lifted_ctx()
        if lifted is not None:
            return lifted
        ov = self.ctx_override()
        return ov if ov is not None else self._loaded_ctx()

    # -- llama.cpp argv ------------------------------------------------------------------------
    def override_items(self) -> list[str]:
        """`--override-kv` items: flag-less settings, the context override, and for apply =
        override the keys a patched copy would hold."""
        items: list[str] = []
        if self.apply == "override":
            items += self.file_part.to_override_kv(self.arch)
        items += self._flagless().to_override_kv(self.arch)
        n = self.ctx_override()
        if n is not None:
            items.append(f"{BY_FIELD['context_length'].key(self.arch)}={BY_FIELD['context_length'].override_type}:{n}")
        return items

    def rope_flags(self) -> list[str]:
        """llama.cpp's RoPE flags (common/arg.cpp), without -c: one per key the table gives a flag,
        then --override-kv for the rest."""
        fp = self.flag_part
        args: list[str] = []
        for rk in sorted(ROPE_KEYS, key=lambda k: k.field not in _FLAGS_FIRST):
            v = getattr(fp, rk.field)
            if rk.flag is None or rk.field in ("context_length", "scale_linear"):
                continue
            if rk.field == "scaling_factor":  # scaling.factor, else scale_linear: one --rope-scale
                if v is not None or fp.scale_linear is not None:
                    args += [rk.flag, fmt_float(fp.factor)]
                continue
            if v is None or (rk.field == "scaling_type" and v == "longrope"):
                continue
            args += [rk.flag, _text(rk.field, v)]
        for item in self.override_items():
            args += ["--override-kv", item]
        return args

    def llama_args(self) -> list[str]:
        """`-c N` and the RoPE flags: the part of a llama.cpp argv this projection decides."""
        return ["-c", str(self.n_ctx)] + self.rope_flags() if self.n_ctx else self.rope_flags()

    # -- llama-cpp-python ---------------------------------------------------------------------------
    def llama_cpp_kwargs(self) -> dict[str, Any]:
        """llama_cpp.Llama keyword arguments for n_ctx and RoPE: every resolved value explicit,
        floats as the float32 llama.cpp computes."""
        fp = self.flag_part
        kw: dict[str, Any] = {}
        if self.n_ctx:
            kw["n_ctx"] = self.n_ctx
        typ = self.resolved_type()
        kw["rope_scaling_type"] = LLAMA_ROPE_SCALING_IDS[typ]
        base = fp.freq_base if fp.freq_base is not None else self._file_value("freq_base")
        kw["rope_freq_base"] = f32(float(base))
        kw["rope_freq_scale"] = self.resolved_freq_scale()
        kw["yarn_orig_ctx"] = int(self.resolved_orig_ctx())
        for rk in ROPE_KEYS:
            if rk.field.startswith("yarn_") and rk.kwarg is not None:
                v = getattr(fp, rk.field)
                if v is None:
                    v = self._file_value(rk.field) if rk.kwarg_overrides_file else rk.hparam_default
                kw[rk.kwarg] = f32(float(v))
        over = {item.split("=", 1)[0]: _override_value(item) for item in self.override_items()
                if not item.startswith(BY_FIELD["scaling_type"].key(self.arch) + "=")}
        if over:
            kw["kv_overrides"] = over
        return kw

    # -- files and other formats -------------------------------------------------------------------
    def patched_keys(self) -> list[tuple[str, Any, Any]]:
        """(key, type, value) a patched copy holds (apply = patched / override)."""
        return self.file_part.to_gguf(self.arch)

    def ini_pairs(self) -> list[tuple[str, str]]:
        """llama.cpp INI (docs/preset.md) key/value pairs of `llama_args`."""
        return argv_to_ini(self.llama_args())

    def hf_config(self, rope_theta: float | None = None) -> dict[str, Any]:
        return self.want.to_hf_config(rope_theta)

    def vllm_args(self, rope_theta: float | None = None, legacy: bool = False) -> list[str]:
        return self.want.to_vllm_args(rope_theta, legacy=legacy)

    def effective(self) -> RopeSettings:
        """The values llama.cpp ends with, as settings: the file's keys it reads for this
        architecture, the patched keys and the runtime settings over them."""
        vals: dict[str, Any] = {}
        for rk in ROPE_KEYS:
            v = getattr(self._loaded, rk.field)
            if v is not None and rk.read_for(self.arch) and _valid(rk.field, v):
                vals[rk.field] = v
        vals.update(self.flag_part.as_dict())
        return RopeSettings(**vals)

    def text(self) -> str:
        return shlex.join(self.llama_args())


def _lenient_merge(base: RopeSettings, over: RopeSettings) -> RopeSettings:
    """base (a file's values, not validated) with over's fields set."""
    obj = object.__new__(RopeSettings)
    for rk in ROPE_KEYS:
        v = getattr(over, rk.field)
        object.__setattr__(obj, rk.field, v if v is not None else getattr(base, rk.field))
    return obj


def _valid(name: str, v: Any) -> bool:
    from ggufrope.errors import GgufropeError
    try:
        RopeSettings(**{name: v})
        return True
    except GgufropeError:
        return False


def _override_value(item: str) -> Any:
    """The Python value of one `KEY=TYPE:VALUE` item, as llama.cpp parses it (common/common.cpp)."""
    _, rest = item.split("=", 1)
    typ, text = rest.split(":", 1)
    if typ == "int":
        return int(text)
    if typ == "float":
        return f32(float(text))
    if typ == "bool":
        return text == "true"
    return text


# short flag -> long INI key (common/arg.cpp: the last, long form of each option)
_LONG = {"-m": "model", "-c": "ctx-size", "-ctk": "cache-type-k", "-ctv": "cache-type-v", "-fa": "flash-attn",
         "-ngl": "n-gpu-layers", "-t": "threads", "-b": "batch-size", "-ub": "ubatch-size", "-n": "n-predict",
         "-sys": "system-prompt", "-s": "seed", "--temp": "temp", "-np": "parallel", "-kvu": "kv-unified"}
_NEGATED = {"-no-kvu": "kv-unified"}      # a --no-X switch: key X = false (common/preset.cpp l.265-275)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def argv_to_ini(args: Iterable[str]) -> list[tuple[str, str]]:
    """llama.cpp argv -> INI (key, value) pairs (docs/preset.md, common/preset.cpp): long option
    names without dashes, flags as "true", repeated --override-kv joined by commas."""
    args = list(args)
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in _NEGATED:
            pairs.append((_NEGATED[a], "false"))
            i += 1
            continue
        key = _LONG.get(a, a.lstrip("-"))
        nxt = args[i + 1] if i + 1 < len(args) else None
        if nxt is not None and not (nxt.startswith("-") and len(nxt) > 1 and not _is_number(nxt)):
            pairs.append((key, nxt))
            i += 2
        else:
            pairs.append((key, "true"))
            i += 1
    merged: dict[str, str] = {}
    for k, v in pairs:
        merged[k] = f"{merged[k]},{v}" if k == "override-kv" and k in merged else v
    return list(merged.items())


__all__ = ["APPLY_MODES", "LLAMA_ROPE_SCALING_IDS", "Projection", "argv_to_ini", "freq_scale",
           "patch_fields", "settings_reach", "split_by_reader", "vllm_args"]
