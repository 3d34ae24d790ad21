"""NTK-aware base change, static and dynamic.

Static NTK-aware scaling replaces the base: ``base' = base * s ** (D / (D - 2))``
(bloc97, "NTK-Aware Scaled RoPE", r/LocalLLaMA, June 2023; restated in the YaRN paper,
Peng et al., arXiv:2309.00071, sec. 3.1 "NTK-aware" interpolation), so the lowest frequency pair is
interpolated by exactly s while pair 0 is unchanged.

Dynamic NTK recomputes that base from the current sequence length (Hugging Face
``_compute_dynamic_ntk_parameters``, transformers 5.23.0 modeling_rope_utils.py:270-343):
``seq_len = max(seq_len, max_position_embeddings)`` and
``base' = base * (s*seq_len/max_position_embeddings - (s-1)) ** (D/(D-2))``.
llama.cpp has neither; a fixed base change there is ``--rope-freq-base``.
"""

from __future__ import annotations

from .base import base_inv_freq
from .ntk_base import dynamic_ntk_base, ntk_aware_base  # noqa: F401  (re-exported)
from .results import RopeFrequencies


def rope_ntk_aware(n_dims: int, freq_base: float, factor: float) -> RopeFrequencies:
    """Static NTK-aware RoPE: plain RoPE with the base from :func:`ntk_aware_base`."""
    new_base = ntk_aware_base(freq_base, factor, n_dims)
    return RopeFrequencies("ntk", base_inv_freq(n_dims, new_base), 1.0, base_inv_freq(n_dims, freq_base),
                           factor=float(factor))


def rope_dynamic_ntk(n_dims: int, freq_base: float, factor: float, seq_len: int | None,
                     max_position_embeddings: int) -> RopeFrequencies:
    """Dynamic NTK RoPE at ``seq_len``; attention factor 1 (HF line 327).

    ``factor`` on the result is the effective ratio ``seq_len / max_position_embeddings``
    (at least 1) that the base change targets.
    """
    new_base = dynamic_ntk_base(freq_base, factor, n_dims, seq_len, max_position_embeddings)
    eff = 1.0 if seq_len is None else max(1.0, float(seq_len) / float(max_position_embeddings))
    return RopeFrequencies("dynamic", base_inv_freq(n_dims, new_base), 1.0, base_inv_freq(n_dims, freq_base),
                           factor=eff)
