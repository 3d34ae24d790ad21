"""Options several commands share, declared once: the preset options (--preset-file, --model,
--ctx, --cache-type-k/-v, --rpc, --set FIELD=VALUE), --dry-run, and how they become the
library's inputs (`overrides`, then `load`)."""
from __future__ import annotations

import os
from typing import List, Optional

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
