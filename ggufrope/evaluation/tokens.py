"""Counting tokens with the model's own tokenizer: llama-cpp-python with vocab_only=True loads
only the vocabulary (0.1 s for SmolLM2), so a prompt can be sized to the token before llama.cpp
sees it. The count llama.cpp itself evaluated is read back from its log and recorded too."""
from __future__ import annotations

import contextlib
import os
from typing import Callable

from ggufrope.errors import EngineError

TokenCounter = Callable[[str], int]


@contextlib.contextmanager
def _quiet_stderr():
    """llama.cpp logs to fd 2 from C even with verbose=False; keep the terminal clean."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


class Tokenizer:
    """tokens(text) / count(text) with the vocabulary of model (no weights loaded)."""

    def __init__(self, model: str):
        try:
            import llama_cpp
        except ImportError as e:  # pragma: no cover - bootstrap installs it
            raise EngineError(f"{model}: counting tokens needs llama-cpp-python ({e}); run ./bootstrap") from None
        with _quiet_stderr():
            try:
                self._llm = llama_cpp.Llama(model, vocab_only=True, verbose=False)
            except Exception as e:
                raise EngineError(f"{model}: llama-cpp-python could not load the vocabulary: {e}") from None
        self.model = model

    def tokens(self, text: str) -> list[int]:
        # as llama-completion tokenizes a prompt: add the BOS the model asks for, parse no specials
        return self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)

    def count(self, text: str) -> int:
        return len(self.tokens(text))

    def __call__(self, text: str) -> int:
        return self.count(text)
