"""Perplexity at a context length: llama.cpp's llama-perplexity over a stretch of the corpus,
`-c L --chunks K`. llama-perplexity scores the second half of each chunk (tokens L/2..L given
everything before them), so at length L it measures how well the model uses L/2..L tokens of
context; its "Final estimate" line is the result."""
from __future__ import annotations

from ggufrope.evaluation.tokens import TokenCounter


def text_for(count: TokenCounter, units: list[str], length: int, chunks: int, text_offset: float = 0.0) -> str:
    """Corpus text from text_offset with at least max(2, chunks) x length tokens (llama-perplexity
    refuses fewer than 2 x n_ctx), so the file it tokenizes stays small."""
    need = max(2, chunks) * length + 16
    n_units = len(units)
    start = int(text_offset * n_units) % n_units
    sample = "\n".join(units[start:start + 200]) or "\n".join(units[:200])
    cpt = max(1.0, len(sample) / max(1, count(sample)))  # characters per token
    n = 0
    chars = 0
    target = need * cpt * 1.1
    parts: list[str] = []
    while True:
        while chars < target:
            u = units[(start + n) % n_units]
            parts.append(u)
            chars += len(u) + 1
            n += 1
        text = "\n".join(parts) + "\n"
        if count(text) >= need:
            return text
        target *= 1.2
