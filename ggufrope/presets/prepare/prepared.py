"""A preset made concrete for one model file on this machine (the value prepare() returns): the
model's facts, the Projection (RoPE settings + n_ctx, settings/projection.py) that every engine's
arguments come from, the memory plan, the devices and every finding. `to_llama_args(tool)` adds
the engine's own options to the projection's argv, `to_llama_cpp_kwargs()` to its kwargs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ggufrope.model_facts import ModelFacts
from ggufrope.presets import memory
from ggufrope.presets.checks import Finding
from ggufrope.presets.preset import Preset
from ggufrope.settings import RopeSettings
from ggufrope.settings.projection import Projection

# ggml_type ids llama-cpp-python takes for type_k / type_v (ggml.h)
GGML_TYPE_IDS = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20,
                 "bf16": 30}
TOOLS = ("llama-cli", "llama-completion", "llama-server")


@dataclass(frozen=True)
class Prepared:
    preset: Preset
    model: ModelFacts
    run_model: str                  # the file the engine loads (the patched copy for apply = patched)
    needs_patch: bool               # the patched copy is not written yet
    projection: Projection          # the RoPE settings and n_ctx, as every engine gets them
    ctx_cap: int                    # how far the RoPE settings reach (ctx = "auto" stops there)
    flash_attn: str                 # on / off / auto, as passed
    port: int | None
    mem: memory.MemoryPlan
    findings: tuple[Finding, ...] = field(default=())
    workers: tuple = ()             # rpc.WorkerInfo of each worker that answered, in the order of rpc
    device_split: tuple[float, ...] = ()   # -ts, per device (workers' devices, then local GPUs)
    api_key: str | None = field(default=None, repr=False)   # resolved (secrets.api_key); never on an argv
    system_prompt_file: str | None = None  # a system prompt too long for an argv goes here (-sysf)

    @property
    def n_ctx(self) -> int:
        return self.projection.n_ctx

    def to_llama_args(self, tool: str) -> list[str]:
        """Arguments (without the binary) for llama-cli, llama-completion or llama-server."""
        p = self.preset
        args = ["-m", self.run_model] + self.projection.llama_args()
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
            args += p.sequence_args() + ["--host", p.server.host, "--port", str(port), "--alias", p.name]
        return args + list(p.extra_args)

    def one_shot_args(self, prompt: str) -> list[str]:
        """llama-completion arguments for one answer: a single chat turn when the model (or the
        preset) has a chat template, else a raw completion of the prompt."""
        args = self.to_llama_args("llama-completion") + ["-p", prompt]
        chat = self.model.has_chat_template or bool(self.preset.chat_template)
        return args + (["-cnv", "-st"] if chat else ["-no-cnv"])

    def to_llama_cpp_kwargs(self) -> dict[str, Any]:
        """llama_cpp.Llama(**kwargs): the projection's n_ctx and RoPE values, then the engine's."""
        p = self.preset
        kw: dict[str, Any] = {"model_path": self.run_model}
        kw.update(self.projection.llama_cpp_kwargs())
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
        if p.swa_full:
            kw["swa_full"] = True
        if p.sampling.seed is not None:
            kw["seed"] = p.sampling.seed
        if p.chat_template and not ("{%" in p.chat_template or "{{" in p.chat_template):
            kw["chat_format"] = p.chat_template
        kw["verbose"] = False
        return kw

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]


