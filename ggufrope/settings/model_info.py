"""Model facts read from metadata that RoPE and memory planning need: shape and KV cache size."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ggufrope.kv_model import KV_CACHE_TYPES, KvPlan, KvShape, KvUnknown, kv_plan
from ggufrope.layer_rope import rope_groups
from ggufrope.settings.rope_settings import RopeSettings

__all__ = ["KV_CACHE_TYPES", "ModelInfo"]


MAX_LAYERS = 4096  # llama.cpp's LLAMA_MAX_LAYERS is 512; anything far beyond is a broken file


def _int(v: Any) -> int:
    """An integer metadata value, or 0 when absent or not an integer (files can hold anything)."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def _per_layer(v: Any, n_layer: int) -> list[int]:
    if isinstance(v, list):
        vals = [_int(x) for x in v[:n_layer]]
        return vals + [0] * max(0, n_layer - len(vals))
    return [_int(v)] * n_layer


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _sections(v: Any) -> tuple[int, ...]:
    """rope.dimension_sections as llama.cpp reads it: up to 4 integers; () when absent or all 0."""
    vals = tuple(_int(x) for x in v[:4]) if isinstance(v, list) else ()
    return vals if any(vals) else ()


@dataclass(frozen=True)
class ModelInfo:
    arch: str
    name: str | None
    n_layer: int
    n_embd: int
    n_head: list[int]        # per layer
    n_head_kv: list[int]     # per layer
    head_dim_k: int
    head_dim_v: int
    file_type: int | None
    rope: RopeSettings
    kv: KvShape | None = None   # llama.cpp's memory layout (ggufrope/kv_model.py), from the same metadata
    # M-RoPE (qwen2vl, qwen3vl...): pairs per position component, rope.dimension_sections
    # (src/llama-model.cpp: get_key_or_arr(LLM_KV_ROPE_DIMENSION_SECTIONS, hparams.rope_sections, 4))
    rope_sections: tuple[int, ...] = ()
    # which layers get which RoPE as the graph applies it (ggufrope/layer_rope.py); () = all the context's
    rope_groups: tuple = ()
    rope_alpha: float | None = None   # rope.scaling.alpha (hunyuan: NTK-aware base, hunyuan-vl.cpp l.7-12)
    n_nextn: int = 0                  # nextn_predict_layers: MTP layers llama.cpp's n_layer() leaves out

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> ModelInfo:
        arch = meta.get("general.architecture") or ""
        arch = arch if isinstance(arch, str) else ""
        n_layer = min(_int(meta.get(f"{arch}.block_count")), MAX_LAYERS)
        n_embd = _int(meta.get(f"{arch}.embedding_length"))
        n_head = _per_layer(meta.get(f"{arch}.attention.head_count"), n_layer)
        kv = meta.get(f"{arch}.attention.head_count_kv")
        n_head_kv = n_head if kv is None else _per_layer(kv, n_layer)
        h0 = max(n_head) if n_head else 0
        default_hd = n_embd // h0 if h0 else 0
        rope = RopeSettings.from_metadata(meta, arch)
        kv_shape = KvShape.from_metadata(meta, arch)
        return cls(
            arch=arch, name=meta.get("general.name") if isinstance(meta.get("general.name"), str) else None, n_layer=n_layer, n_embd=n_embd,
            n_head=n_head, n_head_kv=n_head_kv,
            head_dim_k=_int(meta.get(f"{arch}.attention.key_length")) or default_hd,
            head_dim_v=_int(meta.get(f"{arch}.attention.value_length")) or default_hd,
            file_type=meta.get("general.file_type") if isinstance(meta.get("general.file_type"), int) else None,
            rope=rope, kv=kv_shape,
            rope_sections=_sections(meta.get(f"{arch}.rope.dimension_sections")),
            rope_groups=rope_groups(meta, arch, kv_shape, rope.finetuned),
            rope_alpha=_float(meta.get(f"{arch}.rope.scaling.alpha")),
            n_nextn=min(_int(meta.get(f"{arch}.nextn_predict_layers")), n_layer),
        )

    def loaded_freq_base(self, base: float) -> float:
        """The trained base as llama.cpp loads it: hunyuan-dense/hunyuan_vl raise it to
        base x alpha^(d/(d-2)) with rope.scaling.alpha, d the head dim (hunyuan-vl.cpp l.7-12, f32)."""
        a, d = self.rope_alpha, self.head_dim_k
        if self.arch in ("hunyuan-dense", "hunyuan_vl") and a and a > 0 and d > 2:
            from ggufrope.settings.rope_settings import f32
            return f32(f32(base) * f32(f32(a) ** (d / (d - 2))))
        return base

    @property
    def n_ctx_train(self) -> int | None:
        return self.rope.context_length

    @property
    def rope_dims(self) -> int:
        return self.rope.dimension_count or self.head_dim_k

    def kv_memory(self, n_ctx: int, type_k: str = "f16", type_v: str | None = None, **kw) -> KvPlan | KvUnknown:
        """llama.cpp's caches at n_ctx (n_seq, n_ubatch, swa_full, unified, flash_attn in kw)."""
        shape = self.kv or KvShape.from_metadata({}, self.arch)
        return kv_plan(shape, n_ctx, type_k=type_k, type_v=type_v, **kw)

    def kv_cache_bytes(self, n_ctx: int, type_k: str = "f16", type_v: str | None = None, **kw) -> int:
        """KV cache (and recurrent state) bytes llama.cpp allocates at n_ctx, per architecture family
        (ggufrope/kv_model.py). Where the family's rule is not known this is the llama-shaped figure
        (every layer, n_ctx cells of K and V) and `kv_known` is False: callers say so."""
        p = self.kv_memory(n_ctx, type_k, type_v, **kw)
        if p.total is not None:
            return p.total
        shape = self.kv or KvShape.from_metadata({}, self.arch)
        return shape.naive_bytes_per_cell(type_k, type_v) * p.n_ctx

    @property
    def kv_known(self) -> bool:
        return bool(self.kv and self.kv.known)
