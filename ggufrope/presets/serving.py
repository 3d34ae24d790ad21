"""What `serve` checks about where llama-server listens, before anything starts.

ggufrope passes --host and --port itself and then waits for /health on that address, so a host
or port that the preset's extra_args (or arguments after `--`) set again would make it wait on
the wrong port, or report a server that is not ours as serving (llama.cpp takes the last of a
repeated option): refused, with the option to use instead. An API key on llama-server's argv
(--api-key) is refused too (argv is readable by every local user; secrets.py). Off loopback
without a key: a warning, as the RPC worker gives.
"""
from __future__ import annotations

from typing import Iterator, Mapping, Sequence

from ggufrope.childproc import is_loopback
from ggufrope.presets.checks import Finding
from ggufrope.presets.preset import Preset

# llama-server options ggufrope sets itself -> what to use instead (common/arg.cpp)
OWNED = {"--host": "--host (server.host)", "--port": "--port (server.port)"}
KEY_FILE = "--api-key-file"


def options(args: Sequence[str]) -> Iterator[tuple[str, str | None]]:
    """(option, value) of every `--name value` / `--name=value` in args (value None at the end)."""
    for i, a in enumerate(args):
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            yield name, value if eq else (args[i + 1] if i + 1 < len(args) else None)


def server_findings(p: Preset, extra: Sequence[str], has_key: bool, env: Mapping[str, str]) -> list[Finding]:
    """Errors for options that take the listening address or the key away from ggufrope; the
    off-loopback warning. extra: the arguments given after `--`."""
    out: list[Finding] = []
    for args, field, where in ((p.extra_args, "extra_args", "extra_args"), (extra, None, "after --")):
        for name, value in options(list(args)):
            if name in OWNED:
                out.append(Finding("error", field,
                                   f"{name} {value or ''} {where}: ggufrope passes {name} itself and waits for "
                                   f"llama-server there; use {OWNED[name]} instead".replace("  ", " ")))
            elif name == "--api-key":
                out.append(Finding("error", field,
                                   f"--api-key {where} puts the key on llama-server's command line, readable by "
                                   f"every local user; use server.api_key or server.api_key_file"))
            elif name == KEY_FILE:
                has_key = True
    host = p.server.host
    if "," in host or host.endswith(".sock"):
        out.append(Finding("error", "server.host", f"{host!r}: give one address (ggufrope waits for /health "
                                                   f"on it; llama-server's lists and UNIX sockets are not handled)"))
    elif not is_loopback(host) and not has_key and not env.get("LLAMA_API_KEY"):
        out.append(Finding("warning", "server.host",
                           f"llama-server on {host} is reachable from other machines and has no API key: anyone "
                           f"who can reach it can use the model (and its slots and props endpoints). Set "
                           f"server.api_key or server.api_key_file, or serve on 127.0.0.1 behind a proxy."))
    return out
