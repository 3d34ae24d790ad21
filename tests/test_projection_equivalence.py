"""Every launch route of one Projection hands llama.cpp the same numbers.

The oracle below is llama.cpp's own resolution, written from its source (0c1e570), independent of
ggufrope's projection code: common/arg.cpp parses flags (stof: decimal -> float32 correctly rounded;
`--rope-scale N` -> 1.0f / N; --override-kv via atof then a cast to float), the loader reads the
file's typed keys per architecture (src/llama-model.cpp, src/models/{grok,mistral3,deepseek2}.cpp),
llama_context resolves cparams (src/llama-context.cpp l.114-175) and re-adjusts n_ctx_train for a
runtime YaRN factor (l.3891). llama-cpp-python hands kwargs over as C floats (float32).

Routes: runtime argv, runtime INI lines, runtime kwargs; a patched file (written by ggufrope's
editor and read back) with its argv and kwargs; --override-kv with its argv. Within an apply mode
every route resolves to identical bits, context cap included; across modes the RoPE values agree.
"""
from __future__ import annotations

import math
import struct
from fractions import Fraction

import pytest

from ggufrope.gguf import ValueType, read_header
from ggufrope.settings import RopeSettings
from ggufrope.settings.projection import Projection

ARCHS = ("llama", "grok", "mistral3", "deepseek2")   # each reader class of the key table
FACTORS = (1.7, 2.3, 3.3, 4.0)
TRAINED = 4096


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _next_f32(x: float, up: bool) -> float:
    b = bits(x)
    if x == 0:
        return struct.unpack("<f", struct.pack("<I", 1))[0] * (1 if up else -1)
    b += 1 if (x > 0) == up else -1
    return struct.unpack("<f", struct.pack("<I", b))[0]


def strtof(text: str) -> float:
    """C's strtof: the decimal rounded once, to nearest float32 (ties to even)."""
    exact = Fraction(text)
    c = f32(float(exact))
    best = min((c, _next_f32(c, True), _next_f32(c, False)),
               key=lambda y: (abs(Fraction(y) - exact), bits(y) & 1))
    return best


# -- llama.cpp, from its source ------------------------------------------------------------------
_READERS = {  # keys outside the generic loader, by architecture
    "grok": {"yarn_ext_factor", "yarn_attn_factor", "yarn_beta_fast", "yarn_beta_slow"},
    "mistral3": {"yarn_beta_fast", "yarn_beta_slow", "yarn_log_multiplier"},
    "deepseek2": {"yarn_log_multiplier"},
}
_SUFFIX = {"context_length": "context_length", "freq_base": "rope.freq_base", "scaling_type": "rope.scaling.type",
           "scaling_factor": "rope.scaling.factor", "scale_linear": "rope.scale_linear",
           "original_context_length": "rope.scaling.original_context_length",
           "attn_factor": "rope.scaling.attn_factor", "yarn_log_multiplier": "rope.scaling.yarn_log_multiplier",
           "yarn_ext_factor": "rope.scaling.yarn_ext_factor", "yarn_attn_factor": "rope.scaling.yarn_attn_factor",
           "yarn_beta_fast": "rope.scaling.yarn_beta_fast", "yarn_beta_slow": "rope.scaling.yarn_beta_slow"}


def parse_override(item: str) -> tuple[str, object]:
    key, rest = item.split("=", 1)
    typ, text = rest.split(":", 1)
    return key, {"int": int, "float": lambda t: f32(float(t)), "bool": lambda t: t == "true", "str": str}[typ](text)


def load(arch: str, file_keys: dict, overrides: dict) -> dict:
    """hparams as the loader fills them (overrides win over the file)."""
    kv = dict(file_keys)
    kv.update(overrides)

    def get(field, default=None):
        return kv.get(f"{arch}.{_SUFFIX[field]}", default)

    def arch_get(field, default):
        return get(field, default) if field in _READERS.get(arch, ()) else default

    factor = get("scaling_factor", 0.0) or get("scale_linear", 0.0)
    n_ctx_train = get("context_length")
    return {"n_ctx_train": n_ctx_train, "freq_base": f32(get("freq_base", 10000.0)),
            "freq_scale": 1.0 if not factor else f32(1.0 / f32(factor)),
            "type": get("scaling_type", "linear"), "orig": get("original_context_length", n_ctx_train),
            "attn_factor": f32(get("attn_factor", 1.0)),
            "ext": f32(arch_get("yarn_ext_factor", -1.0)), "attn": f32(arch_get("yarn_attn_factor", 1.0)),
            "fast": f32(arch_get("yarn_beta_fast", 8.0 if arch == "grok" else 32.0)),
            "slow": f32(arch_get("yarn_beta_slow", 1.0)), "log_mul": f32(arch_get("yarn_log_multiplier", 0.0))}


