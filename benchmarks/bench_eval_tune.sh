#!/usr/bin/env bash
# The tuner on the embedded SmolLM2-135M at 16K (docs/eval/README.md, "ggufrope tune"): 8
# llama-perplexity runs of the search, then an independent `eval perplexity` re-measurement of
# the winner against plan's YaRN on held-out text. About an hour on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ggufrope tune smollm2 --ctx 16384 --budget 8 --seed 0 --out docs/eval/tune
