"""Several presets behind one llama-server: its router mode (tools/server/README.md, "Model
presets"; server-models.cpp). The router reads an INI preset file (`--models-preset`) whose
sections are ggufrope presets made concrete by prepare() and written by export.ini_section
(the one projection), starts a llama-server child per model on demand (the request's `model`
field picks the section), keeps at most `--models-max` loaded and loads the sections marked
`load-on-startup` at once. Its children share its process group (llama.cpp's subprocess
helper does not start a session) and exit when the router's pipe closes, so stopping the
router's group stops them all.

Every preset is prepared (model, RoPE, context, checks) before the router starts, and the
models that may be loaded at once are checked against memory together: the `models_max`
largest memory plans, summed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ggufrope import paths
from ggufrope.errors import GgufropeError, PresetError, UsageError
from ggufrope.presets import memory
from ggufrope.presets.export import ini_section
from ggufrope.presets.prepare import Prepared
from ggufrope.presets.preset import Preset


@dataclass(frozen=True)
class Router:
    """A prepared multi-preset server: the prepared presets (in the order given), how many may be
    loaded at once, and where it listens."""

    preps: tuple[Prepared, ...]
    models_max: int
    host: str
    port: int
    api_key: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.preset.name for p in self.preps)

    def ini(self) -> str:
        """llama.cpp's INI preset for --models-preset: one section per preset, named after it."""
        lines = ["; ggufrope serve " + " ".join(self.names) + " (llama-server router mode; docs/preset.md)",
                 "version = 1", ""]
        for prep in self.preps:
            more = {"load-on-startup": "true" if prep.preset.server.load_on_startup else "false"}
            lines += [f"; preset {prep.preset.name!r}: model {prep.model.path}, ctx {prep.n_ctx}"]
            lines += ini_section(prep, prep.preset.name, more) + [""]
        return "\n".join(lines)

    def argv(self, exe: str, ini_path: str, extra: Sequence[str] = ()) -> list[str]:
        """The router's command line: no model of its own (that is what makes it a router)."""
        return [exe, "--models-preset", ini_path, "--models-max", str(self.models_max),
                "--host", self.host, "--port", str(self.port), *extra]

    def memory_line(self) -> str:
        top = loaded_together(self.preps, self.models_max)
        return (f"memory: at most {self.models_max} loaded at once; the largest "
                f"({', '.join(p.preset.name for p in top)}) need {memory.mib(sum(p.mem.local for p in top))}")


def loaded_together(preps: Sequence[Prepared], models_max: int) -> list[Prepared]:
    """The presets whose memory plans the check sums: the models_max largest."""
    return sorted(preps, key=lambda p: p.mem.local, reverse=True)[:models_max]


def check_names(names: Sequence[str]) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"preset {dup[0]!r} is named twice; each preset is one model name on the server")


def prepare_router(presets: Sequence[Preset], env: Mapping[str, str], prepare: Callable[[Preset], Prepared],
                   models_max: int | None = None) -> Router:
    """Prepare every preset (the same checks as a single `serve`; the first failure raises,
    naming its preset), then check the memory of the models_max largest together."""
    check_names([p.name for p in presets])
    if models_max is not None and models_max < 1:
        raise UsageError(f"--models-max {models_max}: at least 1 model must be loadable")
    preps = []
    for p in presets:
        try:
            preps.append(prepare(p.with_engine("server")))
        except GgufropeError as e:
            raise named(e, p.name) from None
    mmax = min(models_max or len(preps), len(preps))
    _check_memory(preps, mmax)
    first = preps[0]
    keys = {prep.api_key for prep in preps}
    if len(keys) > 1:
        raise PresetError(f"presets {', '.join(p.name for p in presets)} ask for different API keys; "
                          f"one server has one key (set server.api_key in one of them, or the same in all)")
    assert first.port is not None
    return Router(tuple(preps), mmax, first.preset.server.host, first.port, first.api_key)


def named(e: GgufropeError, name: str) -> GgufropeError:
    """The error with the preset's name in front (unless its message already starts with it)."""
    msg = str(e)
    if msg.startswith(f"preset {name!r}") or msg.startswith(f"{name}:"):
        return e
    out = type(e)(f"preset {name!r}: {msg}")
    return out


def _check_memory(preps: Sequence[Prepared], models_max: int) -> None:
    top = loaded_together(preps, models_max)
    avail = next((p.mem.available for p in top if p.mem.available is not None), None)
    if avail is None or models_max < 2:
        return   # one model at a time: each preset's own check (in prepare) covers it
    need = sum(p.mem.local for p in top) + max(p.mem.headroom for p in top)
    if need > avail:
        raise PresetError(f"presets {', '.join(p.preset.name for p in top)} loaded together need "
                          f"{memory.mib(need)} (with headroom) of {memory.mib(avail)} free {top[0].mem.device}: "
                          f"serve with --models-max {models_max - 1} (the router unloads the least recently "
                          f"used one), or smaller contexts")


def ini_path(env: Mapping[str, str], names: Sequence[str]) -> str:
    d = os.path.join(paths.home(env), "router")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, "+".join(names)[:120] + ".ini")


def write_ini(router: Router, env: Mapping[str, str]) -> str:
    path = ini_path(env, router.names)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(router.ini())
    os.replace(tmp, path)
    return path
