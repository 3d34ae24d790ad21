"""What `inspect` reports about a model: facts gathered from the header, as plain data."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ggufrope.edit import history
from ggufrope.edit.history import OWN_PREFIX
from ggufrope.edit.plan import PAD_KEY
from ggufrope.gguf import GGUFHeader, read_header
from ggufrope.gguf.constants import FILE_TYPES
from ggufrope.gguf.render import field_json, render_value
from ggufrope.model_facts import open_model
from ggufrope.settings import ROPE_KEYS

KV_REPORT_TYPES = ("f16", "q8_0", "q4_0")


def free_header_space(h: GGUFHeader) -> int:
    """Bytes the header can grow by and still be rewritten in place."""
    pad = h.fields.get(PAD_KEY)
    slack = h.data_offset - h.infos_end
    return slack + (pad.end - pad.value_start - 8 if pad is not None else 0)


def rope_rows(h: GGUFHeader, arch: str) -> list[dict[str, Any]]:
    rows = []
    for rk in ROPE_KEYS:
        key = rk.key(arch)
        f = h.fields.get(key)
        rows.append({
            "key": key, "type": rk.vtype.name,
            "value": None if f is None else field_json(h, f),
            "text": None if f is None else render_value(h, f),
            "stored_type": None if f is None else f.vtype.name,
            "type_ok": f is None or f.vtype == rk.vtype,
            "when_absent": rk.when_absent,
            "read_by_llama_cpp": rk.read_for(arch),
            "runtime_flag": rk.flag,
        })
    return rows


def layer_ranges(layers) -> str:
    """(0, 1, 2, 4, 5) -> "0-2, 4-5"."""
    out, run = [], []
    for il in layers:
        if run and il != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(il)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)


def kv_report(info, trained_ctx: int) -> dict[str, Any]:
    """llama.cpp's caches for this file (ggufrope/kv_model.py) at 4K, 32K and the trained context,
    f16, one sequence; each cache with its layers and cells. An unmodelled family gives no sizes."""
    k = info.kv
    if k is None or not info.n_layer:
        return {}
    rep: dict[str, Any] = {"family": k.family, "known": k.known, "reason": k.reason, "n_swa": k.n_swa,
                           "swa_pattern": k.swa_pattern, "at": []}
    if not k.known:
        return rep
    for n in sorted({4096, 32768, trained_ctx} - {0}):
        p = info.kv_memory(n, "f16")
        rep["at"].append({"n_ctx": n, "type": "f16", "total_bytes": p.total,
                          "caches": [{"name": c.name, "layers": c.layers, "cells": c.cells * c.streams,
                                      "k_bytes": c.k, "v_bytes": c.v} for c in p.caches]})
    return rep


SECTION_NAMES = ("time", "height", "width", "extra")


def sections(secs: tuple[int, ...]) -> dict[str, Any]:
    """M-RoPE: which dimension pairs rotate with which position component (ggml_rope_multi: the
    sections count pairs, in the order time, height, width, extra). For text every component is
    the token position, so the pairs turn as in plain RoPE and the scaling applies to all."""
    parts, start = [], 0
    for name, n in zip(SECTION_NAMES, secs):
        if n:
            parts.append({"component": name, "pairs": [start, start + n - 1]})
        start += n
    return {"kind": "sections", "sections": list(secs), "parts": parts,
            "follows": "text tokens give every component the same position: plain RoPE for text"}


def rope_layers(info) -> list[dict[str, Any]]:
    """Which layers use which RoPE as llama.cpp's graph applies it (ggufrope/layer_rope.py): the
    context's (file rope.* keys and runtime flags), values fixed at load, the context's base
    unscaled, or none (NoPE); and M-RoPE dimension sections. [] when every layer is alike."""
    out = [sections(info.rope_sections)] if info.rope_sections else []
    k = info.kv
    for g in info.rope_groups:
        out.append({"kind": g.kind, "layers": list(g.layers), "rope": g.rope, "freq_base": g.freq_base,
                    "freq_base_source": g.freq_base_source, "freq_scale": g.freq_scale,
                    "window": k.n_swa if k is not None and g.kind == "swa" else None, "follows": g.follows})
    return out


def inspect_report(path: str, all_keys: bool = False) -> dict[str, Any]:
    """The report of the model at path: its facts and its header, from one read (model_facts)."""
    with open_model(path) as (facts, h):
        info = facts.info
        ft = info.file_type
        rep: dict[str, Any] = {
            "path": path,
            "file_size": h.file_size,
            "gguf_version": h.version,
            "byte_order": "little" if h.byteorder == "<" else "big",
            "architecture": facts.arch or None,
            "name": facts.name,
            "file_type": None if ft is None else FILE_TYPES.get(ft, str(ft)),
            "trained_context": facts.trained_ctx or None,  # the one rule (model_facts), undo record included
            "rope": rope_rows(h, facts.arch),
            "n_layer": info.n_layer,
            "n_head": info.n_head[0] if info.n_head else None,
            "n_head_kv": info.n_head_kv[0] if info.n_head_kv else None,
            "head_dim_k": info.head_dim_k,
            "head_dim_v": info.head_dim_v,
            "rope_dims": info.rope_dims,
            "rope_tensors": [t.name for t in h.tensors if t.name.startswith("rope_")],
            "tensor_count": sum(p.tensors for p in facts.split_parts) if facts.split else len(h.tensors),
            "tensor_bytes": facts.weights_bytes,
            "alignment": h.alignment,
            "header_size": h.data_offset,
            "free_header_space": free_header_space(h),
            # per 1K tokens only where the cache grows linearly with the context (one full cache)
            "kv_cache_bytes_per_1k": {t: info.kv_cache_bytes(1024, t) for t in KV_REPORT_TYPES}
            if info.n_layer and info.kv and info.kv.family in ("standard", "mla") else {},
            "kv_cache": kv_report(info, facts.trained_ctx),
            "rope_layers": rope_layers(info),
            "ggufrope_changed": sorted(history.load(h)),
            "splits": [asdict(p) for p in facts.split_parts],
        }
        if all_keys:
            rep["keys"] = [{"key": k, "type": f.vtype.name if f.item_type is None
                            else f"{f.vtype.name}[{f.item_type.name}]",
                            "value": field_json(h, f), "text": render_value(h, f)}
                           for k, f in h.fields.items()]
    return rep


def metadata_diff(a: str, b: str) -> list[dict[str, Any]]:
    """Keys whose presence, type or value differ between two files (raw bytes compared)."""
    out = []
    with read_header(a) as ha, read_header(b) as hb:
        for key in list(dict.fromkeys([*ha.fields, *hb.fields])):
            if key.startswith(OWN_PREFIX):  # ggufrope's bookkeeping (undo record, padding)
                continue
            fa, fb = ha.fields.get(key), hb.fields.get(key)
            if fa is not None and fb is not None and ha.raw_entry(key) == hb.raw_entry(key):
                continue
            out.append({"key": key,
                        "a": None if fa is None else render_value(ha, fa),
                        "b": None if fb is None else render_value(hb, fb)})
        if ha.tensors != hb.tensors:
            out.append({"key": "(tensor table)", "a": f"{len(ha.tensors)} tensors",
                        "b": f"{len(hb.tensors)} tensors, differs"})
    return out