def resolve(h: dict, p: dict) -> dict:
    """cparams from hparams and llama_context_params (common's defaults: 0 / -1 = from the model)."""
    c = {"n_ctx": p.get("n_ctx") or h["n_ctx_train"],
         "freq_base": p.get("freq_base") or h["freq_base"],
         "freq_scale": p.get("freq_scale") or h["freq_scale"],
         "orig": p.get("orig") or h["orig"] or h["n_ctx_train"],
         "type": p.get("type") or h["type"]}
    for k in ("ext", "attn", "fast", "slow"):
        v = p.get(k, -1.0)
        c[k] = v if v >= 0 else h[k]
    if c["type"] == "none":
        c["freq_scale"] = 1.0
    if c["ext"] < 0:
        c["ext"] = 1.0 if c["type"] == "yarn" else 0.0
    cap = h["n_ctx_train"]
    if c["type"] == "yarn" and c["freq_scale"] != h["freq_scale"]:
        cap = int(f32(f32(float(c["orig"])) / c["freq_scale"]))
    c.update(cap=cap, attn_factor=h["attn_factor"], log_mul=h["log_mul"])
    return c


_FLAG_PARAM = {"--rope-freq-base": "freq_base", "--yarn-ext-factor": "ext", "--yarn-attn-factor": "attn",
               "--yarn-beta-fast": "fast", "--yarn-beta-slow": "slow"}


def parse_argv(argv: list[str]) -> tuple[dict, dict]:
    """(llama_context_params, overrides) as common/arg.cpp leaves them."""
    p: dict = {}
    over: dict = {}
    it = iter(argv)
    for a in it:
        v = next(it)
        if a in ("-c", "--ctx-size"):
            p["n_ctx"] = int(v)
        elif a == "--rope-scaling":
            p["type"] = v
        elif a == "--rope-scale":
            p["freq_scale"] = f32(1.0 / strtof(v))
        elif a == "--yarn-orig-ctx":
            p["orig"] = int(v)
        elif a in _FLAG_PARAM:
            p[_FLAG_PARAM[a]] = strtof(v)
        elif a == "--override-kv":
            over.update(parse_override(item) for item in v.split(","))
        else:
            raise AssertionError(f"unexpected flag {a}")
    return p, over


_TYPES = {0: "none", 1: "linear", 2: "yarn", 3: "longrope"}


def parse_kwargs(kw: dict) -> tuple[dict, dict]:
    """llama-cpp-python: every float becomes a C float; kv_overrides floats are doubles cast at load."""
    p = {"n_ctx": kw["n_ctx"], "type": _TYPES[kw["rope_scaling_type"]], "freq_base": f32(kw["rope_freq_base"]),
         "freq_scale": f32(kw["rope_freq_scale"]), "orig": kw["yarn_orig_ctx"], "ext": f32(kw["yarn_ext_factor"]),
         "attn": f32(kw["yarn_attn_factor"]), "fast": f32(kw["yarn_beta_fast"]), "slow": f32(kw["yarn_beta_slow"])}
    over = {k: (f32(v) if isinstance(v, float) else v) for k, v in kw.get("kv_overrides", {}).items()}
    return p, over


def ini_to_argv(pairs: list[tuple[str, str]]) -> list[str]:
    argv: list[str] = []
    for k, v in pairs:
        argv += ["-c" if k == "ctx-size" else f"--{k}", v]
    return argv


def same(a: dict, b: dict) -> bool:
    """Bit for bit on floats."""
    return a.keys() == b.keys() and all(
        (bits(a[k]) == bits(b[k])) if isinstance(a[k], float) else a[k] == b[k] for k in a)


# -- the cases -----------------------------------------------------------------------------------
def _cases():
    for arch in ARCHS:
        for factor in FACTORS:
            for typ in ("yarn", "linear"):
                want = RopeSettings(scaling_type=typ, scaling_factor=factor, original_context_length=TRAINED)
                yield pytest.param(arch, want, id=f"{arch}-{typ}-{factor:g}")
        extra = RopeSettings(scaling_type="yarn", scaling_factor=2.3, yarn_beta_fast=16.0, yarn_beta_slow=2.0,
                             yarn_attn_factor=0.9, attn_factor=1.1, yarn_log_multiplier=0.1,
                             context_length=9421)
        yield pytest.param(arch, extra, id=f"{arch}-yarn-betas-attn")
        yield pytest.param(arch, RopeSettings(scaling_type="none", freq_base=41234.567, context_length=8192),
                           id=f"{arch}-ntk-base")


