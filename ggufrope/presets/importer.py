"""Read a llama.cpp INI preset (docs/preset.md) into ggufrope presets.

The grammar is llama.cpp's (common/preset.cpp parse_ini_from_file): `[section]` headers, `key =
value` lines, `;` / `#` comments (also after a value, when preceded by whitespace), keys before
any header belong to the "default" section, `[*]` holds options shared by every section. A key
is a long or short option name without dashes, or its LLAMA_ARG_* variable.

Known options become preset fields; `--override-kv` items naming RoPE keys become rope fields;
everything else is kept verbatim in extra_args, so nothing is lost.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ggufrope.booleans import parse_bool
from ggufrope.errors import PresetError
from ggufrope.presets import schema
from ggufrope.settings.keys import BY_SUFFIX

# preset field <- the INI keys that set it: long name, aliases, LLAMA_ARG_* variable (common/arg.cpp)
_FIELD_KEYS_TABLE = """
model                         model m LLAMA_ARG_MODEL
ctx                           ctx-size c LLAMA_ARG_CTX_SIZE
cache_type_k                  cache-type-k ctk LLAMA_ARG_CACHE_TYPE_K
cache_type_v                  cache-type-v ctv LLAMA_ARG_CACHE_TYPE_V
flash_attn                    flash-attn fa LLAMA_ARG_FLASH_ATTN
n_gpu_layers                  n-gpu-layers gpu-layers ngl LLAMA_ARG_N_GPU_LAYERS
threads                       threads t LLAMA_ARG_THREADS
batch                         batch-size b LLAMA_ARG_BATCH
ubatch                        ubatch-size ub LLAMA_ARG_UBATCH
parallel                      parallel np LLAMA_ARG_N_PARALLEL
kv_unified                    kv-unified kvu no-kv-unified no-kvu LLAMA_ARG_KV_UNIFIED
swa_full                      swa-full LLAMA_ARG_SWA_FULL
n_predict                     n-predict predict n LLAMA_ARG_N_PREDICT
system_prompt                 system-prompt sys
chat_template                 chat-template LLAMA_ARG_CHAT_TEMPLATE
sampling.temperature          temp temperature
sampling.top_p                top-p
sampling.top_k                top-k
sampling.min_p                min-p
sampling.repeat_penalty       repeat-penalty
sampling.seed                 seed s
rope.scaling_type             rope-scaling LLAMA_ARG_ROPE_SCALING_TYPE
rope.scaling_factor           rope-scale LLAMA_ARG_ROPE_SCALE
rope.freq_base                rope-freq-base LLAMA_ARG_ROPE_FREQ_BASE
rope.original_context_length  yarn-orig-ctx LLAMA_ARG_YARN_ORIG_CTX
rope.yarn_ext_factor          yarn-ext-factor LLAMA_ARG_YARN_EXT_FACTOR
rope.yarn_attn_factor         yarn-attn-factor LLAMA_ARG_YARN_ATTN_FACTOR
rope.yarn_beta_fast           yarn-beta-fast LLAMA_ARG_YARN_BETA_FAST
rope.yarn_beta_slow           yarn-beta-slow LLAMA_ARG_YARN_BETA_SLOW
server.host                   host LLAMA_ARG_HOST
server.port                   port LLAMA_ARG_PORT
server.api_key                api-key LLAMA_API_KEY
server.api_key_file           api-key-file LLAMA_ARG_API_KEY_FILE
"""
_FIELD_KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(keys) for name, *keys in (line.split() for line in _FIELD_KEYS_TABLE.strip().splitlines())}
_BY_KEY = {k: f for f, ks in _FIELD_KEYS.items() for k in ks}
# llama.cpp options that are switches (common/arg.cpp: a --x / --no-x pair, no value), so "1" is on
_SWITCHES = frozenset({"mmap", "mlock", "cont-batching", "jinja", "spec-default", "warmup",
                       "embedding", "embeddings", "reranking", "metrics", "slots", "props", "webui",
                       "check-tensors", "perf", "cache-prompt", "context-shift", "escape",
                       "kv-offload", "repack", "op-offload", "verbose-prompt", "display-prompt"})
_COMMENT = re.compile(r"\s[;#].*$")


@dataclass
class Section:
    name: str
    line: int
    options: dict[str, tuple[str, int]] = field(default_factory=dict)   # key -> (value, line)


def parse_ini(text: str, path: str) -> list[Section]:
    sections: dict[str, Section] = {}
    cur = Section("default", 0)
    sections["default"] = cur
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        no = i + 1
        line = lines[i]
        # a value ending in a backslash continues on the next line (common_preset::to_ini)
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + "\n" + lines[i]
        i += 1
        s = line.strip()
        if not s or s[0] in ";#":
            continue
        if s.startswith("["):
            if not s.endswith("]"):
                raise PresetError(f"{path}:{no}: section header without ']': {s!r}")
            name = s[1:-1].strip()
            cur = sections.setdefault(name, Section(name, no))
            continue
        key, eq, value = s.partition("=")
        key = key.strip()
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise PresetError(f"{path}:{no}: expected KEY = VALUE or [section], not {s!r}")
        value = _COMMENT.sub("", value).strip()
        if key != "version":   # reserved by llama.cpp for the format version
            cur.options[key] = (value, no)
    return [s for s in sections.values() if s.options or s.name not in ("default",)]


def _rope_override(item: str) -> tuple[str, Any] | None:
    """`llama.rope.scaling.factor=float:4` -> ("rope.scaling_factor", 4.0) when it is a RoPE key."""
    key, _, tv = item.partition("=")
    typ, _, val = tv.partition(":")
    arch, dot, suffix = key.partition(".")
    rk = BY_SUFFIX.get(suffix) if dot else None
    if rk is None:
        return None
    spec = schema.BY_NAME.get(f"rope.{rk.field}")
    if spec is None:
        return None
    try:
        return spec.name, spec.coerce(val, text=True)
    except ValueError:
        return None


def section_values(sec: Section, path: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """(preset values, extra_args, notes) for one section."""
    values: dict[str, Any] = {}
    extra: list[str] = []
    notes: list[str] = []
    for key, (value, no) in sec.options.items():
        fname = _BY_KEY.get(key)
        if key in ("override-kv", "LLAMA_ARG_OVERRIDE_KV"):
            for item in filter(None, (x.strip() for x in value.split(","))):
                r = _rope_override(item)
                if r is None:
                    extra += ["--override-kv", item]
                else:
                    values[r[0]] = r[1]
            continue
        if key in ("rope-freq-scale", "LLAMA_ARG_ROPE_FREQ_SCALE"):
            try:
                values["rope.scaling_factor"] = 1.0 / float(value)
                continue
            except (ValueError, ZeroDivisionError):
                pass
        if key in ("jinja", "LLAMA_ARG_JINJA"):
            continue  # ggufrope adds --jinja itself for a Jinja chat_template
        if key in ("hf", "hf-repo", "hfr", "LLAMA_ARG_HF_REPO"):
            notes.append(f"{path}:{no}: {key} = {value}: ggufrope does not download from Hugging Face; "
                         f"set model to the downloaded GGUF file")
            continue
        if fname is not None:
            spec = schema.BY_NAME[fname]
            if fname == "kv_unified":      # a switch (and its no- form) sets the on/off/auto choice
                b = parse_bool(value)
                if b is None:
                    raise PresetError(f"{path}:{no}: {key}: expected true or false, not {value!r}")
                values[fname] = "on" if b != key.startswith("no-") else "off"
                continue
            if fname == "parallel" and value.strip() == "-1":
                values[fname] = "auto"      # llama-server's -np -1: auto (4 slots, unified)
                continue
            if fname == "ctx" and value.strip() == "0":
                values["ctx"] = "auto"
                notes.append(f"{path}:{no}: ctx-size = 0 (the model's context, fitted to memory) -> ctx = \"auto\"")
                continue
            try:
                values[fname] = spec.coerce(value, text=True)
                continue
            except ValueError as e:
                raise PresetError(f"{path}:{no}: {key}: {e}") from None
        if key.startswith("LLAMA_"):
            notes.append(f"{path}:{no}: {key}: an environment-variable key ggufrope does not map; skipped")
            continue
        flag = ("-" if len(key) <= 3 else "--") + key
        b = parse_bool(value)
        if key in _SWITCHES or (value.lower() in ("true", "false")):
            if b is True:
                extra.append(flag)
            elif b is False and not key.startswith("no-"):
                extra.append(f"--no-{key}")
            continue
        extra += [flag, value]
    return values, extra, notes


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "imported"
