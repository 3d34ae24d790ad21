"""`ggufrope run|serve|chat PRESET`: check the preset, get the llama.cpp build it needs, start
the engine (argv lists, never a shell). `--dry-run` prints the exact command (or kwargs)."""
from __future__ import annotations

import os
import shlex
import sys
from typing import List, Optional

import typer

from ggufrope.cli.options import DRY_RUN, PresetOptions, preset_options
from ggufrope.cli.output import Progress, echo, note, print_findings
from ggufrope.errors import GgufropeError

commands = typer.Typer()  # top-level commands; cli/app.py mounts them

_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def _prepare(p, dry_run: bool, extra: list[str] = ()):
    from ggufrope.presets.prepare import prepare
    prep = prepare(p, os.environ, fetch=not dry_run, log=note, strict_workers=not dry_run, extra=extra)
    print_findings(prep, p)
    for w in prep.workers:
        from ggufrope.presets.memory import mib
        note(f"RPC worker {w.endpoint}: RPC protocol {w.version}, {len(w.devices)} device(s), "
             f"{mib(w.free)} free of {mib(w.total)}")
    return prep


def _binary(p, tool: str, dry_run: bool, prep=None) -> str:
    from ggufrope.presets import binaries
    b = binaries.locate(p, os.environ, tool, build=not dry_run, progress=Progress("build"), log=note)
    if not b.built:
        note(f"no {b.source}: `ggufrope run` builds it first (or `ggufrope build --for-preset {p.name}`)")
    if tool == "llama-server" and not dry_run and (why := binaries.web_ui(b)):
        note(why)
    if prep is not None and prep.workers:
        _check_worker_versions(b, prep.workers, dry_run)
    return binaries.tool_argv0(b, tool)


def _check_worker_versions(b, workers, dry_run: bool) -> None:
    """The local build and each worker must speak the same RPC protocol (llama.cpp refuses a
    newer or different-major worker with an abort deep in model loading; say it first)."""
    from ggufrope.rpc import judge, source_proto_version
    if not b.source_dir:
        note("build.bin_dir: the RPC protocol of those binaries is unknown; the workers' versions are not checked")
        return
    local = source_proto_version(b.source_dir)
    for w in workers:
        c = judge(w.endpoint, w, local)
        if c.blocking and not dry_run:
            from ggufrope.errors import WorkerError
            raise WorkerError(f"RPC worker {c.endpoint}: {c.message}")
        if c.verdict != "same":
            note(f"warning: RPC worker {c.endpoint}: {c.message}")


def _patched(prep, dry_run: bool) -> None:
    """Files the launch needs, written just before it: the patched copy, the system prompt file."""
    if not dry_run:
        from ggufrope.presets.prepare import write_prompt_file
        write_prompt_file(prep)
    if prep.needs_patch:
        if dry_run:
            note(f"apply = patched: would write {prep.run_model} first")
        else:
            from ggufrope.presets.prepare import write_patched_copy
            write_patched_copy(prep, log=note)


def _kwargs_text(kw: dict) -> str:
    return "llama_cpp.Llama(" + ", ".join(f"{k}={v!r}" for k, v in kw.items()) + ")"


def _extra(ctx: typer.Context) -> list[str]:
    return list(ctx.args)


@commands.command("run", context_settings=_EXTRA)
@preset_options(rpc=True)
def run_cmd(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, help="Preset name (or a .toml path)."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Answer this one prompt and exit "
                                                                       "(llama-completion) instead of a chat."),
    dry_run: bool = DRY_RUN,
    verbose: bool = typer.Option(False, "--verbose", help="Show llama.cpp's log on the terminal."),
    preset: PresetOptions = None,
) -> None:
    """Run a preset with its engine: cli (llama-cli chat; llama-completion with --prompt), server
    (as `serve`) or python (as `chat`). Arguments after `--` go to llama.cpp as they are."""
    p = preset.load(name)
    extra = _extra(ctx)
    if p.engine == "python":
        raise typer.Exit(_chat(p, prompt, dry_run, extra))
    if p.engine == "server" and prompt is None:
        raise typer.Exit(_serve(p, dry_run, verbose, extra))
    raise typer.Exit(_run_cli(p, prompt, dry_run, verbose, extra))


