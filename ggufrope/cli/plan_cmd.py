"""`ggufrope plan MODEL --ctx N [--method yarn|linear|ntk|dynamic] [--json] [--plot out.png]`."""
from __future__ import annotations

import json
import shlex
from typing import Any, Optional

import typer

from ggufrope.cli.output import echo, human_bytes, note, print_json, table, warn
from ggufrope.edit.api import pending_notes
from ggufrope.errors import UsageError
from ggufrope.models import resolve
from ggufrope.report import layer_ranges
from ggufrope.settings import fmt_float

commands = typer.Typer()  # top-level commands; cli/app.py mounts them

_TITLE = {"yarn": "YaRN", "linear": "linear (position interpolation)", "ntk": "NTK-aware base change",
          "dynamic": "dynamic NTK"}


def _wl_range(eff: dict, pairs: list[int], key: str = "wavelength_trained") -> str:
    if not pairs:
        return ""
    w = [eff[key][i] for i in pairs]
    if len(w) == 1:
        return f"trained wavelength {w[0]:,.0f} tokens"
    return f"trained wavelengths {min(w):,.0f}-{max(w):,.0f} tokens"


def _py_kwargs(kw: dict[str, Any]) -> str:
    from ggufrope.planning.dialects import LLAMA_CPP_PYTHON_DEFAULTS
    shown = {k: v for k, v in kw.items() if LLAMA_CPP_PYTHON_DEFAULTS.get(k, object()) != v}
    return ", ".join(f"{k}={v!r}" for k, v in shown.items())


def _llama_section(d: dict, model: str, lines: list[str], label: str | None = None) -> None:
    p = d["patch"]
    if label:
        lines.append(f"  ({label})")
    if p is not None:
        extra = p["not_read_by_llama_cpp"]
        lines.append("  1) patch a copy, then run it" + (" with the flags llama.cpp does not read from the file:"
                                                         if extra else " with no RoPE flags:"))
        lines.append(f"       {p['command']}")
        lines.append(f"       llama-server -m {shlex.quote(p['output'])} {d['after_patch']['llama_args_text']}")
        if extra:
            lines.append(f"       ({', '.join(extra)}: llama.cpp does not read these from a "
                         f"{d['arch']} file, so the run flags carry them)")
        kw = d["after_patch"]["llama_cpp_kwargs"]
        lines.append(f"       llama_cpp.Llama({p['output']!r}, {_py_kwargs(kw)})")
        lines.append("  2) or run the unchanged file with flags:")
    rows = [["llama.cpp flags", d["llama_args_text"]]]
    if d["override_kv"]:
        rows.append(["--override-kv", d["override_kv_text"]])
    rows.append(["llama-cpp-python", f"llama_cpp.Llama({model!r}, {_py_kwargs(d['llama_cpp_kwargs'])})"])
    lines.append(table(rows, indent="       "))
    if d.get("llama_args_note"):
        lines.append(f"       ({d['llama_args_note']})")


def render_plan_text(rep: dict) -> str:
    lines = _plan_head(rep)
    if rep["scaling_needed"]:
        lines += ["", *_plan_effects(rep)]
    lines += ["", *_plan_apply(rep), "", *_plan_other_engines(rep["dialects"]), "", *_plan_memory(rep)]
    return "\n".join(lines)


def _plan_head(rep: dict) -> list[str]:
    """The model, the trained and target context, the method and the plan's notes."""
    n, T = rep["target_context"], rep["trained_context"]
    eff = rep["effects"]
    method = rep["method"]
    lines = [rep["model"]]
    lines.append(table([
        ["architecture", rep["architecture"]],
        ["trained context", f"{T} ({rep['trained_context_source']})"],
        ["RoPE", f"{rep['rope_dims']} dims = {eff['n_pairs']} pairs, freq_base {rep['freq_base']:g} "
                 f"({rep['freq_base_source']})"],
        ["target context", f"{n}" + (f" = {rep['factor']:g}x the trained context" if rep["scaling_needed"] else "")],
        ["method", _TITLE[method] + ("" if rep["llama_cpp_supports_method"] else "  (llama.cpp has none: see below)")],
    ]))
    for msg in rep["notes"]:
        lines.append(f"note: {msg}")
    return lines


