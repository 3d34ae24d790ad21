#!/usr/bin/env bash
# The needle baseline of docs/eval/README.md on the embedded SmolLM2-135M: a fact hidden in the
# King James Bible at depths 0, 0.5, 1, lengths 2K-16K, unscaled / NTK / YaRN, one trial.
# Resumable, like every eval sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ggufrope eval needle smollm2 --lengths 2k,4k,8k,16k --depths 0,0.5,1 --variants none,ntk,yarn \
  --trials 1 --seed 0 --out docs/eval/needle