def _run_cli(p, prompt: Optional[str], dry_run: bool, verbose: bool, extra: list[str]) -> int:
    from ggufrope.presets import launch
    p = p.with_engine("cli")
    prep = _prepare(p, dry_run)
    tool = "llama-completion" if prompt is not None else "llama-cli"
    exe = _binary(p, tool, dry_run, prep)
    argv = [exe] + (prep.one_shot_args(prompt) if prompt is not None else prep.to_llama_args(tool)) + extra
    if dry_run:
        echo(shlex.join(argv))
        return 0
    _patched(prep, dry_run)
    if prompt is None:
        return launch.interactive(argv, os.environ)
    try:
        return launch.one_shot(argv, os.environ, launch.log_path(os.environ, p.name, tool), verbose=verbose)
    except GgufropeError as e:
        raise _blamed(e, _endpoints(p)) from None


def _endpoints(p):
    from ggufrope.rpc import parse_endpoints
    return parse_endpoints(list(p.rpc)) if p.rpc else ()


def _blamed(e, eps):
    """A llama.cpp process with RPC workers died: name the workers that no longer answer (the
    usual cause: llama.cpp aborts with "Remote RPC server crashed" when a worker goes away)."""
    if not eps:
        return e
    from ggufrope.errors import WorkerError
    from ggufrope.rpc.watch import blame, describe
    lost = blame(eps)
    return WorkerError(f"{describe(lost)}; {e}") if lost else e


# -- serve -----------------------------------------------------------------------------------
@commands.command("serve", context_settings=_EXTRA)
@preset_options(rpc=True)
def serve_cmd(
    ctx: typer.Context,
    names: Optional[List[str]] = typer.Argument(None, help="Preset name(s) (or .toml paths). Two or more: one "
                                                           "llama-server in router mode, a model per preset."),
    host: Optional[str] = typer.Option(None, "--host", help="Listen address (server.host; default 127.0.0.1)."),
    port: Optional[str] = typer.Option(None, "--port", help='Port (server.port), or "auto" for a free one.'),
    all_presets: bool = typer.Option(False, "--all", help="Serve every preset of your own (the user presets "
                                                          "directory) behind one router."),
    models_max: Optional[int] = typer.Option(None, "--models-max", help="With several presets: how many may be "
                                             "loaded at once (default: all; memory is checked for that many)."),
    dry_run: bool = DRY_RUN,
    verbose: bool = typer.Option(False, "--verbose", help="Show llama-server's log on the terminal."),
    preset: PresetOptions = None,
) -> None:
    """Serve a preset with llama-server (OpenAI-compatible API and llama.cpp's web chat on
    127.0.0.1 by default): waits until /health answers, prints the URL, stops cleanly on Ctrl-C or
    SIGTERM. Several presets (or --all) share one llama-server in router mode: the request's
    `model` field picks the preset. With RPC workers (rpc / --rpc) a worker that goes away ends
    the session with an error naming it."""
    from ggufrope.cli.serve_router import split_names
    given, extra = split_names(list(names or []), _extra(ctx))
    more = {"server.host": host, "server.port": port}
    if all_presets or len(given) > 1:
        from ggufrope.cli.serve_router import serve_router
        raise typer.Exit(serve_router(given, all_presets, preset, more, models_max, dry_run, extra,
                                      echo_log=_to_stderr if verbose else None))
    if models_max is not None:
        from ggufrope.errors import UsageError
        raise UsageError("--models-max applies to several presets (serve A B, or --all)")
    p = preset.load(given[0] if given else None, **more)
    raise typer.Exit(_serve(p, dry_run, verbose, extra))


def _to_stderr(text: str) -> None:
    """--verbose: llama.cpp's log on the terminal as it is written (it also stays in the log file)."""
    sys.stderr.write(text)
    sys.stderr.flush()


