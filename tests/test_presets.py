"""Presets: strict loading, precedence with provenance, checks, engine projections, and
`--dry-run` for every built-in preset. Tiny models written by the tests; no llama.cpp runs."""
from __future__ import annotations

import json
import os
import shlex
import tomllib

import pytest

from conftest import run_cli
from ggufrope.errors import PresetError
from ggufrope.presets import Override, load, load_preset, schema
from ggufrope.presets.memory import Budget
from ggufrope.presets.prepare import prepare
from ggufrope.presets.toml_write import preset_text

BIG = Budget(64 << 30, "test")


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    """User presets in tmp (GGUFROPE_CONFIG moves them), and no GGUFROPE_* field variables."""
    cfg = tmp_path / "config"
    monkeypatch.setenv("GGUFROPE_CONFIG", str(cfg))
    for var in list(os.environ):
        if var in schema.BY_ENV:
            monkeypatch.delenv(var)
    return cfg


def user_preset(cfg, name: str, text: str) -> str:
    d = cfg / "presets"
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{name}.toml"
    p.write_text(text)
    return str(p)


def env(**kw) -> dict:
    e = dict(os.environ)
    e.update(kw)
    return e


# -- precedence -------------------------------------------------------------------------------

def test_precedence_defaults_chain_env_cli_with_origins(_config, tiny_model):
    base = user_preset(_config, "base", 'model = "/nowhere.gguf"\nctx = 1024\ncache_type_k = "q8_0"\n'
                                        '[sampling]\ntemperature = 0.5\n')
    child = user_preset(_config, "child", 'extends = "base"\n\nctx = 2048\n[sampling]\ntop_k = 7\n')
    e = env(GGUFROPE_CTX="3072", GGUFROPE_SAMPLING_TOP_K="9")
    p = load_preset("child", e, [Override("ctx", "4096", "--ctx"), Override.parse_set("sampling.temperature=0.1")])
    r = p.res
    assert (p.ctx, p.cache_type_k, p.sampling.top_k, p.sampling.temperature, p.cache_type_v) == \
        (4096, "q8_0", 9, 0.1, "f16")
    assert str(r.origin("ctx")) == "--ctx"
    assert str(r.origin("cache_type_k")) == f"{base}:3"
    assert str(r.origin("sampling.top_k")) == "GGUFROPE_SAMPLING_TOP_K"
    assert str(r.origin("sampling.temperature")) == "--set sampling.temperature"
    assert r.origin("cache_type_v").kind == "default"
    # without env and CLI, the child's own line wins over the base
    p2 = load_preset("child", dict(os.environ))
    assert p2.ctx == 2048 and str(p2.res.origin("ctx")) == f"{child}:3"
    assert r.layers == ("built-in defaults", f"preset base ({base})", f"preset child ({child})",
                        "environment", "command line")


def test_user_preset_shadows_and_extends_builtin_of_same_name(_config):
    user_preset(_config, "demo", 'extends = "demo"\nctx = 1024\n')
    p = load_preset("demo", dict(os.environ))
    assert p.ctx == 1024 and p.cache_type_k == "q8_0"      # q8_0 from the built-in demo
    assert [f.origin for f in p.res.chain] == ["builtin", "user"]


def test_presets_show_says_where_each_value_came_from(_config):
    path = user_preset(_config, "mine", 'extends = "demo"\n\n[sampling]\ntemperature = 0.7\n')
    r = run_cli("presets", "show", "mine", "--ctx", "2048", env_extra={"GGUFROPE_CACHE_TYPE_V": "q4_0"}, check=True)
    rows = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.startswith("  ")}
    assert rows["ctx"].split()[1:] == ["2048", "--ctx"]
    assert rows["cache_type_v"].split()[1:] == ["q4_0", "GGUFROPE_CACHE_TYPE_V"]
    assert rows["sampling.temperature"].split()[1:] == ["0.7", f"{path}:4"]
    assert rows["rope.plan"].split()[1] == "yarn:32768" and "presets/demo.toml:" in rows["rope.plan"]
    assert rows["threads"].split()[1:] == ["auto", "default"]
    js = json.loads(run_cli("presets", "show", "mine", "--json", check=True).stdout)
    assert js["fields"]["sampling.temperature"] == {"value": 0.7, "from": f"{path}:4", "kind": "preset"}


