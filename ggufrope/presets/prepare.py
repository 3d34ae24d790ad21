"""A preset made concrete for one model file on this machine: the model read, the RoPE
settings computed (plan, then explicit fields), the context chosen, every check run. A
Prepared has the engine projections: `to_llama_args(tool)` and `to_llama_cpp_kwargs()`.

How RoPE settings reach each engine:
* apply = "runtime": llama.cpp flags (--rope-scaling, --rope-scale, --yarn-*...) and
  --override-kv for keys without a flag; the file is untouched.
* apply = "patched": a ggufrope-patched copy in $GGUFROPE_HOME/patched holds the keys llama.cpp
  reads for the architecture; keys it ignores for that architecture (RopeKey.read_for: the
  YaRN betas and ext/attn factors outside grok/mistral3) still travel as runtime flags.
* llama-server caps each slot at the file's context_length: when the context is larger and
  runtime YaRN flags do not lift it (llama.cpp raises n_ctx_train only for yarn with a runtime
  factor), --override-kv ARCH.context_length=int:N does.
* python (llama-cpp-python): it passes yarn_beta_fast=32, yarn_beta_slow=1, yarn_attn_factor=1
  of its own, overriding the file, and maps flash_attn to on/off only; so every resolved value
  is passed explicitly.
"""
from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ggufrope import paths
from ggufrope.errors import GgufropeError, PresetError
from ggufrope.presets import checks, memory, secrets, serving
from ggufrope.presets.checks import Finding
from ggufrope.presets.model_path import resolve_model
from ggufrope.presets.preset import Preset
from ggufrope.settings import ModelInfo, RopeSettings
from ggufrope.settings.keys import BY_FIELD, ROPE_KEYS
from ggufrope.settings.rope_settings import LLAMA_ROPE_SCALING_IDS

# ggml_type ids llama-cpp-python takes for type_k / type_v (ggml.h)
GGML_TYPE_IDS = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20,
                 "bf16": 30}
TOOLS = ("llama-cli", "llama-completion", "llama-server")


@dataclass(frozen=True)
class ModelFile:
    path: str
    arch: str
    info: ModelInfo
    shape: memory.Shape
    weights: int
    trained_ctx: int
    split: bool
    has_chat_template: bool
    rope_tensors: tuple[str, ...]


def _header_facts(path: str) -> dict[str, Any]:
    """What a launch needs from the header(s), as plain data (cacheable): the metadata
    ModelInfo reads (general.* and every ARCH.* scalar or short array), vocabulary and
    feed-forward sizes, tensor bytes of every split, chat template presence, RoPE tensors."""
    from ggufrope.gguf import ValueType, read_header
    from ggufrope.gguf.splits import split_paths
    with read_header(path) as h:
        arch = h.get("general.architecture") or ""
        meta: dict[str, Any] = {}
        for k, f in h.fields.items():
            if k in ("general.architecture", "general.name", "general.file_type") or \
                    (arch and k.startswith(arch + ".") and (f.vtype != ValueType.ARRAY or f.count <= 4096)):
                meta[k] = h.value(f)
        shape = memory.shape_from_header(h)
        facts = {"meta": meta, "n_vocab": shape.n_vocab, "n_ff": shape.n_ff,
                 "weights": sum(t.nbytes for t in h.tensors), "chat": "tokenizer.chat_template" in h.fields,
                 "rope_tensors": sorted({t.name.split(".")[0] for t in h.tensors if t.name.startswith("rope_")})}
    for s in split_paths(path)[1:]:
        with read_header(s) as h2:
            facts["weights"] += sum(t.nbytes for t in h2.tensors)
    return facts


