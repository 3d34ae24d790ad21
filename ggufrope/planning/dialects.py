"""A plan's settings in every dialect: a `ggufrope patch` command, llama.cpp flags, an
`--override-kv` list, llama-cpp-python keyword arguments, Hugging Face config.json keys and
vLLM flags.

Which keys llama.cpp reads from the file depends on the architecture (settings/keys.py:
for most archs the YaRN betas and ext/attn factors are read only from runtime flags). So
the patch writes the keys llama.cpp reads, and whatever it does not read travels as runtime
flags next to the patched file; the flag dialects for the unpatched file carry everything.

Two llama.cpp facts shape the flag dialects (llama.cpp 0c1e570):
* llama-server caps each slot at n_ctx_train, the file's context_length
  (tools/server/server-context.cpp n_ctx_slot). With yarn flags llama.cpp raises n_ctx_train
  to n_ctx_orig/freq_scale itself (src/llama-context.cpp ~3891); with linear or a freq_base
  change it does not, so those flag sets add `--override-kv ARCH.context_length=int:N`.
* llama-cpp-python always passes yarn_beta_fast 32, yarn_beta_slow 1, yarn_attn_factor 1
  and yarn_ext_factor -1, overriding the file; non-default values must be passed explicitly.
"""
from __future__ import annotations

import os
import shlex
from typing import Any

from ggufrope.planning.recommend import Plan
from ggufrope.settings import RopeSettings, fmt_float
from ggufrope.settings.keys import BY_FIELD, ROPE_KEYS
from ggufrope.settings.rope_settings import vllm_args

# RopeSettings field -> `ggufrope patch` flag (named as llama.cpp names them)
_PATCH_FLAGS = {
    "scaling_type": "--rope-scaling", "scaling_factor": "--rope-scale", "freq_base": "--rope-freq-base",
    "original_context_length": "--yarn-orig-ctx", "yarn_ext_factor": "--yarn-ext-factor",
    "yarn_attn_factor": "--yarn-attn-factor", "yarn_beta_fast": "--yarn-beta-fast",
    "yarn_beta_slow": "--yarn-beta-slow", "yarn_log_multiplier": "--yarn-log-multiplier",
    "context_length": "--ctx",
}
_YARN_KWARGS = {"yarn_ext_factor": "yarn_ext_factor", "yarn_attn_factor": "yarn_attn_factor",
                "yarn_beta_fast": "yarn_beta_fast", "yarn_beta_slow": "yarn_beta_slow"}
# llama-cpp-python's own defaults for the kwargs it always passes
LLAMA_CPP_PYTHON_DEFAULTS = {"yarn_ext_factor": -1.0, "yarn_attn_factor": 1.0, "yarn_beta_fast": 32.0,
                             "yarn_beta_slow": 1.0}


def split_by_reader(settings: RopeSettings, arch: str) -> tuple[RopeSettings, RopeSettings]:
    """(fields llama.cpp reads from an `arch` file, fields it takes only from runtime flags)."""
    read, runtime = {}, {}
    for rk in ROPE_KEYS:
        v = getattr(settings, rk.field)
        if v is None:
            continue
        (read if rk.read_for(arch) else runtime)[rk.field] = v
    return RopeSettings(**read), RopeSettings(**runtime)


def patch_argv(model: str, out: str, settings: RopeSettings, arch: str) -> list[str]:
    """`ggufrope patch MODEL -o OUT ...` writing exactly these settings."""
    argv = ["ggufrope", "patch", model, "-o", out]
    # context_length last: it reads as "and the context this reaches"
    for rk in sorted(ROPE_KEYS, key=lambda k: k.field == "context_length"):
        v = getattr(settings, rk.field)
        if v is None:
            continue
        flag = _PATCH_FLAGS.get(rk.field)
        if flag is None:
            argv += ["--set", RopeSettings(**{rk.field: v}).to_override_kv(arch)[0]]
        else:
            argv += [flag, fmt_float(v) if isinstance(v, float) else str(v)]
    return argv


def default_output(model: str, plan: Plan) -> str:
    root, ext = os.path.splitext(model)
    if ext.lower() != ".gguf":
        root = model
    tag = "ntk-static" if plan.method == "dynamic" else plan.method
    return f"{root}.{tag}{plan.factor:g}x.gguf"


def _runtime_kwargs(settings: RopeSettings, n_ctx: int) -> dict[str, Any]:
    """llama-cpp-python kwargs for a patched file: n_ctx, plus every yarn_* value the settings
    hold (llama-cpp-python's own defaults would override the file)."""
    kw: dict[str, Any] = {"n_ctx": n_ctx}
    for f, k in _YARN_KWARGS.items():
        v = getattr(settings, f)
        if v is not None:
            kw[k] = v
    return kw