# -- the bad-preset table: every broken preset names file, line and field ---------------------

BAD = [
    pytest.param('ctx = 4096\n[sampling]\ntemprature = 0.2\n', {}, [":3: sampling.temprature: unknown field "
                 "'temprature' in [sampling] (did you mean 'sampling.temperature'?)"], id="unknown-key-in-table"),
    pytest.param('cache_typ_k = "q8_0"\n', {}, [":1: cache_typ_k: unknown field 'cache_typ_k' "
                                                "(did you mean 'cache_type_k'?)"], id="unknown-key"),
    pytest.param('\n\ntemperature = 0.2\n', {}, [":3: temperature: unknown field 'temperature' "
                                                 "(did you mean 'temperature' in [sampling]?)"], id="key-in-wrong-table"),
    pytest.param('ctx = "lots"\n', {}, [':1: ctx: expected integer or "auto", not \'lots\''], id="wrong-type-ctx"),
    pytest.param('model = "M"\n[server]\nport = "eighty"\n', {}, [":3: server.port: expected integer or"],
                 id="wrong-type-port"),
    pytest.param('flash_attn = "maybe"\n', {}, [":1: flash_attn: expected one of auto, on, off, not 'maybe'"],
                 id="wrong-choice"),
    pytest.param('[rope]\nscaling_type = "yarm"\n', {}, [":2: rope.scaling_type: expected one of none, linear, "
                                                         "yarn, longrope, not 'yarm' (did you mean 'yarn'?)"],
                 id="wrong-rope-type"),
    pytest.param('[rope]\nplan = "yarn"\n', {}, [':2: rope.plan: expected "METHOD:TOKENS"'], id="bad-plan"),
    pytest.param('[rope]\nscaling_factor = -4.0\n', {"model": "M"}, [":2: rope.scaling_factor: "
                                                                     "rope.scaling.factor must be a positive number"],
                 id="negative-factor"),
    pytest.param('description = "no model"\nmodel_hint = "SomeModel-7B GGUF"\n', {},
                 ["model: preset 'bad' has no model. It is written for SomeModel-7B GGUF. Give the GGUF file: "
                  "`--model PATH`"], id="missing-model"),
    pytest.param('model = "/nonexistent/dir/m.gguf"\n', {}, [":1: model: /nonexistent/dir/m.gguf: no such file"],
                 id="model-not-found"),
    pytest.param('model = "NOTGGUF"\n', {}, [":1: model: ", "not a usable GGUF file"], id="model-not-gguf"),
    pytest.param('model = "M"\ncache_type_v = "q4_0"\nflash_attn = "off"\n', {},
                 [":3: flash_attn: cache_type_v q4_0 is quantized, and llama.cpp needs flash attention"],
                 id="quantized-v-without-fa"),
    pytest.param('model = "M48"\ncache_type_k = "q8_0"\n', {},
                 [":2: cache_type_k: K cache type q8_0 with block size 32 does not divide n_embd_head_k=48"],
                 id="kv-block-vs-head-dim"),
    pytest.param('model = "M"\ncache_type_k = "q8_0"\ncache_type_v = "q4_0"\n[build]\nbackend = "cuda"\n', {},
                 ["build.kv_pairs (built-in default): the CUDA build this preset asks for has no flash-attention "
                  "kernels for K q8_0 / V q4_0", 'build.kv_pairs = ["q8_0-q4_0"]'], id="cuda-fa-pair-missing"),
    pytest.param('model = "M"\nctx = 1000000\n[memory]\nheadroom_mib = 0\n', {"meminfo": 64},
                 [":2: ctx: ctx 1000000 does not fit: ", "of 64.0 MiB free RAM", "the largest that fits is"],
                 id="ctx-cannot-fit"),
    pytest.param('model = "M"\n[memory]\nheadroom_mib = 4096\n', {"meminfo": 64},
                 ["ctx (built-in default): not even 256 tokens fit"], id="auto-ctx-nothing-fits"),
    pytest.param('extends = "no-such-preset"\n', {}, [":1: extends: no preset named 'no-such-preset'"],
                 id="unknown-extends"),
    pytest.param('ctx = 4096\nctx = 8192\n', {}, ["invalid TOML", "line 2"], id="invalid-toml"),
]


