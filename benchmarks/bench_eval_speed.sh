#!/usr/bin/env bash
# Speed and memory of the embedded SmolLM2-135M against context and KV cache type (llama-bench,
# -fa 1), with the KV cache llama.cpp allocates against the planner's estimate. Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ggufrope bench smollm2 --contexts 0,2k,4k,8k --kv f16,q8_0,q4_0 -p 512 -n 32 --reps 1 --out docs/eval/bench
