"""`ggufrope build [list|show|clean]` and `ggufrope doctor`."""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from typing import List, Optional

import typer

from ggufrope.cli.output import Progress, echo, note, print_json, table

commands = typer.Typer()  # top-level commands; cli/app.py mounts them

build_app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                        help="Build llama.cpp (CPU, CUDA, Metal, Vulkan, RPC) and ggufrope's native tools.")


def _spec(backend: str, rpc: bool, cpu: str, cuda_archs: Optional[str], kv: List[str], kv_pairs: List[str],
          build_type: str, targets: List[str]):
    from ggufrope.build.spec import LLAMA_TARGETS, NATIVE_TARGETS, BuildSpec, parse_kv_pairs
    return BuildSpec(backend=backend, rpc=rpc, cpu=cpu, cuda_archs=cuda_archs,
                     kv_pairs=parse_kv_pairs(kv, kv_pairs), build_type=build_type,
                     targets=tuple(targets) if targets else LLAMA_TARGETS + NATIVE_TARGETS)


SPEC_OPTS = dict(
    backend=typer.Option("cpu", "--backend", help="cpu, cuda, metal or vulkan."),
    rpc=typer.Option(False, "--rpc", help="Also build the RPC backend and ggml-rpc-server."),
    cpu=typer.Option("portable", "--cpu", help="portable (AVX2; safe default) or native (-march=native)."),
    cuda_archs=typer.Option(None, "--cuda-archs", help='CMAKE_CUDA_ARCHITECTURES, e.g. "90".'),
    kv=typer.Option([], "--kv", help="CUDA FA square K/V pairs to add, e.g. q8_0,q4_0 (or all)."),
    kv_pairs=typer.Option([], "--kv-pairs", help="CUDA FA K-V pairs to add, e.g. q8_0-q4_0 (or all)."),
    build_type=typer.Option("Release", "--build-type", help="CMAKE_BUILD_TYPE."),
    targets=typer.Option([], "--target", help="Targets to build (default: llama tools + ggufrope probes)."),
    source=typer.Option(None, "--source", help="llama.cpp source tree (default: $LLAMA_CPP_DIR, else the "
                                               "tree vendored in llama-cpp-python's sdist)."),
)