@pytest.mark.parametrize("text, opts, expected", BAD)
def test_bad_presets_name_file_line_field(tmp_path, tiny_model, text, opts, expected):
    m = tiny_model()
    text = text.replace('"M48"', json.dumps(tiny_model(head_dim=48, n_head=2))).replace('"M"', json.dumps(m))
    notgguf = tmp_path / "notgguf.gguf"
    notgguf.write_text("hello, not a model\n")
    text = text.replace('"NOTGGUF"', json.dumps(str(notgguf)))
    path = tmp_path / "bad.toml"
    path.write_text(text)
    extra = {}
    if "meminfo" in opts:
        mi = tmp_path / "meminfo"
        mi.write_text(f"MemTotal: 1000 kB\nMemAvailable: {opts['meminfo'] * 1024} kB\n")
        extra["GGUFROPE_MEMINFO"] = str(mi)
    r = run_cli("presets", "check", "--preset-file", str(path), env_extra=extra)
    assert r.returncode == 10, r.stderr
    msg = r.stderr.strip()
    assert msg.startswith(f"ggufrope: error: {path}"), msg
    for e in expected:
        assert e in msg, msg


def test_bad_values_from_env_and_command_line_name_their_source(_config):
    with pytest.raises(PresetError, match=r"^GGUFROPE_CTX: ctx: expected integer or \"auto\", not 'big'"):
        load_preset("demo", env(GGUFROPE_CTX="big"))
    with pytest.raises(PresetError, match=r"^--set sampling.temprature: unknown field 'temprature' in \[sampling\] "
                                          r"\(did you mean 'sampling.temperature'\?\)"):
        load_preset("demo", dict(os.environ), [Override.parse_set("sampling.temprature=1")])
    with pytest.raises(PresetError, match=r"^--set parallel: expected integer or \"auto\", not 'abc'$"):
        load_preset("demo", dict(os.environ), [Override.parse_set("parallel=abc")])  # the field named once
    with pytest.raises(PresetError, match=r"no preset named 'dmeo' \(did you mean 'demo'\?\)"):
        load_preset("dmeo", dict(os.environ))


def test_extends_loop_is_refused(_config):
    a = user_preset(_config, "a", 'extends = "b"\n')
    user_preset(_config, "b", '\nextends = "a"\n')
    with pytest.raises(PresetError, match="extends: extends loop: a -> b -> a"):
        load_preset("a", dict(os.environ))
    assert a


# -- checks and projections -------------------------------------------------------------------

def prep_for(tiny_path, text: str, overrides=(), bud=BIG, tmp=None, **kw):
    path = os.path.join(tmp, "p.toml")
    with open(path, "w") as f:
        f.write(f"model = {json.dumps(tiny_path)}\n" + text)
    p = load_preset(None, dict(os.environ), list(overrides), preset_file=path)
    return prepare(p, dict(os.environ), bud=bud, **kw)


