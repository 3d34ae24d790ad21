"""`ggufrope presets list|show|check|new|export|import`."""
from __future__ import annotations

import json
import os
import sys
from typing import Optional

import typer

from ggufrope.cli.options import PresetOptions, preset_options
from ggufrope.cli.output import echo, note, print_findings, print_json, table

presets_app = typer.Typer(no_args_is_help=True, help="Presets: a model, its RoPE settings and how to run it, in TOML.")

# -- list / show ---------------------------------------------------------------------------
@presets_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Built-in and user presets."""
    from ggufrope.presets import load as pl
    rows = []
    for name, found in sorted(pl.available(os.environ).items()):
        origin, path = found[0]
        try:
            desc = pl.read_file(path, origin, name).description
        except Exception as e:  # a broken user preset is listed, not fatal
            desc = f"(broken: {e})"
        shadow = " (shadows the built-in)" if len(found) > 1 else ""
        rows.append({"name": name, "origin": origin + shadow, "path": path, "description": desc})
    if as_json:
        print_json(rows)
        return
    echo(table([[r["name"], r["origin"], r["description"]] for r in rows], indent=""))
    echo(f"\nuser presets: {pl.user_dir(os.environ)}")


def _show_value(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], int):  # rope.plan
        return f"{v[0]}:{v[1]}"
    if isinstance(v, list):
        return json.dumps(v)
    return str(v)


@presets_app.command("show")
@preset_options()
def show_cmd(
    name: Optional[str] = typer.Argument(None, help="Preset name (or a .toml path)."),
    preset: PresetOptions = None,
    show_all: bool = typer.Option(False, "--all", help="Also list fields left unset."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The resolved preset: every value and where it came from (built-in default < preset file
    and its extends chain < GGUFROPE_* environment < command line)."""
    from ggufrope.presets import schema, secrets
    p = preset.load(name)
    res = p.res

    def shown(n: str, v):
        return secrets.shown(v) if schema.BY_NAME[n].secret else v
    if as_json:
        print_json({"name": p.name, "chain": [{"name": f.name, "path": f.path, "origin": f.origin} for f in res.chain],
                    "fields": {n: {"value": schema.plan_text(v) if n == "rope.plan" else shown(n, v),
                                   "from": str(res.origin(n)), "kind": res.origin(n).kind}
                               for n, v in res.values.items()}})
        return
    chain = " -> ".join(f"{f.name} ({f.origin}: {f.path})" for f in reversed(res.chain))
    echo(f"{p.name}: {p.description}" if p.description else p.name)
    if res.values.get("measured"):
        echo(f"  measured: {res.values['measured']}")
    echo(f"  chain: {chain}")
    echo(f"  precedence: {' < '.join(res.layers)}")
    rows = []
    for spec in schema.FIELDS:
        v = shown(spec.name, res.values[spec.name])
        o = res.origin(spec.name)
        if v is None and not show_all and o.kind == "default":
            continue
        rows.append([spec.name, _show_value(v), str(o) if o.kind != "default" else "default"])
    echo(table([["field", "value", "from"]] + rows))
    if p.rope_plan:
        echo(f"\n(rope.plan {p.rope_plan[0]}:{p.rope_plan[1]} is computed from the model when it runs; "
             f"`ggufrope presets check {p.name}` shows the result)")


