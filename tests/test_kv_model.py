"""The KV/state model (ggufrope/kv_model.py) against llama.cpp's own allocation: tiny random-weight
models of each family, loaded by the pinned llama.cpp; its `llama_kv_cache: size = ...` and
`llama_memory_recurrent: size = ...` lines give cells, layers and K/V (R/S) MiB per cache."""
from __future__ import annotations

import re
import subprocess

import pytest

from ggufrope.build.tiny_model import write_tiny_family, write_tiny_llama
from ggufrope.kv_model import NO_FLASH_ATTN, KvShape, KvUnknown, ctx_cells, kv_plan
from ggufrope.model_facts import read_model_facts

MIB = 1 << 20
KV_LINE = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers, +(\d+)/(\d+) seqs\), "
                     r"K \((\w+)\): +([\d.]+) MiB, V \((\w+)\): +([\d.]+) MiB")
RS_LINE = re.compile(r"llama_memory_recurrent: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers.*?"
                     r"R \(f32\): +([\d.]+) MiB, S \(f32\): +([\d.]+) MiB")

# (id, family, writer kwargs)
MODELS = [
    ("llama", "llama", {"head_dim": 32, "n_head_kv": 1, "n_layer": 4}),
    ("gemma2", "gemma2", {"swa": 512}),
    ("gemma3", "gemma3", {"swa": 512}),
    ("cohere2", "cohere2", {"swa": 1024}),
    ("gpt-oss", "gpt-oss", {"swa": 128}),
    ("deepseek2-mla", "deepseek2-mla", {"head_dim": 64}),
    ("deepseek2-k64-v32", "deepseek2-kv", {"head_dim": 64, "v_dim": 32}),
    ("mamba", "mamba", {}),
    ("jamba", "jamba", {}),
    ("qwen3next", "qwen3next", {"n_layer": 8}),
    ("qwen35-recurrent-array", "qwen35", {"n_layer": 8, "recurrent_layers": [1, 1, 0, 1, 1, 1, 0, 0]}),
    ("qwen35moe-interval-3", "qwen35moe", {"n_layer": 6, "interval": 3}),
    # llama4 reads any sliding_window but 0 as 8192-token chunks (src/models/llama4.cpp l.8-14)
    ("llama4-window-512-read-as-8192", "llama4", {"n_layer": 8, "swa": 512}),
    ("granitehybrid", "granitehybrid", {}),
    ("nemotron_h-M-M*-M", "nemotron_h", {"pattern": "M-M*-M", "n_layer": 6}),
    ("falcon-h1", "falcon-h1", {"n_layer": 4}),
    ("nemotron_h_moe-ME*MEM", "nemotron_h_moe", {"pattern": "ME*MEM", "n_layer": 6}),
    # phi3 switches a file's sliding window off (src/models/phi3.cpp l.13-23)
    ("phi3-window-2048-ignored", "phi3", {"n_layer": 4, "swa": 2048}),
    # exaone4 slides only at 64 layers (src/models/exaone4.cpp l.4-14)
    ("exaone4-64-layers-window-1024", "exaone4", {"n_layer": 64, "swa": 1024}),
    ("exaone4-4-layers-window-ignored", "exaone4", {"n_layer": 4, "swa": 1024}),
    ("lfm2-l_cache-129", "lfm2", {"n_layer": 6, "head_dim": 64, "l_cache": 129}),
    ("lfm2moe-l_cache-65", "lfm2moe", {"n_layer": 6, "head_dim": 64, "l_cache": 65}),
    ("rwkv6", "rwkv6", {"n_layer": 4, "head_dim": 64}),
    ("rwkv7", "rwkv7", {"n_layer": 6, "head_dim": 64}),
    # gemma3n: K/V only in the first 20 layers, the others reuse them (src/models/gemma3n.cpp l.7)
    ("gemma3n-22-layers", "gemma3n", {"n_layer": 22, "swa": 512}),
    # standard: one plain cache (each arch's load_arch_hparams: no SWA, recurrent layers, reuse or MLA)
    ("glm4", "glm4", {"n_layer": 4}),
    # the MTP block (nextn_predict_layers) is loaded but gets no cells (llama-model.cpp l.2795-2803)
    ("glm4moe-5-layers-plus-1-nextn", "glm4moe", {"n_layer": 5, "nextn": 1}),
    ("qwen2vl", "qwen2vl", {"n_layer": 4}),
    ("qwen3vl-kv-2", "qwen3vl", {"n_layer": 4, "n_head_kv": 2}),
    ("qwen3vlmoe", "qwen3vlmoe", {"n_layer": 4}),
    ("ernie4_5", "ernie4_5", {"n_layer": 4}),
    ("ernie4_5-moe", "ernie4_5-moe", {"n_layer": 4}),
    ("seed_oss-head-64", "seed_oss", {"n_layer": 4, "head_dim": 64}),
    ("minimax-m2", "minimax-m2", {"n_layer": 4}),
    ("olmoe", "olmoe", {"n_layer": 4, "n_head_kv": 2}),
    ("phimoe", "phimoe", {"n_layer": 4}),
    ("hunyuan-moe", "hunyuan-moe", {"n_layer": 4}),
    ("hunyuan-dense", "hunyuan-dense", {"n_layer": 4}),
    ("dots1", "dots1", {"n_layer": 4, "n_head_kv": 2}),
    ("grok", "grok", {"n_layer": 4}),
    ("dbrx", "dbrx", {"n_layer": 4}),
    ("arcee", "arcee", {"n_layer": 4}),
    ("apertus", "apertus", {"n_layer": 4}),
    ("bailingmoe2-4-layers-plus-1-nextn", "bailingmoe2", {"n_layer": 4, "nextn": 1}),
    # graniteswitch: llama.cpp adds the adapter router's attention layer (1 KV head) after the last
    ("graniteswitch-4-layers-plus-router", "graniteswitch", {"n_layer": 4, "n_head_kv": 2}),
    # MLA (deepseek2's loader); deepseek32 adds the DSA indexer's K-only cache (64 wide, MLA K is 96)
    ("mistral4-mla", "mistral4", {"n_layer": 4, "head_dim": 64}),
    ("deepseek32-mla-indexer-64", "deepseek32", {"n_layer": 4, "head_dim": 64}),
    # iSWA: cohere2moe and smallthinker slide on all but every 4th layer from layer 0 (dense first);
    # smallthinker reads any window as 4096 and none as one plain cache
    ("cohere2moe-window-512", "cohere2moe", {"swa": 512}),
    ("smallthinker-window-512-read-as-4096", "smallthinker", {"swa": 512}),
    ("smallthinker-no-window", "smallthinker", {"n_layer": 4, "swa": None}),
    ("granite_swa-array-window-512", "granite_swa", {"swa": 512}),
    # gemma4: SWA head 32, full head 64; the last 5 of 10 layers reuse layer 3 (SWA) / 4 (full)
    ("gemma4-10-layers-5-shared", "gemma4", {"n_layer": 10, "swa": 512, "shared_kv_layers": 5}),
]
# (id, n_ctx, extra llama.cpp flags, planner kwargs)
CASES = [
    ("4k-f16", 4096, ["-fa", "on"], {}),
    ("32k-f16", 32768, ["-fa", "on"], {}),
    ("8k-f16-fa-off", 8192, ["-fa", "off"], {"flash_attn": False}),
    ("16k-swa-full", 16384, ["-fa", "on", "--swa-full"], {"swa_full": True}),
    ("16k-np4", 16384, ["-fa", "on", "-np", "4"], {"n_seq": 4}),
    # llama-completion has no -kvu; llama-perplexity runs n_batch / n_ctx sequences in one unified
    # cache of n_batch cells (tools/perplexity), so -c 4096 -b 16384 is 16384 cells for 4 sequences
    ("16k-np4-kvu", 16384, ["perplexity", "-c", "4096", "-b", "16384", "-fa", "on", "-kvu"],
     {"n_seq": 4, "unified": True}),
    ("8k-q8_0", 8192, ["-fa", "on", "-ctk", "q8_0", "-ctv", "q8_0"], {"type_k": "q8_0"}),
    ("8k-q4_0", 8192, ["-fa", "on", "-ctk", "q4_0", "-ctv", "q4_0"], {"type_k": "q4_0"}),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("kv-families")
    out = {}
    for mid, family, kw in MODELS:
        p = str(d / f"{mid}.gguf")
        if family == "llama":
            write_tiny_llama(p, n_ctx=4096, **kw)
        else:
            write_tiny_family(p, family, **kw)
        out[mid] = p
    return out


def _llama_log(build, model: str, n_ctx: int, flags: list[str], check_rc: bool = True) -> str:
    if flags[:1] == ["perplexity"]:  # exits 0 after "you need at least N tokens": the caches are made by then
        argv = [build.binaries["llama-perplexity"], "-m", model, "-p", "a b c", "-lv", "4", "-t", "2", *flags[1:]]
    else:
        argv = [build.binaries["llama-completion"], "-m", model, "-p", "a", "-n", "1", "--no-warmup", "-lv", "4",
                "-t", "2", "-c", str(n_ctx), *flags]
    for _ in range(4):  # llama.cpp's async logger can drop the log tail at exit (llama.cpp#22142)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=180)
        assert r.returncode == 0 or not check_rc, r.stderr[-2000:]
        if KV_LINE.search(r.stderr) or RS_LINE.search(r.stderr):
            return r.stderr
    raise AssertionError(r.stderr[-3000:])


def _close(plan_bytes: int, log_mib: float) -> bool:
    """Within 1%, or within the log's rounding to 0.01 MiB for caches that small."""
    return abs(plan_bytes / MIB - log_mib) <= max(0.01 * log_mib, 0.006)


@pytest.mark.slow
@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in CASES])
@pytest.mark.parametrize("mid", [m[0] for m in MODELS])
def test_planner_equals_llama_cpp_allocation(models, cpu_build, mid, case):
    _, n_ctx, flags, kw = case
    kw = dict(kw)
    if "type_k" in kw:
        kw["type_v"] = kw["type_k"]
    facts = read_model_facts(models[mid])
    plan = kv_plan(facts.kv, n_ctx, **kw)
    if facts.arch in NO_FLASH_ATTN and kw.get("type_v", "f16") != "f16":
        _assert_refused(cpu_build, models[mid], n_ctx, flags, plan)
        return
    assert plan.known
    log = _llama_log(cpu_build, models[mid], n_ctx, flags)
    lines = KV_LINE.findall(log)
    attn = [c for c in plan.caches if c.name != "recurrent"]
    if facts.kv.family in ("recurrent", "hybrid"):
        (tot, cells, layers, r, s), = RS_LINE.findall(log)
        c = plan.caches[-1]
        # the log counts the model's layers, the bytes only the recurrent ones
        assert (c.cells, facts.kv.n_layer) == (int(cells), int(layers))
        assert _close(c.k, float(r)) and _close(c.v, float(s)), (c, r, s)
    assert len(lines) == len(attn), (lines, plan.caches)
    for c, (tot, cells, layers, seqs, streams, tk, k, tv, v) in zip(attn, lines):
        assert (c.cells, c.layers, c.streams) == (int(cells), int(layers), int(streams)), (c, cells, layers, streams)
        assert _close(c.k, float(k)) and _close(c.v, float(v)), (c.name, c.k / MIB, k, c.v / MIB, v)
        assert _close(c.total, float(tot))


