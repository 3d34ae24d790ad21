"""`ggufrope inspect MODEL`."""
from __future__ import annotations

import typer

from ggufrope.cli.output import echo, note, print_json, warn
from ggufrope.cli.render import render_inspect
from ggufrope.edit.api import pending_notes
from ggufrope.models import resolve
from ggufrope.report import inspect_report

commands = typer.Typer()  # top-level commands; cli/app.py mounts them


@commands.command("inspect")
def inspect_cmd(
    model: str = typer.Argument(..., help="GGUF file (or a named model such as smollm2)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    all_keys: bool = typer.Option(False, "--all", help="List every key (arrays abbreviated)."),
) -> None:
    """Architecture, trained context, every RoPE setting, shape, header space, KV cache size."""
    path = resolve(model, log=note)
    for n in pending_notes(path):  # read-only: report an interrupted edit, never roll back
        warn(n)
    rep = inspect_report(path, all_keys=all_keys)
    if as_json:
        print_json(rep)
    else:
        echo(render_inspect(rep))