def read_model(path: str, p: Preset, env: Mapping[str, str]) -> ModelFile:
    from ggufrope.gguf.splits import is_split, split_paths
    from ggufrope.presets import cache
    key = cache.file_key(path, *(cache.file_key(s) for s in split_paths(path)[1:] if os.path.exists(s)))
    facts = cache.get("models", key, env)
    if facts is None:
        try:
            facts = _header_facts(path)
        except GgufropeError as e:
            raise p.res.error("model", f"{path}: not a usable GGUF file: {e}") from None
        cache.put("models", key, facts, env)
    meta = facts["meta"]
    arch = meta.get("general.architecture") or ""
    info = ModelInfo.from_metadata(meta)
    if not arch or not info.n_layer:
        raise p.res.error("model", f"{path}: no general.architecture / block_count: not a model llama.cpp can run")
    ctx = info.rope.context_length
    orig = info.rope.original_context_length
    trained = orig if isinstance(orig, int) and orig > 0 else (ctx if isinstance(ctx, int) and ctx > 0 else 0)
    if not trained:
        raise p.res.error("model", f"{path}: no {arch}.context_length (llama.cpp requires it)")
    return ModelFile(path, arch, info, memory.Shape(facts["n_vocab"], facts["n_ff"]), facts["weights"], trained,
                     is_split(path), facts["chat"], tuple(facts["rope_tensors"]))


def plan_settings(p: Preset, m: ModelFile, env: Mapping[str, str]) -> tuple[RopeSettings, list[str]]:
    """rope.plan through ggufrope.planning (`ggufrope plan MODEL --ctx N --method M`).

    A plan imports numpy and computes every pair's effect (~0.3 s); launches only need its
    settings, so they are cached per (model file, size, mtime, plan, planning code) in
    $GGUFROPE_HOME/cache/plans/ and `run` stays quick the second time."""
    import ggufrope
    from ggufrope.presets import cache
    method, target = p.rope_plan
    key = cache.file_key(m.path, method, target, cache.code_stamp(os.path.join(os.path.dirname(ggufrope.__file__),
                                                                                 "planning")))
    hit = cache.get("plans", key, env)
    if hit is not None:
        try:
            return RopeSettings(**hit["settings"]), list(hit["notes"])
        except (GgufropeError, TypeError, KeyError):
            pass
    from ggufrope.planning import make_plan
    try:
        plan = make_plan(m.path, target, method)
    except GgufropeError as e:
        raise p.res.error("rope.plan", str(e)) from None
    settings = plan.settings or RopeSettings()
    cache.put("plans", key, {"settings": settings.as_dict(), "notes": list(plan.notes)}, env)
    return settings, list(plan.notes)


def scaled_context(want: RopeSettings, file_rope: RopeSettings, trained: int) -> int:
    """How far the RoPE settings reach: context_length when set, else original x factor for a
    scaling type that stretches, else the file's context_length."""
    if want.context_length:
        return want.context_length
    typ = want.scaling_type or file_rope.effective_type
    factor = want.factor if (want.scaling_factor is not None or want.scale_linear is not None) else file_rope.factor
    if typ != "none" and factor > 1.0:
        orig = want.original_context_length or file_rope.original_context_length or trained
        return int(round(orig * factor))
    return max(file_rope.context_length or trained, trained)


