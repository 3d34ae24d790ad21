#!/usr/bin/env bash
# The evaluation baseline of docs/eval/README.md on the embedded SmolLM2-135M (trained 8192):
# passkey (greedy) and perplexity per RoPE variant at 2K-16K. Resumable: rerun it after an
# interruption and only the missing runs are done; the tables and plots are rewritten at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
G=.venv/bin/ggufrope
$G eval passkey smollm2 --lengths 2k,4k,8k,16k --depths 0,0.5,1 --variants none,linear,ntk,yarn,dynamic \
  --trials 2 --seed 0 --out docs/eval
$G eval perplexity smollm2 --lengths 2k,4k,8k,16k --variants none,linear,ntk,yarn,dynamic \
  --chunks 1 --out docs/eval
