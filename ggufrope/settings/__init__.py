"""RoPE settings (one model, many dialects) and the model facts they depend on."""

from ggufrope.settings.keys import ROPE_KEYS, SCALING_TYPES, RopeKey, rope_key_for
from ggufrope.settings.model_info import KV_CACHE_TYPES, ModelInfo
from ggufrope.settings.rope_settings import RopeSettings, fmt_float

__all__ = ["KV_CACHE_TYPES", "ModelInfo", "ROPE_KEYS", "RopeKey", "RopeSettings",
           "SCALING_TYPES", "fmt_float", "rope_key_for"]
