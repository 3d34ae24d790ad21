"""The resolved preset as one frozen, typed object, plus the parts of a launch that do not
depend on the model file (build spec, sampling, server, engine flags)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ggufrope.errors import UsageError
from ggufrope.presets.resolve import Resolved
from ggufrope.settings import RopeSettings


def _flag(flag: str) -> Any:
    """A sampling field (None: llama.cpp's default) and the llama.cpp flag that sets it."""
    return field(default=None, metadata={"flag": flag})


@dataclass(frozen=True)
class Sampling:
    """Sampling settings. Each field's llama.cpp flag is in its metadata; llama-cpp-python's
    create_chat_completion takes the field's own name as its keyword."""

    temperature: float | None = _flag("--temp")
    top_p: float | None = _flag("--top-p")
    top_k: int | None = _flag("--top-k")
    min_p: float | None = _flag("--min-p")
    repeat_penalty: float | None = _flag("--repeat-penalty")
    seed: int | None = _flag("--seed")

    def to_llama_args(self) -> list[str]:
        out: list[str] = []
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                out += [f.metadata["flag"], f"{v:g}" if isinstance(v, float) else str(v)]
        return out

    def to_completion_kwargs(self) -> dict[str, Any]:
        """create_chat_completion(...) keyword arguments (seed is a Llama() argument there)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None and f.name != "seed"}


@dataclass(frozen=True)
class Server:
    host: str = "127.0.0.1"
    port: int | str = 8080
    api_key: str | None = None
    ready_timeout: int = 300
    load_on_startup: bool = False


@dataclass(frozen=True)
class BuildNeeds:
    backend: str = "cpu"
    kv_pairs: tuple[str, ...] = ()
    bin_dir: str | None = None

    def spec(self, rpc: bool = False):
        """The BuildSpec a preset needs: its backend, the RPC backend when it uses workers and,
        on CUDA, the flash-attention K/V pairs it lists (added to llama.cpp's default set;
        checks.cuda_fa_pair says when one is missing)."""
        from ggufrope.build.spec import BuildSpec, parse_kv_pairs
        pairs = parse_kv_pairs(None, list(self.kv_pairs)) if self.backend == "cuda" and self.kv_pairs else ()
        return BuildSpec(backend=self.backend, kv_pairs=pairs, rpc=rpc)


@dataclass(frozen=True)
class Preset:
    """Every field of a resolved preset, typed. `res` keeps the values' origins."""

    name: str
    res: Resolved
    description: str
    model: str | None
    model_hint: str | None
    apply: str
    ctx: int | str
    cache_type_k: str
    cache_type_v: str
    flash_attn: str
    n_gpu_layers: int | str
    threads: int | str
    batch: int | str
    ubatch: int | str
    parallel: int | str
    kv_unified: str
    swa_full: bool
    n_predict: int
    engine: str
    system_prompt: str | None
    chat_template: str | None
    extra_args: tuple[str, ...]
    rpc: tuple[str, ...]
    tensor_split: tuple[float, ...]
    rope_plan: tuple[str, int] | None
    rope: RopeSettings
    server: Server
    sampling: Sampling
    build: BuildNeeds
    headroom_mib: int

    @classmethod
    def from_resolved(cls, res: Resolved) -> Preset:
        v = res.values
        rope_vals = {f.name: v[f"rope.{f.name}"] for f in fields(RopeSettings) if v.get(f"rope.{f.name}") is not None}
        for n, val in rope_vals.items():  # one at a time, so the error names the field
            try:
                RopeSettings(**{n: val})
            except UsageError as e:
                raise res.error(f"rope.{n}", str(e)) from None
        rope = RopeSettings(**rope_vals)
        if v["build.kv_pairs"]:
            from ggufrope.build.spec import parse_kv_pairs
            try:
                parse_kv_pairs(None, list(v["build.kv_pairs"]))
            except UsageError as e:
                raise res.error("build.kv_pairs", str(e)) from None
        return cls(
            name=res.name, res=res, description=v["description"], model=v["model"] or None,
            model_hint=v["model_hint"], apply=v["apply"], ctx=v["ctx"], cache_type_k=v["cache_type_k"],
            cache_type_v=v["cache_type_v"], flash_attn=v["flash_attn"], n_gpu_layers=v["n_gpu_layers"],
            threads=v["threads"], batch=v["batch"], ubatch=v["ubatch"], parallel=v["parallel"],
            kv_unified=v["kv_unified"], swa_full=v["swa_full"], n_predict=v["n_predict"],
            engine=v["engine"], system_prompt=v["system_prompt"] or None, chat_template=v["chat_template"] or None,
            extra_args=tuple(v["extra_args"]), rpc=tuple(v["rpc"]), tensor_split=tuple(v["tensor_split"]),
            rope_plan=v["rope.plan"], rope=rope,
            server=Server(v["server.host"], v["server.port"], v["server.api_key"] or None, v["server.ready_timeout"],
                          v["server.load_on_startup"]),
            sampling=Sampling(**{f.name: v[f"sampling.{f.name}"] for f in fields(Sampling)}),
            build=BuildNeeds(v["build.backend"], tuple(v["build.kv_pairs"]), v["build.bin_dir"] or None),
            headroom_mib=v["memory.headroom_mib"],
        )

    def with_engine(self, engine: str) -> Preset:
        from dataclasses import replace
        return replace(self, engine=engine)

    def sequences(self) -> tuple[int, bool]:
        """(n_seq, unified KV) the engine runs with: llama-server's -np auto is 4 slots in one unified
        buffer (tools/server/server.cpp l.156-161); llama-cli, llama-completion and llama-cpp-python
        decode one sequence (common.h n_parallel = 1)."""
        if self.engine != "server":
            return 1, False
        n = 4 if self.parallel == "auto" else int(self.parallel)
        unified = self.kv_unified == "on" or (self.kv_unified == "auto" and self.parallel == "auto")
        return n, unified

    def sequence_args(self) -> list[str]:
        """llama-server's -np / -kvu flags for parallel and kv_unified (nothing when both are auto)."""
        out: list[str] = []
        if self.parallel != "auto":
            out += ["-np", str(self.parallel)]
        elif self.kv_unified == "off":
            out += ["-np", "4"]        # -np auto forces a unified buffer: name the 4 slots to split it
        if self.kv_unified != "auto":
            out.append("-kvu" if self.kv_unified == "on" else "-no-kvu")
        return out

    def build_spec(self):
        return self.build.spec(rpc=bool(self.rpc))

    # -- flags that do not depend on the model -----------------------------------------------
    def runtime_args(self) -> list[str]:
        """Threads, batches, GPU layers, RPC workers and sampling as llama.cpp flags (common/arg.cpp).
        tensor_split is per worker here; prepare() turns it into llama.cpp's per-device -ts
        (Prepared.device_split), since that needs the workers' device counts."""
        out: list[str] = []
        if self.rpc:
            out += ["--rpc", ",".join(self.rpc)]
        if self.n_gpu_layers != "auto":
            out += ["-ngl", str(self.n_gpu_layers)]
        if self.threads != "auto":
            out += ["-t", str(self.threads)]
        if self.batch != "auto":
            out += ["-b", str(self.batch)]
        if self.ubatch != "auto":
            out += ["-ub", str(self.ubatch)]
        if self.swa_full:
            out.append("--swa-full")
        return out + self.sampling.to_llama_args()

    def chat_template_args(self) -> list[str]:
        t = self.chat_template
        if not t:
            return []
        # Jinja text needs --jinja before it; a built-in name does not (common/arg.cpp --chat-template)
        return (["--jinja"] if ("{%" in t or "{{" in t) else []) + ["--chat-template", t]