def patched_path(model: str, file_part: RopeSettings, arch: str, env: Mapping[str, str]) -> str:
    st = os.stat(model)
    key = hashlib.sha256(repr((os.path.realpath(model), st.st_size, st.st_mtime_ns,
                               sorted(file_part.to_override_kv(arch)))).encode()).hexdigest()[:12]
    stem = os.path.splitext(os.path.basename(model))[0]
    return os.path.join(paths.home(env), "patched", f"{stem}.{key}.gguf")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Prepared:
    preset: Preset
    model: ModelFile
    run_model: str                  # the file the engine loads (the patched copy for apply = patched)
    needs_patch: bool               # the patched copy is not written yet
    want: RopeSettings              # the RoPE settings asked for (plan, then explicit fields)
    file_part: RopeSettings         # patched: written into the copy
    flag_part: RopeSettings         # given as runtime flags / kwargs
    n_ctx: int
    ctx_cap: int
    flash_attn: str                 # on / off / auto, as passed
    port: int | None
    mem: memory.MemoryPlan
    findings: tuple[Finding, ...] = field(default=())
    workers: tuple = ()             # rpc.WorkerInfo of each worker that answered, in the order of rpc
    device_split: tuple[float, ...] = ()   # -ts, per device (workers' devices, then local GPUs)
    api_key: str | None = field(default=None, repr=False)   # resolved (secrets.api_key); never on an argv
    system_prompt_file: str | None = None  # a system prompt too long for an argv goes here (-sysf)

    @property
    def arch(self) -> str:
        return self.model.arch

    def _lifts_ctx(self) -> bool:
        """llama.cpp raises n_ctx_train itself: runtime yarn with a factor (src/llama-context.cpp)."""
        f = self.flag_part
        typ = f.scaling_type or (self.file_part.scaling_type if self.preset.apply == "patched" else None) \
            or self.model.info.rope.effective_type
        return typ == "yarn" and (f.scaling_factor is not None or f.scale_linear is not None)

    def ctx_override(self) -> int | None:
        """The context_length --override-kv / kv_overrides carries, if any."""
        file_ctx = self.model.info.rope.context_length or self.model.trained_ctx
        if self.preset.apply == "patched":  # what the copy holds (ggufrope patch derives it from the factor)
            file_ctx = scaled_context(self.file_part, self.model.info.rope, self.model.trained_ctx)
        want = self.want.context_length
        if self.preset.apply == "runtime" and want is not None and want != file_ctx and not self._lifts_ctx():
            return want
        if self.n_ctx > file_ctx and not self._lifts_ctx():
            return max(self.n_ctx, want or 0)
        return None

    def rope_args(self) -> list[str]:
        args = self.flag_part.to_llama_args(self.arch, include_ctx=False)
        n = self.ctx_override()
        if n is not None:
            args += ["--override-kv", f"{BY_FIELD['context_length'].key(self.arch)}=int:{n}"]
        return args

    def to_llama_args(self, tool: str) -> list[str]:
        """Arguments (without the binary) for llama-cli, llama-completion or llama-server."""
        p = self.preset
        args = ["-m", self.run_model, "-c", str(self.n_ctx)] + self.rope_args()
        args += ["-ctk", p.cache_type_k, "-ctv", p.cache_type_v, "-fa", self.flash_attn]
        args += p.runtime_args()
        if self.device_split:
            args += ["-ts", ",".join(f"{x:g}" for x in self.device_split)]
        if p.n_predict != -1:
            args += ["-n", str(p.n_predict)]
        if p.system_prompt and tool != "llama-server":
            args += ["-sysf", self.system_prompt_file] if self.system_prompt_file else ["-sys", p.system_prompt]
        args += p.chat_template_args()
        if tool == "llama-server":
            port = self.port or (p.server.port if isinstance(p.server.port, int) else 8080)
            args += ["--host", p.server.host, "--port", str(port), "--alias", p.name]
        return args + list(p.extra_args)

    def one_shot_args(self, prompt: str) -> list[str]:
        """llama-completion arguments for one answer: a single chat turn when the model (or the
        preset) has a chat template, else a raw completion of the prompt."""
        args = self.to_llama_args("llama-completion") + ["-p", prompt]
        chat = self.model.has_chat_template or bool(self.preset.chat_template)
        return args + (["-cnv", "-st"] if chat else ["-no-cnv"])

    def effective_rope(self) -> RopeSettings:
        """The values llama.cpp ends up with: the file's keys (those it reads for this
        architecture) with the preset's settings over them."""
        file_rope = self.model.info.rope
        vals: dict[str, Any] = {}
        for rk in ROPE_KEYS:
            v = getattr(file_rope, rk.field)
            if v is not None and rk.read_for(self.arch):
                vals[rk.field] = v
        vals.update(self.file_part.as_dict() if self.preset.apply == "patched" else {})
        vals.update(self.want.as_dict())
        vals = {k: v for k, v in vals.items() if _valid(k, v)}
        return RopeSettings(**vals)

    def to_llama_cpp_kwargs(self) -> dict[str, Any]:
        """llama_cpp.Llama(**kwargs), every resolved value explicit (see the module doc)."""
        p = self.preset
        eff = self.effective_rope()
        typ = eff.effective_type
        kw: dict[str, Any] = {"model_path": self.run_model, "n_ctx": self.n_ctx}
        kw["rope_scaling_type"] = LLAMA_ROPE_SCALING_IDS[typ]
        kw["rope_freq_base"] = float(eff.freq_base or 10000.0)
        kw["rope_freq_scale"] = 1.0 if typ == "none" else 1.0 / eff.factor
        kw["yarn_orig_ctx"] = int(eff.original_context_length or self.model.trained_ctx)
        yarn = RopeSettings(**{f: getattr(eff, f) for f in ("yarn_ext_factor", "yarn_attn_factor", "yarn_beta_fast",
                                                            "yarn_beta_slow") if getattr(eff, f) is not None})
        y = yarn.to_llama_cpp_kwargs()
        for k in ("yarn_ext_factor", "yarn_attn_factor", "yarn_beta_fast", "yarn_beta_slow"):
            kw[k] = float(y[k])
        overrides = {}
        flagless = self.want if p.apply == "runtime" else self.flag_part
        for f in ("dimension_count", "attn_factor", "finetuned", "yarn_log_multiplier"):
            v = getattr(flagless, f)
            if v is not None:
                overrides[BY_FIELD[f].key(self.arch)] = v
        n = self.ctx_override()
        if n is not None:
            overrides[BY_FIELD["context_length"].key(self.arch)] = n
        if overrides:
            kw["kv_overrides"] = overrides
        kw["type_k"] = GGML_TYPE_IDS[p.cache_type_k]
        kw["type_v"] = GGML_TYPE_IDS[p.cache_type_v]
        # llama-cpp-python has no "auto": on wherever llama.cpp's auto would pick it (CPU, CUDA, Metal)
        kw["flash_attn"] = self.flash_attn != "off"
        kw["n_gpu_layers"] = -1 if p.n_gpu_layers in ("auto", "all") else int(p.n_gpu_layers)
        if p.threads != "auto":
            kw["n_threads"] = kw["n_threads_batch"] = int(p.threads)
        if p.batch != "auto":
            kw["n_batch"] = int(p.batch)
        if p.ubatch != "auto":
            kw["n_ubatch"] = int(p.ubatch)
        if p.sampling.seed is not None:
            kw["seed"] = p.sampling.seed
        if p.chat_template and not ("{%" in p.chat_template or "{{" in p.chat_template):
            kw["chat_format"] = p.chat_template
        kw["verbose"] = False
        return kw

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]