def _assert_refused(build, model: str, n_ctx: int, flags: list[str], plan) -> None:
    """grok: llama.cpp turns flash attention off (llama-context.cpp l.3816-3819) and then refuses a
    quantized V cache; the plan has no number for what will not run."""
    argv = [build.binaries["llama-completion"], "-m", model, "-p", "a", "-n", "1", "--no-warmup", "-t", "2",
            "-c", str(n_ctx), *flags]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=180)
    assert r.returncode != 0 and "quantized V cache requires flash_attn" in r.stderr, r.stderr[-2000:]
    assert isinstance(plan, KvUnknown) and "quantized V cache" in plan.reason


def test_unknown_architecture_gives_no_number():
    shape = KvShape.from_metadata({"plamo2.block_count": 4, "plamo2.embedding_length": 64}, "plamo2")
    plan = kv_plan(shape, 8192)
    assert isinstance(plan, KvUnknown) and plan.total is None and "plamo2" in plan.reason


@pytest.mark.parametrize("n_ctx,n_seq,unified,want", [
    pytest.param(1000, 1, False, (1024, 1024), id="pad-256"),
    pytest.param(16384, 4, False, (16384, 4096), id="np4-streams"),
    pytest.param(10000, 3, False, (10752, 3584), id="np3-repad"),
    pytest.param(16384, 4, True, (16384, 16384), id="np4-unified"),
])
def test_ctx_cells(n_ctx, n_seq, unified, want):
    assert ctx_cells(n_ctx, n_seq, unified) == want


