"""Evaluation: does a RoPE setting actually work at a length? Passkey retrieval, a needle in
natural text and perplexity, per RoPE variant (none, linear, ntk, yarn as `plan` computes them;
dynamic reported as not applicable), run with the llama.cpp tools of ggufrope's build; plus
speed/memory benchmarks (`bench`) and a YaRN parameter search (`tune`).

Modules, one job each: spec (the sweep's grid and knobs), target (PRESET|MODEL -> model file:
the one adapter to the presets package), variants (RoPE flags per variant and length), tokens
(prompt sizing with the model's tokenizer), passkey / needle / perplexity (the tests), texts
(the public-domain corpus), proc (running a tool: argv, output, peak RSS), engine (llama.cpp
argv and log parsing), journal (results.jsonl, resume), runner (the sweep, progress, ETA),
results (summary, table, CSV, JSON), plots (PNG, matplotlib imported lazily), bench, tune.
"""
from ggufrope.evaluation.runner import Event, Sweep, run_sweep
from ggufrope.evaluation.spec import EvalSpec, parse_depths, parse_lengths, parse_variants
from ggufrope.evaluation.target import Target, resolve_target

__all__ = ["EvalSpec", "Event", "Sweep", "Target", "parse_depths", "parse_lengths", "parse_variants",
           "resolve_target", "run_sweep"]
