"""Options several commands share, declared once: the preset options (--preset-file, --model,
--ctx, --cache-type-k/-v, --rpc, --set FIELD=VALUE), --dry-run, and how they become the
library's inputs (`overrides`, then `load`; or `@preset_options()` and one PresetOptions)."""
from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass
from typing import Callable, List, Optional

import typer

PRESET_FILE = typer.Option(None, "--preset-file", help="Load this preset file instead of a named preset.")
MODEL = typer.Option(None, "--model", help="The GGUF file to run (overrides the preset's model).")
CTX = typer.Option(None, "--ctx", help='Context size in tokens, or "auto" (overrides ctx).')
CTK = typer.Option(None, "--cache-type-k", help="K cache type (f16, q8_0, q4_0, ...).")
CTV = typer.Option(None, "--cache-type-v", help="V cache type (f16, q8_0, q4_0, ...).")
RPC = typer.Option(None, "--rpc", help="RPC workers HOST:PORT,... to spread the layers over (overrides rpc; "
                                        "start them with `ggufrope worker`).")
SET = typer.Option([], "--set", help="Override any preset field: FIELD=VALUE (e.g. sampling.temperature=0.2). "
                                     "Repeatable.")
DRY_RUN = typer.Option(False, "--dry-run", help="Print the exact command (or llama-cpp-python kwargs); start nothing.")


def overrides(model: Optional[str], ctx: Optional[str], ctk: Optional[str], ctv: Optional[str], sets: List[str],
              **more: Optional[str]) -> list:
    """Command-line settings, in the order precedence applies them: the named flags, then --set."""
    from ggufrope.presets import Override
    out = []
    for field, value, flag in (("model", model, "--model"), ("ctx", ctx, "--ctx"),
                               ("cache_type_k", ctk, "--cache-type-k"), ("cache_type_v", ctv, "--cache-type-v"),
                               *[(f, v, "--" + f.split(".")[-1].replace("_", "-")) for f, v in more.items()]):
        if value is not None:
            out.append(Override(field, value, flag))
    return out + [Override.parse_set(s) for s in sets]


def load(name: Optional[str], preset_file: Optional[str], ovr: list):
    """The preset, resolved with this process's environment and the command line's overrides."""
    from ggufrope.presets import load_preset
    return load_preset(name, os.environ, ovr, preset_file)


# (parameter, type, option) in the order --help lists them
_PRESET_OPTIONS = (("preset_file", Optional[str], PRESET_FILE), ("model", Optional[str], MODEL),
                   ("ctx_size", Optional[str], CTX), ("cache_type_k", Optional[str], CTK),
                   ("cache_type_v", Optional[str], CTV), ("rpc", Optional[str], RPC), ("sets", List[str], SET))


@dataclass(frozen=True)
class PresetOptions:
    """The shared preset options of one command line, as one value."""

    preset_file: Optional[str]
    model: Optional[str]
    ctx_size: Optional[str]
    cache_type_k: Optional[str]
    cache_type_v: Optional[str]
    sets: List[str]
    rpc: Optional[str] = None
    has_rpc: bool = False

    def load(self, name: Optional[str], **more: Optional[str]):
        """The preset `name` with these options applied (and `more`: preset field -> a command's
        own flag value, applied before --rpc)."""
        if self.has_rpc:
            more["rpc"] = self.rpc
        return load(name, self.preset_file,
                    overrides(self.model, self.ctx_size, self.cache_type_k, self.cache_type_v, self.sets, **more))


def preset_options(rpc: bool = False) -> Callable[[Callable], Callable]:
    """Decorate a command with a `preset: PresetOptions` parameter: typer sees the shared preset
    options (--rpc too when rpc) in that parameter's place, and the command gets one PresetOptions."""
    names = [n for n, _, _ in _PRESET_OPTIONS if rpc or n != "rpc"]

    def wrap(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        params = []
        for p in sig.parameters.values():
            if p.name != "preset":
                params.append(p)
                continue
            params += [inspect.Parameter(n, p.kind, default=opt, annotation=t)
                       for n, t, opt in _PRESET_OPTIONS if n in names]

        @functools.wraps(fn)
        def command(**kw):
            given = {n: kw.pop(n) for n in names}
            return fn(preset=PresetOptions(**given, has_rpc=rpc), **kw)
        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not p.empty}
        return command
    return wrap
