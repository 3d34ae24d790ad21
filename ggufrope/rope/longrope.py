"""LongRoPE (Phi-3 style): per-pair rescale factors, a long and a short set.

``inv_i = theta_i / ext_factor_i`` (Ding et al., "LongRoPE", arXiv:2402.13753, sec. 2-3;
transformers 5.23.0 modeling_rope_utils.py:571-576) and the attention factor
``sqrt(1 + ln(s) / ln(orig))`` for s > 1, else 1 (HF l.565-568; llama.cpp's converter,
conversion/phi.py:189-196, with s = max_position_embeddings / original).

Which set is used differs:

* llama.cpp (src/llama-model.cpp:2337-2350): long factors iff ``n_ctx_seq >
  n_ctx_orig_yarn`` (the file's rope.scaling.original_context_length), fixed for the
  whole context. ``n_ctx_seq`` is the context per sequence after padding to 256
  (src/llama-context.cpp:290-296).
* Hugging Face (modeling_rope_utils.py:47-80): long iff the current ``max(position_ids)+1 >
  original_max_position_embeddings``, re-decided on each forward.

llama.cpp takes the attention factor from rope.scaling.attn_factor (written by the
converter from max_position_embeddings / original, ignoring a configured
``attention_factor`` or ``factor``); HF uses the configured ``attention_factor``, else
``factor``, else that ratio.
"""

from __future__ import annotations

import math

import numpy as np

from .base import base_inv_freq, check_n_dims, check_positive, factor_and_original
from .results import RopeFrequencies

GGML_PAD = 256  # cparams.n_ctx / n_ctx_seq padding (src/llama-context.cpp:290, 296)


def longrope_attention_factor(factor: float, original_max_position_embeddings: int) -> float:
    """``sqrt(1 + ln(factor)/ln(orig))`` for factor > 1, else 1 (HF l.565-568, phi.py:196)."""
    if factor <= 1.0:
        return 1.0
    orig = check_positive("original_max_position_embeddings", original_max_position_embeddings)
    return math.sqrt(1.0 + math.log(factor) / math.log(orig))


def llamacpp_n_ctx_seq(n_ctx: int, n_seq_max: int = 1, kv_unified: bool = False) -> int:
    """Per-sequence context llama.cpp compares against (src/llama-context.cpp:290-296):
    ``n_ctx`` padded to 256; without a unified KV cache divided by ``n_seq_max`` and padded again."""
    def pad(x: int) -> int:
        return (x + GGML_PAD - 1) // GGML_PAD * GGML_PAD

    ctx = pad(int(n_ctx))
    return ctx if kv_unified else pad(ctx // max(1, int(n_seq_max)))


def llamacpp_longrope_uses_long(n_ctx_seq: int, n_ctx_orig_yarn: int) -> bool:
    """llama.cpp's choice: long factors iff ``n_ctx_seq > n_ctx_orig_yarn`` (llama-model.cpp:2345)."""
    return int(n_ctx_seq) > int(n_ctx_orig_yarn)


def hf_longrope_uses_long(seq_len: int | None, original_max_position_embeddings: int) -> bool:
    """HF's choice: long iff ``seq_len`` is given and ``> original`` (modeling_rope_utils.py:571)."""
    return bool(seq_len) and int(seq_len) > int(original_max_position_embeddings)


def rope_longrope(n_dims: int, freq_base: float, long_factor, short_factor, original_max_position_embeddings: int,
                  *, use_long: bool, factor: float | None = None, max_position_embeddings: int | None = None,
                  attention_factor: float | None = None) -> RopeFrequencies:
    """LongRoPE frequencies with the chosen factor set.

    ``factor`` None means ``max_position_embeddings / original`` (HF l.560-561, phi.py:189);
    ``attention_factor`` None means :func:`longrope_attention_factor` of that factor.
    """
    n = check_n_dims(n_dims)
    s, orig = factor_and_original(factor, original_max_position_embeddings, max_position_embeddings)
    ext = np.asarray(long_factor if use_long else short_factor, dtype=np.float64).reshape(-1)
    if ext.shape[0] != n // 2:
        raise ValueError(f"LongRoPE factors need n_dims/2 = {n // 2} values, got {ext.shape[0]}")
    attn = longrope_attention_factor(s, orig) if attention_factor is None else float(attention_factor)
    base = base_inv_freq(n, freq_base)
    return RopeFrequencies("longrope", base / ext, attn, base, factor=s)
