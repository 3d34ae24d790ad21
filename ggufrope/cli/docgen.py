"""docs/cli.md, generated from the commands themselves: every command's `--help`, in order.

    python -m ggufrope.cli.docgen --write    # rewrite docs/cli.md
    python -m ggufrope.cli.docgen --check    # exit 1 when docs/cli.md is stale
    python -m ggufrope.cli.docgen            # print it

The help is rendered as `ggufrope ... --help` renders it, without colour, at a fixed width, so
the file does not depend on the terminal it was made in. tests/test_docs.py fails when the file
is stale. (The model: simonw/llm's docs/help.md.)
"""
from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path
from typing import Iterator
from unittest import mock

WIDTH = 100
DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
REGENERATE = ".venv/bin/python -m ggufrope.cli.docgen --write"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

HEADER = f"""\
# CLI reference

<!-- Generated from the commands' --help by `{REGENERATE}`; do not edit by hand. -->

Every `ggufrope` command's `--help`, as the command prints it (at {WIDTH} columns). The README
has the quick start and the concepts; the topic pages in this folder have worked examples.
"""


def root_command():
    """The click command behind `ggufrope`, with every subcommand registered."""
    import typer

    from ggufrope.cli.app import _register, app

    _register()
    return typer.main.get_command(app)


def walk(cmd, ctx=None, name: str = "ggufrope") -> Iterator[tuple[list[str], object]]:
    """(path, click context) for `cmd` and each visible subcommand, depth first, in help order."""
    import click

    ctx = click.Context(cmd, info_name=name, parent=ctx)
    yield ctx.command_path.split(), ctx
    if isinstance(cmd, click.Group):
        for sub_name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, sub_name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, ctx, sub_name)


@contextlib.contextmanager
def _plain_console() -> Iterator[None]:
    # typer's rich help reads its width and colour settings from module globals filled from
    # the environment at import (TERMINAL_WIDTH, FORCE_COLOR, GITHUB_ACTIONS): pin them here
    try:
        from typer import rich_utils
    except ImportError:  # typer without rich: click's plain help
        yield
        return
    with mock.patch.multiple(rich_utils, MAX_WIDTH=WIDTH, FORCE_TERMINAL=False, COLOR_SYSTEM=None):
        yield


def render_help(ctx) -> str:
    """What `--help` prints for the command of `ctx`: plain text, trailing blanks trimmed."""
    out = io.StringIO()
    with _plain_console(), contextlib.redirect_stdout(out):
        ctx.max_content_width = ctx.terminal_width = WIDTH
        text = ctx.command.get_help(ctx)  # rich prints to stdout and returns ""; click returns it
    lines = _ANSI.sub("", out.getvalue() + text).splitlines()
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def generate() -> str:
    parts = [HEADER]
    for path, ctx in walk(root_command()):
        heading = "#" * min(len(path) + 1, 6)
        parts.append(f"{heading} {' '.join(path)} --help\n\n```\n{render_help(ctx)}\n```\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--write"], ["--check"]):
        sys.stderr.write(f"usage: python -m ggufrope.cli.docgen [--write | --check]\n")
        return 2
    text = generate()
    if not args:
        sys.stdout.write(text)
    elif args == ["--write"]:
        DOC.write_text(text, encoding="utf-8")
        sys.stderr.write(f"wrote {DOC}\n")
    elif not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
        sys.stderr.write(f"{DOC} is stale: run `{REGENERATE}`\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
