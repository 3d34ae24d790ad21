#!/usr/bin/env bash
# The KV-cache quality baseline of docs/eval/README.md on the embedded SmolLM2-135M (trained 8K):
# f16 logits as the base, then f16 / q8_0 / q8_0-K q4_0-V / q4_0 K/V caches compared with it
# (Δperplexity, KL divergence, same top token, passkey), at 2K and 8K unscaled-within-trained
# (plan's YaRN is no scaling there), then 16K with plan's YaRN x2 (last: the slowest part).
# Speeds come from the idle `ggufrope bench` run in docs/eval/bench-idle. One chunk per length,
# -t 2: kept small for a 2-core machine. Resumable, like every eval sweep: rerun after an
# interruption and only the missing runs are made. Then the measurements the presets cite are
# rewritten (ggufrope/presets/kv_measured.json) and, from them, the built-in -kv-q8/-kv-q4
# presets' `measured` lines.
set -euo pipefail
cd "$(dirname "$0")/.."
for len in 2k 8k 16k; do
  .venv/bin/ggufrope eval kv smollm2 --lengths "$len" --kv f16,q8_0,q8_0/q4_0,q4_0 --variants yarn \
    --chunks 1 --depths 0.5 --trials 1 --seed 0 -t 2 --bench docs/eval/bench-idle --out docs/eval/kv
done
.venv/bin/ggufrope eval report --task kv --out docs/eval/kv
.venv/bin/python -c "
from ggufrope.evaluation.kv_quality import write_measurements
from ggufrope.presets import kv_measured
d = write_measurements('docs/eval/kv', 'ggufrope/presets/kv_measured.json', 'benchmarks/bench_eval_kv.sh')
print('\n'.join(kv_measured.write_preset_notes('presets', d)))"
