"""RoPE frequency math for GGUF / llama.cpp long-context settings (numpy only).

Per-pair inverse frequencies, interpolation/extrapolation mix and attention magnitude
factor for: none, linear, NTK-aware, dynamic NTK, YaRN (llama.cpp's and Hugging Face's
forms), Llama-3 smoothing and LongRoPE; llama.cpp's parameter resolution; and the
rotation angles ggml's rope op computes (float64 or replayed float32).

Each module documents its formulas with llama.cpp (commit 0c1e570) / transformers
(5.23.0) file:line or paper references. Nothing here imports the rest of ggufrope.
"""

import importlib

# each name is imported from its module on first use (PEP 562), so a caller that needs only a
# scalar formula (ntk_base, checks) does not load numpy with the rest
_MODULES = {  # module: the names it defines
    "analysis": "PairRegime classify_mix classify_pairs extrapolation_weight wavelengths",
    "angles": "ggml_mscale ggml_rope_angles",
    "base": "base_inv_freq rope_none",
    "linear": "rope_linear",
    "llama3": "llama3_rope_factors llama3_smooth rope_llama3",
    "llamacpp": "SCALING_TYPES LlamaCppRopeParams "
                "hparams_yarn_log_multiplier resolve_llamacpp_rope rope_yarn_llamacpp",
    "longrope": "hf_longrope_uses_long llamacpp_longrope_uses_long "
                "llamacpp_n_ctx_seq longrope_attention_factor rope_longrope",
    "ntk": "rope_dynamic_ntk rope_ntk_aware",
    "ntk_base": "dynamic_ntk_base ntk_aware_base",
    "results": "RopeAngles RopeFrequencies",
    "yarn_ggml": "get_mscale ggml_yarn_corr_dim ggml_yarn_corr_dims ggml_yarn_ramp",
    "yarn_hf": "hf_yarn_attention_factor hf_yarn_correction_dim hf_yarn_correction_range "
               "hf_yarn_extrapolation_weight hf_yarn_get_mscale rope_yarn_hf",
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names.split()}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


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