def test_auto_ctx_is_the_largest_that_fits_capped_at_the_scaled_context(tmp_path, tiny_model):
    m = tiny_model(n_ctx=256)
    # YaRN x8 from 256: reaches 2048; plenty of memory -> the cap
    prep = prep_for(m, '[rope]\nplan = "yarn:2048"\n', tmp=str(tmp_path))
    assert prep.n_ctx == 2048 and prep.ctx_cap == 2048
    assert prep.projection.want.scaling_type == "yarn" and prep.projection.want.scaling_factor == 8.0
    # little memory: the largest multiple of 256 whose plan fits
    from ggufrope.presets import memory
    kv_per_cell = prep.model.info.kv_cache_bytes(256, "f16") // 256   # n_ctx pads to 256 cells, as in llama.cpp
    small = Budget(prep.mem.weights + prep.mem.compute + 1000 * kv_per_cell, "test")
    prep2 = prep_for(m, '[rope]\nplan = "yarn:2048"\n[memory]\nheadroom_mib = 0\n', tmp=str(tmp_path), bud=small)

    def fits(n):
        shape = memory.Shape(prep.model.n_vocab, prep.model.n_ff)
        return memory.plan(prep.model.info, shape, prep.model.weights_bytes, n, "f16", "f16", flash_attn=True,
                           n_ubatch=512, bud=small, on_gpu=False, gpu_fraction=1.0, headroom=0).fits
    assert 256 <= prep2.n_ctx < 2048 and prep2.n_ctx % 256 == 0
    assert fits(prep2.n_ctx) and not fits(prep2.n_ctx + 256)
    assert any(f.field == "ctx" and f"auto -> {prep2.n_ctx}" in f.message for f in prep2.findings)


def test_ctx_beyond_trained_without_scaling_is_flagged(tmp_path, tiny_model):
    prep = prep_for(tiny_model(n_ctx=256), "ctx = 1024\n", tmp=str(tmp_path))
    w = [f for f in prep.findings if f.level == "warning"]
    assert len(w) == 1 and w[0].field == "ctx" and "beyond the trained context 256" in w[0].message
    assert 'rope.plan = "yarn:1024"' in w[0].message
    # the context_length cap is lifted for llama-server (no yarn flags do it here); the original
    # context is pinned so the override does not move llama.cpp's n_ctx_orig_yarn (kwargs agree)
    assert prep.projection.rope_flags() == ["--yarn-orig-ctx", "256", "--override-kv", "llama.context_length=int:1024"]
    assert prep.to_llama_cpp_kwargs()["yarn_orig_ctx"] == 256


def test_quantized_v_turns_auto_flash_attention_on(tmp_path, tiny_model):
    prep = prep_for(tiny_model(), 'cache_type_k = "q8_0"\ncache_type_v = "q4_0"\n', tmp=str(tmp_path))
    assert prep.flash_attn == "on"
    args = prep.to_llama_args("llama-cli")
    assert args[args.index("-ctk") + 1] == "q8_0" and args[args.index("-ctv") + 1] == "q4_0"
    assert args[args.index("-fa") + 1] == "on"


def test_runtime_yarn_flags_and_python_kwargs_are_explicit(tmp_path, tiny_model):
    m = tiny_model(n_ctx=256)
    prep = prep_for(m, 'ctx = 1024\nthreads = 1\n[rope]\nscaling_type = "yarn"\nscaling_factor = 4.0\n'
                       'yarn_beta_fast = 16.0\n[sampling]\nseed = 3\n', tmp=str(tmp_path))
    args = prep.to_llama_args("llama-completion")
    assert args[:4] == ["-m", m, "-c", "1024"]
    assert shlex.join(args[4:12]) == "--rope-scaling yarn --rope-scale 4 --yarn-beta-fast 16 -ctk f16"
    assert "--override-kv" not in args   # runtime yarn lifts n_ctx_train itself
    kw = prep.to_llama_cpp_kwargs()
    # llama-cpp-python's own defaults would override the file: every value is given
    assert kw["rope_scaling_type"] == 2 and kw["rope_freq_scale"] == 0.25 and kw["yarn_orig_ctx"] == 256
    assert (kw["yarn_beta_fast"], kw["yarn_beta_slow"], kw["yarn_ext_factor"], kw["yarn_attn_factor"]) == \
        (16.0, 1.0, -1.0, 1.0)
    assert kw["rope_freq_base"] == 10000.0 and kw["flash_attn"] is True and kw["type_k"] == 1
    assert kw["n_threads"] == 1 and kw["seed"] == 3 and kw["n_ctx"] == 1024