@build_app.callback()
def build_cmd(
    ctx: typer.Context,
    backend: str = SPEC_OPTS["backend"], rpc: bool = SPEC_OPTS["rpc"], cpu: str = SPEC_OPTS["cpu"],
    cuda_archs: Optional[str] = SPEC_OPTS["cuda_archs"], kv: List[str] = SPEC_OPTS["kv"],
    kv_pairs: List[str] = SPEC_OPTS["kv_pairs"], build_type: str = SPEC_OPTS["build_type"],
    targets: List[str] = SPEC_OPTS["targets"], source: Optional[str] = SPEC_OPTS["source"],
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the cmake commands; run nothing."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if a cached build exists."),
    python: bool = typer.Option(False, "--python", help="Make the in-process (llama-cpp-python) engine use "
                                                        "this spec too."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    for_preset: Optional[str] = typer.Option(None, "--for-preset", help="Build what this preset needs "
                                             "(its build.backend and build.kv_pairs; RPC when it lists workers)."),
    workers: Optional[str] = typer.Option(None, "--workers", help="RPC workers HOST:PORT,... to check against this "
                                          "build's llama.cpp (RPC protocol version); implies --rpc."),
    offline: bool = typer.Option(False, "--offline", help="Fetch nothing (CUDA pieces from PyPI); also "
                                 "GGUFROPE_OFFLINE=1. A missing piece is then an error naming what to install."),
) -> None:
    """Build (or return the cached build of) a spec; prints its bin dir. With --workers (or a
    preset that lists rpc workers), checks that they speak this build's RPC protocol."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = dict(backend=backend, rpc=rpc, cpu=cpu, cuda_archs=cuda_archs, kv=kv, kv_pairs=kv_pairs,
                       build_type=build_type, targets=targets, source=source)
        return
    from ggufrope.build import builder
    from ggufrope.build.smoke import smoke_test
    from ggufrope.build.source import resolve_source
    from ggufrope.rpc import parse_endpoints
    eps = list(parse_endpoints(workers)) if workers else []
    spec = _spec(backend, rpc or bool(eps), cpu, cuda_archs, kv, kv_pairs, build_type, targets)
    if for_preset:
        from dataclasses import replace
        from ggufrope.presets import load_preset
        pre = load_preset(for_preset, os.environ)
        need = pre.build_spec()
        spec = _spec(need.backend, need.rpc or bool(eps), cpu, cuda_archs, kv, kv_pairs, build_type, targets)
        spec = replace(spec, kv_pairs=need.kv_pairs)
        eps += [e for e in parse_endpoints(list(pre.rpc)) if e not in eps]
    src = resolve_source(source, os.environ, log=note)
    bdir = builder.build_dir(spec, src)
    if dry_run:
        _print_commands(spec, src, bdir, python)
        return
    res = builder.build(spec, src, os.environ, progress=Progress("build"), log=note, force=force, smoke=smoke_test,
                        offline=offline)
    checks = []
    if eps:
        from ggufrope.rpc import check_workers, first_blocking, source_proto_version
        checks = check_workers(eps, source_proto_version(src.path))
    _print_result(res, spec, src, checks if eps else None, as_json)
    if python:
        _python_engine(spec, src, res.bin_dir, dry_run=False)
    if checks and (err := first_blocking(checks)) is not None:
        raise err


def _print_result(res, spec, src, checks: Optional[list], as_json: bool) -> None:
    """The build (cached or just built, its bin dir) and each worker's verdict (checks: None
    when no workers were given)."""
    if as_json:
        print_json({**res.to_dict(), **({"workers": [c.to_dict() for c in checks]} if checks is not None else {})})
        return
    smoke = res.checks.get("smoke", "passed")
    how = "cached" if res.cached else f"built in {res.seconds:.0f}s, smoke test: {smoke}"
    echo(f"{spec.name()}: {how}; llama.cpp {src.commit}")
    echo(res.bin_dir)
    for c in checks or ():
        echo(f"worker {c.endpoint}: {c.verdict}: {c.message}")


def _print_commands(spec, src, bdir: str, python: bool) -> None:
    """--dry-run: the cmake commands a build of spec would run (and the llama-cpp-python step)."""
    from ggufrope.build import builder
    gen = "Ninja" if shutil.which("ninja") else None
    machine_args: list = []
    if spec.backend == "cuda":
        from ggufrope.build import cuda_toolkit
        tk = cuda_toolkit.detect(cuda_toolkit.World(env=dict(os.environ)))
        if tk.to_fetch:
            note(f"would fetch CUDA {', '.join(tk.to_fetch)}: {cuda_toolkit.fix_command(tk)}")
        machine_args = tk.cmake_args()
    configure, build = builder.commands(spec, src, bdir, builder.repo_root(), os.cpu_count() or 2, gen,
                                        machine_args)
    echo(shlex.join(configure))
    echo(shlex.join(build))
    if python:
        _python_engine(spec, src, os.path.join(bdir, "build", "bin"), dry_run=True)


def _python_engine(spec, src, bin_dir: str, dry_run: bool) -> None:
    """llama-cpp-python on this spec: no second compile when its vendored llama.cpp is this
    source (LLAMA_CPP_LIB_PATH loads our libllama; same ABI), else pip-build it with CMAKE_ARGS."""
    import platform
    import subprocess
    from ggufrope.llama_source import LLAMA_CPP_PYTHON_VERSION, vendored_tree
    vendored = os.path.realpath(vendored_tree()) == os.path.realpath(src.path)
    if vendored:
        from ggufrope.build.python_engine import link_libraries, package_lib_dir
        lib_dir = package_lib_dir()
        if dry_run:
            echo(f"python engine: would link {bin_dir}/lib*.so into {lib_dir}")
            return
        names = link_libraries(bin_dir, lib_dir)
        echo(f"python engine: llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} vendors this llama.cpp; linked "
             f"{len(names)} libraries of this build into {lib_dir} (no second compile; ggufrope sessions "
             f"load their spec's build with LLAMA_CPP_LIB_PATH)")
        return
    cmake_args = [a for a in spec.cmake_args(src.path, src.has_fa_quants_option, machine=platform.machine())
                  if not a.startswith("-DLLAMA_CPP_DIR=")]
    argv = [sys.executable, "-m", "pip", "install", "--force-reinstall", "--no-deps", "--no-binary",
            "llama-cpp-python", f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"]
    echo(f"CMAKE_ARGS={shlex.quote(' '.join(cmake_args))} {shlex.join(argv)}")
    if not dry_run:
        r = subprocess.run(argv, env={**os.environ, "CMAKE_ARGS": " ".join(cmake_args)})
        if r.returncode != 0:
            from ggufrope.errors import BuildError
            raise BuildError(f"pip could not build llama-cpp-python with {' '.join(cmake_args)}")


@build_app.command("list")
def build_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Builds in the cache."""
    from ggufrope.build.builder import list_builds
    rows = list_builds()
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo("no builds yet: run `ggufrope build`")
    echo(table([[r["name"], "ok" if r["complete"] else "unfinished",
                 (r.get("source") or {}).get("commit", "-"), r.get("built_at") or "-"] for r in rows], indent=""))