def test_gemma3_style_swa_model_is_not_planned_as_full_attention(tmp_path):
    """The issue's example: head_dim 256, 1 KV head, 18 layers of which 15 SWA, window 512, 32768
    tokens, f16: llama.cpp allocates 96 MiB (3 layers x 32768 cells) + 15 MiB (15 x 1024)."""
    meta = {"gemma3.block_count": 18, "gemma3.embedding_length": 1024, "gemma3.attention.head_count": 4,
            "gemma3.attention.head_count_kv": 1, "gemma3.attention.key_length": 256,
            "gemma3.attention.value_length": 256, "gemma3.attention.sliding_window": 512}
    plan = kv_plan(KvShape.from_metadata(meta, "gemma3"), 32768)
    full, swa = plan.caches
    assert (full.layers, full.cells, full.total) == (3, 32768, 96 * MIB)
    assert (swa.layers, swa.cells, swa.total) == (15, 1024, 15 * MIB)


@pytest.mark.slow
def test_auto_ctx_fits_a_sliding_window_model_as_llama_cpp_allocates_it(tmp_path, cpu_build, monkeypatch):
    """ctx = "auto" under a memory cap picks the context whose memory llama.cpp really allocates
    (3 full layers of 18 hold n_ctx cells, 15 SWA layers 1024), not the llama-shaped 18 x n_ctx."""
    import os
    from ggufrope.presets import load_preset, memory
    from ggufrope.presets.prepare import prepare
    monkeypatch.setenv("GGUFROPE_CONFIG", str(tmp_path / "config"))
    model = write_tiny_family(str(tmp_path / "g3.gguf"), "gemma3", n_layer=18, swa=512, n_ctx=32768)
    facts = read_model_facts(model)
    want = 16384
    shape = memory.Shape(facts.n_vocab, facts.n_ff)
    need = facts.weights_bytes + facts.info.kv_cache_bytes(want) + memory.compute_bytes(facts.info, shape, want, 512, True)
    bud = memory.Budget(need + 1000, "test")
    (tmp_path / "p.toml").write_text(f'model = "{model}"\nctx = "auto"\nflash_attn = "on"\n'
                                     '[memory]\nheadroom_mib = 0\n')
    p = load_preset(None, dict(os.environ), [], preset_file=str(tmp_path / "p.toml"))
    prep = prepare(p, dict(os.environ), bud=bud)
    assert prep.n_ctx == want, prep.mem.summary()
    assert "3 layers x 16384 cells + 15 SWA layers x 1024 cells" in prep.mem.summary()
    # the llama-shaped figure would not have fitted even half of it
    assert facts.kv.naive_bytes_per_cell() * want // 2 > facts.info.kv_cache_bytes(want)
    log = _llama_log(cpu_build, model, want, ["-fa", "on"])
    logged = sum(float(m[0]) for m in KV_LINE.findall(log))
    assert _close(prep.mem.kv, logged), (prep.mem.kv / MIB, logged)