def test_patched_apply_writes_read_keys_to_the_copy_and_flags_the_rest(tmp_path, tiny_model):
    m = tiny_model(n_ctx=256)
    prep = prep_for(m, 'apply = "patched"\nctx = 1024\n[rope]\nscaling_type = "yarn"\nscaling_factor = 4.0\n'
                       'yarn_beta_fast = 16.0\n', tmp=str(tmp_path))
    assert prep.needs_patch and prep.run_model.startswith(os.environ["GGUFROPE_HOME"])
    # what the patch writes, decided by the projection: context_length from the factor, the original pinned
    assert prep.projection.file_part.as_dict() == {"scaling_type": "yarn", "scaling_factor": 4.0, "context_length": 1024,
                                        "original_context_length": 256}
    # llama.cpp does not read yarn_beta_fast from a llama file: it stays a runtime flag
    assert prep.projection.rope_flags() == ["--yarn-beta-fast", "16"]
    from ggufrope.gguf import read_header
    from ggufrope.presets.prepare import write_patched_copy
    out = write_patched_copy(prep)
    with read_header(out) as h:
        assert h.get("llama.rope.scaling.type") == "yarn" and h.get("llama.context_length") == 1024
        assert h.get("llama.rope.scaling.original_context_length") == 256
    # the second time the copy is there and reused
    prep2 = prep_for(m, 'apply = "patched"\nctx = 1024\n[rope]\nscaling_type = "yarn"\nscaling_factor = 4.0\n'
                        'yarn_beta_fast = 16.0\n', tmp=str(tmp_path))
    assert prep2.run_model == out and not prep2.needs_patch


def test_split_model_glob_selects_the_first_part(tmp_path, tiny_model):
    import shutil
    m = tiny_model()
    for i in (1, 2):
        shutil.copy(m, tmp_path / f"big-0000{i}-of-00002.gguf")
    prep = prep_for(str(tmp_path / "big-*-of-00002.gguf"), "", tmp=str(tmp_path))
    assert prep.model.path == str(tmp_path / "big-00001-of-00002.gguf") and prep.model.split


# -- --dry-run for every built-in preset ---------------------------------------------------------

EXPECT_ROPE = {
    "demo": "--rope-scaling yarn --rope-scale 128 --yarn-orig-ctx 256",   # plan yarn:32768 on a 256-token model
    "llama-2-7b-yarn-16k": "--rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 4096",
    "mistral-7b-ntk-16k": "--rope-scaling none --rope-freq-base 20221.262 --yarn-orig-ctx 8192 "
                          "--override-kv llama.context_length=int:16384",
    "qwen2.5-7b-yarn-128k": "--rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 32768",
    "llama-3.1-8b-128k": "--yarn-orig-ctx 256 --override-kv llama.context_length=int:131072",
    "phi-3-mini-128k": "--yarn-orig-ctx 256 --override-kv llama.context_length=int:131072",
}
BUILTINS = sorted(load.available({"GGUFROPE_CONFIG": "/nonexistent"}))


def test_every_builtin_is_listed():
    assert len(BUILTINS) == 16 and "demo" in BUILTINS
    for base in ("llama-3.1-8b-128k", "llama-2-7b-yarn-16k", "mistral-7b-ntk-16k", "qwen2.5-7b-yarn-128k",
                 "phi-3-mini-128k"):
        assert {base, f"{base}-kv-q8", f"{base}-kv-q4"} <= set(BUILTINS)


