"""Text renderings of library results that more than one command shows (inspect and demo show
a model's report; patch, restore and demo show an edit plan)."""
from __future__ import annotations

from ggufrope.cli.output import human_bytes, table
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # the edit layer is imported by the commands that edit, not at start-up
    from ggufrope.edit import EditPlan


def _kv_rows(rep: dict) -> list[list[str]]:
    """KV cache rows: per 1K tokens where it is linear, else each cache at useful sizes; an
    architecture whose rule is not modelled says so instead of a number."""
    k = rep.get("kv_cache") or {}
    rows = []
    if k and not k["known"]:
        return [["KV cache", f"unknown: {k['reason']}"]]
    if rep["kv_cache_bytes_per_1k"]:
        rows.append(["KV cache per 1K tokens", ", ".join(f"{t} {human_bytes(b)}"
                                                         for t, b in rep["kv_cache_bytes_per_1k"].items())])
    if k.get("family") == "recurrent" and k["at"]:
        c = k["at"][0]["caches"][0]
        return [["recurrent state", f"{human_bytes(c['k_bytes'] + c['v_bytes'])} per sequence (f32, {c['layers']} "
                                    "layers), whatever the context"]]
    if k.get("family") in ("iswa", "hybrid"):
        what = {"iswa": f"sliding window {k['n_swa']} ({k['swa_pattern']}): a full cache and a small SWA cache "
                        f"(sizes below for one sequence; llama-server's 4 unified slots hold 4 windows: "
                        f"`presets check` plans them)",
                "hybrid": "hybrid: a KV cache for the attention layers and a fixed recurrent state per sequence "
                          "for the recurrent ones (a layer may hold both, as in falcon-h1)"}
        for a in k["at"]:
            parts = []
            for c in a["caches"]:
                if c["name"] == "recurrent":
                    parts.append(f"{c['layers']} layers of state, one per sequence")
                else:
                    parts.append(f"{c['layers']} {'SWA' if c['name'] == 'kv swa' else 'full'} layers x {c['cells']} cells")
            rows.append([f"KV cache at {a['n_ctx']} (f16)", f"{human_bytes(a['total_bytes'])}: {' + '.join(parts)}"])
        rows.insert(0, ["KV cache layout", what[k["family"]]])
    return rows


def _rope_layer_rows(rep: dict) -> list[list[str]]:
    from ggufrope.report import layer_ranges
    rows = []
    for r in rep.get("rope_layers") or []:
        if r["kind"] == "sections":
            parts = ", ".join(f"pairs {a}-{b} {c['component']}" for c in r["parts"] for a, b in [c["pairs"]])
            rows.append([f"dimension sections {r['sections']}", f"M-RoPE: {parts}; {r['follows']}"])
        else:
            name = "full-attention layers" if r["kind"] == "full" else "SWA layers"
            fixed = f"freq_base {r['freq_base']:g} ({r['freq_base_source']}), freq_scale {r['freq_scale']:g}; " \
                if r["rope"] == "fixed" else ""
            rows.append([f"{name} {layer_ranges(r['layers'])}", fixed + r["follows"]])
    return rows


def render_inspect(rep: dict) -> str:
    lines = [f"{rep['path']}"]
    kv = [
        ["architecture", str(rep["architecture"])],
        ["name", rep["name"] if rep["name"] else "- (no general.name)"],
        ["file type", str(rep["file_type"])],
        ["trained context", str(rep["trained_context"])],
        ["layers / heads / KV heads", f"{rep['n_layer']} / {rep['n_head']} / {rep['n_head_kv']}"],
        ["head dim (K/V), RoPE dims", f"{rep['head_dim_k']}/{rep['head_dim_v']}, {rep['rope_dims']}"],
        ["tensors", f"{rep['tensor_count']} ({human_bytes(rep['tensor_bytes'])})"],
        ["header", f"{human_bytes(rep['header_size'])}, {human_bytes(rep['free_header_space'])} free "
                   f"for in-place edits (GGUF v{rep['gguf_version']}, {rep['byte_order']}-endian, "
                   f"alignment {rep['alignment']})"],
    ]
    kv += _kv_rows(rep)
    if rep["rope_tensors"]:
        kv.append(["RoPE tensors", ", ".join(rep["rope_tensors"])])
    if rep["ggufrope_changed"]:
        kv.append(["changed by ggufrope", ", ".join(rep["ggufrope_changed"]) + "  (ggufrope restore undoes)"])
    lines.append(table(kv))
    lines.append("")
    lines.append("RoPE settings (what llama.cpp reads; absent keys show llama.cpp's behaviour):")
    rows = []
    for r in rep["rope"]:
        key = r["key"].split(".", 1)[1]
        if r["text"] is None:
            value = f"- (absent: {r['when_absent']})"
        else:
            value = r["text"]
            if not r["type_ok"]:
                value += f"  !! stored as {r['stored_type']}, llama.cpp needs {r['type']} and will refuse the file"
        if not r["read_by_llama_cpp"]:
            how = f"runtime flag {r['runtime_flag']}" if r["runtime_flag"] else "no runtime flag"
            value += f"  [ignored by llama.cpp for {rep['architecture']}; {how}]"
        rows.append([key, r["type"].lower(), value])
    lines.append(table(rows))
    if rep.get("rope_layers"):
        lines.append("")
        lines.append("RoPE per layer and dimension (as llama.cpp's graph applies it):")
        lines.append(table(_rope_layer_rows(rep)))
    if rep["splits"]:
        lines.append("")
        lines.append(f"splits ({len(rep['splits'])}):")
        lines.append(table([[s["path"], f"{s['tensors']} tensors", human_bytes(s["tensor_bytes"])]
                            for s in rep["splits"]]))
    if "keys" in rep:
        lines.append("")
        lines.append(f"all keys ({len(rep['keys'])}):")
        lines.append(table([[k["key"], k["type"].lower(), k["text"]] for k in rep["keys"]]))
    return "\n".join(lines)


def render_plan(plan: EditPlan, dest: str, dry_run: bool) -> str:
    verb = "would change" if dry_run else "changed"
    if plan.mode == "noop":
        return f"{plan.path}: nothing to change"
    how = {"inplace": f"in place (header {human_bytes(plan.new_data_offset)} rewritten, tensor data untouched)",
           "copy": f"as a streaming copy (header grows to {human_bytes(plan.new_data_offset)}, "
                   f"{human_bytes(plan.data_size)} of tensor data copied by the kernel)"}[plan.mode]
    from ggufrope.edit.history import OWN_PREFIX
    shown = [c for c in plan.changes if not c.key.startswith(OWN_PREFIX)]
    rows = [[c.key, "-" if c.before is None else c.before, "->", "(removed)" if c.after is None else c.after]
            for c in shown]
    return f"{dest}: {verb} {len(shown)} key(s) {how}\n" + table(rows)
