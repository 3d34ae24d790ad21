"""One model of RoPE settings, projected into every dialect that speaks it.

A RopeSettings holds values for the GGUF RoPE keys (None = not set). The projections of the
settings alone: GGUF key/values (`to_gguf`), `--override-kv` items (`to_override_kv`), the
Hugging Face `rope_scaling` dict (`to_hf_rope_scaling`), the config.json keys it changes
(`to_hf_config`), transformers >= 5's `rope_parameters` (`to_hf_rope_parameters`) and vLLM's
serve flags (`to_vllm_args`). A launch (settings + model facts + context + apply mode) is
projected onto llama.cpp's argv and llama-cpp-python's kwargs by settings/projection.py
(`settings_flags` there is the settings-only case).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from ggufrope.errors import UsageError
from ggufrope.gguf.constants import ValueType
from ggufrope.gguf.floats import f32, fmt_float  # noqa: F401  (re-exported: settings.fmt_float)
from ggufrope.settings.keys import BY_FIELD, OVERRIDE_TYPES, ROPE_KEYS, SCALING_TYPES



# each key's value rule, from the key table: counts (UINT32), positive floats, and floats that
# only need to be finite (RopeKey.signed)
_COUNTS = {rk.field for rk in ROPE_KEYS if rk.vtype == ValueType.UINT32}
_POSITIVE = {rk.field for rk in ROPE_KEYS if rk.vtype == ValueType.FLOAT32 and not rk.signed}
_FINITE = {rk.field for rk in ROPE_KEYS if rk.vtype == ValueType.FLOAT32 and rk.signed}


def check_value(field_name: str, v: Any) -> None:
    """The one rule for a RoPE value, whichever route it takes (RopeSettings fields, the patch
    flags, `patch --set ARCH.rope...=TYPE:VALUE`, preset fields): UsageError naming the key when
    llama.cpp would abort on it or compute garbage (NaN, a zero or negative factor or base, a
    zero context). None is "not set" and always passes."""
    if v is None:
        return
    suffix = BY_FIELD[field_name].suffix
    if field_name == "scaling_type":
        if v not in SCALING_TYPES:
            raise UsageError(f"rope scaling type {v!r} is not one of "
                             f"{', '.join(SCALING_TYPES)} (anything else aborts llama.cpp)")
    elif field_name in _POSITIVE:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
            raise UsageError(f"{suffix} must be a positive number, not {v}")
    elif field_name in _FINITE:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise UsageError(f"{suffix} must be a finite number, not {v}")
    elif field_name in _COUNTS:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 2**32:
            raise UsageError(f"{suffix} must be a positive 32-bit integer, not {v}")


@dataclass(frozen=True)
class RopeSettings:
    context_length: int | None = None
    dimension_count: int | None = None
    freq_base: float | None = None
    scale_linear: float | None = None
    scaling_type: str | None = None
    scaling_factor: float | None = None
    original_context_length: int | None = None
    attn_factor: float | None = None
    finetuned: bool | None = None
    yarn_log_multiplier: float | None = None
    yarn_ext_factor: float | None = None
    yarn_attn_factor: float | None = None
    yarn_beta_fast: float | None = None
    yarn_beta_slow: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    # -- construction -------------------------------------------------------
    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], arch: str) -> RopeSettings:
        """Read the settings from a key -> value mapping (e.g. a GGUFHeader via .get)."""
        # no validation: a file may hold values llama.cpp would reject; checks report them
        obj = object.__new__(cls)
        for f in fields(cls):
            object.__setattr__(obj, f.name, meta.get(BY_FIELD[f.name].key(arch)))
        return obj

    def merged(self, other: RopeSettings) -> RopeSettings:
        """self with every field that other sets replaced."""
        return replace(self, **other.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def validate(self) -> None:
        for f in fields(self):
            check_value(f.name, getattr(self, f.name))

    # -- derived --------------------------------------------------------------
    @property
    def factor(self) -> float:
        """The scaling factor llama.cpp uses (scaling.factor, else scale_linear, else 1)."""
        f = self.scaling_factor if self.scaling_factor is not None else self.scale_linear
        return 1.0 if not f else float(f)

    @property
    def effective_type(self) -> str:
        """The scaling type llama.cpp resolves (absent = "linear", which with factor 1 is no-op)."""
        return self.scaling_type or "linear"

    # -- projections ------------------------------------------------------------
    def to_gguf(self, arch: str) -> list[tuple[str, ValueType, Any]]:
        """(key, type, value) for every set field, typed exactly as llama.cpp expects."""
        return [(rk.key(arch), rk.vtype, getattr(self, rk.field))
                for rk in ROPE_KEYS if getattr(self, rk.field) is not None]

    def to_override_kv(self, arch: str) -> list[str]:
        """llama.cpp `--override-kv KEY=TYPE:VALUE` items (common/common.cpp)."""
        out = []
        for key, vtype, v in self.to_gguf(arch):
            if vtype == ValueType.BOOL:
                text = "true" if v else "false"
            elif vtype == ValueType.FLOAT32:
                text = fmt_float(v)
            else:
                text = str(v)
            out.append(f"{key}={OVERRIDE_TYPES[vtype]}:{text}")
        return out

    def to_hf_rope_scaling(self) -> dict[str, Any] | None:
        """Hugging Face config.json `rope_scaling` (None when no scaling)."""
        t = self.scaling_type
        if t in (None, "none") or self.factor == 1.0:
            return None
        d: dict[str, Any] = {"rope_type": t, "factor": self.factor}
        if self.original_context_length is not None and t in ("yarn", "longrope"):
            d["original_max_position_embeddings"] = self.original_context_length
        if t == "yarn":
            if self.yarn_beta_fast is not None:
                d["beta_fast"] = self.yarn_beta_fast
            if self.yarn_beta_slow is not None:
                d["beta_slow"] = self.yarn_beta_slow
            if self.attn_factor is not None:
                # HF's attention_factor replaces YaRN's magnitude 0.1*ln(s)+1; llama.cpp keeps that
                # magnitude (ext_factor != 0) and multiplies rope.scaling.attn_factor into it
                mag = 1.0 if self.yarn_ext_factor == 0 else 1.0 + 0.1 * math.log(self.factor)
                d["attention_factor"] = self.attn_factor * mag
        return d

    def to_hf_config(self, rope_theta: float | None = None) -> dict[str, Any]:
        """The config.json keys these settings set: `rope_scaling` (None = unscaled), `rope_theta`
        (freq_base, else the given rope_theta) and `max_position_embeddings` (context_length)."""
        d: dict[str, Any] = {"rope_scaling": self.to_hf_rope_scaling()}
        theta = self.freq_base if self.freq_base is not None else rope_theta
        if theta is not None:
            d["rope_theta"] = float(theta)
        if self.context_length is not None:
            d["max_position_embeddings"] = self.context_length
        return d

    def to_hf_rope_parameters(self, rope_theta: float | None = None) -> dict[str, Any]:
        """transformers >= 5 `rope_parameters`: the rope_scaling dict (rope_type "default" when
        unscaled) with `rope_theta` inside."""
        d = dict(self.to_hf_rope_scaling() or {"rope_type": "default"})
        theta = self.freq_base if self.freq_base is not None else rope_theta
        if theta is not None:
            d["rope_theta"] = float(theta)
        return d

    def to_vllm_args(self, rope_theta: float | None = None, legacy: bool = False) -> list[str]:
        """`vllm serve` flags. vLLM >= 0.11.1 takes `--hf-overrides '{"rope_parameters": {...}}'`
        (`--rope-scaling`/`--rope-theta` were removed); `legacy=True` gives those older flags.
        vLLM derives its length limit as max_position_embeddings x factor (yarn:
        original_max_position_embeddings x factor), so max_position_embeddings is overridden only
        when there is no factor (a plain freq_base change); `--max-model-len` is context_length."""
        rp = self.to_hf_rope_parameters(rope_theta)
        return vllm_args(rp, self.context_length, legacy=legacy)


def vllm_args(rope_parameters: dict[str, Any], max_model_len: int | None, legacy: bool = False) -> list[str]:
    """vLLM serve flags for a transformers `rope_parameters` dict (see RopeSettings.to_vllm_args;
    also used for rope types llama.cpp lacks, such as dynamic)."""
    rp = dict(rope_parameters)
    scaled = rp.get("rope_type", "default") != "default" and rp.get("factor", 1.0) != 1.0
    args: list[str] = []
    if legacy:
        theta = rp.pop("rope_theta", None)
        if scaled:
            args += ["--rope-scaling", json.dumps(rp)]
        if theta is not None:
            args += ["--rope-theta", fmt_float(theta)]
        if not scaled and max_model_len is not None:
            args += ["--hf-overrides", json.dumps({"max_position_embeddings": max_model_len})]
    else:
        over: dict[str, Any] = {"rope_parameters": rp}
        if not scaled and max_model_len is not None:
            over["max_position_embeddings"] = max_model_len
        args += ["--hf-overrides", json.dumps(over)]
    if max_model_len is not None:
        args += ["--max-model-len", str(max_model_len)]
    return args