@pytest.mark.parametrize("name", BUILTINS)
def test_dry_run_argv_for_every_builtin(name, tiny_model):
    m = tiny_model(n_ctx=256)
    r = run_cli("run", name, "--model", m, "--prompt", "hello there", "--dry-run", check=True)
    argv = shlex.split(r.stdout.strip())
    assert os.path.basename(argv[0]) == "llama-completion"
    p = load_preset(name, dict(os.environ))
    ctx = 32768 if p.ctx == "auto" else p.ctx
    assert argv[1:5] == ["-m", m, "-c", str(ctx)]
    base = next(b for b in EXPECT_ROPE if name == b or name.startswith(b + "-kv"))
    rope = EXPECT_ROPE[base].split()
    assert argv[5:5 + len(rope)] == rope, r.stdout
    rest = argv[5 + len(rope):]
    kv = {"-kv-q8": "q8_0", "-kv-q4": "q4_0"}.get(name[-6:], p.cache_type_k)
    assert rest[:6] == ["-ctk", kv, "-ctv", kv, "-fa", "on" if kv != "f16" else "auto"]
    assert rest[-3:] == ["-p", "hello there", "-no-cnv"]   # the tiny model has no chat template
    # without a model the built-ins say what they want
    if name != "demo":
        r2 = run_cli("run", name, "--prompt", "x", "--dry-run")
        assert r2.returncode == 10
        assert f"preset {name!r} has no model. It is written for" in r2.stderr and "--model PATH" in r2.stderr


def test_dry_run_demo_server_and_python(tiny_model):
    m = tiny_model(n_ctx=256)
    r = run_cli("serve", "demo", "--model", m, "--ctx", "1024", "--port", "8123", "--dry-run", check=True)
    argv = shlex.split(r.stdout.strip())
    assert os.path.basename(argv[0]) == "llama-server"
    assert argv[-6:] == ["--host", "127.0.0.1", "--port", "8123", "--alias", "demo"]
    r = run_cli("chat", "demo", "--model", m, "--ctx", "1024", "--dry-run", check=True)
    assert r.stdout.startswith(f"llama_cpp.Llama(model_path={m!r}, n_ctx=1024, rope_scaling_type=2, ")
    assert "yarn_beta_fast=32.0, yarn_beta_slow=1.0" in r.stdout and "flash_attn=True" in r.stdout
    # extra llama.cpp arguments after --
    r = run_cli("run", "demo", "--model", m, "--ctx", "1024", "--dry-run", "--", "--mlock", "-np", "2", check=True)
    assert shlex.split(r.stdout)[-3:] == ["--mlock", "-np", "2"]
    assert os.path.basename(shlex.split(r.stdout)[0]) == "llama-cli"


# -- new / export / import ---------------------------------------------------------------------

def test_presets_new_writes_a_plan_based_starter(_config, tiny_model):
    m = tiny_model(n_ctx=256)
    r = run_cli("presets", "new", "mytiny", "--model", m, "--ctx", "1024", check=True)
    path = _config / "presets" / "mytiny.toml"
    data = tomllib.loads(path.read_text())
    assert data["model"] == m and data["ctx"] == 1024
    assert data["rope"] == {"context_length": 1024, "scaling_type": "yarn", "scaling_factor": 4.0,
                            "original_context_length": 256}
    assert "wrote" in r.stdout
    r = run_cli("presets", "check", "mytiny", check=True)
    assert "mytiny: ok" in r.stdout


def test_toml_writer_round_trips():
    vals = {"description": 'quote " back\\slash\nnewline', "ctx": 4096, "extra_args": ["--mlock", "-np", "2"],
            "rope.scaling_factor": 4.0, "sampling.temperature": 0.25, "server.api_key": "$KEY", "apply": "patched"}
    data = tomllib.loads(preset_text(vals, header=["h"], comments={"ctx": "c"}, extends="demo"))
    assert data == {"extends": "demo", "description": vals["description"], "ctx": 4096, "apply": "patched",
                    "extra_args": ["--mlock", "-np", "2"], "rope": {"scaling_factor": 4.0},
                    "server": {"api_key": "$KEY"}, "sampling": {"temperature": 0.25}}


