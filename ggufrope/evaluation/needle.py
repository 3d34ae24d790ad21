"""Needle in a haystack on natural text: one invented fact (a statement with a one-word answer)
hidden at a given depth in a stretch of the King James Bible, a question at the end, greedy
decoding, scored by exact match (SQuAD-style normalisation: lower case, no punctuation or
articles) of the continuation up to its first sentence end against the answer.

The prompt ends with the start of the answer sentence, so base and instruct models alike just
complete it; the answers are modern words that never occur in the haystack."""
from __future__ import annotations

import re
import string

from ggufrope.evaluation.passkey import Prompt, fit_units, trial_rng
from ggufrope.evaluation.tokens import TokenCounter

INTRO = "Read the text below carefully and remember the facts in it.\n\n"
# (fact, question, start of the answer sentence)
FACTS = (
    ("The secret word of the old lighthouse keeper is {a}.",
     "What is the secret word of the old lighthouse keeper?", "The secret word of the old lighthouse keeper is"),
    ("The name of the ship captain's grey cat is {a}.",
     "What is the name of the ship captain's grey cat?", "The name of the ship captain's grey cat is"),
    ("The password to the hidden room in the library is {a}.",
     "What is the password to the hidden room in the library?",
     "The password to the hidden room in the library is"),
    ("The favourite food of the queen's gardener is {a}.",
     "What is the favourite food of the queen's gardener?", "The favourite food of the queen's gardener is"),
)
# modern words absent from the King James text, so the answer can only come from the needle
ANSWERS = ("apricot", "cobalt", "quartz", "pineapple", "violin", "tomato", "penguin", "bicycle",
           "telescope", "chocolate", "kangaroo", "umbrella", "pumpkin", "zebra", "coffee", "banana")


def make_prompt(count: TokenCounter, units: list[str], length: int, depth: float, trial: int, seed: int,
                n_predict: int, text_offset: float = 0.0) -> Prompt:
    rng = trial_rng(seed, length, depth, trial, "needle")
    fact, question, lead = FACTS[rng.randrange(len(FACTS))]
    answer = ANSWERS[rng.randrange(len(ANSWERS))]
    needle = fact.format(a=answer)
    n_units = len(units)
    start = (int(text_offset * n_units) + rng.randrange(n_units)) % n_units
    tail = f"\n\nQuestion: {question}\nAnswer: {lead}"

    def hay(n: int) -> list[str]:
        return [units[(start + i) % n_units] for i in range(n)]

    def build(n: int) -> str:
        h = hay(n)
        at = round(depth * n)
        return INTRO + " ".join(h[:at] + [needle] + h[at:]) + tail

    n = fit_units(count, length - n_predict, build)
    if n < 0:
        from ggufrope.errors import UsageError
        raise UsageError(f"needle: {length} tokens is too short for the question itself; use a longer length")
    text = build(n)
    return Prompt(text, answer, count(text), depth, round(depth * n))


def normalize(s: str) -> str:
    s = s.lower()
    s = "".join(c for c in s if c not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def answer_span(generated: str) -> str:
    """The continuation up to its first sentence end or line break."""
    m = re.search(r"[.!?\n]", generated.lstrip())
    g = generated.lstrip()
    return g[:m.start()] if m else g


def score(answer: str, generated: str) -> bool:
    return normalize(answer_span(generated)) == normalize(answer)
