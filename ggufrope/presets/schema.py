"""The preset fields, as data: name, kind, built-in default, one line of documentation.

A field name is dotted for the TOML tables (`rope.scaling_factor` is `scaling_factor` in
`[rope]`). Every field can be set in a preset file, by a `GGUFROPE_<FIELD>` environment
variable (dots become underscores: `GGUFROPE_SERVER_PORT`) and on the command line
(`--set FIELD=VALUE`). Values from files arrive typed (TOML); from the environment and the
command line they arrive as text and are parsed by the same `FieldSpec.coerce`.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields
from typing import Any

from ggufrope.booleans import parse_bool
from ggufrope.settings.keys import ROPE_KEYS, SCALING_TYPES
from ggufrope.settings.model_info import KV_CACHE_TYPES
from ggufrope.settings.rope_settings import RopeSettings

ENGINES = ("cli", "server", "python")
APPLY_MODES = ("runtime", "patched")
FLASH_ATTN = ("auto", "on", "off")
BACKENDS = ("cpu", "cuda", "metal", "vulkan")   # ggufrope.build.spec.BACKENDS (not imported: keeps this light)
PLAN_METHODS = ("yarn", "linear", "ntk", "dynamic")  # ggufrope.planning.METHODS
TABLES = ("rope", "server", "sampling", "build", "memory")
# keys of a preset file that are not resolved fields
STRUCTURAL = ("extends",)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str
    """str, int, float, bool, choice, str_list, ctx (int or "auto"), auto_int (int or "auto"),
    layers (int, "auto" or "all"), plan ("METHOD:TOKENS"), port (int or "auto"), endpoints (list
    of "host:port"), float_list (list of numbers >= 0)."""
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    env: bool = True
    """False: not settable from GGUFROPE_* (documentation-only fields)."""
    secret: bool = False
    """True: never taken from a command line (unless a $VAR reference) and shown masked (secrets.py)."""

    @property
    def env_var(self) -> str:
        return "GGUFROPE_" + self.name.upper().replace(".", "_")

    @property
    def table(self) -> str | None:
        return self.name.split(".")[0] if "." in self.name else None

    @property
    def key(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    def type_text(self) -> str:
        return {"str": "string", "int": "integer", "float": "number", "bool": "true/false",
                "choice": " | ".join(self.choices), "str_list": "list of strings",
                "ctx": 'integer or "auto"', "auto_int": 'integer or "auto"',
                "layers": 'integer, "auto" or "all"', "plan": '"METHOD:TOKENS", e.g. "yarn:32768"',
                "port": 'integer or "auto" (a free port)',
                "endpoints": 'list of "host:port"', "float_list": "list of numbers"}[self.kind]

    def coerce(self, value: Any, text: bool = False) -> Any:
        """The typed value, or ValueError with a message saying what was expected.
        text=True: value is a string from the environment or the command line."""
        return _COERCE[self.kind](self, value, text)

    def _range(self, n):
        if self.minimum is not None and n < self.minimum:
            raise ValueError(f"must be at least {self.minimum:g}, not {n}")
        if self.kind == "port" and not 0 < n < 65536:
            raise ValueError(f"not a TCP port: {n}")
        if (self.kind == "ctx" or self.kind == "int" and self.name.startswith("rope.")) and not 0 < n < 2**32:
            raise ValueError(f"must be a positive 32-bit integer, not {n}")
        return n


def _coerce_str(spec: FieldSpec, value: Any, text: bool) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, not {_show(value)}")
    return value


def _coerce_bool(spec: FieldSpec, value: Any, text: bool) -> bool:
    if isinstance(value, bool):
        return value
    b = parse_bool(value) if text and isinstance(value, str) else None
    if b is None:
        raise ValueError(f"expected true or false, not {_show(value)}")
    return b


def _coerce_choice(spec: FieldSpec, value: Any, text: bool) -> str:
    if isinstance(value, bool) and spec.name == "flash_attn":
        return "on" if value else "off"
    v = value.strip().lower() if isinstance(value, str) else value
    if isinstance(v, str) and text and spec.name == "flash_attn" and v in ("true", "false"):
        v = "on" if v == "true" else "off"
    if v not in spec.choices:
        hint = _did_you_mean(str(v), spec.choices)
        raise ValueError(f"expected one of {', '.join(spec.choices)}, not {_show(value)}{hint}")
    return v


def _coerce_str_list(spec: FieldSpec, value: Any, text: bool) -> list[str]:
    if text and isinstance(value, str):
        import shlex
        return shlex.split(value)
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValueError(f"expected a list of strings, not {_show(value)}")
    return list(value)


def _coerce_endpoints(spec: FieldSpec, value: Any, text: bool) -> list[str]:
    from ggufrope.errors import UsageError
    from ggufrope.rpc.endpoint import parse_endpoints
    if not (text and isinstance(value, str)) and not (
            isinstance(value, list) and all(isinstance(x, str) for x in value)):
        raise ValueError(f'expected a list of "host:port" strings, not {_show(value)}')
    try:
        return [str(e) for e in parse_endpoints(value)]
    except UsageError as e:
        raise ValueError(str(e)) from None


def _coerce_float_list(spec: FieldSpec, value: Any, text: bool) -> list[float]:
    items = value.replace("/", ",").split(",") if text and isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError(f"expected a list of numbers, not {_show(value)}")
    out = []
    for x in items:
        try:
            f = float(x.strip()) if isinstance(x, str) and text else x
        except ValueError:
            raise ValueError(f"expected numbers, not {x!r}") from None
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or f < 0:
            raise ValueError(f"expected numbers >= 0, not {_show(x)}")
        out.append(float(f))
    if out and not any(out):
        raise ValueError("the shares cannot all be 0")
    return out


# the words an integer-like kind takes instead of a number
_INT_WORDS = {"ctx": ("auto",), "auto_int": ("auto",), "layers": ("auto", "all"), "port": ("auto",), "int": ()}


def _coerce_int(spec: FieldSpec, value: Any, text: bool) -> int | str:
    k = spec.kind
    if isinstance(value, str) and value.strip().lower() in _INT_WORDS[k]:
        return value.strip().lower()
    n = _int(value, text, allow_k=k == "ctx")
    if n is None:
        raise ValueError(f"expected {'an integer' if k == 'int' else spec.type_text()}, not {_show(value)}")
    return spec._range(n)


def _coerce_float(spec: FieldSpec, value: Any, text: bool) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, not {_show(value)}")
    if isinstance(value, (int, float)):
        f = float(value)
    elif text and isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            raise ValueError(f"expected a number, not {_show(value)}") from None
    else:
        raise ValueError(f"expected a number, not {_show(value)}")
    if not math.isfinite(f):
        raise ValueError(f"expected a finite number, not {value}")
    return spec._range(f)


_COERCE = {"str": _coerce_str, "bool": _coerce_bool, "choice": _coerce_choice, "str_list": _coerce_str_list,
           "plan": lambda spec, value, text: parse_plan(value), "endpoints": _coerce_endpoints,
           "float_list": _coerce_float_list, "ctx": _coerce_int, "auto_int": _coerce_int, "layers": _coerce_int,
           "port": _coerce_int, "int": _coerce_int, "float": _coerce_float}


def _show(v: Any) -> str:
    """A value as an error message names it: TOML's words for booleans, tables and lists."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return repr(v)
    return {dict: "a table", list: "a list"}.get(type(v)) or f"{type(v).__name__} {v!r}"


