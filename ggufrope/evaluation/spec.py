"""What an evaluation sweep is: the task, its grid (lengths x depths x variants x trials) and
the knobs that change results. Parsed from the command line in one place."""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field

from ggufrope.errors import UsageError

TASKS = ("passkey", "needle", "perplexity", "kv")
# "preset" is the RoPE setting a preset itself asks for (only when the target is a preset)
VARIANTS = ("none", "linear", "ntk", "yarn", "dynamic", "preset")
DEFAULT_VARIANTS = ("none", "linear", "ntk", "yarn", "dynamic")
DEFAULT_LENGTHS = (2048, 4096, 8192, 16384, 32768)
DEFAULT_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)

_LEN = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


def parse_length(text: str) -> int:
    """'2k' -> 2048, '1.5k' -> 1536, '512' -> 512, '1m' -> 1048576."""
    m = _LEN.match(text.strip())
    if not m:
        raise UsageError(f"--lengths: {text!r} is not a length (use 512, 2k, 16k, 1m)")
    mult = {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    v = float(m.group(1)) * mult
    if v != int(v) or not 16 <= v < 2**31:
        raise UsageError(f"--lengths: {text!r} must be a whole number of tokens between 16 and 2^31")
    return int(v)


def parse_lengths(text: str) -> tuple[int, ...]:
    vals = [parse_length(t) for t in text.split(",") if t.strip()]
    if not vals:
        raise UsageError("--lengths: give at least one length, e.g. 2k,4k")
    return tuple(sorted(set(vals)))


def parse_depths(text: str) -> tuple[float, ...]:
    out = []
    for t in text.split(","):
        if not t.strip():
            continue
        try:
            v = float(t)
        except ValueError:
            raise UsageError(f"--depths: {t!r} is not a number between 0 and 1") from None
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise UsageError(f"--depths: {t!r} must be between 0 (start of the text) and 1 (end)")
        out.append(v)
    if not out:
        raise UsageError("--depths: give at least one depth, e.g. 0,0.5,1")
    return tuple(sorted(set(out)))


def choice_items(text: str, option: str, what: str, choices, check=lambda t: (t,), also: str = "") -> list[str]:
    """A comma list of words, lowercased, blanks and repeats dropped; check(word) gives the
    parts of a word that must each be one of choices (a typo gets a did-you-mean)."""
    out: list[str] = []
    for t in text.split(","):
        t = t.strip().lower()
        if not t:
            continue
        for x in check(t):
            if x not in choices:
                import difflib
                m = difflib.get_close_matches(x, list(choices), n=1)
                hint = f" (did you mean {m[0]!r}?)" if m else ""
                raise UsageError(f"{option}: unknown {what} {x!r}{'' if x == t else f' in {t!r}'}{hint}; "
                                 f"use {', '.join(choices)}{also}")
        if t not in out:
            out.append(t)
    return out


def parse_variants(text: str) -> tuple[str, ...]:
    out = choice_items(text, "--variants", "variant", VARIANTS)
    if not out:
        raise UsageError("--variants: give at least one of " + ", ".join(VARIANTS))
    return tuple(out)


def length_label(n: int) -> str:
    """2048 -> '2k', 1536 -> '1.5k', 1000 -> '1000'."""
    if n % 1024 == 0:
        return f"{n // 1024}k"
    if n % 512 == 0:
        return f"{n / 1024:g}k"
    return str(n)


@dataclass(frozen=True)
class EvalSpec:
    """One sweep. Every field that changes a result is part of `config_key`, so a rerun with the
    same spec resumes and a changed spec never reuses stale runs."""

    task: str
    lengths: tuple[int, ...] = DEFAULT_LENGTHS
    depths: tuple[float, ...] = DEFAULT_DEPTHS
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    trials: int = 1
    seed: int = 0
    n_predict: int = 10          # passkey/needle: tokens generated (the answer must appear in them)
    chunks: int = 1              # perplexity: llama-perplexity --chunks
    plan_ctx: int | None = None  # plan every variant for this context instead of each length
    text_offset: float = 0.0     # needle/perplexity: where in the corpus the text starts (0..1)
    threads: int | None = None   # llama.cpp -t (None: its default)
    extra_args: tuple[str, ...] = field(default=())  # more llama.cpp flags for every run
    kv_pairs: tuple[str, ...] = field(default=())    # kv: K/V cache pairs compared with f16 ("q8_0/q4_0")

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"unknown evaluation {self.task!r}; use {', '.join(TASKS)}")
        if self.trials < 1:
            raise UsageError(f"--trials must be at least 1, not {self.trials}")
        if not 1 <= self.n_predict <= 256:
            raise UsageError(f"--n-predict must be 1..256, not {self.n_predict}")
        if self.chunks < 1:
            raise UsageError(f"--chunks must be at least 1, not {self.chunks}")
        if not 0.0 <= self.text_offset < 1.0:
            raise UsageError(f"--text-offset must be in [0, 1), not {self.text_offset}")

    @property
    def uses_depth(self) -> bool:
        return self.task in ("passkey", "needle", "kv")   # kv: its passkey part

    def result_config(self) -> dict:
        """The fields that change a run's result (not the grid: each record carries its cell)."""
        d = {"task": self.task, "seed": self.seed, "plan_ctx": self.plan_ctx, "extra_args": list(self.extra_args)}
        if self.task == "perplexity":
            d.update(chunks=self.chunks, text_offset=self.text_offset)
        elif self.task == "kv":   # each record carries its K/V pair, so the list is not part of the key
            d.update(chunks=self.chunks, text_offset=self.text_offset, n_predict=self.n_predict)
        else:
            d.update(n_predict=self.n_predict)
            if self.task == "needle":
                d.update(text_offset=self.text_offset)
        return d

    def config_key(self) -> str:
        return hashlib.sha256(json.dumps(self.result_config(), sort_keys=True).encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lengths"] = list(self.lengths)
        d["depths"] = list(self.depths)
        d["variants"] = list(self.variants)
        d["extra_args"] = list(self.extra_args)
        d["kv_pairs"] = list(self.kv_pairs)
        return d
