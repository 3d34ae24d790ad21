"""RoPE frequency math for GGUF / llama.cpp long-context settings (numpy only).

Per-pair inverse frequencies, interpolation/extrapolation mix and attention magnitude
factor for: none, linear, NTK-aware, dynamic NTK, YaRN (llama.cpp's and Hugging Face's
forms), Llama-3 smoothing and LongRoPE; llama.cpp's parameter resolution; and the
rotation angles ggml's rope op computes (float64 or replayed float32).

Each module documents its formulas with llama.cpp (commit 0c1e570) / transformers
(5.23.0) file:line or paper references. Nothing here imports the rest of ggufrope.
"""

from .analysis import PairRegime, classify_mix, classify_pairs, extrapolation_weight, wavelengths
from .angles import ggml_mscale, ggml_rope_angles
from .base import base_inv_freq, rope_none
from .linear import rope_linear
from .llama3 import llama3_rope_factors, llama3_smooth, rope_llama3
from .llamacpp import (
    SCALING_TYPES,
    LlamaCppRopeParams,
    hparams_yarn_log_multiplier,
    resolve_llamacpp_rope,
    rope_yarn_llamacpp,
)
from .longrope import (
    hf_longrope_uses_long,
    llamacpp_longrope_uses_long,
    llamacpp_n_ctx_seq,
    longrope_attention_factor,
    rope_longrope,
)
from .ntk import dynamic_ntk_base, ntk_aware_base, rope_dynamic_ntk, rope_ntk_aware
from .results import RopeAngles, RopeFrequencies
from .yarn_ggml import get_mscale, ggml_yarn_corr_dim, ggml_yarn_corr_dims, ggml_yarn_ramp
from .yarn_hf import (
    hf_yarn_attention_factor,
    hf_yarn_correction_dim,
    hf_yarn_correction_range,
    hf_yarn_extrapolation_weight,
    hf_yarn_get_mscale,
    rope_yarn_hf,
)

__all__ = [
    "PairRegime",
    "RopeAngles",
    "RopeFrequencies",
    "LlamaCppRopeParams",
    "SCALING_TYPES",
    "base_inv_freq",
    "classify_mix",
    "classify_pairs",
    "dynamic_ntk_base",
    "extrapolation_weight",
    "get_mscale",
    "ggml_mscale",
    "ggml_rope_angles",
    "ggml_yarn_corr_dim",
    "ggml_yarn_corr_dims",
    "ggml_yarn_ramp",
    "hf_longrope_uses_long",
    "hf_yarn_attention_factor",
    "hf_yarn_correction_dim",
    "hf_yarn_correction_range",
    "hf_yarn_extrapolation_weight",
    "hf_yarn_get_mscale",
    "hparams_yarn_log_multiplier",
    "llama3_rope_factors",
    "llama3_smooth",
    "llamacpp_longrope_uses_long",
    "llamacpp_n_ctx_seq",
    "longrope_attention_factor",
    "ntk_aware_base",
    "resolve_llamacpp_rope",
    "rope_dynamic_ntk",
    "rope_linear",
    "rope_llama3",
    "rope_longrope",
    "rope_none",
    "rope_ntk_aware",
    "rope_yarn_hf",
    "rope_yarn_llamacpp",
    "wavelengths",
]