def _int(value: Any, text: bool, allow_k: bool = False) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and not text:
        return None  # TOML 4096.0 is a float: say so rather than guess
    if isinstance(value, str) and (text or allow_k):
        t = value.strip().lower().replace("_", "")
        mult = 1
        if allow_k and t.endswith("k"):
            t, mult = t[:-1], 1024
        try:
            return int(t, 10) * mult
        except ValueError:
            return None
    return None


def parse_plan(value: Any) -> tuple[str, int]:
    """"yarn:32768" / "yarn:32k" -> ("yarn", 32768)."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f'expected "METHOD:TOKENS" such as "yarn:32768", not {_show(value)}')
    method, _, n = value.partition(":")
    method = method.strip().lower()
    if method not in PLAN_METHODS:
        raise ValueError(f"unknown method {method!r} (use {', '.join(PLAN_METHODS)})"
                         f"{_did_you_mean(method, PLAN_METHODS)}")
    tokens = _int(n, True, allow_k=True)
    if tokens is None or not 0 < tokens < 2**32:
        raise ValueError(f"{n.strip()!r} is not a token count (e.g. 32768 or 32k)")
    return method, tokens


def plan_text(plan: tuple[str, int] | None) -> str | None:
    return None if plan is None else f"{plan[0]}:{plan[1]}"


def _did_you_mean(word: str, options) -> str:
    m = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {m[0]!r}?)" if m else ""


def _rope_fields() -> list[FieldSpec]:
    out = [FieldSpec("rope.plan", "plan", None,
                     'compute the RoPE settings with `ggufrope plan`: "yarn:32768" (also linear, ntk, dynamic); '
                     "explicit rope fields override what the plan computes")]
    docs = {rk.field: rk.doc for rk in ROPE_KEYS}
    for f in fields(RopeSettings):
        t = f.type if isinstance(f.type, str) else str(f.type)
        if f.name == "scaling_type":
            out.append(FieldSpec("rope.scaling_type", "choice", None, docs[f.name], choices=SCALING_TYPES))
        elif t.startswith("int"):
            out.append(FieldSpec(f"rope.{f.name}", "int", None, docs[f.name], minimum=1))
        elif t.startswith("bool"):
            out.append(FieldSpec(f"rope.{f.name}", "bool", None, docs[f.name]))
        else:
            out.append(FieldSpec(f"rope.{f.name}", "float", None, docs[f.name]))
    return out


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("description", "str", "", "one line saying what the preset is for", env=False),
    FieldSpec("measured", "str", "",
              "one line: what this preset's K/V cache type was measured to cost in quality (`ggufrope eval kv`; "
              "printed by `presets show`)", env=False),
    FieldSpec("model", "str", None,
              "GGUF path (~ and $VARS expanded), a split-model glob (*-of-*.gguf), or a named model (smollm2)"),
    FieldSpec("model_hint", "str", None, "which model the preset is written for (shown when model is missing)",
              env=False),
    FieldSpec("apply", "choice", "runtime",
              "runtime: llama.cpp flags / --override-kv, file untouched; patched: a ggufrope-patched copy in the cache",
              choices=APPLY_MODES),
    FieldSpec("ctx", "ctx", "auto",
              'context size in tokens, or "auto": the largest that fits free memory, capped at the scaled context'),
    FieldSpec("cache_type_k", "choice", "f16", "K cache type (-ctk)", choices=tuple(KV_CACHE_TYPES)),
    FieldSpec("cache_type_v", "choice", "f16", "V cache type (-ctv; quantized V needs flash attention)",
              choices=tuple(KV_CACHE_TYPES)),
    FieldSpec("flash_attn", "choice", "auto", "flash attention: auto, on, off (-fa)", choices=FLASH_ATTN),
    FieldSpec("n_gpu_layers", "layers", "auto", "layers offloaded to the GPU (-ngl): a number, auto or all"),
    FieldSpec("threads", "auto_int", "auto", "CPU threads (-t)", minimum=1),
    FieldSpec("batch", "auto_int", "auto", "logical batch size (-b)", minimum=1),
    FieldSpec("ubatch", "auto_int", "auto", "physical batch size (-ub)", minimum=1),
    FieldSpec("parallel", "auto_int", "auto",
              "sequences decoded at once (-np): llama-server's slots; auto = 4 slots sharing one KV buffer for "
              "engine server (llama-server's own default), 1 otherwise (llama-cli and the python engine run one)",
              minimum=1),
    FieldSpec("kv_unified", "choice", "auto",
              "one KV buffer shared by all sequences (-kvu / -no-kvu): auto = on when parallel is auto "
              "(llama-server's rule), else off: each of N slots then gets ctx/N cells", choices=FLASH_ATTN),
    FieldSpec("swa_full", "bool", False,
              "full-size cache for sliding-window layers (--swa-full): every token kept (more memory; lets "
              "llama-server reuse a cached prompt on SWA models such as Gemma 2/3)"),
    FieldSpec("n_predict", "int", -1, "tokens to generate per reply (-n; -1 = until the model stops)", minimum=-1),
    FieldSpec("engine", "choice", "cli",
              "what `ggufrope run` starts: cli (llama-cli / llama-completion), server (llama-server), "
              "python (llama-cpp-python in process)", choices=ENGINES),
    FieldSpec("system_prompt", "str", None, "system prompt (-sys; the first message for the python engine)"),
    FieldSpec("chat_template", "str", None,
              "chat template override: a built-in name (chatml, llama3, ...) or Jinja text (--chat-template)"),
    FieldSpec("extra_args", "str_list", [], "more llama.cpp arguments, appended as given"),
    FieldSpec("rpc", "endpoints", [],
              'llama.cpp RPC workers ("host:port", started with `ggufrope worker`) the layers are spread over (--rpc)'),
    FieldSpec("tensor_split", "float_list", [],
              "share of the offloaded layers per RPC worker, in the order of rpc, then per local GPU (-ts); "
              "default: in proportion to each one's free memory"),
    *_rope_fields(),
    FieldSpec("server.host", "str", "127.0.0.1", "address llama-server listens on"),
    FieldSpec("server.port", "port", 8080, 'port llama-server listens on ("auto": a free one)'),
    FieldSpec("server.api_key", "str", None,
              "API key clients must send: the key (in a preset file or GGUFROPE_SERVER_API_KEY) or a $VAR "
              "reference (an unset one is an error); llama-server gets it in LLAMA_API_KEY, never on a command "
              "line", secret=True),
    FieldSpec("server.api_key_file", "str", None,
              "a file holding the API key (the first line that is not blank or a # comment; keep it chmod 600)"),
    FieldSpec("server.ready_timeout", "int", 300, "seconds to wait for /health before giving up", minimum=1),
    FieldSpec("server.load_on_startup", "bool", False,
              "in a multi-preset `ggufrope serve A B`: load this model when the server starts (else on its "
              "first request)"),
    FieldSpec("sampling.temperature", "float", None, "sampling temperature (--temp)", minimum=0),
    FieldSpec("sampling.top_p", "float", None, "top-p (--top-p)", minimum=0),
    FieldSpec("sampling.top_k", "int", None, "top-k (--top-k; 0 = off)", minimum=0),
    FieldSpec("sampling.min_p", "float", None, "min-p (--min-p)", minimum=0),
    FieldSpec("sampling.repeat_penalty", "float", None, "repeat penalty (--repeat-penalty; 1 = off)", minimum=0),
    FieldSpec("sampling.seed", "int", None, "RNG seed (-s)", minimum=0),
    FieldSpec("build.backend", "choice", "cpu", "llama.cpp backend the preset needs (ggufrope build --backend)",
              choices=BACKENDS),
    FieldSpec("build.kv_pairs", "str_list", [],
              'CUDA flash-attention K-V pairs the build must have, e.g. ["q8_0-q4_0"] (added to the defaults)'),
    FieldSpec("build.bin_dir", "str", None,
              "use the llama.cpp binaries in this directory instead of a ggufrope build"),
    FieldSpec("memory.headroom_mib", "int", 512, "memory left free when checking fit and picking ctx = auto",
              minimum=0),
)

BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}
BY_ENV: dict[str, FieldSpec] = {f.env_var: f for f in FIELDS if f.env}
DEFAULTS: dict[str, Any] = {f.name: f.default for f in FIELDS}


def table_fields(table: str | None) -> list[str]:
    """Keys allowed at top level (table None) or inside [table]."""
    if table is None:
        return [f.name for f in FIELDS if "." not in f.name] + list(TABLES) + list(STRUCTURAL)
    return [f.key for f in FIELDS if f.table == table]


def unknown_field_message(name: str) -> str:
    """"unknown field X (did you mean Y?)", the closest among the keys of the same table and
    every other field (a top-level `temprature` suggests `temperature` in [sampling])."""
    key = name.rsplit(".", 1)[-1]
    table = name.split(".")[0] if "." in name else None
    where = f" in [{table}]" if table else ""
    local = table_fields(table) if table in TABLES or table is None else []
    cands = [(k, f"{table}.{k}" if table else k, True) for k in local] + \
            [(f.key, f.name, False) for f in FIELDS if f.key not in local]
    best, score = None, 0.0
    for k, full, is_local in cands:
        r = difflib.SequenceMatcher(None, key, k).ratio() + (0.02 if is_local else 0.0)
        if r > score:
            best, score = (k, full, is_local), r
    if best is not None and score >= 0.7:
        k, full, is_local = best
        if is_local:
            return f"unknown field {key!r}{where} (did you mean {full!r}?)"
        place = f"in [{full.split('.')[0]}]" if "." in full else "at top level"
        return f"unknown field {key!r}{where} (did you mean {k!r} {place}?)"
    known = table_fields(table if table in TABLES else None)
    return f"unknown field {key!r}{where}; known: {', '.join(known)}"