def _file_keys(path: str) -> dict:
    with read_header(path) as h:
        return {k: h.value(f) for k, f in h.fields.items() if f.vtype != ValueType.ARRAY}


def _patched_file(src: str, prj: Projection, tmp_path) -> str:
    from ggufrope.edit import patch_file
    from ggufrope.edit.requests import PatchRequest, request_ops
    out = str(tmp_path / "patched.gguf")
    patch_file(src, lambda h: request_ops(h, PatchRequest(rope=prj.file_part))[0], out=out)
    return out


@pytest.mark.parametrize("arch,want", list(_cases()))
def test_every_route_gives_llama_cpp_the_same_bits(arch, want, tiny_model, tmp_path):
    model = tiny_model(n_ctx=TRAINED, arch=arch)
    file_keys = _file_keys(model)
    current = RopeSettings.from_metadata(file_keys, arch)
    n_ctx = math.ceil(want.factor * TRAINED) if want.context_length is None else want.context_length

    def project(apply: str) -> Projection:
        return Projection(arch, want, current, TRAINED, n_ctx, apply)

    by_mode: dict[str, list[dict]] = {}
    # runtime: argv, INI lines, kwargs on the untouched file
    rt = project("runtime")
    routes = [parse_argv(rt.llama_args()), parse_argv(ini_to_argv(rt.ini_pairs())), parse_kwargs(rt.llama_cpp_kwargs())]
    by_mode["runtime"] = [resolve(load(arch, file_keys, over), p) for p, over in routes]
    # patched: the editor writes the copy; argv and kwargs on it
    pt = project("patched")
    patched_keys = _file_keys(_patched_file(model, pt, tmp_path))
    for key, _, v in pt.patched_keys():   # the copy holds exactly the projected keys (float32)
        assert patched_keys[key] == (f32(v) if isinstance(v, float) else v), key
    by_mode["patched"] = [resolve(load(arch, patched_keys, over), p)
                          for p, over in (parse_argv(pt.llama_args()), parse_kwargs(pt.llama_cpp_kwargs()))]
    # --override-kv: the copy's keys as overrides on the untouched file; must equal the patched file
    ov = project("override")
    p, over = parse_argv(ov.llama_args())
    by_mode["patched"].append(resolve(load(arch, file_keys, over), p))

    for mode, results in by_mode.items():
        first = results[0]
        for i, r in enumerate(results[1:], 1):
            assert same(first, r), (mode, i, first, r)
        assert first["cap"] == (rt if mode == "runtime" else pt).ctx_cap(), mode
        assert first["cap"] >= first["n_ctx"] or first["type"] == "yarn", (mode, first)
    rope = ("freq_base", "freq_scale", "type", "ext", "attn", "fast", "slow", "attn_factor", "log_mul", "n_ctx")
    a, b = by_mode["runtime"][0], by_mode["patched"][0]
    assert all(bits(a[k]) == bits(b[k]) if isinstance(a[k], float) else a[k] == b[k] for k in rope), (a, b)


@pytest.mark.parametrize("factor", [1.7, 2.3, 3.3])
def test_rope_freq_scale_is_one_float32_step(factor):
    """--rope-scale N and the kwarg give 1.0f / (float)N, not the double 1/N."""
    prj = Projection("llama", RopeSettings(scaling_type="yarn", scaling_factor=factor), RopeSettings(context_length=4096),
                     4096, 8192)
    kw = prj.llama_cpp_kwargs()
    assert kw["rope_freq_scale"] == f32(1.0 / f32(factor))
    i = prj.rope_flags().index("--rope-scale")
    assert f32(1.0 / strtof(prj.rope_flags()[i + 1])) == kw["rope_freq_scale"]


# -- the CLI: one projection, one header read ------------------------------------------------------
def _preset(tmp_path, engine: str = "python") -> str:
    path = tmp_path / "p.toml"
    path.write_text(f'engine = "{engine}"\nctx = 1740\n[rope]\nplan = "yarn:1740"\n')
    return str(path)


def _dry_run_kwargs(text: str) -> dict:
    import ast
    call = ast.parse(text.strip()).body[0].value
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords}


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("llama_cpp") is None,
                    reason="engine = python needs llama-cpp-python")
def test_run_dry_run_python_kwargs_equal_plan_json(tiny_model, tmp_path):
    """`run --dry-run` of an engine = "python" preset and `plan --json` give the same kwargs for
    the same settings (factor 1740/1024 = 1.69921875)."""
    import json
    from conftest import run_cli
    m = tiny_model(n_ctx=1024)
    r = run_cli("run", "--preset-file", _preset(tmp_path), "--model", m, "--dry-run", check=True)
    run_kw = _dry_run_kwargs(r.stdout)
    plan_kw = json.loads(run_cli("plan", m, "--ctx", "1740", "--json", check=True).stdout)["dialects"]["llama_cpp_kwargs"]
    assert {k: run_kw[k] for k in plan_kw} == plan_kw
    assert run_kw["model_path"] == m and run_kw["rope_scaling_type"] == 2