def test_export_llama_ini_and_import_back(tmp_path, _config, tiny_model):
    m = tiny_model(n_ctx=256)
    r = run_cli("presets", "export", "llama-2-7b-yarn-16k-kv-q8", "--model", m, "--to", "llama-ini", check=True)
    ini = r.stdout
    assert "[llama-2-7b-yarn-16k-kv-q8]" in ini
    kv = dict(ln.split(" = ", 1) for ln in ini.splitlines() if " = " in ln)
    kv = {k.strip(): v for k, v in kv.items()}
    assert kv["model"] == m and kv["ctx-size"] == "16384" and kv["rope-scaling"] == "yarn"
    assert kv["rope-scale"] == "4" and kv["yarn-orig-ctx"] == "4096" and kv["cache-type-v"] == "q8_0"
    assert kv["temp"] == "0.6" and kv["flash-attn"] == "on" and "port" not in kv
    f = tmp_path / "mine.ini"
    f.write_text(ini.replace("version = 1\n", "version = 1\n[*]\nmmap = 1\nparallel = 2  ; two slots\n"))
    run_cli("presets", "import", str(f), check=True)
    p = load_preset("llama-2-7b-yarn-16k-kv-q8", dict(os.environ))   # the imported one shadows the built-in
    assert p.res.chain[-1].origin == "user" and p.res.chain[0].name == "mine-base"
    assert (p.model, p.ctx, p.cache_type_k, p.flash_attn) == (m, 16384, "q8_0", "on")
    assert p.rope.as_dict() == {"scaling_type": "yarn", "scaling_factor": 4.0, "original_context_length": 4096}
    assert p.sampling.temperature == 0.6 and p.extra_args == ("--mmap",) and p.parallel == 2


def test_export_llama_swap_and_llama_cpp_python_server(tiny_model):
    m = tiny_model(n_ctx=256)
    r = run_cli("presets", "export", "qwen2.5-7b-yarn-128k-kv-q4", "--model", m, "--to", "llama-swap", check=True)
    assert 'models:\n  "qwen2.5-7b-yarn-128k-kv-q4":\n    cmd: |\n' in r.stdout
    assert "      --port ${PORT}\n" in r.stdout and "      --rope-scaling yarn\n" in r.stdout
    r = run_cli("presets", "export", "qwen2.5-7b-yarn-128k-kv-q4", "--model", m, "--to", "llama-cpp-server",
                check=True)
    cfg = json.loads(r.stdout)
    e = cfg["models"][0]
    assert e["model"] == m and e["model_alias"] == "qwen2.5-7b-yarn-128k-kv-q4" and e["n_ctx"] == 131072
    assert (e["rope_scaling_type"], e["rope_freq_scale"], e["yarn_orig_ctx"], e["type_k"], e["type_v"]) == \
        (2, 0.25, 32768, 2, 2)
    assert e["yarn_beta_fast"] == 32.0 and e["flash_attn"] is True
    # every key is a field of llama-cpp-python's server settings (read from its source: the server
    # extra's dependencies, pydantic-settings among them, are not installed here)
    import ast
    import importlib.util
    src = open(os.path.join(os.path.dirname(importlib.util.find_spec("llama_cpp").origin), "server", "settings.py")).read()
    classes = {c.name: c for c in ast.walk(ast.parse(src)) if isinstance(c, ast.ClassDef)}

    def names(cls):
        return {a.target.id for a in classes[cls].body if isinstance(a, ast.AnnAssign)}
    assert set(e) <= names("ModelSettings")
    assert set(cfg) - {"models"} <= names("ServerSettings")


def test_list_shows_builtins_and_user_presets(_config):
    user_preset(_config, "zzz-mine", 'description = "mine"\n')
    r = run_cli("presets", "list", check=True)
    assert "demo" in r.stdout and "zzz-mine" in r.stdout and "mine" in r.stdout
    assert str(_config / "presets") in r.stdout


