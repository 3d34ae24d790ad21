"""The llama.cpp binaries a preset runs: `build.bin_dir` when the preset names one, else a
finished ggufrope build that satisfies the preset's BuildSpec (same backend; on CUDA every
flash-attention pair it needs), else a new build (`ggufrope build`, with progress).

Finding an existing build reads only the build stamps (build.json), never the llama.cpp tree,
so `run` stays fast; `ggufrope build` is where a changed source gets rebuilt.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping

from ggufrope.errors import BuildError, PresetError
from ggufrope.presets.preset import Preset

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Binaries:
    bin_dir: str
    source: str           # "build.bin_dir", or the build's name
    built: bool           # False: a dry run found no build; the paths are what a build would give
    source_dir: str | None = None   # the llama.cpp tree it was built from (None: build.bin_dir)
    commit: str | None = None
    build_dir: str | None = None    # the ggufrope build dir whose stamp (build.json) describes it

    def tool(self, name: str) -> str:
        return os.path.join(self.bin_dir, name)


def _spec_from_stamp(d: dict):
    from ggufrope.build.spec import BuildSpec
    kv = d.get("kv_pairs") or ()
    return BuildSpec(backend=d.get("backend", "cpu"), rpc=bool(d.get("rpc")), cpu=d.get("cpu", "portable"),
                     cuda_archs=d.get("cuda_archs"), kv_pairs=kv if isinstance(kv, str) else tuple(kv),
                     build_type=d.get("build_type", "Release"), targets=tuple(d.get("targets") or ()))


def satisfies(have, want, pairs: list[tuple[str, str]]) -> bool:
    if have.backend != want.backend or (want.rpc and not have.rpc):
        return False
    need = list(pairs)
    if want.backend == "cuda" and want.kv_pairs and want.kv_pairs != "all":
        need += [tuple(x.split("-", 1)) for x in want.kv_pairs]
    return all(have.has_fa_pair(k, v) for k, v in need)


def find_build(p: Preset, env: Mapping[str, str], tool: str) -> Binaries | None:
    """A finished build that serves this preset and has tool, newest first; portable CPU builds
    before native ones (a native build can crash on these hosts: README, "CPU crash guard")."""
    from ggufrope.build.builder import list_builds
    want = p.build_spec()
    pairs = [(p.cache_type_k, p.cache_type_v)] if p.build.backend == "cuda" and p.flash_attn != "off" else []
    rows = [r for r in list_builds(env) if r.get("complete") and tool in (r.get("binaries") or {})]
    ok = []
    for r in rows:
        try:
            have = _spec_from_stamp(r["spec"])
        except Exception:  # a stamp from another ggufrope version: skip it
            continue
        if satisfies(have, want, pairs):
            ok.append((have.cpu != "portable", -(os.path.getmtime(os.path.join(r["dir"], "build.json"))), r))
    if not ok:
        return None
    ok.sort(key=lambda t: t[:2])
    r = ok[0][2]
    src = r.get("source") or {}
    return Binaries(os.path.dirname(r["binaries"][tool]), r["name"], True, src.get("path"), src.get("commit"),
                    r["dir"])


def _stamp_source(bin_dir: str) -> dict:
    """The source a ggufrope build's bin dir (<build>/build/bin) was built from, from its stamp;
    {} for binaries from anywhere else."""
    import json
    try:
        with open(os.path.join(bin_dir, os.pardir, os.pardir, "build.json")) as f:
            return dict(json.load(f).get("source") or {})
    except (OSError, ValueError, AttributeError):
        return {}


def locate(p: Preset, env: Mapping[str, str], tool: str, *, build: bool = True,
           progress: Progress | None = None, log: Callable[[str], None] = lambda s: None) -> Binaries:
    """The binaries to run tool from. build=False (dry run): never builds; returns the bare tool
    name's directory "" when nothing is built yet."""
    if p.build.bin_dir:
        d = os.path.abspath(os.path.expandvars(os.path.expanduser(p.build.bin_dir)))
        if not os.path.isfile(os.path.join(d, tool)):
            raise p.res.error("build.bin_dir", f"{d}: no {tool} there")
        src = _stamp_source(d)
        return Binaries(d, "build.bin_dir", True, src.get("path"), src.get("commit"))
    found = find_build(p, env, tool)
    if found is not None:
        return _with_web_ui(found, env, progress, log) if tool == "llama-server" and build else found
    if not build:
        return Binaries("", f"{p.build_spec().name()} (not built yet)", False)
    from ggufrope.build import builder
    from ggufrope.build.smoke import smoke_test
    from ggufrope.build.source import resolve_source
    spec = p.build_spec()
    log(f"preset {p.name} needs a {spec.name()} llama.cpp build; building it once (cached in "
        f"{builder.builds_dir(env)})")
    src = resolve_source(None, env, log=log)
    res = builder.build(spec, src, env, progress=progress, log=log, smoke=smoke_test)
    if tool not in res.binaries:
        raise BuildError(f"{res.dir}: the build has no {tool}")
    return Binaries(res.bin_dir, spec.name(), True, src.path, src.commit, res.dir)


def _with_web_ui(b: Binaries, env: Mapping[str, str], progress: Progress | None,
                 log: Callable[[str], None]) -> Binaries:
    """A found llama-server build made before its web UI could be embedded (no npm then, or
    built before ggufrope embedded it) is rebuilt in place when the page can be had now: an
    incremental build (the UI's ui.cpp and a relink), npm once per UI source."""
    from ggufrope.build import builder, webui
    stamp = builder.load_stamp(b.build_dir) or {} if b.build_dir else {}
    if not b.source_dir or not os.path.isdir(b.source_dir) or "spec" not in stamp:
        return b
    want = webui.wanted(b.source_dir, env)
    if stamp.get("ui") == want:
        return b
    from ggufrope.build.smoke import smoke_test
    from ggufrope.build.source import source_info
    log(f"adding llama.cpp's web UI to the {b.source} build (an incremental rebuild)")
    res = builder.build(_spec_from_stamp(stamp["spec"]), source_info(b.source_dir), env, progress=progress,
                        log=log, smoke=smoke_test)
    return Binaries(res.bin_dir, b.source, True, b.source_dir, b.commit, res.dir)


def web_ui(b: Binaries) -> str | None:
    """None when b's llama-server embeds the web chat page; else why not, in one line."""
    from ggufrope.build import builder
    if not b.built or not b.build_dir:
        return None   # not ggufrope's build: whether it has the page is not ours to say
    stamp = builder.load_stamp(b.build_dir) or {}
    if stamp.get("ui"):
        return None
    why = ((stamp.get("checks") or {}).get("ui") or {}).get("why") or "built before ggufrope embedded it"
    return f"this llama-server has no web chat page ({why})"


def tool_argv0(b: Binaries, tool: str) -> str:
    return b.tool(tool) if b.bin_dir else tool


__all__ = ["Binaries", "locate", "find_build", "tool_argv0", "PresetError"]
