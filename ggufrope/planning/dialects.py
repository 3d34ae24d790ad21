"""A plan's settings in every dialect: a `ggufrope patch` command, llama.cpp flags, an
`--override-kv` list, llama-cpp-python keyword arguments, Hugging Face config.json keys and
vLLM flags.

Which keys llama.cpp reads from the file depends on the architecture (settings/keys.py:
for most archs the YaRN betas and ext/attn factors are read only from runtime flags). So
the patch writes the keys llama.cpp reads, and whatever it does not read travels as runtime
flags next to the patched file; the flag dialects for the unpatched file carry everything.

Every llama.cpp dialect is one apply mode of the same settings/projection.Projection
(runtime flags, a patched file, --override-kv), so they agree on every float and on the
context cap; the rules (llama-server's slot cap, llama-cpp-python's own yarn defaults) are
written there once.
"""
from __future__ import annotations

import os
import shlex
from typing import Any

from ggufrope.planning.recommend import Plan
from ggufrope.settings import RopeSettings, fmt_float
from ggufrope.settings.keys import ROPE_KEYS
from ggufrope.settings.projection import Projection, split_by_reader, vllm_args

# llama-cpp-python's own defaults for the yarn kwargs it always passes (from the key table; `plan`
# leaves them out of its one-line rendering)
LLAMA_CPP_PYTHON_DEFAULTS = {rk.kwarg: rk.hparam_default for rk in ROPE_KEYS
                             if rk.kwarg is not None and rk.field.startswith("yarn_")}

def patch_argv(model: str, out: str, settings: RopeSettings, arch: str) -> list[str]:
    """`ggufrope patch MODEL -o OUT ...` writing exactly these settings."""
    argv = ["ggufrope", "patch", model, "-o", out]
    # context_length last: it reads as "and the context this reaches"
    for rk in sorted(ROPE_KEYS, key=lambda k: k.field == "context_length"):
        v = getattr(settings, rk.field)
        if v is None:
            continue
        flag = rk.patch_flag
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


def projection(plan: Plan, settings: RopeSettings, apply: str = "runtime") -> Projection:
    """The plan's settings as one launch at the target context (settings/projection.py)."""
    f = plan.facts
    return Projection(f.arch, settings, f.current, f.trained_ctx, plan.target_ctx, apply)


def llama_dialects(plan: Plan, settings: RopeSettings, model: str, out: str | None) -> dict[str, Any]:
    """Patch command, flags for the patched file, and flags / overrides / kwargs for the unpatched one."""
    arch = plan.facts.arch
    runtime, patched, override = (projection(plan, settings, a) for a in ("runtime", "patched", "override"))
    out = out or default_output(model, plan)
    argv = patch_argv(model, out, patched.file_part, arch)
    after_args = patched.llama_args()
    llama_args = runtime.llama_args()
    n = runtime.ctx_override()
    cap_note = None if n is None else (
        f"llama-server caps each slot at the file's context_length ({plan.facts.context_length}); "
        f"the --override-kv lifts it to {n}")
    override_args = override.llama_args()
    return {
        "arch": arch,
        "patch": {
            "argv": argv,
            "command": shlex.join(argv),
            "output": out,
            "keys": {k: v for k, _, v in patched.patched_keys()},
            "not_read_by_llama_cpp": {k: v for k, _, v in split_by_reader(settings, arch)[1].to_gguf(arch)},
        },
        "after_patch": {
            "llama_args": after_args,
            "llama_args_text": shlex.join(after_args),
            "llama_cpp_kwargs": patched.llama_cpp_kwargs(),
        },
        "llama_args": llama_args,
        "llama_args_text": shlex.join(llama_args),
        "llama_args_note": cap_note,
        "override_kv": override.file_part.to_override_kv(arch),
        "override_kv_args": override_args,
        "override_kv_text": shlex.join(override_args),
        "llama_cpp_kwargs": runtime.llama_cpp_kwargs(),
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
        # only context_length may be short; the launch dialects still come from the projection
        d.update(llama_dialects(plan, plan.settings or RopeSettings(), model, out))
        d["patch"] = None
        if plan.settings is None:
            d["after_patch"] = None
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
