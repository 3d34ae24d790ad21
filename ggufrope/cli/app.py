"""The `ggufrope` command: a thin typer layer over the library. Errors become one line and
an exit code here and only here; `--debug` shows the traceback."""
from __future__ import annotations

import sys

import typer

from ggufrope.errors import GgufropeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="RoPE and long-context settings for GGUF models and llama.cpp.")
_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    _state["debug"] = debug


# Where the commands live. Each module defines its commands on typer apps of its own and never
# imports this one: top-level commands on its `commands` app (merged here, in this order in
# --help), groups on a named app mounted under that name.
COMMANDS = ("build_cmd", "edit_cmds", "inspect_cmd", "demo_cmd", "eval_cmd", "verify_cmd", "plan_cmd", "run_cmd")
GROUPS = (("build", "build_cmd", "build_app"), ("eval", "eval_cmd", "eval_app"),
          ("presets", "presets_cmd", "presets_app"), ("worker", "worker_cmd", "worker_app"))
# Which module holds each top-level command, so that `ggufrope run ...` imports only run_cmd
# (start-up: every command module pulls in its part of the library). tests/test_cli_app.py checks
# this table against what the modules define.
WHERE = {"doctor": "build_cmd", "patch": "edit_cmds", "restore": "edit_cmds", "recover": "edit_cmds",
         "diff": "edit_cmds", "inspect": "inspect_cmd", "fetch": "demo_cmd", "demo": "demo_cmd",
         "bench": "eval_cmd", "tune": "eval_cmd", "verify": "verify_cmd", "plan": "plan_cmd",
         "run": "run_cmd", "serve": "run_cmd", "chat": "run_cmd"}
_mounted: list[str] = []   # what is on `app`: command modules, "group:NAME", or "*" for everything


def _command_word(argv: list[str]) -> str | None:
    """The command a command line names (the first word that is not a root option)."""
    for a in argv:
        if a != "--debug":
            return a if not a.startswith("-") else None
    return None


def _register(argv: list[str] | None = None) -> None:
    """Mount the commands on `app`: only the module of the command argv names when it names one,
    else all of them, in --help order (help, a typo's did-you-mean, docgen). Called again in one
    process (tests run the CLI in process), it mounts what is missing."""
    import importlib

    from ggufrope.cli.helptext import reflow_app

    if "*" in _mounted:
        return
    word = _command_word(argv) if argv is not None else None
    groups = {name: (module, attr) for name, module, attr in GROUPS}
    if word in WHERE:
        wanted = [(WHERE[word], None)]
    elif word in groups:
        wanted = [(f"group:{word}", word)]
    else:
        app.registered_groups.clear()   # everything, in the order --help shows
        _mounted.clear()
        wanted = [(m, None) for m in COMMANDS] + [(f"group:{n}", n) for n, _, _ in GROUPS] + [("*", None)]
    for key, group in wanted:
        if key in _mounted:
            continue
        if group is not None:
            module, attr = groups[group]
            app.add_typer(getattr(importlib.import_module(f"ggufrope.cli.{module}"), attr), name=group)
        elif key != "*":
            app.add_typer(importlib.import_module(f"ggufrope.cli.{key}").commands)
        _mounted.append(key)
    reflow_app(app)  # docstrings' hard line breaks would show as broken lines in --help


def main() -> None:
    _register(sys.argv[1:])
    # GGUF strings need not be UTF-8 (ggml does not check; they decode with surrogateescape):
    # print them escaped instead of dying with UnicodeEncodeError on a strict UTF-8 terminal
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:  # typer >= 0.26 vendors click as typer._click
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover
        from click import exceptions as cx
    try:
        rc = app(standalone_mode=False)
    except cx.NoArgsIsHelpError as e:
        # `ggufrope` or `ggufrope build` alone: help on stdout, like --help
        sys.stdout.write(e.ctx.get_help() + "\n" if e.ctx else str(e) + "\n")
        sys.exit(0)
    except cx.UsageError as e:
        # bad option or value: one line, like every other error
        where = f"{e.ctx.command_path}: " if e.ctx else ""
        msg = e.format_message()
        hint = msg.rfind(" Did you mean")
        if hint > 0 and msg.count(msg[hint:]) > 1:   # click and typer each add the suggestion
            msg = msg[:msg.find(msg[hint:])] + msg[hint:]
        sys.stderr.write(f"ggufrope: error: {where}{msg}\n")
        sys.exit(2)
    except GgufropeError as e:
        if _state["debug"] or "--debug" in sys.argv:
            raise
        sys.stderr.write(f"ggufrope: error: {e}\n")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("ggufrope: interrupted\n")
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
