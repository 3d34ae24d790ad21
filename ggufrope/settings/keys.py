"""The RoPE keys llama.cpp reads, as data.

Names: src/llama-arch.cpp (LLM_KV_* table, l.195, 325-341). Loading and defaults:
src/llama-model.cpp l.1321-1432 (generic loader), src/models/{grok,mistral3,deepseek2,deepseek32}.cpp
(the only readers of the yarn_* keys). Types are strict (src/llama-model-loader.cpp): a u64
context_length or an f64 freq_base fails the load with "key has wrong type".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ggufrope.gguf.constants import ValueType

SCALING_TYPES = ("none", "linear", "yarn", "longrope")  # llama_rope_scaling_type_from_string


# --override-kv type words (common/common.cpp string_parse_kv_override)
OVERRIDE_TYPES = {ValueType.UINT32: "int", ValueType.FLOAT32: "float", ValueType.BOOL: "bool",
                  ValueType.STRING: "str"}


@dataclass(frozen=True)
class RopeKey:
    """One RoPE key and every column a projection needs (settings/projection.py reads them;
    no list of keys is typed anywhere else)."""

    field: str            # attribute of RopeSettings
    suffix: str           # key without the "{arch}." prefix
    vtype: ValueType      # the type llama.cpp insists on
    when_absent: str      # what llama.cpp does without the key
    flag: str | None      # llama.cpp runtime flag (common/arg.cpp) that sets the same thing; None: only the file
                          # or --override-kv can
    read_by: frozenset[str] | None = None  # architectures whose loader reads it; None = all
    note: str = ""
    kwarg: str | None = None     # llama_cpp.Llama keyword argument (llama-cpp-python 0.3.36), if any
    hparam_default: Any = None   # llama.cpp's hparams value when the file lacks the key (src/llama-hparams.h)
    arch_defaults: tuple[tuple[str, Any], ...] = ()  # per-architecture hparams defaults (src/models/*.cpp)
    # llama-cpp-python passes its own default for this kwarg (>= 0, so it beats the file: llama-context.cpp
    # l.114-117); the projection must pass the resolved value
    kwarg_overrides_file: bool = False
    patch_flag: str | None = None  # `ggufrope patch`'s flag for it (named as llama.cpp names its flag); None: --set
    signed: bool = False           # a float that may be zero or negative (only finite is required)
    doc: str = ""                  # one line for preset docs (`[rope]` fields) and help

    def key(self, arch: str) -> str:
        return f"{arch}.{self.suffix}"

    def read_for(self, arch: str) -> bool:
        return self.read_by is None or arch in self.read_by

    @property
    def override_type(self) -> str:
        """The TYPE word of `--override-kv KEY=TYPE:VALUE`."""
        return OVERRIDE_TYPES[self.vtype]

    def default_for(self, arch: str) -> Any:
        """What llama.cpp holds for this key on an `arch` model whose file lacks it."""
        return dict(self.arch_defaults).get(arch, self.hparam_default)


_GROK_MISTRAL3 = frozenset({"grok", "mistral3"})

ROPE_KEYS: tuple[RopeKey, ...] = (
    RopeKey("context_length", "context_length", ValueType.UINT32,
            "required: llama.cpp refuses the file", "-c",
            note="n_ctx_train: default context and llama-server's per-slot cap", kwarg="n_ctx", patch_flag="--ctx",
            doc="the file's context_length (n_ctx_train; llama-server's per-slot cap)"),
    RopeKey("dimension_count", "rope.dimension_count", ValueType.UINT32,
            "the head dimension (n_embd / n_head)", None, doc="RoPE dimensions (rope.dimension_count)"),
    RopeKey("freq_base", "rope.freq_base", ValueType.FLOAT32, "10000", "--rope-freq-base",
            kwarg="rope_freq_base", hparam_default=10000.0, patch_flag="--rope-freq-base",
            doc="RoPE base frequency (--rope-freq-base)"),
    RopeKey("scale_linear", "rope.scale_linear", ValueType.FLOAT32,
            "unused (old name of rope.scaling.factor, read only when that is absent)", "--rope-scale",
            kwarg="rope_freq_scale", note="the flag and kwarg carry the factor, as 1/factor for the kwarg",
            doc="old name of the scaling factor (rope.scale_linear)"),
    RopeKey("scaling_type", "rope.scaling.type", ValueType.STRING,
            "linear (a no-op while the factor is 1)", "--rope-scaling",
            kwarg="rope_scaling_type", note="--rope-scaling has no longrope: that travels as --override-kv",
            patch_flag="--rope-scaling", doc="none, linear, yarn or longrope (--rope-scaling)"),
    RopeKey("scaling_factor", "rope.scaling.factor", ValueType.FLOAT32,
            "1 (no scaling)", "--rope-scale", kwarg="rope_freq_scale",
            note="--rope-scale N and the kwarg rope_freq_scale = 1.0f/N (common/arg.cpp l.2347)",
            patch_flag="--rope-scale", doc="scaling factor s (--rope-scale)"),
    RopeKey("original_context_length", "rope.scaling.original_context_length", ValueType.UINT32,
            "context_length", "--yarn-orig-ctx", kwarg="yarn_orig_ctx", patch_flag="--yarn-orig-ctx",
            doc="trained context the scaling is measured against (--yarn-orig-ctx)"),
    RopeKey("attn_factor", "rope.scaling.attn_factor", ValueType.FLOAT32,
            "1.0", None, note="multiplies the final attention factor",
            doc="multiplies the attention factor (rope.scaling.attn_factor)"),
    RopeKey("finetuned", "rope.scaling.finetuned", ValueType.BOOL,
            "false (granite, granitehybrid, graniteswitch: true)", None,
            note="informational (logged), except on granite, granitehybrid and graniteswitch, where it switches "
                 "RoPE on (absent: on) or off (src/models/granite.cpp l.33-36)",
            doc="the model was fine-tuned with this scaling (informational; Granite's RoPE on/off switch)"),
    RopeKey("yarn_log_multiplier", "rope.scaling.yarn_log_multiplier", ValueType.FLOAT32,
            "0 (plain YaRN magnitude 0.1*ln(s)+1)", None,
            read_by=frozenset({"deepseek2", "deepseek32", "mistral3", "mistral4"}), patch_flag="--yarn-log-multiplier",
            signed=True, doc="YaRN magnitude multiplier (deepseek2/mistral3)"),
    RopeKey("yarn_ext_factor", "rope.scaling.yarn_ext_factor", ValueType.FLOAT32,
            "-1: 1.0 for yarn, 0 otherwise", "--yarn-ext-factor", read_by=frozenset({"grok"}),
            kwarg="yarn_ext_factor", hparam_default=-1.0, patch_flag="--yarn-ext-factor", signed=True,
            doc="YaRN extrapolation mix (--yarn-ext-factor; -1 = 1 for yarn)"),
    RopeKey("yarn_attn_factor", "rope.scaling.yarn_attn_factor", ValueType.FLOAT32,
            "1.0 (recomputed from the factor when ext_factor != 0)", "--yarn-attn-factor",
            read_by=frozenset({"grok"}), kwarg="yarn_attn_factor", hparam_default=1.0, kwarg_overrides_file=True,
            patch_flag="--yarn-attn-factor", doc="YaRN attention factor (--yarn-attn-factor)"),
    RopeKey("yarn_beta_fast", "rope.scaling.yarn_beta_fast", ValueType.FLOAT32, "32 (8 for grok)",
            "--yarn-beta-fast", read_by=_GROK_MISTRAL3, kwarg="yarn_beta_fast", hparam_default=32.0,
            arch_defaults=(("grok", 8.0),), kwarg_overrides_file=True,  # src/models/grok.cpp l.5
            patch_flag="--yarn-beta-fast", doc="YaRN beta_fast (--yarn-beta-fast, default 32)"),
    RopeKey("yarn_beta_slow", "rope.scaling.yarn_beta_slow", ValueType.FLOAT32, "1",
            "--yarn-beta-slow", read_by=_GROK_MISTRAL3, kwarg="yarn_beta_slow", hparam_default=1.0,
            kwarg_overrides_file=True, patch_flag="--yarn-beta-slow",
            doc="YaRN beta_slow (--yarn-beta-slow, default 1)"),
)

BY_FIELD: dict[str, RopeKey] = {k.field: k for k in ROPE_KEYS}
BY_SUFFIX: dict[str, RopeKey] = {k.suffix: k for k in ROPE_KEYS}


def rope_key_for(key: str, arch: str | None) -> RopeKey | None:
    """The RopeKey a full key name denotes for this architecture, if it is one."""
    if arch and key.startswith(arch + "."):
        return BY_SUFFIX.get(key[len(arch) + 1:])
    return None


# Well-known non-RoPE keys and their types, so `--set` on a new key gets the right type.
KNOWN_TYPES: dict[str, ValueType] = {
    "general.architecture": ValueType.STRING,
    "general.name": ValueType.STRING,
    "general.alignment": ValueType.UINT32,
    "general.file_type": ValueType.UINT32,
    "general.quantization_version": ValueType.UINT32,
    "tokenizer.chat_template": ValueType.STRING,
}