@build_app.command("show")
def build_show(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """The build for the spec given to `build` (e.g. `ggufrope build --rpc show --json`)."""
    from ggufrope.build import builder
    from ggufrope.build.source import resolve_source
    from ggufrope.errors import BuildError
    o = ctx.obj or {}
    spec = _spec(o.get("backend", "cpu"), o.get("rpc", False), o.get("cpu", "portable"), o.get("cuda_archs"),
                 o.get("kv", []), o.get("kv_pairs", []), o.get("build_type", "Release"), o.get("targets", []))
    src = resolve_source(o.get("source"), os.environ)
    bdir = builder.build_dir(spec, src)
    stamp = builder.load_stamp(bdir)
    if stamp is None:
        raise BuildError(f"{spec.name()}: not built yet ({bdir}); run `ggufrope build` with the same options")
    if as_json:
        print_json(stamp)
        return
    rows = [["spec", spec.name()], ["llama.cpp", f"{src.commit} (build {src.build_number}) {src.path}"],
            ["bin_dir", stamp["bin_dir"]], ["binaries", ", ".join(sorted(stamp["binaries"]))],
            ["built", f"{stamp.get('built_at')} in {stamp.get('seconds')}s"]]
    checks = stamp.get("checks", {})
    if "smoke" in checks:
        rows.append(["smoke test", checks["smoke"]])
    if "cuda_toolkit" in checks:
        tk = checks["cuda_toolkit"]
        rows.append(["CUDA", f"{tk['release']} (nvcc {tk['nvcc_version']})"
                     + ("; GGML_CUDA_NO_VMM=ON (no driver library at build time)" if tk.get("no_vmm") else "")])
        rows += [[f"  {n}", f"{p['source']}: {p['path']}"] for n, p in tk["pieces"].items()]
    if "cuda" in checks:
        rows.append(["FA kernels", ", ".join(checks["cuda"]["fa_kernels"])])
        rows += [[f"  ldd {k}", v or "not found"] for k, v in checks["cuda"]["ldd"].items()]
    echo(table(rows, indent=""))


@build_app.command("cuda-toolkit")
def build_cuda_toolkit(fetch: bool = typer.Option(False, "--fetch", help="Fetch the missing pieces from PyPI "
                                                  "(NVIDIA's wheels, pinned, sha256-checked)."),
                       offline: bool = typer.Option(False, "--offline", help="Refuse to fetch; say what to "
                                                    "install instead."),
                       as_json: bool = typer.Option(False, "--json")) -> None:
    """The CUDA toolkit pieces a CUDA build uses (nvcc, cudart, CCCL, cuBLAS): system, cached, missing."""
    import platform
    from ggufrope.build import cuda_toolkit
    w = cuda_toolkit.World(env=dict(os.environ))
    tk = cuda_toolkit.detect(w)
    if fetch and tk.to_fetch:
        tk = cuda_toolkit.prepare(os.environ, offline or cuda_toolkit.is_offline(os.environ), platform.machine(),
                                  note, w)
    if as_json:
        print_json({**tk.to_dict(), "cmake_args": tk.cmake_args(), "to_fetch": tk.to_fetch})
        return
    src = {"system": "system", "cached": "cached from PyPI", "missing": "missing"}
    echo(f"CUDA {tk.release or 'unknown (no nvcc, no driver)'}"
         + (f", driver supports CUDA {tk.driver_cuda}" if tk.driver_cuda else ", no NVIDIA driver"))
    echo(table([[p.name, src[p.source], p.path or "-"] for p in tk.pieces]))
    for n in tk.notes():
        echo(n)
    if tk.missing:
        echo(f"fix: {cuda_toolkit.fix_command(tk, platform.machine())}")


@build_app.command("clean")
def build_clean(names: List[str] = typer.Argument(None, help="Build names (see `build list`); none = all.")) -> None:
    """Remove cached builds."""
    from ggufrope.build.builder import builds_dir, list_builds
    from ggufrope.errors import UsageError
    rows = list_builds()
    known = {r["name"] for r in rows}
    for n in names or []:
        if n not in known:
            raise UsageError(f"{n}: no such build (known: {', '.join(sorted(known)) or 'none'})")
    for r in rows:
        if not names or r["name"] in names:
            shutil.rmtree(r["dir"])
            echo(f"removed {r['name']}")
    if not rows:
        echo(f"nothing to clean in {builds_dir()}")


@commands.command("doctor")
def doctor_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Toolchains present, and what each backend still lacks."""
    from ggufrope.build import cuda_toolkit
    from ggufrope.build.doctor import World, backends, cpu_flags, cpu_note, tools, web_ui_note
    w = World()
    ts = tools(w)
    tk = cuda_toolkit.detect(w)
    bs = backends(w, ts, tk)
    cpu = cpu_note(cpu_flags())
    if as_json:
        print_json({"tools": [t.__dict__ for t in ts], "cuda_toolkit": tk.to_dict(),
                    "backends": [b.__dict__ for b in bs], "cpu": cpu, "web_ui": web_ui_note(w)})
        return
    echo("toolchains:")
    echo(table([[t.name, t.version or ("found" if t.path else "-"), t.path or "not found"] for t in ts]))
    echo(f"CUDA toolkit pieces (CUDA {tk.release or 'unknown: no nvcc, no driver'}):")
    src = {"system": "system", "cached": "cached from PyPI", "missing": "missing"}
    echo(table([[p.name, src[p.source], p.path or "-"] for p in tk.pieces]))
    if tk.missing:
        echo(f"  fix: {cuda_toolkit.fix_command(tk, w.machine)}")
    echo("backends:")
    for b in bs:
        echo(f"  {b.backend:<7} {'ready' if b.ready else 'missing: ' + '; '.join(b.missing)}")
    echo(web_ui_note(w))
    echo(cpu)