def test_inspect_shows_caches_rope_split_and_a_missing_name(tmp_path):
    from conftest import run_cli
    m = write_tiny_family(str(tmp_path / "g3.gguf"), "gemma3", n_layer=6, swa=512, name=None)
    out = run_cli("inspect", m, check=True).stdout
    assert "name                       - (no general.name)" in out and "None" not in out.split("RoPE settings")[0]
    assert "1 full layers x 4096 cells + 5 SWA layers x 1024 cells" in out
    assert "KV cache per 1K tokens" not in out            # not linear in the context
    assert "SWA layers 0-4" in out and "gemma3's built-in 10000" in out and "full-attention layers 5" in out


def test_inspect_says_unknown_instead_of_a_number(tmp_path):
    from conftest import run_cli
    m = write_tiny_llama(str(tmp_path / "x.gguf"), arch="plamo2")
    out = run_cli("inspect", m, check=True).stdout
    assert "KV cache                   unknown: llama.cpp's memory rule for 'plamo2' is not modelled" in out
    assert "per 1K" not in out


def test_plan_memory_rows_follow_the_caches_and_name_the_layers_touched(tmp_path):
    import json
    from conftest import run_cli
    m = write_tiny_family(str(tmp_path / "g3.gguf"), "gemma3", n_layer=6, swa=512)
    rep = json.loads(run_cli("plan", m, "--ctx", "32768", "--json", check=True).stdout)
    want = kv_plan(read_model_facts(m).kv, 32768)
    assert rep["memory"]["kv_cache_bytes"]["f16"] == want.total
    lt = rep["layers_touched"]
    assert {k: lt[k] for k in ("all", "full", "swa", "swa_freq_base", "swa_freq_scale", "window")} == \
        {"all": False, "full": [5], "swa": [0, 1, 2, 3, 4], "swa_freq_base": 10000.0, "swa_freq_scale": 1.0,
         "window": 512}
    out = run_cli("plan", m, "--ctx", "32768", check=True).stdout
    assert "1 full layers x 32768 cells + 5 SWA layers x 1024 cells" in out
    assert "reach the full-attention layers 5 only" in out


