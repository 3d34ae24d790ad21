"""A preset made concrete for one model file: prepare() runs the steps in order, each its own
module, and returns a Prepared (prepared.py).

  model_step    the model file and its facts, read once (ggufrope/model_facts.py)
  rope_step     the RoPE settings: rope.plan, the explicit [rope] fields over it
  context_step  the context (auto: the largest that fits) and its memory plan
  devices_step  RPC workers, devices, tensor_split, the server port
  files         the system prompt file and the patched copy, written just before a launch
The RoPE settings reach every engine through one settings.projection.Projection.
"""
from __future__ import annotations

import os
from typing import Callable, Mapping, Sequence

from ggufrope.errors import PresetError
from ggufrope.presets import checks, memory, secrets, serving
from ggufrope.presets.checks import Finding
from ggufrope.presets.prepare.context_step import MemoryInputs, choose_context
from ggufrope.presets.prepare.devices_step import free_port, workers_and_devices
from ggufrope.presets.prepare.files import ARGV_TEXT_LIMIT, prompt_file, write_patched_copy, write_prompt_file
from ggufrope.presets.prepare.model_step import launch_model
from ggufrope.presets.prepare.prepared import GGML_TYPE_IDS, TOOLS, Prepared
from ggufrope.presets.prepare.rope_step import compose, patched_path
from ggufrope.presets.preset import Preset
from ggufrope.settings.projection import Projection, settings_reach


def _engine_findings(p: Preset) -> list[Finding]:
    if p.engine == "python":
        import importlib.util
        if importlib.util.find_spec("llama_cpp") is None:
            return [Finding("error", "engine", "engine = \"python\" needs llama-cpp-python "
                                               "(./bootstrap installs a portable build)")]
    return []


def _raise_errors(prep: Prepared) -> Prepared:
    errs = prep.errors
    if errs:
        msg = errs[0].render(prep.preset)
        if len(errs) > 1:
            msg += "".join(f"\n  also: {e.render(prep.preset)}" for e in errs[1:])
        raise PresetError(msg)
    return prep


def prepare(p: Preset, env: Mapping[str, str], *, fetch: bool = True, bud: memory.Budget | None = None,
            log: Callable[[str], None] = lambda s: None, strict_memory: bool = True,
            strict_workers: bool = True, worker_timeout: float = 5.0, extra: Sequence[str] = ()) -> Prepared:
    """Resolve the model, the RoPE settings, the context and the memory plan; run the checks
    (RPC workers are asked over the network first). extra: llama.cpp arguments given after `--`
    (checked for llama-server). Raises PresetError for the first error finding (the others are
    in the message)."""
    key, f_key = secrets.api_key(p.res, env)
    findings = [Finding(*f) for f in f_key]
    m = launch_model(p, env, fetch=fetch, log=log)
    want, f_rope = compose(p, m)
    fa, f_fa = checks.resolved_flash_attn(p)
    findings += f_rope + f_fa + checks.head_dims(p, m.info) + checks.cuda_fa_pair(p, fa) + _engine_findings(p)

    bud = bud if bud is not None else memory.budget(env)
    on_gpu = p.build.backend != "cpu" and p.n_gpu_layers != 0
    workers, remote, split, f_rpc = workers_and_devices(p, bud, on_gpu, strict_workers, worker_timeout)
    reach = settings_reach(want, m.current, m.trained_ctx)
    inp = MemoryInputs(bud, on_gpu, fa != "off", remote if p.n_gpu_layers != 0 else ())  # -ngl 0: all local
    n_ctx, mp, f_ctx = choose_context(p, m, reach, inp, strict_memory)
    findings += f_rpc + f_ctx + checks.context(p, n_ctx, m.trained_ctx, reach, want, m.current)
    findings += checks.kv_quality(p, n_ctx) + checks.sequences(p, n_ctx, tuple(extra))

    proj = Projection(m.arch, want, m.current, m.trained_ctx, n_ctx, p.apply)
    run_model, needs_patch = m.path, False
    if p.apply == "patched" and not m.split:
        run_model = patched_path(m.path, proj.file_part, m.arch, env)
        needs_patch = not os.path.exists(run_model)
    port = None
    if p.engine == "server":
        findings += serving.server_findings(p, extra, key is not None, env)
        port = p.server.port if isinstance(p.server.port, int) else free_port(p.server.host)
    return _raise_errors(Prepared(p, m, run_model, needs_patch, proj, reach, fa, port, mp, tuple(findings),
                                  workers, split, key, prompt_file(p, env)))


def check_only(p: Preset, env: Mapping[str, str], **kw) -> Prepared:
    """prepare() for `presets check`: never fetches or writes anything."""
    return prepare(p, env, fetch=False, **kw)


__all__ = ["ARGV_TEXT_LIMIT", "GGML_TYPE_IDS", "TOOLS", "Prepared", "check_only", "free_port", "patched_path",
           "prepare", "prompt_file", "workers_and_devices", "write_patched_copy", "write_prompt_file"]