def _plan_effects(rep: dict) -> list[str]:
    """The recommended settings with their reasons, and what they do to the dimension pairs."""
    T, eff, method = rep["trained_context"], rep["effects"], rep["method"]
    lines = [f"Recommended settings ({_TITLE[method]}):"]
    lines.append(table([[c["name"], c["text"], c["reason"]] for c in rep["recommendation"]]))
    lines.append("")
    engine = "as llama.cpp resolves it" if "llama_cpp" in eff else "as Hugging Face computes it at the target"
    lt = rep.get("layers_touched") or {}
    where = "" if not lt or lt["all"] else f" of {_touched(lt)}" if lt["touched"] else \
        " (no layer takes them: see below)"
    lines.append(f"What it does to the {eff['n_pairs']} dimension pairs{where} ({engine}):")
    what = {"extrapolated": "keep their trained frequency",
            "ramped": "blend between trained and interpolated frequency",
            "interpolated": f"frequency divided by {rep['factor']:g}"}
    if method in ("ntk", "dynamic"):
        what["ramped"] = "frequency divided by a factor growing with the pair index"
        what["interpolated"] = f"frequency divided by {rep['factor']:g}" if method == "ntk" else \
            "frequency divided by the full factor"
    rows = []
    for r in ("extrapolated", "ramped", "interpolated"):
        c = eff["counts"][r]
        if c:
            rows.append([r, str(c), f"pairs {eff['ranges'][r]}", what[r] + "; " + _wl_range(eff, eff["pairs"][r])])
    lines.append(table(rows))
    unseen = eff["pairs_longer_than_trained"]
    if unseen:
        lines.append(f"  {len(unseen)} pair(s) turn less than once in {T} tokens (trained wavelength > {T}): "
                     f"unscaled, they would meet rotation angles never seen in training")
    llc = eff.get("llama_cpp")
    if llc and method == "yarn":
        lo, hi = llc["corr_dims"]
        lines.append(f"  YaRN correction dims {lo:g}..{hi:g} (ggml_rope_yarn_corr_dims with beta_fast "
                     f"{llc['beta_fast']:g}, beta_slow {llc['beta_slow']:g}); ext_factor {llc['ext_factor']:g}")
        lines.append(f"  cos/sin magnitude {llc['mscale']:.6g}: llama.cpp passes attn_factor "
                     f"{llc['attn_factor']:.6g} and ggml's rope op multiplies by 1+0.1*ln({rep['factor']:g})")
    elif llc:
        lines.append(f"  cos/sin magnitude {llc['mscale']:.6g} (no attention temperature for {method})")
    cs = eff.get("closest_static_llama_cpp")
    if cs:
        lines.append(f"  closest static llama.cpp setting: freq_base {fmt_float(cs['freq_base'])} at every length")
    return lines + _swa_effects(lt)


_GROUP_NAME = {"full": "full-attention layers", "swa": "sliding-window layers"}


def _touched(lt: dict) -> str:
    """"the full-attention layers 5" when the reached layers are one kind, else "layers 0-2, 4"."""
    kinds = {g["kind"] for g in lt["groups"] if g["rope"] == "context"}
    name = _GROUP_NAME[kinds.pop()] if len(kinds) == 1 else "layers"
    return f"{'the ' if name != 'layers' else ''}{name} {layer_ranges(lt['touched'])}"


def _swa_effects(lt: dict) -> list[str]:
    """Where not every layer takes the context's RoPE: which layers the settings reach, and what
    the others do instead (fixed at load, unscaled, or no RoPE at all)."""
    if not lt or lt["all"]:
        return []
    lines = [f"  These RoPE settings reach {_touched(lt) if lt['touched'] else 'no layer'}"
             f"{' only' if lt['touched'] else ''}:"]
    for g in lt["groups"]:
        name = f"{_GROUP_NAME[g['kind']]} {layer_ranges(g['layers'])}"
        if g["rope"] == "context":
            continue
        if g["rope"] == "fixed":
            lo, hi = lt["swa_wavelengths"]
            lines.append(f"    {name} keep freq_base {g['freq_base']:g}, freq_scale {g['freq_scale']:g} (fixed by llama.cpp "
                         f"at load): their pairs are unchanged, wavelengths {lo:,.0f}-{hi:,.0f} tokens, "
                         f"{lt['swa_pairs_beyond_window']} of them longer than the {lt['window']}-token window they see")
        elif g["rope"] == "context_base":
            lines.append(f"    {name}: the context's freq_base, unscaled (freq_scale 1, attention factor 1)")
        else:
            lines.append(f"    {name}: no RoPE (NoPE)")
    return lines


