"""`ggufrope serve A B ...` / `serve --all`: several presets behind one llama-server in router
mode (presets/router.py). Renders only: the library prepares, checks and supervises."""
from __future__ import annotations

import os
import shlex
import sys
from typing import Optional, Sequence

from ggufrope.cli.output import Progress, echo, note, print_findings
from ggufrope.errors import GgufropeError, UsageError


def split_names(names: list[str], extra: list[str]) -> tuple[list[str], list[str]]:
    """click hands a variadic argument everything after `--` as well: the preset names end at
    the first item that looks like an option (a preset name never starts with "-")."""
    for i, n in enumerate(names):
        if n.startswith("-"):
            return names[:i], names[i:] + extra
    return names, extra


def user_presets(env) -> list[str]:
    """The presets in the user presets directory (--all), by name."""
    from ggufrope.presets.load import USER, available, user_dir
    names = [n for n, found in available(env).items() if found[0][0] == USER]
    if not names:
        raise UsageError(f"--all: no presets of your own in {user_dir(env)} (`ggufrope presets new NAME`, "
                         f"or name the presets: serve A B)")
    return names


def _load_all(names: Sequence[str], opts, more: dict):
    from ggufrope.presets.router import named
    out = []
    for n in names:
        try:
            out.append(opts.load(n, **more))
        except GgufropeError as e:
            raise named(e, n) from None
    backends = {p.build.backend for p in out}
    if len(backends) > 1:
        raise UsageError(f"presets {', '.join(names)} need different llama.cpp builds ({', '.join(sorted(backends))}); "
                         f"one server runs one build: serve them separately")
    return out


def serve_router(given: list[str], all_presets: bool, opts, more: dict, models_max: Optional[int],
                 dry_run: bool, extra: list[str], echo_log=None) -> int:
    """echo_log: gets the router's log as it is written (--verbose); it carries the models' logs too."""
    from ggufrope.presets import binaries, launch, router
    from ggufrope.presets.prepare import prepare, write_patched_copy, write_prompt_file
    env = os.environ
    names = list(dict.fromkeys(given + (user_presets(env) if all_presets else [])))
    presets = _load_all(names, opts, more)

    def prep_one(p):
        prep = prepare(p, env, fetch=not dry_run, log=note, strict_workers=not dry_run, extra=extra)
        print_findings(prep, p)
        return prep
    r = router.prepare_router(presets, env, prep_one, models_max)
    note(r.memory_line())
    if not dry_run:   # before a build that may take minutes
        launch.check_port(r.host, r.port)
    b = binaries.locate(presets[0], env, "llama-server", build=not dry_run, progress=Progress("build"), log=note)
    if not dry_run and (why := binaries.web_ui(b)):
        note(why)
    exe = binaries.tool_argv0(b, "llama-server")
    if dry_run:
        sys.stdout.write(r.ini())
        echo(shlex.join(r.argv(exe, router.ini_path(env, r.names), extra)))
        return 0
    for prep in r.preps:
        write_prompt_file(prep)
        if prep.needs_patch:
            write_patched_copy(prep, log=note)
    argv = r.argv(exe, router.write_ini(r, env), extra)
    log = launch.log_path(env, "+".join(r.names)[:120], "llama-server")
    srv = launch.Server(argv, launch.child_env(env, r.api_key), log, r.host, r.port)
    from ggufrope.supervise import supervise

    def ready(_) -> None:
        echo(f"serving {', '.join(r.names)} at {srv.url}  (OpenAI API: {srv.url}/v1, model = a preset name; "
             f"Ctrl-C stops)")
        sys.stdout.flush()
    end = supervise(srv, ready_timeout=max(p.preset.server.ready_timeout for p in r.preps),
                    on_started=lambda c: note(f"llama-server router pid {c.proc.pid} starting; log: {log}"),
                    on_ready=ready, echo_log=echo_log)
    if end.signal:
        note(f"stopped llama-server and its models ({end.signal}; exit {end.code})")
    return 0