# -- check ---------------------------------------------------------------------------------
@presets_app.command("check")
@preset_options()
def check_cmd(
    name: Optional[str] = typer.Argument(None, help="Preset name (or a .toml path)."),
    preset: PresetOptions = None,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run every pre-launch check (model, K/V cache types, flash attention, CUDA kernels, context,
    memory plan) without starting anything. Exit 10 when one fails."""
    from ggufrope.presets.prepare import check_only
    from ggufrope.presets.memory import mib
    p = preset.load(name)
    prep = check_only(p, os.environ)
    m = prep.mem
    if as_json:
        print_json({"preset": p.name, "model": prep.model.path, "run_model": prep.run_model, "n_ctx": prep.n_ctx,
                    "ctx_cap": prep.ctx_cap, "rope": prep.projection.want.as_dict(), "flash_attn": prep.flash_attn,
                    "memory": {"weights": m.weights, "kv_cache": m.kv, "compute_estimate": m.compute,
                               "total": m.total, "device": m.device, "available": m.available,
                               "headroom": m.headroom, "fits": m.fits},
                    "findings": [{"level": f.level, "field": f.field, "message": f.render(p)} for f in prep.findings]})
        return
    print_findings(prep, p)
    echo(f"{p.name}: ok")
    rows = [["model", prep.model.path + (f"  (runs the patched copy {prep.run_model})"
                                         if prep.run_model != prep.model.path else "")],
            ["architecture", f"{prep.model.arch}, trained context {prep.model.trained_ctx}"],
            ["rope", ", ".join(f"{k}={v}" for k, v in prep.projection.want.as_dict().items()) or "the file's own"],
            ["context", f"{prep.n_ctx} (RoPE settings reach {prep.ctx_cap})"],
            ["KV cache", f"{p.cache_type_k}/{p.cache_type_v}, flash attention {prep.flash_attn}"],
            ["memory", m.summary()]]
    if m.available is not None:
        rows.append(["", f"{mib(m.available - m.local - m.headroom)} to spare here"])
    for w in prep.workers:
        rows.append(["RPC worker", f"{w.endpoint}: RPC protocol {w.version}, {len(w.devices)} device(s), "
                                   f"{mib(w.free)} free of {mib(w.total)}"])
    echo(table(rows))


# -- new -----------------------------------------------------------------------------------
@presets_app.command("new")
def new_cmd(
    name: str = typer.Argument(..., help="Name of the new preset."),
    model: str = typer.Option(..., "--model", help="The GGUF file (or a named model such as smollm2)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Target context; beyond the trained one, plan scales it."),
    method: str = typer.Option("yarn", "--method", help="yarn, linear, ntk or dynamic (when --ctx needs scaling)."),
    cache_type: str = typer.Option("f16", "--cache-type", help="KV cache type for K and V."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Write here instead of the user presets folder."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing preset."),
) -> None:
    """Write a starter preset for a model file (RoPE settings from `ggufrope plan`)."""
    from ggufrope.errors import PresetError
    from ggufrope.models import resolve
    from ggufrope.presets import load as pl
    from ggufrope.presets.importer import safe_name
    from ggufrope.presets.starter import starter_text
    from ggufrope.settings import KV_CACHE_TYPES
    if cache_type not in KV_CACHE_TYPES:
        raise PresetError(f"--cache-type {cache_type!r}: choose from {', '.join(KV_CACHE_TYPES)}")
    if safe_name(name) != name:
        raise PresetError(f"{name!r}: a preset name is letters, digits, '.', '_' and '-' (e.g. {safe_name(name)!r})")
    path = resolve(model, log=note)
    text, notes = starter_text(name, model, path, ctx, method.lower(), cache_type)
    out = output or os.path.join(pl.user_dir(os.environ), f"{name}.toml")
    if os.path.exists(out) and not force:
        raise PresetError(f"{out}: exists; --force overwrites it")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    for n in notes:
        note(n)
    echo(text.rstrip())
    echo(f"\nwrote {out}; try `ggufrope presets check {name}`" if not output else f"\nwrote {out}")


# -- export / import -----------------------------------------------------------------------
@presets_app.command("export")
@preset_options()
def export_cmd(
    name: Optional[str] = typer.Argument(None, help="Preset name (or a .toml path)."),
    to: str = typer.Option(..., "--to", help="llama-ini, llama-swap or llama-cpp-server."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Write to a file instead of stdout."),
    preset: PresetOptions = None,
) -> None:
    """Write the preset as llama.cpp's INI preset, a llama-swap config.yaml entry, or a
    llama-cpp-python server config (models[] entry)."""
    from ggufrope.errors import PresetError
    from ggufrope.presets import binaries
    from ggufrope.presets.export import FORMATS, export
    from ggufrope.presets.prepare import prepare
    if to not in FORMATS:
        raise PresetError(f"--to {to!r}: choose from {', '.join(FORMATS)}")
    p = preset.load(name).with_engine("server")
    # the export runs elsewhere, later: unreachable workers and a tight memory plan are warnings here
    prep = prepare(p, os.environ, fetch=False, strict_memory=False, strict_workers=False)
    print_findings(prep, p)
    server = "llama-server"
    if to == "llama-swap":
        b = binaries.locate(p, os.environ, "llama-server", build=False)
        server = binaries.tool_argv0(b, "llama-server")
    text = export(prep, to, server)
    if output:
        if prep.api_key and to != "llama-ini":
            from ggufrope.presets.secrets import write_private
            write_private(output, text)
            note(f"wrote {output} (0600: it holds the API key)")
        else:
            with open(output, "w") as f:
                f.write(text)
            note(f"wrote {output}")
    else:
        sys.stdout.write(text)


@presets_app.command("import")
def import_cmd(
    file: str = typer.Argument(..., help="A llama.cpp INI preset (docs/preset.md)."),
    section: Optional[str] = typer.Option(None, "--section", help="Import only this section."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Folder to write to (default: user presets)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing presets."),
) -> None:
    """Read a llama.cpp INI preset into ggufrope presets (one per section; [*] becomes a base
    preset the others extend)."""
    from ggufrope.errors import PresetError
    from ggufrope.presets import load as pl
    from ggufrope.presets.importer import parse_ini, safe_name, section_values
    from ggufrope.presets.toml_write import preset_text
    try:
        with open(os.path.expanduser(file), encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise PresetError(f"{file}: cannot read: {e.strerror}") from None
    secs = parse_ini(text, file)
    stem = safe_name(os.path.splitext(os.path.basename(file))[0])
    glob_sec = next((s for s in secs if s.name == "*"), None)
    targets = [s for s in secs if s.name != "*" and (section is None or s.name == section)]
    if section is not None and not targets:
        raise PresetError(f"{file}: no section [{section}] (sections: {', '.join(s.name for s in secs)})")
    outdir = output or pl.user_dir(os.environ)
    os.makedirs(outdir, exist_ok=True)
    written = []
    base_name = None
    if glob_sec is not None and glob_sec.options:
        base_name = f"{stem}-base"
        written.append((base_name, glob_sec, None))
    for s in targets:
        written.append((safe_name(s.name if s.name != "default" else stem), s, base_name))
    for pname, sec, extends in written:
        values, extra, notes = section_values(sec, file)
        if extra:
            values["extra_args"] = extra
        values.setdefault("description", f"imported from {os.path.basename(file)} [{sec.name}]")
        out = os.path.join(outdir, f"{pname}.toml")
        if os.path.exists(out) and not force:
            raise PresetError(f"{out}: exists; --force overwrites it")
        body = preset_text(values, header=[f"imported by `ggufrope presets import {os.path.basename(file)}`",
                                           f"from section [{sec.name}] of {os.path.abspath(file)}"],
                           extends=extends)
        if values.get("server.api_key"):
            from ggufrope.presets.secrets import write_private
            write_private(out, body)
            note(f"{out}: written 0600 (it holds the API key)")
        else:
            with open(out, "w") as f:
                f.write(body)
        for n in notes:
            note(n)
        echo(f"wrote {out}")
