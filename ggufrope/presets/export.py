"""A prepared preset in the neighbours' formats.

* llama-ini: llama.cpp's own INI preset (docs/preset.md, common/preset.cpp): a [section] per
  model, keys are long option names without dashes (any alias works: common_preset_context maps
  every argument and LLAMA_ARG_* name), flags take true/false, a repeated option (--override-kv)
  becomes one comma-separated value. Usable with `llama-server --models-preset FILE`, or as the
  default section of ~/.config/llama.cpp/config.ini.
* llama-swap: a `models:` entry of llama-swap's config.yaml whose cmd starts llama-server on
  llama-swap's ${PORT}.
* llama-cpp-server: a llama-cpp-python server config (`python -m llama_cpp.server --config_file
  FILE`) with one models[] entry holding the same explicit values the python engine passes.
"""
from __future__ import annotations

import json
import shlex
from typing import Any

from ggufrope.presets import secrets
from ggufrope.presets.prepare import Prepared
from ggufrope.settings.projection import argv_to_ini

FORMATS = ("llama-ini", "llama-swap", "llama-cpp-server")

def to_llama_ini(prep: Prepared, section: str | None = None) -> str:
    p = prep.preset
    name = section or p.name
    lines = [f"; ggufrope preset {p.name!r} exported for llama.cpp (docs/preset.md)",
             f"; model {prep.model.path}" + (f" (patched copy {prep.run_model})" if prep.run_model != prep.model.path else ""),
             f"; ctx {prep.n_ctx}" + (" (ctx = auto, resolved on this machine)" if p.ctx == "auto" else ""),
             "version = 1", ""]
    if prep.api_key:   # a key belongs to the router's environment, not to a file others may read
        lines[3:3] = [f"; the API key is not written here: start llama-server with {secrets.ENV_VAR} set "
                      f"(or --api-key-file FILE)"]
    return "\n".join(lines + ini_section(prep, name)) + "\n"


def ini_section(prep: Prepared, name: str, more: dict[str, str] | None = None) -> list[str]:
    """One `[name]` section of llama.cpp's INI preset: the preset's llama-server arguments (the
    one projection) less what belongs to the router's command line, then `more` (preset-only
    keys such as load-on-startup)."""
    args = prep.to_llama_args("llama-server")
    # host/port belong to the router command line, not a model section
    merged = {k: v for k, v in argv_to_ini(args) if k not in ("host", "port", "alias")}
    merged.update(more or {})
    width = max((len(k) for k in merged), default=0)
    lines = [f"[{name}]"]
    for k, v in merged.items():
        if "\n" in v:
            v = v.replace("\n", "\\\n")
        lines.append(f"{k.ljust(width)} = {v}")
    return lines


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def to_llama_swap(prep: Prepared, server_binary: str = "llama-server") -> str:
    p = prep.preset
    args = prep.to_llama_args("llama-server")
    i = args.index("--port")
    args[i + 1] = "${PORT}"
    j = args.index("--host")
    args[j + 1] = "127.0.0.1"
    parts = [shlex.quote(server_binary)]
    k = 0
    while k < len(args):
        if args[k].startswith("-") and k + 1 < len(args) and not args[k + 1].startswith("-"):
            parts.append(f"{args[k]} {_q(args[k + 1])}")
            k += 2
        else:
            parts.append(_q(args[k]))
            k += 1
    lines = [f"# ggufrope preset {p.name!r} as a llama-swap model (config.yaml)", "models:",
             f"  {_yaml_str(p.name)}:", "    cmd: |"]
    lines += [f"      {x}" for x in parts]
    if p.description:
        lines.append(f"    description: {_yaml_str(p.description)}")
    if prep.api_key:
        lines.append(f"    env:\n      - {_yaml_str(f'{secrets.ENV_VAR}=' + prep.api_key)}")
    return "\n".join(lines) + "\n"


def _q(s: str) -> str:
    return s if s == "${PORT}" else shlex.quote(s)


def to_llama_cpp_server(prep: Prepared) -> dict[str, Any]:
    p = prep.preset
    kw = prep.to_llama_cpp_kwargs()
    entry: dict[str, Any] = {"model": kw.pop("model_path"), "model_alias": p.name}
    over = kw.pop("kv_overrides", None)
    kw.pop("verbose", None)
    entry.update(kw)
    if over:
        # the same KEY=TYPE:VALUE items llama.cpp's --override-kv gets (one projection)
        entry["kv_overrides"] = [i for i in prep.projection.override_items() if i.split("=", 1)[0] in over]
    cfg: dict[str, Any] = {"host": p.server.host, "port": prep.port or (p.server.port if isinstance(p.server.port, int)
                                                                       else 8000)}
    if prep.api_key:
        cfg["api_key"] = prep.api_key
    cfg["models"] = [entry]
    return cfg


def export(prep: Prepared, fmt: str, server_binary: str = "llama-server") -> str:
    if fmt == "llama-ini":
        return to_llama_ini(prep)
    if fmt == "llama-swap":
        return to_llama_swap(prep, server_binary)
    if fmt == "llama-cpp-server":
        return json.dumps(to_llama_cpp_server(prep), indent=2) + "\n"
    raise ValueError(fmt)
