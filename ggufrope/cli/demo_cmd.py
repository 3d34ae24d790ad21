"""`ggufrope fetch` and `ggufrope demo` (the README's main job on the embedded default model)."""
from __future__ import annotations

import os

import typer

from ggufrope import paths
from ggufrope.cli.output import Progress, echo, note, table
from ggufrope.cli.render import render_inspect, render_plan
from ggufrope.edit import patch_file
from ggufrope.edit.requests import PatchRequest, request_ops
from ggufrope.models import DEFAULT, fetch
from ggufrope.report import inspect_report, metadata_diff
from ggufrope.settings import RopeSettings

commands = typer.Typer()  # top-level commands; cli/app.py mounts them


@commands.command("fetch")
def fetch_cmd(name: str = typer.Argument(DEFAULT, help="A named model (smollm2).")) -> None:
    """Download a named model into the cache and verify its checksum; prints its path."""
    echo(fetch(name, log=note))


@commands.command("demo")
def demo_cmd(
    factor: float = typer.Option(4.0, "--factor", help="YaRN factor to apply to the copy."),
) -> None:
    """Fetch SmolLM2-135M, inspect it, and write a YaRN-patched copy next to it in the cache."""
    src = fetch(DEFAULT, log=note)
    echo(render_inspect(inspect_report(src)))
    out = os.path.join(paths.models_dir(), f"SmolLM2-135M-Instruct.Q4_1.yarn{factor:g}x.gguf")
    req = PatchRequest(rope=RopeSettings(scaling_type="yarn", scaling_factor=factor))
    echo("")
    echo(f"$ ggufrope patch {src} --rope-scaling yarn --rope-scale {factor:g} -o {out}")
    plan, _ = patch_file(src, lambda h: request_ops(h, req)[0], out=out, progress=Progress("copying"))
    echo(render_plan(plan, out, False))
    echo("")
    echo(f"$ ggufrope diff {src} {out}")
    echo(table([[r["key"], "-" if r["a"] is None else r["a"], "|", r["b"] or "-"]
                for r in metadata_diff(src, out)], indent=""))
