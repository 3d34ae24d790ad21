"""The passkey retrieval test of the YaRN paper (arXiv:2309.00071 sec. 4.3.2, after Mohtashami &
Jaggi's landmark attention; also llama.cpp's examples/passkey): a five-digit key hidden at a
given depth in repeated garbage filler, asked for at the end; greedy decoding; found when the
key appears among the first few generated tokens."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ggufrope.evaluation.tokens import TokenCounter

PREFIX = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
          "I will quiz you about the important information there.")
FILLER = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
KEY = " The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = " What is the pass key? The pass key is"


@dataclass(frozen=True)
class Prompt:
    text: str
    answer: str
    tokens: int        # counted with the model's tokenizer
    depth: float       # where the key sits, as asked
    position: int      # the filler unit / sentence index the key follows


def trial_rng(seed: int, length: int, depth: float, trial: int, task: str) -> random.Random:
    """Same cell -> same key, whatever the variant: variants are compared on identical prompts."""
    return random.Random(f"{task}:{seed}:{length}:{depth:.6f}:{trial}")


def fit_units(count: TokenCounter, budget: int, build) -> int:
    """The largest n for which count(build(n)) <= budget (count(build(n)) grows with n), or -1
    when even build(0) is too long. Doubling then bisection: about 2*log2(n) tokenizations."""
    if count(build(0)) > budget:
        return -1
    lo, hi = 0, 1
    while count(build(hi)) <= budget:
        lo, hi = hi, hi * 2
        if hi > 1 << 24:
            raise ValueError("fit_units: build(n) does not grow with n")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(build(mid)) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def make_prompt(count: TokenCounter, length: int, depth: float, trial: int, seed: int,
                n_predict: int) -> Prompt:
    """A prompt of at most length - n_predict tokens (so -c length holds prompt and answer)."""
    key = str(trial_rng(seed, length, depth, trial, "passkey").randint(10000, 99999))
    needle = KEY.format(key=key)
    budget = length - n_predict

    def build(n: int) -> str:
        at = round(depth * n)
        return PREFIX + FILLER * at + needle + FILLER * (n - at) + QUESTION

    n = fit_units(count, budget, build)
    if n < 0:
        from ggufrope.errors import UsageError
        raise UsageError(f"passkey: {length} tokens is too short for the question itself; use a longer length")
    text = build(n)
    return Prompt(text, key, count(text), depth, round(depth * n))


def score(answer: str, generated: str) -> bool:
    """Found: the key is one of the numbers in the generated text (not merely a substring of a
    longer number)."""
    return answer in re.findall(r"\d+", generated)