def _serve(p, dry_run: bool, verbose: bool, extra: list[str]) -> int:
    from ggufrope.presets import launch
    p = p.with_engine("server")
    prep = _prepare(p, dry_run, extra)
    if not dry_run:   # before a build that may take minutes
        launch.check_port(p.server.host, prep.port)
    exe = _binary(p, "llama-server", dry_run, prep)
    argv = [exe] + prep.to_llama_args("llama-server") + extra
    if dry_run:
        echo(shlex.join(argv))
        if prep.api_key:
            note(f"the API key goes to llama-server in {launch.API_KEY_ENV}, not on the command line")
        return 0
    _patched(prep, dry_run)
    log = launch.log_path(os.environ, p.name, "llama-server")
    srv = launch.Server(argv, launch.child_env(os.environ, prep.api_key), log, p.server.host, prep.port)
    eps = _endpoints(p)
    from ggufrope.rpc.watch import Watch
    from ggufrope.supervise import supervise
    watch = Watch(0, ())   # replaced once the pid is known; with no workers it watches nothing

    def started(child) -> None:
        nonlocal watch
        note(f"llama-server pid {child.proc.pid} starting ({prep.n_ctx} tokens of context); log: {log}")
        watch = Watch(child.proc.pid, eps)

    def ready(_) -> None:
        watch.armed = True
        echo(f"serving {p.name} at {srv.url}  (OpenAI API: {srv.url}/v1; Ctrl-C stops)")
        sys.stdout.flush()
    try:
        end = supervise(srv, ready_timeout=p.server.ready_timeout, on_started=started, on_ready=ready,
                        should_stop=lambda: watch.check(), echo_log=_to_stderr if verbose else None)
    except GgufropeError as e:
        raise _blamed(e, eps) from None
    if watch.lost:
        from ggufrope.errors import WorkerError
        from ggufrope.rpc.watch import describe
        raise WorkerError(f"{describe(watch.lost)}; llama-server cannot go on without it and was stopped "
                          f"(log: {log})")
    if end.signal:
        note(f"stopped llama-server ({end.signal}; exit {end.code})")
    return 0


# -- chat (python engine) -------------------------------------------------------------------
@commands.command("chat", context_settings=_EXTRA)
@preset_options()
def chat_cmd(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, help="Preset name (or a .toml path)."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Answer this one prompt and exit."),
    dry_run: bool = DRY_RUN,
    preset: PresetOptions = None,
) -> None:
    """Chat in the terminal through llama-cpp-python (in process, streaming). Reads lines from
    stdin; an empty line or /exit ends it."""
    p = preset.load(name)
    raise typer.Exit(_chat(p, prompt, dry_run, _extra(ctx)))


def _chat(p, prompt: Optional[str], dry_run: bool, extra: list[str]) -> int:
    from ggufrope.errors import PresetError
    if extra:
        raise PresetError(f"extra llama.cpp arguments ({shlex.join(extra)}) do not apply to the python engine")
    p = p.with_engine("python")
    prep = _prepare(p, dry_run)
    kw = prep.to_llama_cpp_kwargs()
    if dry_run:
        echo(_kwargs_text(kw))
        return 0
    _patched(prep, dry_run)
    from ggufrope.presets.chat import ChatSession
    session = ChatSession(kw, system_prompt=p.system_prompt, chat_template=p.chat_template,
                          completion_kwargs=p.sampling.to_completion_kwargs(), n_predict=p.n_predict)
    try:
        if prompt is not None:
            _stream(session, prompt)
            return 0
        tty = sys.stdin.isatty()
        if tty:
            note(f"{p.name}: chatting with {os.path.basename(prep.run_model)} ({prep.n_ctx} tokens of context); "
                 f"empty line or /exit ends")
        while True:
            if tty:
                sys.stdout.write("> ")
                sys.stdout.flush()
            line = sys.stdin.readline()
            if not line or line.strip() in ("", "/exit", "/quit"):
                break
            _stream(session, line.rstrip("\n"))
    finally:
        session.close()
    return 0


def _stream(session, text: str) -> None:
    for piece in session.send(text):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