def test_build_for_preset_asks_for_the_backend_and_fa_pairs(_config, llama_src):
    user_preset(_config, "gpu", 'extends = "demo"\ncache_type_v = "q4_0"\n[build]\nbackend = "cuda"\n'
                                'kv_pairs = ["q8_0-q4_0"]\n')
    r = run_cli("build", "--for-preset", "gpu", "--dry-run", env_extra={"LLAMA_CPP_DIR": llama_src}, check=True)
    configure = r.stdout.splitlines()[0]
    assert "-DGGML_CUDA=ON" in configure
    assert "-DGGML_CUDA_FA_QUANTS=bf16-bf16;f16-f16;q4_0-q4_0;q8_0-q4_0;q8_0-q8_0" in configure


def test_memory_world_is_injected():
    import subprocess

    from ggufrope.presets import memory
    assert memory.parse_meminfo("MemTotal: 100 kB\nMemAvailable:    2048 kB\n") == 2 * 1024 * 1024
    calls = []

    def smi(argv, **kw):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "8000\n24000\n", "")
    free, src = memory.read_vram(runner=smi, which=lambda name: "/usr/bin/" + name)
    assert free == (8000 << 20, 24000 << 20) and calls[0][1] == "--query-gpu=memory.free"
    assert memory.read_vram(runner=smi, which=lambda name: None) == ((), "no nvidia-smi")
    bud = memory.budget({"GGUFROPE_MEMINFO": "/nonexistent"}, runner=smi, which=lambda n: "/x/" + n)
    assert bud.ram_available is None and bud.has_gpu


def test_gpu_plan_counts_vram(tmp_path, tiny_model):
    from ggufrope.presets.memory import Budget
    m = tiny_model()
    bud = Budget(64 << 30, "ram", (64 << 10,), "vram")      # 64 KiB of VRAM: nothing fits on the GPU
    with pytest.raises(PresetError, match="not even 256 tokens fit: .* free VRAM"):
        prep_for(m, '[build]\nbackend = "cuda"\n[memory]\nheadroom_mib = 0\n', tmp=str(tmp_path), bud=bud)
    # no GPU layers: the plan is against RAM
    prep = prep_for(m, 'n_gpu_layers = 0\n[build]\nbackend = "cuda"\n', tmp=str(tmp_path), bud=bud)
    assert prep.mem.device == "RAM" and prep.mem.fits


def test_missing_build_is_built_with_progress(_config, monkeypatch, tmp_path):
    """No finished build for the preset: locate() builds the preset's spec (the real build is
    replaced here; tests/test_sessions.py runs the real binaries)."""
    from ggufrope.build import builder, source
    from ggufrope.presets import binaries
    calls = {}

    def fake_build(spec, src, env, progress=None, log=None, smoke=None, **kw):
        calls.update(spec=spec, progress=progress, smoke=smoke)
        progress(1, 2, "compiling")
        return builder.BuildResult(str(tmp_path), str(tmp_path / "bin"), spec, src,
                                   {"llama-server": str(tmp_path / "bin" / "llama-server")}, 1.0, False)
    monkeypatch.setattr(builder, "build", fake_build)
    src = source.SourceInfo("/src/llama.cpp", "abc1234", "0", True, "tree")
    monkeypatch.setattr(source, "resolve_source", lambda explicit, env, log=None: src)
    user_preset(_config, "gpu", 'extends = "demo"\n[build]\nbackend = "cuda"\nkv_pairs = ["q8_0-q4_0"]\n')
    p = load_preset("gpu", dict(os.environ))
    seen = []
    b = binaries.locate(p, dict(os.environ), "llama-server", progress=lambda n, m, what: seen.append((n, m)))
    assert calls["spec"].backend == "cuda" and calls["spec"].kv_pairs == ("q8_0-q4_0",)
    assert calls["smoke"] is not None and seen == [(1, 2)]
    assert b.tool("llama-server") == str(tmp_path / "bin" / "llama-server")
    assert (b.source_dir, b.commit) == ("/src/llama.cpp", "abc1234")   # for the RPC workers' version check
    # a dry run never builds
    calls.clear()
    b = binaries.locate(p, dict(os.environ), "llama-server", build=False)
    assert not b.built and calls == {} and binaries.tool_argv0(b, "llama-server") == "llama-server"
