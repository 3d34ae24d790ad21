"""Model facts read from metadata that RoPE and memory planning need: shape and KV cache size."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ggufrope.settings.rope_settings import RopeSettings

# bytes per element of a KV cache type: ggml block size / bytes (ggml/src/ggml.c type_traits)
KV_CACHE_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18),
    "q4_1": (32, 20), "iq4_nl": (32, 18), "q5_0": (32, 22), "q5_1": (32, 24),
}


MAX_LAYERS = 4096  # llama.cpp's LLAMA_MAX_LAYERS is 512; anything far beyond is a broken file


def _int(v: Any) -> int:
    """An integer metadata value, or 0 when absent or not an integer (files can hold anything)."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def _per_layer(v: Any, n_layer: int) -> list[int]:
    if isinstance(v, list):
        vals = [_int(x) for x in v[:n_layer]]
        return vals + [0] * max(0, n_layer - len(vals))
    return [_int(v)] * n_layer


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
        return cls(
            arch=arch, name=meta.get("general.name") if isinstance(meta.get("general.name"), str) else None, n_layer=n_layer, n_embd=n_embd,
            n_head=n_head, n_head_kv=n_head_kv,
            head_dim_k=_int(meta.get(f"{arch}.attention.key_length")) or default_hd,
            head_dim_v=_int(meta.get(f"{arch}.attention.value_length")) or default_hd,
            file_type=meta.get("general.file_type") if isinstance(meta.get("general.file_type"), int) else None,
            rope=RopeSettings.from_metadata(meta, arch),
        )

    @property
    def n_ctx_train(self) -> int | None:
        return self.rope.context_length

    @property
    def rope_dims(self) -> int:
        return self.rope.dimension_count or self.head_dim_k

    def kv_cache_bytes(self, n_ctx: int, type_k: str = "f16", type_v: str | None = None) -> int:
        """KV cache bytes llama.cpp allocates for n_ctx cells: per layer, a K row of
        n_head_kv*head_dim_k and a V row of n_head_kv*head_dim_v elements per cell
        (src/llama-kv-cache.cpp: ggml_row_size(type, n_embd_k_gqa) * kv_size).
        Sliding-window layers and recurrent state are not modelled."""
        type_v = type_v or type_k
        bk, sk = KV_CACHE_TYPES[type_k]
        bv, sv = KV_CACHE_TYPES[type_v]
        total = 0
        for hkv in self.n_head_kv:
            total += (hkv * self.head_dim_k // bk) * sk + (hkv * self.head_dim_v // bv) * sv
        return total * n_ctx
