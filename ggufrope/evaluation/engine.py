"""The llama.cpp tools an evaluation runs, as argv lists, and what is read back from their
logs. Log formats are those of llama.cpp 0c1e570 (common/common.cpp llama_perf_context_print,
tools/perplexity/perplexity.cpp, src/llama-kv-cache.cpp)."""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ggufrope.errors import EngineError
from ggufrope.evaluation.proc import ProcResult, Runner, run_tool

_PROMPT_EVAL = re.compile(r"prompt eval time\s*=\s*([\d.]+) ms /\s*(\d+) tokens")
_EVAL = re.compile(r"(?<!prompt )eval time\s*=\s*([\d.]+) ms /\s*(\d+) runs")
_PPL = re.compile(r"Final estimate: PPL = ([\d.]+|nan|inf) \+/- ([\d.]+|nan|inf)")
_KV = re.compile(r"llama_kv_cache: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers")
_NEED = re.compile(r"you need at least (\d+) tokens")
_TOTAL = re.compile(r"total time\s*=")
# llama.cpp's tools print through an asynchronous logger thread that main() does not flush
# before returning (common/log.cpp, llama.cpp#22142): on a busy machine the tail of the output
# (the generated text, the "Final estimate" line) is lost although the exit code is 0. ggufrope's
# builds drain the logger at exit (native/log_flush.cpp); binaries from elsewhere (build.bin_dir)
# do not, so the check stays: the logger writes in order, so a line logged last proves that
# everything before it arrived; without it the run is repeated (ATTEMPTS in all) instead of being
# scored on lost output.
ATTEMPTS = 3


def _fail(tool: str, r: ProcResult, what: str) -> EngineError:
    sig = r.crashed()
    how = f"crashed ({sig})" if sig else f"exited {r.returncode}"
    return EngineError(f"{tool} {how} {what}: {r.tail()}")


def _run_on_text(text: str, argv_for: Callable[[str], list[str]], runner: Runner, timeout: float | None,
                 accept: Callable[[ProcResult], Any], lost: str) -> tuple[ProcResult, Any, int]:
    """Write text to a temporary file and run argv_for(file) until accept(result) is truthy (it
    raises for a real failure), at most ATTEMPTS times (see above); EngineError(lost) after that.
    Returns (result, what accept returned, attempts)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        argv = argv_for(path)
        for attempt in range(1, ATTEMPTS + 1):
            r = runner(argv, timeout, None)
            got = accept(r)
            if got:
                return r, got, attempt
        raise EngineError(lost)
    finally:
        os.unlink(path)


def _tool_argv(exe: str, model: str, text_file: str, ctx: int, own: list[str], rope_args: Sequence[str],
               threads: int | None, extra: Sequence[str]) -> list[str]:
    """`EXE -m MODEL -f FILE -c CTX`, the tool's own options, -t THREADS, the RoPE flags, extra args."""
    argv = [exe, "-m", model, "-f", text_file, "-c", str(ctx), *own]
    if threads:
        argv += ["-t", str(threads)]
    return argv + list(rope_args) + list(extra)


_RS = re.compile(r"llama_memory_recurrent: size =\s*([\d.]+) MiB")


def parse_kv_mib(log: str) -> float | None:
    """The memory llama.cpp logged for its caches: every llama_kv_cache line (a sliding-window model
    has a full and an SWA cache) and the recurrent state of hybrid/recurrent models, summed."""
    sizes = [float(m.group(1)) for m in _KV.finditer(log)] + [float(x) for x in _RS.findall(log)]
    return round(sum(sizes), 2) if sizes else None


@dataclass(frozen=True)
class Completion:
    text: str                  # generated text only
    prompt_tokens: int | None  # as llama.cpp evaluated them
    prompt_ms: float | None
    gen_tokens: int | None
    gen_ms: float | None
    kv_mib: float | None
    seconds: float
    peak_rss_bytes: int | None
    attempts: int = 1


