"""The docs that come from the code: docs/cli.md is every command's --help and must be current;
--help itself shows no line broken by a docstring's hard newline."""
from __future__ import annotations

import difflib
import inspect

import click
import pytest
import typer

from ggufrope.cli import docgen
from ggufrope.cli.helptext import reflow, reflow_app


def test_cli_reference_is_current():
    want = docgen.generate()
    have = docgen.DOC.read_text(encoding="utf-8") if docgen.DOC.is_file() else ""
    if have != want:
        diff = "".join(list(difflib.unified_diff(
            have.splitlines(True), want.splitlines(True), "docs/cli.md", "generated"))[:60])
        pytest.fail(f"docs/cli.md is stale: regenerate it with `{docgen.REGENERATE}`\n{diff}")


def test_cli_reference_lists_every_command():
    text = docgen.DOC.read_text(encoding="utf-8")
    for path, _ in docgen.walk(docgen.root_command()):
        assert f" {' '.join(path)} --help\n" in text
    assert "\x1b[" not in text


@pytest.mark.parametrize("text, want", [
    pytest.param("one line", "one line", id="single-line"),
    pytest.param("Speed against KV cache type,\nthrough llama-bench.",
                 "Speed against KV cache type, through llama-bench.", id="hard-break"),
    pytest.param("First\nparagraph.\n\nSecond\nparagraph.", "First paragraph.\n\nSecond paragraph.",
                 id="paragraphs-kept"),
    pytest.param("\n    Indented docstring\n    goes on.\n    ", "Indented docstring goes on.",
                 id="docstring-indent"),
    pytest.param("Steps:\n- one\n- two", "Steps:\n- one\n- two", id="list-kept"),
    pytest.param("\bkeep\nthese lines", "\bkeep\nthese lines", id="click-b-marker"),
    pytest.param("Shown\ntext.\fhidden\nnotes", "Shown text.\fhidden\nnotes", id="form-feed-tail"),
])
def test_reflow(text, want):
    assert reflow(text) == want
    assert reflow(want) == want


def _broken_lines(rendered: str) -> list[str]:
    """Lines that end although the next line's first word would have fitted on them: a line
    broken by a newline in the help text, not by wrapping. Panels are boxed (`│ ... │`); a row
    starts near the box's left edge with a name, an option or `*`, and wraps further right,
    under its description column."""
    bad = []
    lines = rendered.splitlines()
    for a, b in zip(lines, lines[1:]):
        if a.startswith("│") and b.startswith("│"):
            a, b = a[1:].rstrip("│").rstrip(), b[1:].rstrip("│").rstrip()
            width = docgen.WIDTH - 4  # borders and padding
            indent = len(b) - len(b.lstrip())
            if indent < 8 or b.lstrip()[0] in "-*" or len(a) <= indent:
                continue  # a new row (a name, an option, a required `*`), or a short one
        elif a.startswith(" ") and b.startswith(" ") and a.strip() and b.strip():
            if a.lstrip().startswith("Usage:"):
                continue
            width = docgen.WIDTH - 2
        else:
            continue
        word = b.split()[0]
        # typer sets [default: ...], [required] and [env var: ...] as items of their own
        if not word.startswith("[") and len(a) + 1 + len(word) <= width:
            bad.append(f"{a.strip()!r} / {b.strip()!r}")
    return bad


def _tiny_app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    sub = typer.Typer(help="A group whose help\nis wrapped in the source.")
    app.add_typer(sub, name="group")

    @app.command()
    def speed(ctx_len: int = typer.Option(0, help="Context lengths to\nmeasure at.")) -> None:
        """Speed and memory against context length and KV cache
        type, through llama-bench; the KV cache compared with the planner's estimate.

        A second paragraph that is
        wrapped early."""

    @sub.command()
    def leaf() -> None:
        """Leaf command with a docstring
        wrapped early."""
    return app


def _rendered(app: typer.Typer) -> dict[str, str]:
    return {" ".join(p): docgen.render_help(ctx)
            for p, ctx in docgen.walk(typer.main.get_command(app), name="tiny")}


def test_broken_lines_are_found_and_reflow_removes_them():
    app = _tiny_app()
    before = _rendered(app)
    assert any(_broken_lines(text) for text in before.values()), before
    reflow_app(app)
    after = _rendered(app)
    assert {k: _broken_lines(v) for k, v in after.items()} == {k: [] for k in after}
    assert "KV cache type, through llama-bench" in " ".join(after["tiny"].split())


def test_ggufrope_help_has_no_broken_lines():
    problems = {}
    for path, ctx in docgen.walk(docgen.root_command()):
        bad = _broken_lines(docgen.render_help(ctx))
        if bad:
            problems[" ".join(path)] = bad
    assert problems == {}


def test_every_help_text_is_reflowed():
    # what typer hands to the renderer: command help, short help and every option's help
    for path, ctx in docgen.walk(docgen.root_command()):
        cmd = ctx.command
        texts = [cmd.help, cmd.short_help] + [getattr(p, "help", None) for p in cmd.params]
        for text in filter(None, texts):
            assert reflow(text) == inspect.cleandoc(text), (" ".join(path), text)
        assert isinstance(cmd, click.Command)
