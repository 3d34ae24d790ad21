"""Import Hugging Face `rope_scaling` (config.json, model cards) into RopeSettings.

HF spellings: `rope_type` (current) or `type` (older configs; Qwen's model cards ask users to
add `{"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}`).
Mapping onto llama.cpp's GGUF keys:
  linear   -> scaling.type linear, factor
  yarn     -> scaling.type yarn, factor, original_context_length, beta_fast/beta_slow,
              attention_factor / (1 + 0.1 ln s) -> rope.scaling.attn_factor
  longrope -> scaling.type longrope (the per-dimension factors live in rope_factors_* tensors,
              which only a conversion writes)
  llama3   -> not a key in GGUF: convert_hf_to_gguf.py bakes it into the rope_freqs tensor
  dynamic  -> llama.cpp has no dynamic NTK
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping

from ggufrope.errors import UsageError
from ggufrope.settings.rope_settings import RopeSettings


def rope_from_hf(rope_scaling: Mapping[str, Any] | None, config: Mapping[str, Any] | None = None,
                 source: str = "rope_scaling") -> RopeSettings:
    """RopeSettings for an HF rope_scaling dict (and optionally the rest of config.json)."""
    config = config or {}
    vals: dict[str, Any] = {}
    if config.get("rope_theta") is not None:
        vals["freq_base"] = float(config["rope_theta"])
    if not rope_scaling:
        if config.get("max_position_embeddings"):
            vals["context_length"] = int(config["max_position_embeddings"])
        return RopeSettings(**vals)
    if not isinstance(rope_scaling, Mapping):
        raise UsageError(f"{source}: rope_scaling must be a JSON object")
    kind = rope_scaling.get("rope_type", rope_scaling.get("type"))
    if kind is None:
        raise UsageError(f"{source}: rope_scaling has neither 'rope_type' nor 'type'")
    kind = str(kind)
    if kind in ("default", "none"):
        return RopeSettings(**vals, scaling_type="none")
    if kind == "llama3":
        raise UsageError(f"{source}: llama3 rope scaling is not a GGUF key: the converter bakes it into the "
                         f"rope_freqs tensor (convert_hf_to_gguf.py); a converted Llama-3.1 GGUF already has it")
    if kind == "dynamic":
        raise UsageError(f"{source}: llama.cpp has no dynamic NTK scaling; use yarn or linear")
    if kind not in ("linear", "yarn", "longrope"):
        raise UsageError(f"{source}: rope_type {kind!r} has no llama.cpp equivalent")
    try:
        factor = float(rope_scaling["factor"])
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"{source}: {kind} rope_scaling needs a numeric 'factor'") from None
    vals.update(scaling_type=kind, scaling_factor=factor)
    orig = rope_scaling.get("original_max_position_embeddings")
    if orig is None and kind in ("yarn", "longrope"):
        # HF: for yarn without it, max_position_embeddings is the original context
        orig = config.get("max_position_embeddings")
    if orig is not None:
        vals["original_context_length"] = int(orig)
    if kind == "yarn":
        for hf_key, field in (("beta_fast", "yarn_beta_fast"), ("beta_slow", "yarn_beta_slow")):
            if rope_scaling.get(hf_key) is not None:
                vals[field] = float(rope_scaling[hf_key])
        if rope_scaling.get("attention_factor") is not None:
            # HF's attention_factor replaces YaRN's magnitude; llama.cpp multiplies
            # rope.scaling.attn_factor into its own 1 + 0.1*ln(s) (src/llama-context.cpp)
            mag = 1.0 + 0.1 * math.log(factor) if factor > 1 else 1.0
            vals["attn_factor"] = float(rope_scaling["attention_factor"]) / mag
    return RopeSettings(**vals)


def load_rope_json(text: str, source: str = "--rope-json") -> RopeSettings:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{source}: not valid JSON ({e})") from None
    if isinstance(d, dict) and "rope_scaling" in d:
        return rope_from_hf(d["rope_scaling"], d, source)
    return rope_from_hf(d, None, source)


def load_hf_config(path: str) -> RopeSettings:
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: cannot read a JSON config ({e})") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"{path}: not a config.json object")
    cfg = cfg.get("text_config", cfg) if "rope_scaling" not in cfg and "text_config" in cfg else cfg
    # only the RoPE part is imported; max_position_embeddings becomes the context only via a factor
    rope = rope_from_hf(cfg.get("rope_scaling"), {k: v for k, v in cfg.items() if k != "max_position_embeddings"}
                        | ({"max_position_embeddings": cfg["max_position_embeddings"]}
                           if cfg.get("rope_scaling") else {}), path)
    return rope