def _counting_opens(monkeypatch) -> list[str]:
    from conftest import counting_header_opens
    return counting_header_opens(monkeypatch)


def _count_header_opens(monkeypatch, argv: list[str], path: str, codes=(0, None)) -> int:
    """Run the CLI in process, counting how often the model file is mapped for its header."""
    import sys
    from ggufrope.cli import app as cli_app
    opened = _counting_opens(monkeypatch)
    monkeypatch.setattr(sys, "argv", ["ggufrope", *argv])
    with pytest.raises(SystemExit) as e:
        cli_app.main()
    assert e.value.code in codes, e.value
    return sum(1 for p in opened if p == path)


@pytest.mark.parametrize("argv", [
    pytest.param(["run", "--preset-file", "{preset}", "--model", "{m}", "--dry-run"], id="run-dry-run-python"),
    pytest.param(["run", "--preset-file", "{cli_preset}", "--model", "{m}", "--prompt", "hi", "--dry-run"],
                 id="run-dry-run-cli"),
    pytest.param(["plan", "{m}", "--ctx", "1740", "--json"], id="plan"),
    pytest.param(["inspect", "{m}", "--json"], id="inspect"),
    pytest.param(["inspect", "{m}", "--all"], id="inspect-all"),
])
def test_model_header_is_read_once_per_command(argv, tiny_model, tmp_path, monkeypatch, capsys):
    if "{preset}" in argv and __import__("importlib.util").util.find_spec("llama_cpp") is None:
        pytest.skip("engine = python needs llama-cpp-python")
    m = tiny_model(n_ctx=1024)
    (tmp_path / "cli").mkdir()
    vals = {"m": m, "preset": _preset(tmp_path), "cli_preset": _preset(tmp_path / "cli", "cli")}
    assert _count_header_opens(monkeypatch, [a.format(**vals) for a in argv], m) == 1


def test_verify_reads_the_header_once_before_the_probe(tiny_model, monkeypatch, capsys):
    """verify: one header read of ggufrope's own before llama.cpp's probe loads the file."""
    from types import SimpleNamespace
    from ggufrope.build import ensure, native
    m = tiny_model(n_ctx=1024)
    at_probe: list[int] = []
    monkeypatch.setattr(ensure, "ensure_build", lambda **kw: SimpleNamespace(bin_dir="/nowhere",
                                                                             source=SimpleNamespace(commit="x")))
    opened = _counting_opens(monkeypatch)

    def probe(bin_dir, path, **kw):
        at_probe.append(sum(1 for p in opened if p == m))
        return {"hparams": {}, "effective": None}
    monkeypatch.setattr(native, "probe", probe)
    import sys
    from ggufrope.cli import app as cli_app
    monkeypatch.setattr(sys, "argv", ["ggufrope", "verify", m, "--json"])
    with pytest.raises(SystemExit) as e:
        cli_app.main()
    assert e.value.code == 1  # the fake probe reports nothing, so every row fails
    assert at_probe == [1]


@pytest.mark.parametrize("as_preset", [pytest.param(False, id="model"), pytest.param(True, id="preset")])
def test_eval_target_reads_the_header_once(as_preset, tiny_model, tmp_path, monkeypatch):
    """eval: resolving PRESET|MODEL, the variants' plans and the sweep's grid share one header read
    (eval has no --dry-run, so this is the library path `eval passkey` takes before llama.cpp runs)."""
    from ggufrope.evaluation import EvalSpec, resolve_target
    from ggufrope.evaluation.runner import Sweep
    m = tiny_model(n_ctx=256)
    arg = m
    if as_preset:
        (tmp_path / "mine.toml").write_text(f'model = "{m}"\n[rope]\nplan = "yarn:1024"\n')
        arg = str(tmp_path / "mine.toml")
    env = {"GGUFROPE_HOME": str(tmp_path / "home"), "GGUFROPE_CONFIG": str(tmp_path / "cfg")}
    opened = _counting_opens(monkeypatch)
    target = resolve_target(arg, env=env)
    spec = EvalSpec(task="passkey", lengths=(256, 1024), variants=("none", "yarn", "preset"))
    sweep = Sweep(spec, target, str(tmp_path / "out"), {"llama-completion": "x"})
    assert sweep.cells() and sweep.variant("yarn", 1024).applicable
    assert sum(1 for p in opened if p == m) == 1
