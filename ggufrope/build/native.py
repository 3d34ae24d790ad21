"""Run ggufrope's native tools (native/*.cpp) and return their JSON. Each takes the binary
directory of a build and an injectable runner."""
from __future__ import annotations

import json
import os
import subprocess
from typing import Mapping, Sequence

from ggufrope.childproc import Runner
from ggufrope.errors import BuildError, GgufropeError
from ggufrope.settings.projection import settings_flags
from ggufrope.settings.rope_settings import RopeSettings, fmt_float

class NativeToolError(GgufropeError):
    """A native tool refused the input (its own error message)."""

    exit_code = 3


def _run(bin_dir: str, tool: str, args: Sequence[str], runner: Runner = subprocess.run,
         timeout: float = 300, check_ok: bool = True) -> dict:
    exe = os.path.join(bin_dir, tool)
    if not os.path.exists(exe):
        raise BuildError(f"{exe}: not built; run `ggufrope build`")
    r = runner([exe, *args], capture_output=True, text=True, errors="replace", timeout=timeout)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        raise BuildError(f"{tool} {' '.join(args[:3])}: no JSON output (exit {r.returncode}): "
                         f"{(r.stderr or r.stdout).strip()[-300:]}") from None
    if check_ok and not doc.get("ok"):
        raise NativeToolError(f"{args[-1] if args else tool}: {tool}: {doc.get('error', 'failed')}")
    return doc


def probe_args(rope: RopeSettings | None = None, ctx: int | None = None,
               overrides: Sequence[str] = (), arch: str | None = None) -> list[str]:
    """ggufrope-probe's flags for runtime settings (the same names as llama.cpp's). With arch,
    settings that have no llama.cpp flag (attn_factor, finetuned, yarn_log_multiplier,
    dimension_count) go through --override-kv, as projection.settings_flags does; without
    it they are left out."""
    args: list[str] = []
    if ctx is not None:
        args += ["--ctx", str(ctx)]
    if rope is not None:
        args += settings_flags(rope, arch)
    for o in overrides:
        args += ["--override-kv", o]
    return args


def probe(bin_dir: str, model: str, rope: RopeSettings | None = None, ctx: int | None = None,
          overrides: Sequence[str] = (), runner: Runner = subprocess.run, arch: str | None = None) -> dict:
    return _run(bin_dir, "ggufrope-probe", [*probe_args(rope, ctx, overrides, arch), model], runner)


def which_keys(bin_dir: str, model: str, runner: Runner = subprocess.run) -> dict:
    return _run(bin_dir, "ggufrope-probe", ["--which-keys", model], runner)


def gguf_oracle(bin_dir: str, path: str, runner: Runner = subprocess.run) -> dict:
    """ggml's own reader's view of a file; {"ok": false, "error": ...} when it rejects it."""
    return _run(bin_dir, "ggufrope-gguf-oracle", [path], runner, check_ok=False)


def rope_angles(bin_dir: str, *, n_dims: int, positions: Sequence[int], freq_base: float = 10000.0,
                freq_scale: float = 1.0, ext_factor: float = 0.0, attn_factor: float = 1.0,
                beta_fast: float = 32.0, beta_slow: float = 1.0, n_ctx_orig: int = 0,
                mode: str = "norm", runner: Runner = subprocess.run) -> dict:
    # float() first: repr of a numpy scalar is "np.float32(0.25)" (numpy >= 2), which the tool refuses
    def num(v: float) -> str:
        return repr(float(v))
    args = ["--n-dims", str(int(n_dims)), "--freq-base", num(freq_base), "--freq-scale", num(freq_scale),
            "--ext-factor", num(ext_factor), "--attn-factor", num(attn_factor),
            "--beta-fast", num(beta_fast), "--beta-slow", num(beta_slow), "--n-ctx-orig", str(int(n_ctx_orig)),
            "--mode", mode, "--positions", ",".join(str(int(p)) for p in positions)]
    return _run(bin_dir, "ggufrope-rope-angles", args, runner)


def engine_env(bin_dir: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment that makes llama-cpp-python load this build's libllama (same llama.cpp as
    its own vendored tree, so the ABI matches): LLAMA_CPP_LIB_PATH."""
    out = dict(os.environ if env is None else env)
    out["LLAMA_CPP_LIB_PATH"] = bin_dir
    return out


__all__ = ["NativeToolError", "engine_env", "fmt_float", "gguf_oracle", "probe", "probe_args",
           "rope_angles", "which_keys"]