def _valid(name: str, v: Any) -> bool:
    try:
        RopeSettings(**{name: v})
        return True
    except GgufropeError:
        return False


def workers_and_devices(p: Preset, bud: memory.Budget, on_gpu: bool, strict: bool, timeout: float
                        ) -> tuple[tuple, tuple[memory.Device, ...], tuple[float, ...], list[Finding]]:
    """Probe every RPC worker (all at once, each bounded by timeout); the devices the offloaded
    layers spread over (the workers' devices in the order of `rpc`, then local GPUs, as llama.cpp
    orders them: src/llama.cpp puts RPC devices first); and tensor_split, given per worker, as
    llama.cpp's per-device -ts (a worker's share divided evenly over its devices)."""
    if not p.rpc:
        if p.tensor_split:
            return (), (), (), [Finding("warning", "tensor_split", "tensor_split is set but rpc lists no workers; "
                                                                    "pass it as -ts in extra_args for local GPUs")]
        return (), (), (), []
    from ggufrope.rpc import parse_endpoints, probe_all
    eps = parse_endpoints(p.rpc)
    findings: list[Finding] = []
    infos = []
    for ep, r in zip(eps, probe_all(eps, timeout)):
        if isinstance(r, GgufropeError):
            findings.append(Finding("error" if strict else "warning", "rpc", str(r)))
        else:
            infos.append(r)
    gpus = list(bud.vram_free) if on_gpu and bud.has_gpu else []
    ts = list(p.tensor_split)
    if ts and len(ts) > len(eps) + len(gpus):
        findings.append(Finding("error", "tensor_split",
                                f"{len(ts)} shares for {len(eps)} RPC worker(s)" +
                                (f" and {len(gpus)} local GPU(s)" if gpus else "") + ": one share per worker "
                                "(in the order of rpc), then one per local GPU"))
        ts = ts[:len(eps) + len(gpus)]
    ts += [0.0] * (len(eps) + len(gpus) - len(ts)) if ts else []
    by_ep = {w.endpoint: w for w in infos}
    devices: list[memory.Device] = []
    split: list[float] = []
    for i, ep in enumerate(eps):
        w = by_ep.get(ep)
        n_dev = len(w.devices) if w is not None else 1
        share = ts[i] / n_dev if ts else 0.0
        split += [share] * n_dev
        if w is not None:
            for d in w.devices:
                devices.append(memory.Device(f"rpc {ep}" + (f"#{d.index}" if n_dev > 1 else ""), d.free, share))
    for j, free in enumerate(gpus):
        share = ts[len(eps) + j] if ts else 0.0
        split.append(share)
        devices.append(memory.Device(f"GPU {j}", free, share))
    if p.engine == "python":
        findings.append(Finding("error", "engine", "the python engine (llama-cpp-python's wheel here) is built "
                                                   "without the RPC backend; use engine = \"server\" or \"cli\" "
                                                   "with RPC workers"))
    return tuple(infos), tuple(devices), tuple(split) if ts else (), findings


