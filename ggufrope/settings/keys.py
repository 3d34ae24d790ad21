"""The RoPE keys llama.cpp reads, as data.

Names: src/llama-arch.cpp (LLM_KV_* table, l.195, 325-341). Loading and defaults:
src/llama-model.cpp l.1321-1432 (generic loader), src/models/{grok,mistral3,deepseek2,deepseek32}.cpp
(the only readers of the yarn_* keys). Types are strict (src/llama-model-loader.cpp): a u64
context_length or an f64 freq_base fails the load with "key has wrong type".
"""
from __future__ import annotations

from dataclasses import dataclass

from ggufrope.gguf.constants import ValueType

SCALING_TYPES = ("none", "linear", "yarn", "longrope")  # llama_rope_scaling_type_from_string


@dataclass(frozen=True)
class RopeKey:
    field: str            # attribute of RopeSettings
    suffix: str           # key without the "{arch}." prefix
    vtype: ValueType      # the type llama.cpp insists on
    when_absent: str      # what llama.cpp does without the key
    flag: str | None      # llama.cpp runtime flag that sets the same thing, if any
    read_by: frozenset[str] | None = None  # architectures whose loader reads it; None = all
    note: str = ""

    def key(self, arch: str) -> str:
        return f"{arch}.{self.suffix}"

    def read_for(self, arch: str) -> bool:
        return self.read_by is None or arch in self.read_by


_GROK_MISTRAL3 = frozenset({"grok", "mistral3"})

ROPE_KEYS: tuple[RopeKey, ...] = (
    RopeKey("context_length", "context_length", ValueType.UINT32,
            "required: llama.cpp refuses the file", "-c/--ctx-size",
            note="n_ctx_train: default context and llama-server's per-slot cap"),
    RopeKey("dimension_count", "rope.dimension_count", ValueType.UINT32,
            "the head dimension (n_embd / n_head)", None),
    RopeKey("freq_base", "rope.freq_base", ValueType.FLOAT32, "10000", "--rope-freq-base"),
    RopeKey("scale_linear", "rope.scale_linear", ValueType.FLOAT32,
            "unused (old name of rope.scaling.factor, read only when that is absent)", "--rope-scale"),
    RopeKey("scaling_type", "rope.scaling.type", ValueType.STRING,
            "linear (a no-op while the factor is 1)", "--rope-scaling"),
    RopeKey("scaling_factor", "rope.scaling.factor", ValueType.FLOAT32,
            "1 (no scaling)", "--rope-scale"),
    RopeKey("original_context_length", "rope.scaling.original_context_length", ValueType.UINT32,
            "context_length", "--yarn-orig-ctx"),
    RopeKey("attn_factor", "rope.scaling.attn_factor", ValueType.FLOAT32,
            "1.0", None, note="multiplies the final attention factor"),
    RopeKey("finetuned", "rope.scaling.finetuned", ValueType.BOOL, "false", None,
            note="informational only (logged)"),
    RopeKey("yarn_log_multiplier", "rope.scaling.yarn_log_multiplier", ValueType.FLOAT32,
            "0 (plain YaRN magnitude 0.1*ln(s)+1)", None,
            read_by=frozenset({"deepseek2", "deepseek32", "mistral3"})),
    RopeKey("yarn_ext_factor", "rope.scaling.yarn_ext_factor", ValueType.FLOAT32,
            "-1: 1.0 for yarn, 0 otherwise", "--yarn-ext-factor", read_by=frozenset({"grok"})),
    RopeKey("yarn_attn_factor", "rope.scaling.yarn_attn_factor", ValueType.FLOAT32,
            "1.0 (recomputed from the factor when ext_factor != 0)", "--yarn-attn-factor",
            read_by=frozenset({"grok"})),
    RopeKey("yarn_beta_fast", "rope.scaling.yarn_beta_fast", ValueType.FLOAT32, "32 (8 for grok)",
            "--yarn-beta-fast", read_by=_GROK_MISTRAL3),
    RopeKey("yarn_beta_slow", "rope.scaling.yarn_beta_slow", ValueType.FLOAT32, "1",
            "--yarn-beta-slow", read_by=_GROK_MISTRAL3),
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