def test_plan_has_no_kv_number_for_an_unmodelled_family(tmp_path):
    import json
    from conftest import run_cli
    m = write_tiny_llama(str(tmp_path / "p.gguf"), arch="plamo2")
    rep = json.loads(run_cli("plan", m, "--ctx", "1024", "--json", check=True).stdout)
    assert rep["memory"]["kv_cache_bytes"] == {} and "plamo2" in rep["memory"]["kv_unknown"]
    assert "KV cache: unknown" in run_cli("plan", m, "--ctx", "1024", check=True).stdout


@pytest.mark.slow
def test_llama4_without_chunking_is_one_plain_cache(tmp_path, cpu_build):
    """sliding_window 0 turns llama4's chunking off (src/models/llama4.cpp l.9-11): one llama_kv_cache
    over every layer. llama.cpp 0c1e570 then aborts in the graph (llama-graph.cpp l.161: no attention
    temperature without chunking), after the cache is made: the log line is read whatever the exit."""
    m = write_tiny_family(str(tmp_path / "l4.gguf"), "llama4", n_layer=4, swa=0)
    plan = kv_plan(read_model_facts(m).kv, 4096)
    (tot, cells, layers, *_), = KV_LINE.findall(_llama_log(cpu_build, m, 4096, ["-fa", "on"], check_rc=False))
    (c,) = plan.caches
    assert (c.name, c.cells, c.layers) == ("kv", int(cells), int(layers)) == ("kv", 4096, 4)
    assert _close(c.total, float(tot))