def prepare(p: Preset, env: Mapping[str, str], *, fetch: bool = True, bud: memory.Budget | None = None,
            log: Callable[[str], None] = lambda s: None, strict_memory: bool = True,
            strict_workers: bool = True, worker_timeout: float = 5.0, extra: Sequence[str] = ()) -> Prepared:
    """Resolve the model, the RoPE settings, the context and the memory plan; run the checks
    (RPC workers are asked over the network first). extra: llama.cpp arguments given after `--`
    (checked for llama-server). Raises PresetError for the first error finding (the others are
    in the message)."""
    findings: list[Finding] = []
    key, f_key = secrets.api_key(p.res, env)
    findings += [Finding(*f) for f in f_key]
    path = resolve_model(p, env, fetch=fetch, log=log)
    m = read_model(path, p, env)
    file_rope = m.info.rope

    # RoPE: the plan first, explicit rope fields over it
    want = RopeSettings()
    if p.rope_plan is not None:
        base, notes = plan_settings(p, m, env)
        want = base
        findings += [Finding("note", "rope.plan", n) for n in notes]
    want = want.merged(p.rope)
    if p.apply == "patched":
        if m.split:
            findings.append(Finding("error", "apply", "apply = \"patched\" does not handle split models yet "
                                                       "(only the first split holds metadata); use apply = \"runtime\""))
        from ggufrope.planning.dialects import split_by_reader
        file_part, flag_part = split_by_reader(want, m.arch)
    else:
        file_part, flag_part = RopeSettings(), want
    if (want.scaling_type == "longrope" or (want.scaling_type is None and file_rope.scaling_type == "longrope")) \
            and not any(t.startswith("rope_factors") for t in m.rope_tensors):
        findings.append(Finding("warning", "rope.scaling_type",
                                "longrope needs rope_factors_long/short tensors, which this file lacks"))

    fa, f_fa = checks.resolved_flash_attn(p)
    findings += f_fa + checks.head_dims(p, m.info) + checks.cuda_fa_pair(p, fa)
    if p.engine == "python":
        import importlib.util
        if importlib.util.find_spec("llama_cpp") is None:
            findings.append(Finding("error", "engine", "engine = \"python\" needs llama-cpp-python "
                                                       "(./bootstrap installs a portable build)"))

    # context and memory
    cap = scaled_context(want if p.apply == "runtime" else want.merged(file_part), file_rope, m.trained_ctx)
    bud = bud if bud is not None else memory.budget(env)
    ub = memory.DEFAULT_UBATCH if p.ubatch == "auto" else int(p.ubatch)
    on_gpu = p.build.backend != "cpu" and p.n_gpu_layers != 0
    frac = memory.gpu_fraction(p.n_gpu_layers, m.info.n_layer)
    workers, remote, split, f_rpc = workers_and_devices(p, bud, on_gpu, strict_workers, worker_timeout)
    findings += f_rpc
    if p.n_gpu_layers == 0:
        remote = ()   # -ngl 0: nothing leaves this machine

    def mem_at(n: int) -> memory.MemoryPlan:
        return memory.plan(m.info, m.shape, m.weights, n, p.cache_type_k, p.cache_type_v, flash_attn=fa != "off",
                           n_ubatch=ub, bud=bud, on_gpu=on_gpu, gpu_fraction=frac, headroom=p.headroom_mib * memory.MiB,
                           remote=remote)

    if p.ctx == "auto":
        best = memory.largest_fitting(mem_at, cap)
        if best is None:
            smallest = mem_at(memory.CTX_PAD)
            findings.append(Finding("error", "ctx", f"not even {memory.CTX_PAD} tokens fit: {smallest.summary()}"))
            mp = smallest
        else:
            mp = best
            if best.n_ctx < cap:
                findings.append(Finding("note", "ctx", f"auto -> {best.n_ctx}: the largest context that fits "
                                                       f"(the RoPE settings reach {cap})"))
        n_ctx = mp.n_ctx
    else:
        n_ctx = int(p.ctx)
        mp = mem_at(n_ctx)
        if not mp.fits:
            best = memory.largest_fitting(mem_at, n_ctx)
            more = f"; the largest that fits is {best.n_ctx} (or set ctx = \"auto\", or a smaller cache type)" \
                if best else "; nothing fits (a smaller model or cache type?)"
            findings.append(Finding("error" if strict_memory else "warning", "ctx",
                                    f"ctx {n_ctx} does not fit: {mp.summary()}{more}"))
    findings += checks.context(p, n_ctx, m.trained_ctx, cap, want, file_rope)

    run_model, needs_patch = path, False
    if p.apply == "patched" and not m.split:
        run_model = patched_path(path, file_part, m.arch, env)
        needs_patch = not os.path.exists(run_model)
    port = None
    if p.engine == "server":
        findings += serving.server_findings(p, extra, key is not None, env)
        port = p.server.port if isinstance(p.server.port, int) else free_port(p.server.host)
    prep = Prepared(p, m, run_model, needs_patch, want, file_part, flag_part, n_ctx, cap, fa, port, mp,
                    tuple(findings), workers, split, key, prompt_file(p, env))
    errs = prep.errors
    if errs:
        msg = errs[0].render(p)
        if len(errs) > 1:
            msg += "".join(f"\n  also: {e.render(p)}" for e in errs[1:])
        raise PresetError(msg)
    return prep


