"""llama-perplexity's KL-divergence mode, as argv lists and what is read back from its log.

Two runs per comparison (tools/perplexity/perplexity.cpp, llama.cpp 0c1e570):

  base   `llama-perplexity -f TEXT -c L ... --kl-divergence-base FILE` scores the text as usual
         and writes FILE: "_logits_", n_ctx, n_vocab, n_chunk, the tokens (int32), then per chunk
         and scored token (the second half of each chunk, n_ctx - 1 - n_ctx/2 of them) the
         log-probabilities as uint16, nv = 2*((n_vocab+1)/2) + 4 per token. For SmolLM2 (vocab
         49152) that is ~96 KiB per scored token: ~400 MB at -c 8192, ~800 MB at -c 16384, one chunk.
  compare `llama-perplexity -c L ... --kl-divergence --kl-divergence-base FILE` with other
         settings (here -ctk/-ctv) reads the tokens back from FILE and prints, at the end,
         "====== Perplexity statistics ======", "====== KL divergence statistics ======" and
         "====== Token probability statistics ======", whose last line is "Same top p: X ± Y %".
         llama.cpp prints these statistics only when at least 100 tokens were scored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from ggufrope.errors import EngineError
from ggufrope.evaluation import engine
from ggufrope.evaluation.proc import ProcResult, Runner, run_tool

_NUM = r"(-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
_PM = r"\s*(?:±|\+/-)\s*"
# field -> (pattern, group names); one line each in kl_divergence()'s summary
_LINES = {
    "ppl": (rf"Mean PPL\(Q\)\s*:\s*{_NUM}{_PM}{_NUM}", ("ppl", "ppl_err")),
    "ppl_base": (rf"Mean PPL\(base\)\s*:\s*{_NUM}{_PM}{_NUM}", ("ppl_base", "ppl_base_err")),
    "dppl": (rf"Mean PPL\(Q\)-PPL\(base\)\s*:\s*{_NUM}{_PM}{_NUM}", ("dppl", "dppl_err")),
    "kld_mean": (rf"Mean\s+KLD:\s*{_NUM}{_PM}{_NUM}", ("kld_mean", "kld_err")),
    "kld_max": (rf"Maximum KLD:\s*{_NUM}", ("kld_max",)),
    "kld_p99": (rf"99\.0%\s+KLD:\s*{_NUM}", ("kld_p99",)),
    "same_top": (rf"Same top p:\s*{_NUM}{_PM}{_NUM}\s*%", ("same_top_pct", "same_top_err")),
}
_PATTERNS = {k: (re.compile(p), names) for k, (p, names) in _LINES.items()}
_LAST = _PATTERNS["same_top"][0]      # the line kl_divergence() logs last
_ERR = re.compile(r"kl_divergence: (.+)")
MIN_TOKENS = 100                      # below this llama.cpp prints no statistics


def scored_tokens(ctx: int, chunks: int) -> int:
    """Tokens a run scores: the second half of each chunk (perplexity.cpp: n_ctx - 1 - n_ctx/2)."""
    return chunks * (ctx - 1 - ctx // 2)


def parse_kld(log: str) -> dict | None:
    """The statistics of a --kl-divergence run as floats (None when its last line is missing:
    the run did not finish, or scored fewer than 100 tokens)."""
    if not _LAST.search(log):
        return None
    out: dict[str, float | None] = {}
    for pat, names in _PATTERNS.values():
        m = pat.search(log)
        for i, name in enumerate(names):
            out[name] = float(m.group(i + 1)) if m else None
    return out


@dataclass(frozen=True)
class KldResult:
    stats: dict            # parse_kld's fields
    seconds: float
    peak_rss_bytes: int | None
    attempts: int = 1


def kld_argv(exe: str, model: str, text_file: str, ctx: int, chunks: int, args: Sequence[str], base_file: str,
             threads: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The comparison run: engine.perplexity_argv plus --kl-divergence against base_file."""
    return engine.perplexity_argv(exe, model, text_file, ctx, chunks, args, threads,
                                  [*extra, "--kl-divergence", "--kl-divergence-base", base_file])


def write_base(exe: str, model: str, text: str, ctx: int, chunks: int, args: Sequence[str], base_file: str,
               threads: int | None = None, extra: Sequence[str] = (), runner: Runner = run_tool,
               timeout: float | None = None) -> engine.Perplexity:
    """The base run: an ordinary perplexity run that also writes base_file."""
    return engine.perplexity(exe, model, text, ctx, chunks, args, threads,
                             [*extra, "--kl-divergence-base", base_file], runner, timeout)


def compare(exe: str, model: str, text: str, ctx: int, chunks: int, args: Sequence[str], base_file: str,
            threads: int | None = None, extra: Sequence[str] = (), runner: Runner = run_tool,
            timeout: float | None = None) -> KldResult:
    if scored_tokens(ctx, chunks) < MIN_TOKENS:
        raise EngineError(f"llama-perplexity --kl-divergence: -c {ctx} x {chunks} chunk(s) scores "
                          f"{scored_tokens(ctx, chunks)} tokens; llama.cpp needs {MIN_TOKENS} for its statistics")

    def stats(r: ProcResult):
        log = r.stdout + "\n" + r.stderr
        err = _ERR.search(log)
        if r.returncode != 0 or (err and not _LAST.search(log)):
            why = err.group(1).strip() if err else r.tail()
            raise EngineError(f"llama-perplexity --kl-divergence failed at -c {ctx}: {why}")
        return parse_kld(log)

    r, got, attempt = engine._run_on_text(
        text, lambda path: kld_argv(exe, model, path, ctx, chunks, args, base_file, threads, extra),
        runner, timeout, stats,
        f"llama-perplexity --kl-divergence: no 'Same top p' line in {engine.ATTEMPTS} runs at -c {ctx} "
        f"(exit 0: llama.cpp's logger was not flushed at exit, llama.cpp#22142)")
    return KldResult(got, r.seconds, r.peak_rss_bytes, attempt)