def _plan_apply(rep: dict) -> list[str]:
    """How to run the plan in llama.cpp (each dialect), or the closest static setting for dynamic."""
    n, d = rep["target_context"], rep["dialects"]
    lines: list[str] = []
    if rep["scaling_needed"] and rep["llama_cpp_supports_method"]:
        lines.append("Apply it in llama.cpp (each way below gives the same logits):")
        _llama_section(d, rep["model"], lines)
    elif rep["scaling_needed"]:
        lines.append("llama.cpp: no dynamic NTK. Closest static setting, NOT dynamic "
                     f"(the base dynamic NTK reaches at {n} tokens, used at every length):")
        _llama_section(d["closest_llama_cpp"], rep["model"], lines)
    else:
        lines.append("Run it in llama.cpp:")
        if d["patch"] is None and d.get("after_patch") is None:
            lines.append(table([["llama.cpp flags", d["llama_args_text"]],
                                ["llama-cpp-python", f"llama_cpp.Llama({rep['model']!r}, n_ctx={n})"]]))
        else:
            _llama_section(d, rep["model"], lines)
    return lines


def _plan_other_engines(d: dict) -> list[str]:
    lines = ["Other engines:"]
    hf = d["hf"]
    rows = []
    if hf["config"]:
        rows.append(["Hugging Face config.json", json.dumps(hf["config"])[1:-1]])
        rows.append(["  transformers >= 5", f'"rope_parameters": {json.dumps(hf["rope_parameters"])}'])
    rows.append(["vLLM >= 0.11.1", f"vllm serve MODEL {d['vllm']['text']}"])
    rows.append(["vLLM < 0.11.1", f"vllm serve MODEL {d['vllm']['legacy_text']}"])
    lines.append(table(rows))
    return lines


def _plan_memory(rep: dict) -> list[str]:
    n, mem = rep["target_context"], rep["memory"]
    lines = [f"Memory at {n} tokens (weights {human_bytes(mem['weights_bytes'])}):"]
    rows = []
    for t, b in mem["kv_cache_bytes"].items():
        flags = " ".join(mem["kv_cache_flags"][t])
        rows.append([f"KV cache {t}", human_bytes(b), f"total {human_bytes(mem['total_bytes'][t])}", flags])
    if rows:
        lines.append(table(rows))
        caches = mem.get("kv_caches") or []
        if len(caches) > 1 or caches and caches[0]["name"] == "recurrent":
            lines.append("  caches: " + " + ".join(
                f"{c['layers']} recurrent layers (state per sequence)" if c["name"] == "recurrent" else
                f"{c['layers']} {'SWA' if c['name'] == 'kv swa' else 'full'} layers x {c['cells']} cells"
                for c in caches))
        lines.append("  (quantized V needs flash attention: -fa on; one sequence; compute buffers not counted)")
    elif mem.get("kv_unknown"):
        lines.append(f"  KV cache: unknown ({mem['kv_unknown']})")
    return lines


@commands.command("plan")
def plan_cmd(
    model: str = typer.Argument(..., help="GGUF file (or a named model such as smollm2)."),
    ctx: int = typer.Option(..., "--ctx", help="Target context length in tokens."),
    method: str = typer.Option("yarn", "--method", help="yarn (default), linear, ntk or dynamic."),
    output: Optional[str] = typer.Option(None, "-o", "--output",
                                         help="Path the printed patch command writes (default: beside MODEL)."),
    yarn_beta_fast: Optional[float] = typer.Option(None, "--yarn-beta-fast", help="YaRN beta_fast (default 32)."),
    yarn_beta_slow: Optional[float] = typer.Option(None, "--yarn-beta-slow", help="YaRN beta_slow (default 1)."),
    as_json: bool = typer.Option(False, "--json", help="Everything as one JSON object."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Write a PNG of wavelength per dimension pair."),
) -> None:
    """Recommend RoPE settings for a target context, with the reasons, their effect per dimension
    pair, every dialect (ggufrope patch, llama.cpp flags, --override-kv, llama-cpp-python, HF, vLLM)
    and KV cache memory."""
    from ggufrope.planning import make_plan, plan_report, read_facts
    method = method.strip().lower()
    path = resolve(model, log=note)
    if ctx <= 0:
        raise UsageError(f"{path}: --ctx must be positive, not {ctx}")
    for n in pending_notes(path):  # read-only: report an interrupted edit, never roll back
        warn(n)
    plan = make_plan(read_facts(path), ctx, method, beta_fast=yarn_beta_fast, beta_slow=yarn_beta_slow)
    rep = plan_report(plan, out=output)
    if plot:
        from ggufrope.planning.plot import plot_plan
        rep["plot"] = plot_plan(plan, plot)
    if as_json:
        print_json(rep)
    else:
        echo(render_plan_text(rep))
        if plot:
            echo(f"\nplot written to {plot}")
