"""The NTK-aware bases as scalars (formulas and sources in ntk.py's docstring): plain Python, no
numpy, so `plan --method ntk|dynamic` and `run --dry-run` of such a preset load no array code."""

from __future__ import annotations

from .checks import check_n_dims, check_positive


def ntk_aware_base(freq_base: float, factor: float, n_dims: int) -> float:
    """``freq_base * factor ** (n_dims / (n_dims - 2))`` (YaRN paper sec. 3.1)."""
    n = check_n_dims(n_dims)
    if n < 4:
        raise ValueError("NTK base change needs n_dims >= 4")
    return check_positive("freq_base", freq_base) * check_positive("factor", factor) ** (n / (n - 2))


def dynamic_ntk_base(freq_base: float, factor: float, n_dims: int, seq_len: int | None,
                     max_position_embeddings: int) -> float:
    """Dynamic NTK base for a sequence of ``seq_len`` tokens (HF modeling_rope_utils.py:330-341).

    ``seq_len`` None means ``max_position_embeddings`` (HF's value at init); shorter
    sequences are clamped up, so the result is ``freq_base`` until seq_len exceeds it.
    """
    n = check_n_dims(n_dims)
    if n < 4:
        raise ValueError("NTK base change needs n_dims >= 4")
    s = check_positive("factor", factor)
    max_pos = check_positive("max_position_embeddings", max_position_embeddings)
    length = max_pos if seq_len is None else max(float(seq_len), max_pos)
    return check_positive("freq_base", freq_base) * ((s * length / max_pos) - (s - 1.0)) ** (n / (n - 2))
