"""The `presets` options no other test ran end to end: show --model/--cache-type-k/-v/--all,
check --cache-type-k/-v/--json, new --method/--cache-type/-o/--force, export --cache-type-k/-v/--set,
import --section/--force. Tiny random-weight models; nothing is started."""
from __future__ import annotations

import json
import os
import tomllib

import pytest

from conftest import run_cli

# bytes per cached element (ggml: f16 2 bytes; q8_0 34 bytes / 32; q4_0 18 bytes / 32)
KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    cfg = tmp_path / "config"
    monkeypatch.setenv("GGUFROPE_CONFIG", str(cfg))
    return cfg


def _fields(r) -> dict[str, tuple[str, str]]:
    """`presets show`'s table: field -> (value, from)."""
    out = {}
    for ln in r.stdout.splitlines()[4:]:
        parts = ln.split()
        if len(parts) >= 3 and not ln.startswith("("):
            out[parts[0]] = (" ".join(parts[1:-1]), parts[-1])
    return out


def test_show_command_line_overrides_and_their_origin(tiny_model):
    m = tiny_model(n_ctx=256)
    r = run_cli("presets", "show", "demo", "--model", m, "--cache-type-k", "q4_0", "--cache-type-v", "f16",
                check=True)
    f = _fields(r)
    assert f["model"] == (m, "--model")
    assert f["cache_type_k"] == ("q4_0", "--cache-type-k") and f["cache_type_v"] == ("f16", "--cache-type-v")
    assert f["n_predict"][0] == "64" and f["n_predict"][1].endswith("presets/demo.toml:14")
    # fields left unset are hidden without --all
    assert "sampling.seed" not in f and "rope.freq_base" not in f
    js = json.loads(run_cli("presets", "show", "demo", "--model", m, "--cache-type-k", "q4_0", "--json",
                            check=True).stdout)["fields"]
    assert js["model"] == {"value": m, "from": "--model", "kind": "cli"}
    assert js["cache_type_k"]["value"] == "q4_0" and js["cache_type_v"]["value"] == "q8_0"


def test_show_all_lists_unset_fields():
    short = _fields(run_cli("presets", "show", "demo", check=True))
    full = _fields(run_cli("presets", "show", "demo", "--all", check=True))
    added = set(full) - set(short)
    assert {"sampling.seed", "rope.freq_base", "system_prompt", "server.api_key"} <= added
    assert all(full[k] == ("-", "default") for k in added), {k: full[k] for k in added}
    assert {k: full[k] for k in short} == short


@pytest.mark.parametrize("ctk,ctv", [("f16", "f16"), ("q8_0", "f16"), ("q4_0", "q4_0")],
                         ids=["f16", "q8-k", "q4-both"])
def test_check_json_cache_types_size_the_kv_cache(tiny_model, ctk, ctv):
    m = tiny_model(n_ctx=256)
    r = run_cli("presets", "check", "demo", "--model", m, "--ctx", "1024", "--cache-type-k", ctk,
                "--cache-type-v", ctv, "--json", check=True)
    doc = json.loads(r.stdout)
    assert doc["preset"] == "demo" and doc["model"] == m and doc["n_ctx"] == 1024
    assert doc["rope"] == {"context_length": 32768, "scaling_type": "yarn", "scaling_factor": 128.0,
                           "original_context_length": 256}
    mem = doc["memory"]
    # the tiny model caches 64 K and 64 V elements per token; 1024 tokens of them
    assert mem["kv_cache"] == 1024 * 64 * (KV_BYTES[ctk] + KV_BYTES[ctv])
    assert mem["total"] == mem["weights"] + mem["kv_cache"] + mem["compute_estimate"] and mem["fits"] is True
    text = run_cli("presets", "check", "demo", "--model", m, "--ctx", "1024", "--cache-type-k", ctk,
                   "--cache-type-v", ctv, check=True).stdout
    assert f"KV cache      {ctk}/{ctv}, flash attention on" in text


def test_check_refuses_an_unknown_cache_type(tiny_model):
    r = run_cli("presets", "check", "demo", "--model", tiny_model(n_ctx=256), "--cache-type-k", "q5_z", "--json")
    assert r.returncode == 10 and r.stdout == ""
    assert "q5_z" in r.stderr and "Traceback" not in r.stderr