VERIFY_MODELS = [
    pytest.param("gemma2", {}, id="gemma2"),
    pytest.param("gemma2", {"gemma2.rope.freq_base_swa": "f32:5000", "gemma2.rope.scaling.factor": "f32:4",
                            "gemma2.rope.scaling.type": "str:linear"}, id="gemma2-base-swa-scaled"),
    pytest.param("gemma3", {}, id="gemma3"),
    pytest.param("gemma3", {"gemma3.rope.freq_base_swa": "f32:20000", "gemma3.rope.freq_base": "f32:1000000"},
                 id="gemma3-base-swa"),
    pytest.param("cohere2", {}, id="cohere2"),
    pytest.param("gpt-oss", {}, id="gpt-oss"),
    pytest.param("llama4", {"llama4.rope.freq_base": "f32:500000", "llama4.rope.scaling.factor": "f32:8",
                            "llama4.rope.scaling.type": "str:linear"}, id="llama4-scaled"),
    pytest.param("phi3", {}, id="phi3-window-512-switched-off"),
    pytest.param("gemma3n", {"gemma3n.rope.freq_base_swa": "f32:20000", "gemma3n.rope.freq_base": "f32:1000000"},
                 id="gemma3n-base-swa"),
    pytest.param("exaone4", {"exaone4.rope.freq_base_swa": "f32:20000", "exaone4.rope.scaling.factor": "f32:2",
                             "exaone4.rope.scaling.type": "str:linear"}, id="exaone4-64-base-swa-scaled"),
    pytest.param("deepseek2-mla", {}, id="deepseek2-mla"),
    pytest.param("deepseek2-kv", {}, id="deepseek2-kv"),
    pytest.param("smallthinker", {"smallthinker.rope.freq_base_swa": "f32:20000", "smallthinker.rope.scaling.factor":
                                  "f32:2", "smallthinker.rope.scaling.type": "str:linear"},
                 id="smallthinker-base-swa-scaled"),
    pytest.param("cohere2moe", {"cohere2moe.rope.freq_base_swa": "f32:20000", "cohere2moe.rope.scaling.factor":
                                "f32:2", "cohere2moe.rope.scaling.type": "str:linear"}, id="cohere2moe-base-swa-scaled"),
    # readings verify showed to be wrong, fixed: hunyuan raises freq_base to base x alpha^(d/(d-2))
    # (src/models/hunyuan-vl.cpp l.7-12); mistral4 reads yarn_log_multiplier with deepseek2's loader
    # (models.h l.1399-1401: stored 0.1 m, read m)
    pytest.param("hunyuan-dense", {"hunyuan-dense.rope.scaling.alpha": "f32:1000"}, id="hunyuan-dense-rope-alpha"),
    pytest.param("mistral4", {"mistral4.rope.scaling.yarn_log_multiplier": "f32:0.1"}, id="mistral4-yarn-log-mul"),
]


@pytest.mark.slow
@pytest.mark.parametrize("flags", [pytest.param([], id="file"),
                                   pytest.param(["--rope-scaling", "yarn", "--rope-scale", "4", "--ctx", "16384"],
                                                id="yarn-4x")])
@pytest.mark.parametrize("family,keys", VERIFY_MODELS)
def test_verify_per_layer_type_values_agree_with_llama_cpp(tmp_path, cpu_build, family, keys, flags):
    """llama.cpp's resolved window, SWA layer count and SWA layers' base/scale equal ggufrope's."""
    import gguf
    import json
    from conftest import REAL_HOME, run_cli
    types = {"f32": gguf.GGUFValueType.FLOAT32, "str": gguf.GGUFValueType.STRING}
    extra = {k: (types[v.split(":")[0]], float(v.split(":")[1]) if v.startswith("f32") else v.split(":")[1])
             for k, v in keys.items()}
    m = write_tiny_family(str(tmp_path / "m.gguf"), family, head_dim=64 if family.startswith(("deepseek", "mistral4")) else 32,
                          extra=extra, n_layer={"exaone4": 64, "gemma3n": 22}.get(family, 6))
    r = run_cli("verify", m, "--json", *flags, env_extra={"GGUFROPE_HOME": REAL_HOME})
    rep = json.loads(r.stdout)
    assert rep["ok"], [row for row in rep["rows"] if not row["ok"]]
    whats = {row["what"] for row in rep["rows"]}
    if family in ("gemma2", "gemma3", "cohere2", "gpt-oss", "llama4", "exaone4", "gemma3n", "smallthinker",
                  "cohere2moe"):
        assert "SWA layers' freq_base" in whats and "SWA layers' freq_scale" in whats
        k = read_model_facts(m).kv
        if "rope.freq_base_swa" in str(keys):
            assert k.freq_base_swa == float(next(v for kk, v in keys.items() if kk.endswith("freq_base_swa"))[4:])
        if family == "gemma2" and keys:
            assert k.freq_scale_swa == 0.25      # gemma2 keeps the trained scale on its SWA layers
        if family == "llama4":                   # so does llama4, with the trained base (llama4.cpp l.21-22)
            assert (k.freq_base_swa, k.freq_scale_swa, k.n_swa) == (500000.0, 0.125, 8192)
        if family == "exaone4":
            assert (k.freq_base_swa, k.freq_scale_swa, len(k.swa_layers)) == (20000.0, 0.5, 48)
        if family in ("smallthinker", "cohere2moe"):     # the trained scale, freq_base_swa's base
            assert (k.freq_base_swa, k.freq_scale_swa, k.full_layers) == (20000.0, 0.5, (0, 4))


