"""`ggufrope worker`: an RPC worker (llama.cpp's RPC server, from an RPC build) for presets on
other machines to spread layers over; `ggufrope worker probe HOST:PORT...`: ask workers what
they are."""
from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from ggufrope.cli.output import Progress, echo, note, print_json, warn

worker_app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                         help="Run a llama.cpp RPC worker here (`ggufrope worker`), or probe workers "
                              "(`ggufrope worker probe HOST:PORT`).")


def _devices_from_log(text: str) -> list[str]:
    """Device descriptions from the worker's start-up lines ("  CPU: <desc> (N MiB, M MiB free)")."""
    out, on = [], False
    for ln in text.splitlines():
        if ln.startswith("Devices:"):
            on = True
        elif on and ln.startswith("  ") and ": " in ln:
            out.append(ln.strip().split(" (", 1)[0])
        elif on:
            break
    return out


@worker_app.callback()
def worker_cmd(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Anything but loopback exposes "
                                                          "an unauthenticated protocol: trusted networks only."),
    port: int = typer.Option(50052, "--port", help="TCP port (ggml-rpc-server's default: 50052)."),
    backend: str = typer.Option("cpu", "--backend", help="cpu, cuda, metal or vulkan: the build to serve from "
                                                          "(cpu serves the CPU even in a GPU build)."),
    mem: Optional[float] = typer.Option(None, "--mem", help="Lend at most this many GB (GiB): each device reports "
                                                             "at most this much memory, which is how llama.cpp "
                                                             "sizes this worker's share."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads (default: half the cores)."),
    cache: bool = typer.Option(False, "--cache", help="Keep received tensors in llama.cpp's cache folder "
                                                      "(faster reloads of the same model)."),
    json_out: bool = typer.Option(False, "--json", help="Print the worker's address and capacity as JSON."),
) -> None:
    """Start an RPC worker: builds llama.cpp with RPC if needed, prints the address and capacity,
    serves until Ctrl-C or SIGTERM, then stops cleanly."""
    if ctx.invoked_subcommand is not None:
        return
    from ggufrope.build.ensure import ensure_build
    from ggufrope.build.spec import RPC_WORKER_TARGET, BuildSpec
    from ggufrope.errors import UsageError
    from ggufrope.presets.launch import log_path
    from ggufrope.rpc import parse_endpoint
    from ggufrope.rpc.worker import LOOPBACK_WARNING, Worker, worker_argv

    if ":" in host or not host:
        raise UsageError(f"--host {host!r}: give a host name or an IPv4 address (llama.cpp's RPC takes no IPv6)")
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: not a TCP port (1-65535)")
    ep = parse_endpoint(f"{host}:{port}")
    if mem is not None and not mem > 0:
        raise UsageError(f"--mem {mem:g}: give a positive number of GB")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads}: at least 1")
    if not ep.loopback:
        warn(LOOPBACK_WARNING.format(ep=ep))
    res = ensure_build(BuildSpec(backend=backend, rpc=True), os.environ, progress=Progress("build"), log=note)
    exe = res.binaries.get(RPC_WORKER_TARGET)
    if exe is None:
        from ggufrope.errors import BuildError
        raise BuildError(f"{res.dir}: the RPC build has no {RPC_WORKER_TARGET}")
    argv = worker_argv(exe, ep, threads=threads, devices=("CPU",) if backend == "cpu" else (),
                       mem_mib=int(mem * 1024) if mem else None, cache=cache)
    w = Worker(argv, ep, log_path(os.environ, f"worker-{ep.port}", "rpc"))
    from ggufrope.supervise import supervise
    end = supervise(w, ready_timeout=30.0, ready_poll=0.1, grace=5.0,
                    on_ready=lambda info: _announce(w, info, res, ep, mem, json_out))
    if end.signal:
        how = "" if end.code in (0, -15) else f"; exit {end.code}"   # -15: our SIGTERM ended it, as asked
        note(f"stopped the RPC worker on {ep} ({end.signal}{how})")


def _announce(w, info, res, ep, mem, json_out: bool) -> None:
    """The worker's address and capacity, as text or JSON, once it answers the probe."""
    from ggufrope.presets.memory import mib
    with open(w.log, errors="replace") as f:
        names = _devices_from_log(f.read())
    if json_out:
        print_json({"endpoint": str(ep), "pid": w.proc.pid, "protocol": str(info.version),
                    "llama_cpp": res.source.commit, "build": res.dir, "log": w.log,
                    "mem_cap_bytes": int(mem * 1024 ** 3) if mem else None,
                    "devices": [{"index": d.index, "name": names[d.index] if d.index < len(names) else None,
                                 "free": d.free, "total": d.total} for d in info.devices]})
    else:
        echo(f"RPC worker listening on {ep}  (llama.cpp {res.source.commit}, RPC protocol {info.version}; "
             f"pid {w.proc.pid})")
        for d in info.devices:
            name = names[d.index] if d.index < len(names) else f"device {d.index}"
            cap = f" (capped by --mem {mem:g})" if mem else ""
            echo(f"  {name}: {mib(d.free)} free of {mib(d.total)}{cap}")
        echo(f"use it: ggufrope serve PRESET --rpc {ep}   (Ctrl-C stops this worker; log: {w.log})")
    sys.stdout.flush()


@worker_app.command("probe")
def probe_cmd(
    endpoints: List[str] = typer.Argument(..., help="HOST:PORT of each worker (or one comma-separated list)."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds to wait for each answer."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Ask workers for their RPC protocol version and memory, and compare the version with the
    local llama.cpp tree's; exits 12 if one does not answer or cannot work with this build."""
    from ggufrope.presets.memory import mib
    from ggufrope.rpc import check_workers, first_blocking, parse_endpoints
    local = _local_version()
    checks = check_workers(parse_endpoints(endpoints), local, timeout)
    if json_out:
        print_json({"local_protocol": str(local) if local else None, "workers": [c.to_dict() for c in checks]})
    for c in checks:
        if c.verdict == "patch":
            warn(f"RPC worker {c.endpoint}: {c.message}")
        if json_out:
            continue
        if c.info is None:
            echo(f"{c.endpoint}: {c.message}")
        else:
            echo(f"{c.endpoint}: RPC protocol {c.info.version} ({c.verdict}), {len(c.info.devices)} device(s), "
                 f"{mib(c.info.free)} free of {mib(c.info.total)}")
    if (err := first_blocking(checks)) is not None:
        raise err


def _local_version():
    """The RPC protocol of the llama.cpp tree builds use here (None if there is none yet)."""
    from ggufrope.errors import GgufropeError
    from ggufrope.rpc import source_proto_version
    try:
        from ggufrope.build.source import resolve_source
        return source_proto_version(resolve_source(None, os.environ).path)
    except GgufropeError:
        return None
