"""`bench`'s planner column on a sliding-window model: llama.cpp logs two caches (full and SWA);
the column compares their sum with the plan, and an unmodelled family gets no planner number."""
from __future__ import annotations

import json

import pytest

from conftest import REAL_HOME, run_cli
from ggufrope.build.tiny_model import write_tiny_family, write_tiny_llama


@pytest.mark.slow
def test_bench_plan_column_sums_full_and_swa_caches(tmp_path, cpu_build):
    m = write_tiny_family(str(tmp_path / "g3.gguf"), "gemma3", n_layer=18, swa=512, n_ctx=32768, head_dim=256)
    out = tmp_path / "bench"
    run_cli("bench", m, "--contexts", "0,2k", "--kv", "f16,q8_0", "-p", "64", "-n", "4", "-t", "1", "--out", str(out),
            "--no-plots", check=True, env_extra={"GGUFROPE_HOME": REAL_HOME})
    recs = {(r["kv"], r["context"]): r for r in json.loads((out / "bench-results.json").read_text())["records"]}
    r = recs[("f16", 2048)]
    # n_ctx 2048 + 64 + 4 -> 2304 cells: 3 full layers x 2304 + 15 SWA layers x 1024, 1 KiB per cell and layer
    assert r["kv_cells"] == 2304 and r["kv_log_mib"] == r["kv_plan_mib"] == 21.75
    assert all(abs(x["kv_plan_error_pct"]) < 1 for x in recs.values()), recs


def test_kv_eval_has_no_planner_memory_for_an_unmodelled_family(tmp_path):
    from ggufrope.evaluation.kv_quality import kv_plan_mib
    from ggufrope.model_facts import read_model_facts
    facts = read_model_facts(write_tiny_llama(str(tmp_path / "x.gguf"), arch="plamo2"))
    assert kv_plan_mib(facts, 4096, "q8_0") is None
    llama = read_model_facts(write_tiny_llama(str(tmp_path / "l.gguf")))
    assert kv_plan_mib(llama, 4096, "f16") == round(llama.info.kv_cache_bytes(4096) / 2**20, 2)