def test_inspect_hybrid_lists_attention_cache_and_state(tmp_path):
    from conftest import run_cli
    out = run_cli("inspect", write_tiny_family(str(tmp_path / "j.gguf"), "jamba"), check=True).stdout
    assert "hybrid: a KV cache for the attention layers" in out
    assert "2 full layers x 4096 cells + 4 layers of state, one per sequence" in out


def test_memory_plan_says_unknown_for_an_unmodelled_family(tmp_path):
    from ggufrope.presets import memory
    facts = read_model_facts(write_tiny_llama(str(tmp_path / "x.gguf"), arch="plamo2"))
    p = memory.plan(facts.info, memory.Shape(facts.n_vocab, facts.n_ff), facts.weights_bytes, 4096, "f16", "f16",
                    flash_attn=True, n_ubatch=512, bud=memory.Budget(1 << 40, "test"), on_gpu=False,
                    gpu_fraction=1.0, headroom=0)
    assert "KV cache unknown (llama.cpp's memory rule for 'plamo2' is not modelled; counted as full attention" \
        in p.summary()


@pytest.mark.parametrize("window,family", [pytest.param(512, "iswa", id="sliding_window"),
                                           pytest.param(None, "standard", id="no-sliding_window")])
def test_olmo2_is_iswa_only_with_a_sliding_window(window, family):
    """src/models/olmo2.cpp l.6-16: pattern 4, SWA layers keep the trained base and scale 1 (from the
    source; no tiny olmo2 is loaded by llama.cpp here)."""
    meta = {"olmo2.block_count": 8, "olmo2.embedding_length": 64, "olmo2.attention.head_count": 2,
            "olmo2.rope.freq_base": 500000.0, "olmo2.rope.scaling.factor": 4.0}
    if window:
        meta["olmo2.attention.sliding_window"] = window
    k = KvShape.from_metadata(meta, "olmo2")
    assert k.family == family
    if window:
        assert (k.full_layers, k.freq_base_swa, k.freq_scale_swa) == ((3, 7), 500000.0, 1.0)


def test_lfm2_with_a_sliding_window_is_unknown():
    """src/models/lfm2.cpp l.26-31: a sliding_window makes lfm2's attention layers SWA and its memory
    llama_memory_hybrid_iswa, which is not modelled: no number rather than a wrong one."""
    meta = {"lfm2.block_count": 6, "lfm2.embedding_length": 64, "lfm2.attention.head_count": 2,
            "lfm2.attention.head_count_kv": [0, 0, 1, 0, 0, 1], "lfm2.shortconv.l_cache": 3,
            "lfm2.attention.sliding_window": 512}
    assert KvShape.from_metadata(meta, "lfm2").family == "unknown"
    del meta["lfm2.attention.sliding_window"]
    k = KvShape.from_metadata(meta, "lfm2")
    assert (k.family, k.kv_layers, k.n_embd_r, k.n_embd_s) == ("hybrid", (2, 5), 128, 0)


@pytest.mark.parametrize("arch,keys,why", [
    pytest.param("gemma4", {"attention.sliding_window": 512, "attention.sliding_window_pattern": 5},
                 "pattern array", id="gemma4-integer-pattern"),
    pytest.param("granite_swa", {"attention.sliding_window": 512}, "pattern array", id="granite_swa-no-pattern"),
    pytest.param("cohere2moe", {}, "without attention.sliding_window", id="cohere2moe-no-window"),
    pytest.param("gemma2", {"attention.sliding_window_pattern": 1}, "no sliding-window layer", id="gemma2-pattern-1"),
    pytest.param("gemma4", {"attention.sliding_window": 512, "attention.sliding_window_pattern": [True, False] * 3,
                            "attention.shared_kv_layers": 5}, "fewer than 2 layers", id="gemma4-5-of-6-shared"),
    pytest.param("deepseek32", {"attention.indexer.key_length": 64}, "MLA keys", id="deepseek32-without-mla"),
    pytest.param("deepseek32", {"attention.key_length_mla": 64, "attention.value_length_mla": 32},
                 "indexer.key_length", id="deepseek32-without-indexer"),
])
def test_files_llama_cpp_will_not_run_have_no_number(arch, keys, why):
    """Required keys llama.cpp reads without a default (gemma4.cpp l.6, granite-swa.cpp l.17,
    cohere2moe.cpp l.13, deepseek32.cpp l.27-28: no model), deepseek32 without MLA (deepseek32.cpp
    l.60-62), an iSWA file with no SWA layer (llama-model.cpp l.2807: GGML_ASSERT) and a gemma4 with
    fewer than 2 layers holding K/V (l.2782: GGML_ASSERT) give no plan."""
    meta = {f"{arch}.{k}": v for k, v in {"block_count": 6, "embedding_length": 64, "attention.head_count": 2,
                                          **keys}.items()}
    shape = KvShape.from_metadata(meta, arch)
    assert isinstance(kv_plan(shape, 4096), KvUnknown) and why in shape.reason, shape.reason