def llama_dialects(plan: Plan, settings: RopeSettings, model: str, out: str | None) -> dict[str, Any]:
    """Patch command, flags for the patched file, and flags / overrides / kwargs for the unpatched one."""
    arch = plan.facts.arch
    n = plan.target_ctx
    file_part, runtime_part = split_by_reader(settings, arch)
    out = out or default_output(model, plan)
    argv = patch_argv(model, out, file_part, arch)
    after_args = ["-c", str(n)] + runtime_part.to_llama_args(arch, include_ctx=False)
    llama_args = settings.to_llama_args(arch)
    cap_note = None
    lifts_cap = settings.scaling_type == "yarn" and settings.factor != 1.0
    if not lifts_cap and (settings.context_length or 0) > plan.facts.context_length:
        llama_args += ["--override-kv", f"{BY_FIELD['context_length'].key(arch)}=int:{n}"]
        cap_note = (f"llama-server caps each slot at the file's context_length ({plan.facts.context_length}); "
                    f"the --override-kv lifts it to {n}")
    overrides = file_part.to_override_kv(arch)
    override_args = ["-c", str(n)] + (["--override-kv", ",".join(overrides)] if overrides else []) + \
        runtime_part.to_llama_args(arch, include_ctx=False)
    kwargs = settings.to_llama_cpp_kwargs(arch)
    return {
        "arch": arch,
        "patch": {
            "argv": argv,
            "command": shlex.join(argv),
            "output": out,
            "keys": {k: v for k, _, v in file_part.to_gguf(arch)},
            "not_read_by_llama_cpp": {k: v for k, _, v in runtime_part.to_gguf(arch)},
        },
        "after_patch": {
            "llama_args": after_args,
            "llama_args_text": shlex.join(after_args),
            "llama_cpp_kwargs": _runtime_kwargs(settings, n),
        },
        "llama_args": llama_args,
        "llama_args_text": shlex.join(llama_args),
        "llama_args_note": cap_note,
        "override_kv": overrides,
        "override_kv_args": override_args,
        "override_kv_text": shlex.join(override_args),
        "llama_cpp_kwargs": kwargs,
    }


def hf_vllm_dialects(plan: Plan) -> dict[str, Any]:
    facts = plan.facts
    base = facts.freq_base
    n = plan.target_ctx
    if plan.method == "dynamic":
        rs = dict(plan.hf_dynamic or {})
        hf = {"rope_scaling": rs, "rope_theta": base}  # max_position_embeddings stays the trained one
        rp = dict(rs, rope_theta=base)
        return {
            "hf": {"config": hf, "rope_scaling": rs, "rope_parameters": rp},
            "vllm": {"args": vllm_args(rp, n), "legacy_args": vllm_args(rp, n, legacy=True)},
        }
    s = plan.settings or RopeSettings()
    rp = s.to_hf_rope_parameters(base)
    return {
        "hf": {"config": s.to_hf_config(base), "rope_scaling": s.to_hf_rope_scaling(), "rope_parameters": rp},
        "vllm": {"args": s.to_vllm_args(base), "legacy_args": s.to_vllm_args(base, legacy=True)},
    }


def build_dialects(plan: Plan, model: str | None = None, out: str | None = None) -> dict[str, Any]:
    """Every dialect of the plan. For dynamic, the llama.cpp dialects are those of the closest
    static setting and come under "closest_llama_cpp"."""
    model = model or plan.facts.path
    n = plan.target_ctx
    d: dict[str, Any] = {}
    if not plan.needed:
        d["patch"] = None
        if plan.settings is not None:  # only context_length is short
            d.update(llama_dialects(plan, plan.settings, model, out))
        else:
            d.update({"after_patch": None, "llama_args": ["-c", str(n)], "llama_args_text": f"-c {n}",
                      "llama_args_note": None, "override_kv": [], "override_kv_args": ["-c", str(n)],
                      "override_kv_text": f"-c {n}", "llama_cpp_kwargs": {"n_ctx": n}})
        d["hf"] = {"config": {}, "rope_scaling": None, "rope_parameters": None}
        d["vllm"] = {"args": ["--max-model-len", str(n)], "legacy_args": ["--max-model-len", str(n)]}
    elif plan.llama_cpp_native:
        d.update(llama_dialects(plan, plan.settings, model, out))
        d.update(hf_vllm_dialects(plan))
    else:
        d.update(hf_vllm_dialects(plan))
        d["closest_llama_cpp"] = dict(llama_dialects(plan, plan.settings, model, out),
                                      label=f"NOT dynamic: static NTK base reached at {n} tokens")
    for eng in ("vllm",):
        d[eng]["text"] = shlex.join(d[eng]["args"])
        d[eng]["legacy_text"] = shlex.join(d[eng]["legacy_args"])
    return d