def test_new_method_cache_type_output_and_force(tmp_path, tiny_model, _config):
    m = tiny_model(n_ctx=256)
    out = tmp_path / "out" / "mine.toml"
    r = run_cli("presets", "new", "mine", "--model", m, "--ctx", "1024", "--method", "linear", "--cache-type", "q4_0",
                "-o", str(out), check=True)
    data = tomllib.loads(out.read_text())
    assert data["rope"] == {"context_length": 1024, "scaling_type": "linear", "scaling_factor": 4.0,
                            "original_context_length": 256}
    assert (data["cache_type_k"], data["cache_type_v"], data["flash_attn"]) == ("q4_0", "q4_0", "on")
    assert r.stdout.rstrip().endswith(f"wrote {out}")
    assert not (_config / "presets" / "mine.toml").exists()      # -o: not in the user presets folder
    # an existing file is kept without --force (exit 10, one line), replaced with it
    before = out.read_text()
    r = run_cli("presets", "new", "mine", "--model", m, "--ctx", "1024", "--method", "ntk", "--output", str(out))
    assert r.returncode == 10 and r.stderr.strip() == f"ggufrope: error: {out}: exists; --force overwrites it"
    assert out.read_text() == before
    run_cli("presets", "new", "mine", "--model", m, "--ctx", "1024", "--method", "ntk", "--output", str(out),
            "--force", check=True)
    data = tomllib.loads(out.read_text())
    assert data["rope"]["scaling_type"] == "none" and data["rope"]["freq_base"] > 10000.0
    assert (data["cache_type_k"], data["cache_type_v"]) == ("f16", "f16") and "flash_attn" not in data
    r = run_cli("presets", "new", "mine", "--model", m, "--cache-type", "q9", "-o", str(tmp_path / "x.toml"))
    assert r.returncode == 10 and "--cache-type 'q9': choose from" in r.stderr


def _ini_values(text: str, section: str) -> dict[str, str]:
    out, cur = {}, None
    for ln in text.splitlines():
        ln = ln.strip()
        if ln.startswith("["):
            cur = ln.strip("[]")
        elif cur == section and " = " in ln:
            k, v = ln.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def test_export_takes_cache_types_and_set_from_the_command_line(tmp_path, tiny_model):
    m = tiny_model(n_ctx=256)
    base = _ini_values(run_cli("presets", "export", "demo", "--model", m, "--ctx", "1024", "--to", "llama-ini",
                               check=True).stdout, "demo")
    assert (base["cache-type-k"], base["cache-type-v"], base["temp"]) == ("q8_0", "q8_0", "0.2")
    out = tmp_path / "demo.ini"
    r = run_cli("presets", "export", "demo", "--model", m, "--ctx", "1024", "--to", "llama-ini", "-o", str(out),
                "--cache-type-k", "q4_0", "--cache-type-v", "f16", "--set", "sampling.temperature=0.7",
                "--set", "n_predict=5", check=True)
    assert r.stdout == "" and f"wrote {out}" in r.stderr
    kv = _ini_values(out.read_text(), "demo")
    assert (kv["cache-type-k"], kv["cache-type-v"], kv["temp"], kv["n-predict"]) == ("q4_0", "f16", "0.7", "5")
    assert {k: v for k, v in kv.items() if k not in ("cache-type-k", "cache-type-v", "temp", "n-predict")} == \
        {k: v for k, v in base.items() if k not in ("cache-type-k", "cache-type-v", "temp", "n-predict")}


INI = """version = 1
[*]
mmap = 1
[small]
model = {m}
ctx-size = 1024
cache-type-k = q4_0
[big]
model = {m}
ctx-size = 2048
"""


def test_import_section_and_force(tmp_path, tiny_model):
    m = tiny_model(n_ctx=256)
    f = tmp_path / "two.ini"
    f.write_text(INI.format(m=m))
    out = tmp_path / "imported"
    r = run_cli("presets", "import", str(f), "--section", "big", "-o", str(out), check=True)
    assert sorted(os.listdir(out)) == ["big.toml", "two-base.toml"]      # [small] left out; [*] is the base
    assert r.stdout.splitlines() == [f"wrote {out}/two-base.toml", f"wrote {out}/big.toml"]
    big = tomllib.loads((out / "big.toml").read_text())
    assert (big["extends"], big["model"], big["ctx"]) == ("two-base", m, 2048)
    r = run_cli("presets", "import", str(f), "--section", "none", "-o", str(out))
    assert r.returncode == 10
    assert r.stderr.strip() == f"ggufrope: error: {f}: no section [none] (sections: *, small, big)"
    # a second import of a changed file is refused (exit 10, file kept) unless --force
    f.write_text(INI.format(m=m).replace("ctx-size = 2048", "ctx-size = 4096"))
    r = run_cli("presets", "import", str(f), "--section", "big", "-o", str(out))
    assert r.returncode == 10 and "two-base.toml: exists; --force overwrites it" in r.stderr
    assert tomllib.loads((out / "big.toml").read_text())["ctx"] == 2048
    run_cli("presets", "import", str(f), "--section", "big", "-o", str(out), "--force", check=True)
    assert tomllib.loads((out / "big.toml").read_text())["ctx"] == 4096
    assert sorted(os.listdir(out)) == ["big.toml", "two-base.toml"]