# llama.cpp reads a system prompt from a file (-sysf, common/arg.cpp); one this long goes there
# rather than on the argv (Linux caps one argument at 128 KiB: "Argument list too long")
ARGV_TEXT_LIMIT = 16 * 1024


def prompt_file(p: Preset, env: Mapping[str, str]) -> str | None:
    """Where a long system prompt is written for -sysf (named by its hash; None: short enough
    for the command line)."""
    if not p.system_prompt or len(p.system_prompt.encode()) <= ARGV_TEXT_LIMIT:
        return None
    digest = hashlib.sha256(p.system_prompt.encode()).hexdigest()[:16]
    return os.path.join(paths.home(env), "prompts", f"system-{digest}.txt")


def write_prompt_file(prep: Prepared) -> None:
    """Write the system prompt file (owner-only: a prompt can be private). llama.cpp drops one
    trailing newline of the file, so one is added."""
    path = prep.system_prompt_file
    if path is None:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(prep.preset.system_prompt + "\n")
    os.replace(tmp, path)


def write_patched_copy(prep: Prepared, log: Callable[[str], None] = lambda s: None) -> str:
    """Write the patched copy for apply = "patched" (once; it is reused while the model and the
    settings are unchanged)."""
    if not prep.needs_patch or os.path.exists(prep.run_model):
        return prep.run_model
    from ggufrope.edit import patch_file
    from ggufrope.edit.requests import PatchRequest, request_ops
    os.makedirs(os.path.dirname(prep.run_model), exist_ok=True)
    req = PatchRequest(rope=prep.file_part)
    log(f"writing the patched copy {prep.run_model}")
    patch_file(prep.model.path, lambda h: request_ops(h, req)[0], out=prep.run_model)
    return prep.run_model


def check_only(p: Preset, env: Mapping[str, str], **kw) -> Prepared:
    """prepare() for `presets check`: never fetches or writes anything."""
    return prepare(p, env, fetch=False, **kw)


