"""Per-layer RoPE in every report: which layers a plan's settings reach on a sliding-window model
(and what its SWA layers keep), M-RoPE dimension sections, and `verify` holding the layer list and
the per-layer-type effective base/scale against what llama.cpp's graph would feed ggml_rope_ext."""
from __future__ import annotations

import json

import gguf
import pytest

from conftest import REAL_HOME, run_cli
from ggufrope.build.tiny_model import write_tiny_family, write_tiny_llama

ARR = gguf.GGUFValueType.ARRAY


def test_plan_names_the_layers_its_pair_table_is_for(tmp_path):
    m = write_tiny_family(str(tmp_path / "g3.gguf"), "gemma3", n_layer=6, swa=512, n_ctx=8192)
    out = run_cli("plan", m, "--ctx", "32768", check=True).stdout
    assert "What it does to the 16 dimension pairs of the full-attention layers 5 (as llama.cpp resolves it)" in out
    # the SWA layers: base 10000 unscaled over 32 dims: 2*pi .. 2*pi*10000^(30/32) tokens
    assert "These RoPE settings reach the full-attention layers 5 only:" in out
    assert ("sliding-window layers 0-4 keep freq_base 10000, freq_scale 1 (fixed by llama.cpp at load): their "
            "pairs are unchanged, wavelengths 6-35,333 tokens, 8 of them longer than the 512-token window") in out
    llama = run_cli("plan", write_tiny_llama(str(tmp_path / "l.gguf")), "--ctx", "1024", check=True).stdout
    assert "What it does to the 16 dimension pairs (as" in llama and "sliding-window" not in llama


def _vl(tmp_path, sections):
    return write_tiny_llama(str(tmp_path / "vl.gguf"), arch="qwen2vl",
                            extra={"qwen2vl.rope.dimension_sections": (ARR, sections)})


def test_inspect_shows_mrope_sections(tmp_path):
    m = _vl(tmp_path, [4, 6, 6, 0])
    out = run_cli("inspect", m, check=True).stdout
    assert "dimension sections [4, 6, 6, 0]  M-RoPE: pairs 0-3 time, pairs 4-9 height, pairs 10-15 width" in out
    rep = json.loads(run_cli("inspect", m, "--json", check=True).stdout)
    sec, = rep["rope_layers"]
    assert sec["parts"] == [{"component": "time", "pairs": [0, 3]}, {"component": "height", "pairs": [4, 9]},
                            {"component": "width", "pairs": [10, 15]}]


@pytest.mark.slow
def test_verify_holds_mrope_sections_against_llama_cpp(tmp_path, cpu_build):
    rep = json.loads(run_cli("verify", _vl(tmp_path, [2, 6, 8, 0]), "--json",
                             env_extra={"GGUFROPE_HOME": REAL_HOME}).stdout)
    row, = [r for r in rep["rows"] if r["what"] == "qwen2vl.rope.dimension_sections"]
    assert (row["expected"], row["engine"], row["ok"]) == ([2, 6, 8, 0], [2, 6, 8, 0], True) and rep["ok"]


@pytest.mark.slow
@pytest.mark.parametrize("flags,full_scale", [pytest.param([], 1.0, id="file"),
                                              pytest.param(["--rope-scaling", "yarn", "--rope-scale", "4",
                                                            "--rope-freq-base", "20000"], 0.25, id="yarn-4x-base")])
def test_verify_compares_layer_list_and_effective_values_per_layer_type(tmp_path, cpu_build, flags, full_scale):
    m = write_tiny_family(str(tmp_path / "g2.gguf"), "gemma2", n_layer=6, swa=512)
    r = run_cli("verify", m, "--json", *flags, env_extra={"GGUFROPE_HOME": REAL_HOME})
    rows = {row["what"]: row for row in json.loads(r.stdout)["rows"]}
    assert r.returncode == 0, [row for row in rows.values() if not row["ok"]]
    assert rows["which layers are SWA"]["engine"] == [0, 2, 4]          # gemma2: every other layer
    assert rows["full-attention layers' freq_scale (effective)"]["engine"] == full_scale
    assert rows["full-attention layers' freq_base (effective)"]["engine"] == (20000.0 if flags else 10000.0)
    # runtime flags never reach the SWA layers
    assert rows["SWA layers' freq_scale (effective)"]["engine"] == 1.0
    assert rows["SWA layers' freq_base (effective)"]["engine"] == 10000.0
    text = run_cli("verify", m, *flags, env_extra={"GGUFROPE_HOME": REAL_HOME}).stdout
    assert "which layers are SWA" in text and "0, 2, 4" in text


