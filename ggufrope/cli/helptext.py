"""Help text without the docstrings' hard line breaks.

Docstrings are wrapped at ~100 columns in the source; typer's rich help keeps those newlines in
a group's command list and in every paragraph after the first, so `ggufrope --help` showed
"... KV cache type,⏎ through llama-bench". `reflow_app` rewrites every command's help and
short_help and every option's help once, after the commands are registered: paragraphs
(separated by a blank line) stay, a single newline inside one becomes a space. Paragraphs that
are laid out on purpose stay as written: click's "\\b" marker, or continuation lines that are
indented or start a list item (`- `, `* `, `$ `). Anything after "\\f" (click: hidden from
help) is kept untouched.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, get_args, get_origin

_LAID_OUT = ("-", "*", "$", " ", "\t")


def _keep(paragraph: str) -> bool:
    lines = paragraph.split("\n")
    return paragraph.startswith("\b") or any(ln.startswith(_LAID_OUT) for ln in lines[1:])


def reflow(text: str) -> str:
    """`text` with the single newlines of each prose paragraph turned into spaces."""
    head, sep, tail = text.partition("\f")
    paragraphs = inspect.cleandoc(head).split("\n\n")
    out = [p if _keep(p) else " ".join(p.split()) for p in paragraphs]
    return "\n\n".join(p for p in out if p) + sep + tail


def _reflow_params(callback: Callable[..., Any] | None) -> None:
    # typer reads an option's help from its OptionInfo/ArgumentInfo: the parameter's default
    # or an Annotated[...] extra; both are plain objects with a `help` attribute
    if callback is None:
        return
    from typer.models import ParameterInfo

    for param in inspect.signature(callback).parameters.values():
        infos = [param.default]
        if get_origin(param.annotation) is not None:
            infos += list(get_args(param.annotation)[1:])
        for info in infos:
            if isinstance(info, ParameterInfo) and isinstance(info.help, str):
                info.help = reflow(info.help)


def reflow_app(app: Any) -> None:
    """Reflow, in place, the help of `app` (a typer.Typer), its commands, options and sub-apps."""
    from typer.main import solve_typer_info_help

    if isinstance(app.info.help, str):
        app.info.help = reflow(app.info.help)
    if app.registered_callback is not None:
        _reflow_params(app.registered_callback.callback)
    for info in app.registered_commands:
        doc = info.help if info.help is not None else inspect.getdoc(info.callback)
        if doc:
            info.help = reflow(doc)
        if info.short_help:
            info.short_help = reflow(info.short_help)
        _reflow_params(info.callback)
    for group in app.registered_groups:
        # set explicitly on the add_typer() entry: typer's first choice for a group's help
        doc = solve_typer_info_help(group)
        if doc:
            group.help = reflow(doc)
        if group.typer_instance is not None:
            reflow_app(group.typer_instance)
