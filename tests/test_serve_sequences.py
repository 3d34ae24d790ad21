"""Sequences (parallel / kv_unified / swa_full): the memory plan of a served preset is the memory
llama-server allocates. llama-server's -np auto is 4 slots in one unified KV buffer, which makes a
sliding-window cache 4 windows wide; the plan must say so, and the flags must reach llama-server.
Held against the `llama_kv_cache: size = ...` lines of a real llama-server started by `serve`."""
from __future__ import annotations

import os
import re
import shlex

import pytest

from conftest import run_cli, serve_once
from ggufrope.build.tiny_model import write_tiny_family

MIB = 1 << 20
KV_LINE = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers, +(\d+)/(\d+) seqs\)")


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch, cpu_build):
    monkeypatch.setenv("GGUFROPE_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("GGUFROPE_BUILD_BIN_DIR", cpu_build.bin_dir)


@pytest.fixture
def gemma3(tmp_path) -> str:
    """6 layers, 5 of them sliding-window (512), trained 32768."""
    return write_tiny_family(str(tmp_path / "g3.gguf"), "gemma3", n_layer=6, swa=512, n_ctx=32768)


def _preset_file(model: str, tmp_path, fields: str, fa: str = "on") -> str:
    f = tmp_path / "p.toml"
    f.write_text(f'model = "{model}"\nctx = 8192\nflash_attn = "{fa}"\nthreads = 1\n{fields}')
    return str(f)


def _prepared(model: str, tmp_path, fields: str, engine: str = "server", fa: str = "on"):
    from ggufrope.presets import load_preset, memory
    from ggufrope.presets.prepare import prepare
    f = _preset_file(model, tmp_path, fields, fa)
    p = load_preset(None, dict(os.environ), [], preset_file=f).with_engine(engine)
    return prepare(p, dict(os.environ), bud=memory.Budget(1 << 40, "test"))


def _serve_log(preset_file: str) -> str:
    """`ggufrope serve --preset-file F` until it is ready; llama-server's log."""
    serve_once("--preset-file", preset_file, "--port", "auto", "--", "-lv", "4")   # -lv 4: llama.cpp logs its caches
    logs = os.path.join(os.environ["GGUFROPE_HOME"], "logs")
    log, = [n for n in os.listdir(logs) if n.endswith(".llama-server.log")]
    with open(os.path.join(logs, log), errors="replace") as f:
        return f.read()


SERVED = [
    # (id, --set items, the planner's (cells per stream, layers, streams) for the full and the SWA cache)
    pytest.param([], [(8192, 1, 1), (2560, 5, 1)], id="auto-4-unified"),
    pytest.param(["parallel=2", "kv_unified=off"], [(4096, 1, 2), (1024, 5, 2)], id="np2-split"),
    pytest.param(["parallel=2", "kv_unified=on"], [(8192, 1, 1), (1536, 5, 1)], id="np2-unified"),
    pytest.param(["swa_full=true", "parallel=1"], [(8192, 1, 1), (8192, 5, 1)], id="np1-swa-full"),
]


@pytest.mark.slow
@pytest.mark.parametrize("sets,want", SERVED)
def test_served_kv_cache_is_the_planned_one(gemma3, tmp_path, sets, want):
    fields = "".join(f"{s.split('=')[0]} = {_toml(s.split('=')[1])}\n" for s in sets)
    caches = _prepared(gemma3, tmp_path, fields).mem.kv_detail.caches
    assert [(c.cells, c.layers, c.streams) for c in caches] == want
    log = _serve_log(_preset_file(gemma3, tmp_path, fields))
    lines = KV_LINE.findall(log)
    assert len(lines) == 2, log[-3000:]
    for c, (mib, cells, layers, seqs, streams) in zip(caches, lines):
        assert (c.cells, c.layers, c.streams) == (int(cells), int(layers), int(streams)), (c, lines)
        assert abs(c.total / MIB - float(mib)) <= max(0.01 * float(mib), 0.006)


BUFFER_LINE = re.compile(r"CPU +(compute|output) buffer size = +([\d.]+) MiB")


@pytest.mark.slow
@pytest.mark.parametrize("fields,fa", [
    pytest.param("", "on", id="auto-4-unified-fa"),
    pytest.param("", "off", id="auto-4-unified-nofa"),
    pytest.param('parallel = 4\nkv_unified = "off"\n', "off", id="np4-split-nofa"),
    pytest.param('parallel = 3\nkv_unified = "off"\n', "on", id="np3-split-fa"),
])
def test_served_compute_buffer_is_the_planned_one(smollm2, tmp_path, fields, fa):
    """llama-server reserves logits for one token per slot (not the whole batch, as llama-cli does),
    and split slots attend to their own stream's cells: the plan's compute figure is the server's
    compute + output buffers (SmolLM2 at 8192; without flash attention 46 MiB split vs 166 MiB)."""
    planned = _prepared(smollm2, tmp_path, fields, fa=fa).mem.compute / MIB
    got = sum(float(mib) for _, mib in BUFFER_LINE.findall(_serve_log(_preset_file(smollm2, tmp_path, fields, fa))))
    assert got and abs(planned - got) <= 0.01 * got, (planned, got)


def _toml(v: str) -> str:
    return v if v in ("true", "false") or v.isdigit() else f'"{v}"'


def test_sequence_flags_reach_llama_server_and_not_llama_cli(gemma3, tmp_path):
    base = ["serve", "demo", "--model", gemma3, "--ctx", "8192", "--port", "auto", "--dry-run"]
    auto = shlex.split(run_cli(*base, check=True).stdout)
    assert not {"-np", "-kvu", "-no-kvu", "--swa-full"} & set(auto)      # llama-server's own default
    split = shlex.split(run_cli(*base, "--set", "parallel=3", "--set", "kv_unified=off", "--set", "swa_full=true",
                                check=True).stdout)
    assert split[split.index("-np") + 1] == "3" and "-no-kvu" in split and "--swa-full" in split
    off = shlex.split(run_cli(*base, "--set", "kv_unified=off", check=True).stdout)
    assert off[off.index("-np") + 1] == "4" and "-no-kvu" in off        # auto slots, split buffer
    cli = shlex.split(run_cli("run", "demo", "--model", gemma3, "--ctx", "8192", "--set", "parallel=3",
                              "--set", "swa_full=true", "--dry-run", check=True).stdout)
    assert "-np" not in cli and "--swa-full" in cli


def test_plan_notes_for_slots_and_options_in_extra_args(gemma3, tmp_path):
    prep = _prepared(gemma3, tmp_path, 'parallel = 4\nkv_unified = "off"\nextra_args = ["-np", "2"]\n')
    msgs = [f.message for f in prep.findings]
    assert "4 slots without a unified KV buffer: each gets 2048 of the 8192 tokens" in msgs
    assert "-np in extra_args: the memory plan does not see it; set parallel instead" in msgs
    assert "4 sequences" in prep.mem.summary()
    cli = _prepared(gemma3, tmp_path, "parallel = 4\n", engine="cli")
    assert [c.streams for c in cli.mem.kv_detail.caches] == [1, 1]      # llama-cli decodes one sequence
    assert any("applies to llama-server" in f.message for f in cli.findings)


def test_python_engine_gets_swa_full(gemma3, tmp_path):
    kw = _prepared(gemma3, tmp_path, "swa_full = true\n", engine="python").to_llama_cpp_kwargs()
    assert kw["swa_full"] is True


@pytest.mark.parametrize("ini,want", [
    pytest.param("np = 2\nkv-unified = false\nswa-full = true\n", {"parallel": 2, "kv_unified": "off",
                                                                  "swa_full": True}, id="keys"),
    pytest.param("parallel = -1\nno-kv-unified = true\n", {"parallel": "auto", "kv_unified": "off"}, id="negated"),
])
def test_llama_ini_sequence_keys_import_as_fields(tmp_path, ini, want):
    from ggufrope.presets.importer import parse_ini, section_values
    sec, = parse_ini(f"[m]\nmodel = /x.gguf\n{ini}", "p.ini")
    values, extra, _ = section_values(sec, "p.ini")
    assert {k: values[k] for k in want} == want and extra == []


def test_export_writes_sequence_keys_llama_server_reads(gemma3, tmp_path):
    from ggufrope.presets.export import to_llama_ini
    text = to_llama_ini(_prepared(gemma3, tmp_path, 'parallel = 2\nkv_unified = "off"\nswa_full = true\n'))
    assert re.search(r"^parallel += 2$", text, re.M) and re.search(r"^kv-unified += false$", text, re.M)
    assert re.search(r"^swa-full += true$", text, re.M)