def test_verify_fails_when_the_probe_reports_no_effective_values(tmp_path):
    from ggufrope.model_facts import read_model_facts
    from ggufrope.verify import compare
    facts = read_model_facts(write_tiny_family(str(tmp_path / "g2.gguf"), "gemma2", n_layer=6, swa=512))
    rows = {r.what: r for r in compare(facts, {"hparams": {}, "hparams_extra": {}})}
    eff = [r for w, r in rows.items() if w.endswith("(effective)")]
    assert len(eff) == 4 and not any(r.ok or r.reported for r in eff)


def _groups(meta: dict, arch: str):
    from ggufrope.settings.model_info import ModelInfo
    base = {f"{arch}.block_count": 8, f"{arch}.embedding_length": 64, f"{arch}.attention.head_count": 2,
            "general.architecture": arch}
    return [(g.kind, g.layers, g.rope) for g in ModelInfo.from_metadata({**base, **meta}).rope_groups]


@pytest.mark.parametrize("arch,meta,want", [
    pytest.param("gemma2", {"gemma2.attention.sliding_window": 512},
                 [("swa", (0, 2, 4, 6), "fixed"), ("full", (1, 3, 5, 7), "context")], id="gemma2-per-layer"),
    # cohere2.cpp l.89-101: SWA layers take the context's base/scale, full layers no RoPE
    pytest.param("cohere2", {"cohere2.attention.sliding_window": 512},
                 [("swa", (0, 1, 2, 4, 5, 6), "context"), ("full", (3, 7), "none")], id="cohere2-nope-full"),
    # llama4.cpp l.140-141: chunked layers fixed at load, every 4th (full) layer NoPE
    pytest.param("llama4", {"llama4.attention.sliding_window": 8192},
                 [("swa", (0, 1, 2, 4, 5, 6), "fixed"), ("full", (3, 7), "none")], id="llama4-chunked"),
    # llama4 without chunking: n_no_rope_layer_step = n_layer, so only the last layer is NoPE
    pytest.param("llama4", {"llama4.attention.sliding_window": 0},
                 [("full", (0, 1, 2, 3, 4, 5, 6), "context"), ("full", (7,), "none")], id="llama4-unchunked"),
    # olmo2.cpp l.117-130: SWA layers the context's base, scale 1
    pytest.param("olmo2", {"olmo2.attention.sliding_window": 512},
                 [("swa", (0, 1, 2, 4, 5, 6), "context_base"), ("full", (3, 7), "context")], id="olmo2-unscaled-swa"),
    # granite.cpp l.33-36: finetuned false switches RoPE off everywhere
    pytest.param("granite", {"granite.rope.scaling.finetuned": False}, [("full", tuple(range(8)), "none")],
                 id="granite-rope-off"),
    pytest.param("granite", {}, [], id="granite-default-on"),
])
def test_rope_groups_follow_each_graph(arch, meta, want):
    assert _groups(meta, arch) == want


@pytest.mark.slow
def test_cohere2_yarn_reaches_its_sliding_window_layers(tmp_path, cpu_build):
    """Command-R7B-style cohere2: the only RoPE layers are the SWA ones, and they take the runtime
    scaling (the graph never calls get_rope_freq_scale): plan and verify say so."""
    m = write_tiny_family(str(tmp_path / "c2.gguf"), "cohere2", n_layer=8, swa=1024, n_ctx=8192)
    out = run_cli("plan", m, "--ctx", "32768", check=True).stdout
    assert "What it does to the 16 dimension pairs of the sliding-window layers 0-2, 4-6 (" in out
    assert "full-attention layers 3, 7: no RoPE (NoPE)" in out
    r = run_cli("verify", m, "--json", "--rope-scaling", "yarn", "--rope-scale", "4",
                env_extra={"GGUFROPE_HOME": REAL_HOME})
    rows = {row["what"]: row for row in json.loads(r.stdout)["rows"]}
    assert r.returncode == 0, [row for row in rows.values() if not row["ok"]]
    assert rows["SWA layers' freq_scale (effective)"]["engine"] == 0.25


def test_hunyuan_rope_alpha_raises_the_base_plan_uses(tmp_path):
    """hunyuan-vl.cpp l.7-12: base x alpha^(d/(d-2)) at load; plan's RoPE math starts from that base
    (verify holds it against llama.cpp: test_kv_model's hunyuan-dense-rope-alpha)."""
    from ggufrope.model_facts import read_model_facts
    m = write_tiny_family(str(tmp_path / "hy.gguf"), "hunyuan-dense",
                          extra={"hunyuan-dense.rope.scaling.alpha": (gguf.GGUFValueType.FLOAT32, 1000.0)})
    facts = read_model_facts(m)
    assert facts.freq_base == pytest.approx(10000 * 1000 ** (32 / 30), rel=1e-6)
    assert "rope.scaling.alpha" in facts.freq_base_source
    assert "freq_base 1.58489e+07" in run_cli("plan", m, "--ctx", "8192", check=True).stdout