def test_rwkv_without_its_head_size_is_unknown():
    """rwkv6/rwkv7 need wkv.head_size (src/models/rwkv7.cpp l.6: a required key): without it llama.cpp
    loads nothing, so the plan has no number rather than a state of 0 bytes."""
    meta = {"rwkv7.block_count": 4, "rwkv7.embedding_length": 64}
    assert isinstance(kv_plan(KvShape.from_metadata(meta, "rwkv7"), 4096), KvUnknown)
    meta["rwkv7.wkv.head_size"] = 32
    plan = kv_plan(KvShape.from_metadata(meta, "rwkv7"), 4096)
    assert plan.total == 4 * (2 * 64 + 64 * 32) * 4       # 4 layers of f32 R (2 x n_embd) + S (n_embd x 32)


@pytest.mark.slow
@pytest.mark.parametrize("flags", [pytest.param([], id="file"),
                                   pytest.param(["--rope-scaling", "yarn", "--rope-scale", "4", "--ctx", "16384"],
                                                id="yarn-4x")])
@pytest.mark.parametrize("mid", [m[0] for m in MODELS])
def test_verify_passes_on_every_family(models, cpu_build, mid, flags):
    """Every tiny model of the table, as llama.cpp loads it, agrees with ggufrope's reading on every
    value verify compares, with and without YaRN flags. This found granitehybrid's RoPE switch
    (rope.scaling.finetuned absent means true, src/models/granite-hybrid.cpp l.16-20), that
    n_layer() leaves out MTP layers (glm4moe, bailingmoe2; llama-hparams.cpp l.348-350) and that
    layer 0's head size is an SWA layer's on gemma4 (llama-hparams.cpp l.140-154)."""
    import json
    from conftest import REAL_HOME, run_cli
    r = run_cli("verify", models[mid], "--json", *flags, env_extra={"GGUFROPE_HOME": REAL_HOME})
    rep = json.loads(r.stdout)
    assert r.returncode == 0 and rep["ok"], [row for row in rep["rows"] if not row["ok"]]
    assert all(row["reported"] for row in rep["rows"])


def _totals_cell(plan) -> str:
    parts = [f"{c.layers} layers x {c.cells} seq" if c.name == "recurrent" else f"{c.layers}x{c.cells * c.streams}"
             for c in plan.caches]
    return f"{' + '.join(parts)} = {plan.total / MIB:.3f} MiB"


def totals_table(models: dict[str, str]) -> str:
    """docs/architectures.md's table of planner totals (each checked against llama.cpp above)."""
    lines = ["| model | 32768 | 16384, -np 4 | 16384, -np 4 -kvu |", "|---|---|---|---|"]
    for mid, _, _ in MODELS:
        k = read_model_facts(models[mid]).kv
        cells = [_totals_cell(kv_plan(k, n, **kw)) for n, kw in
                 ((32768, {}), (16384, {"n_seq": 4}), (16384, {"n_seq": 4, "unified": True}))]
        lines.append(f"| {mid} | {' | '.join(cells)} |")
    return "\n".join(lines)


def test_docs_totals_table_is_the_planners(models):
    from conftest import REPO
    import os
    with open(os.path.join(REPO, "docs", "architectures.md")) as f:
        doc = f.read()
    want = totals_table(models)
    assert want in doc, "docs/architectures.md's totals table is stale; it should read:\n" + want