def completion_argv(exe: str, model: str, prompt_file: str, ctx: int, n_predict: int,
                    rope_args: Sequence[str], threads: int | None = None,
                    extra: Sequence[str] = ()) -> list[str]:
    """Greedy raw completion: -c sized to the prompt, --temp 0, no conversation mode (an
    instruct model's chat template would otherwise wrap the prompt), prompt not echoed."""
    return _tool_argv(exe, model, prompt_file, ctx, ["-n", str(n_predict), "--temp", "0", "-no-cnv",
                                                     "--no-display-prompt", "--no-warmup", "--seed", "0"],
                      rope_args, threads, extra)


def complete(exe: str, model: str, prompt: str, ctx: int, n_predict: int, rope_args: Sequence[str],
             threads: int | None = None, extra: Sequence[str] = (), runner: Runner = run_tool,
             timeout: float | None = None) -> Completion:
    def finished(r: ProcResult):
        if r.returncode != 0:
            raise _fail("llama-completion", r, f"at -c {ctx}")
        return _TOTAL.search(r.stderr)

    r, _, attempt = _run_on_text(
        prompt, lambda path: completion_argv(exe, model, path, ctx, n_predict, rope_args, threads, extra),
        runner, timeout, finished,
        f"llama-completion: output lost {ATTEMPTS} times at -c {ctx} (exit 0 but no final timing line: "
        f"llama.cpp's logger was not flushed at exit, llama.cpp#22142)")
    pe = _PROMPT_EVAL.search(r.stderr)
    ge = _EVAL.search(r.stderr)
    text = r.stdout.replace("[end of text]", "").strip("\n")
    return Completion(text=text, prompt_tokens=int(pe.group(2)) if pe else None,
                      prompt_ms=float(pe.group(1)) if pe else None,
                      gen_tokens=int(ge.group(2)) if ge else None, gen_ms=float(ge.group(1)) if ge else None,
                      kv_mib=parse_kv_mib(r.stderr), seconds=r.seconds, peak_rss_bytes=r.peak_rss_bytes,
                      attempts=attempt)


@dataclass(frozen=True)
class Perplexity:
    ppl: float
    ppl_err: float
    seconds: float
    kv_mib: float | None
    peak_rss_bytes: int | None
    attempts: int = 1


def perplexity_argv(exe: str, model: str, text_file: str, ctx: int, chunks: int, rope_args: Sequence[str],
                    threads: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    # -b ctx: llama-perplexity needs n_batch >= n_ctx to score a whole chunk in one sequence
    return _tool_argv(exe, model, text_file, ctx, ["-b", str(ctx), "--chunks", str(chunks), "--no-warmup"],
                      rope_args, threads, extra)


def perplexity(exe: str, model: str, text: str, ctx: int, chunks: int, rope_args: Sequence[str],
               threads: int | None = None, extra: Sequence[str] = (), runner: Runner = run_tool,
               timeout: float | None = None) -> Perplexity:
    def estimate(r: ProcResult):
        log = r.stdout + "\n" + r.stderr
        need = _NEED.search(log)
        if need:
            raise EngineError(f"llama-perplexity: the text is too short for -c {ctx} "
                              f"(it needs {need.group(1)} tokens)")
        if r.returncode != 0:
            raise _fail("llama-perplexity", r, f"at -c {ctx}")
        return _PPL.search(log)

    r, m, attempt = _run_on_text(
        text, lambda path: perplexity_argv(exe, model, path, ctx, chunks, rope_args, threads, extra),
        runner, timeout, estimate,
        f"llama-perplexity: no 'Final estimate' line in {ATTEMPTS} runs at -c {ctx} (exit 0: llama.cpp's "
        f"logger was not flushed at exit, llama.cpp#22142; or the result was nan)")
    log = r.stdout + "\n" + r.stderr
    return Perplexity(float(m.group(1)), float(m.group(2)), r.seconds, parse_kv_mib(log), r.peak_rss_bytes,
                      attempts=attempt)
