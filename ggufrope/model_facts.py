"""What ggufrope knows about a model file, from ONE read of its header (and the tensor sizes of
its other splits): shape, trained context, RoPE settings, tensors, chat template, name.

Every command that needs a model's facts calls `read_model_facts` once and passes the value
down: presets (run/serve/chat/export/check), plan, eval, tune. Values are decoded through the
codec (ggufrope.gguf); the undo record `ggufrope patch` keeps inside the file (edit/history.py)
is decoded by the same codec.

The trained context, one rule: rope.scaling.original_context_length when the file has it, else
context_length as it was before ggufrope first changed it (the undo record), else context_length.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ggufrope.errors import GgufropeError
from ggufrope.settings.keys import BY_FIELD
from ggufrope.settings.model_info import ModelInfo
from ggufrope.settings.rope_settings import RopeSettings

# metadata arrays up to this many items are kept (per-layer head counts); tokenizer arrays are not
_MAX_ARRAY = 4096

if TYPE_CHECKING:
    from ggufrope.gguf import GGUFHeader


@dataclass(frozen=True)
class SplitPart:
    """One file of a split model, from its header's tensor table."""
    path: str
    tensors: int
    tensor_bytes: int
    file_size: int


@dataclass(frozen=True)
class ModelFacts:
    path: str
    arch: str                        # "" when the file has no general.architecture
    name: str | None
    info: ModelInfo                  # shape: layers, heads, KV heads, head dims, n_embd; .rope = the file's keys
    n_vocab: int
    n_ff: int
    weights_bytes: int               # tensor data of every split
    split_parts: tuple[SplitPart, ...]  # every part of a split model, first first; () for one file
    has_chat_template: bool
    rope_tensors: tuple[str, ...]    # rope_freqs / rope_factors_*: scaling baked in at conversion
    trained_ctx: int                 # 0 when the file gives no usable context
    trained_ctx_source: str
    freq_base: float                 # the trained freq_base
    freq_base_source: str
    undo: dict[str, Any] = field(default_factory=dict, compare=False)  # original values from the undo record

    @property
    def current(self) -> RopeSettings:
        """The RoPE keys as the file holds them now."""
        return self.info.rope

    @property
    def context_length(self) -> int | None:
        c = self.info.rope.context_length
        return c if isinstance(c, int) and not isinstance(c, bool) and c > 0 else None

    @property
    def kv(self):
        """llama.cpp's KV/state layout for this file (ggufrope/kv_model.KvShape), from the same read."""
        return self.info.kv

    @property
    def n_dims(self) -> int:
        """RoPE dims: rope.dimension_count, else the head dim."""
        return self.info.rope_dims

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(p.path for p in self.split_parts)

    @property
    def split(self) -> bool:
        return len(self.split_parts) > 1

    @property
    def file_scaled(self) -> bool:
        """The file already asks llama.cpp to scale (a factor != 1 with a type other than none)."""
        return self.current.effective_type != "none" and self.current.factor != 1.0


def _pos_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _undo_values(h, arch: str) -> dict[str, Any]:
    """The original values of context_length and freq_base from ggufrope's undo record (a damaged
    record gives none: `inspect` reports it, a plan does without)."""
    from ggufrope.edit import history
    from ggufrope.gguf.reader import parse_entry
    try:
        record = history.load(h)
    except GgufropeError:
        return {}
    out: dict[str, Any] = {}
    for f in ("context_length", "freq_base"):
        raw = record.get(BY_FIELD[f].key(arch))
        if raw:
            try:
                out[f] = parse_entry(raw, h.byteorder)[1]
            except GgufropeError:
                pass
    return out


def trained_context(rope: RopeSettings, undo: dict[str, Any]) -> tuple[int, str]:
    """(trained context, where it came from): the module doc's one rule."""
    orig = _pos_int(rope.original_context_length)
    if orig:
        return orig, "rope.scaling.original_context_length"
    ctx = _pos_int(rope.context_length)
    was = _pos_int(undo.get("context_length"))
    if was and was != ctx:
        return was, "context_length before ggufrope changed it (undo record)"
    return (ctx, "context_length") if ctx else (0, "none: the file has no usable context_length")


def trained_freq_base(rope: RopeSettings, undo: dict[str, Any]) -> tuple[float, str]:
    now = rope.freq_base
    was = undo.get("freq_base")
    if isinstance(was, float) and math.isfinite(was) and was > 0 and was != now:
        return float(was), "rope.freq_base before ggufrope changed it (undo record)"
    if isinstance(now, (int, float)) and not isinstance(now, bool) and math.isfinite(now) and now > 0:
        return float(now), "rope.freq_base"
    return 10000.0, "llama.cpp's default (no rope.freq_base key)"


def _shape(h, arch: str) -> tuple[int, int]:
    """(n_vocab, n_ff) for the compute-buffer estimate (presets/memory.py)."""
    toks = h.fields.get("tokenizer.ggml.tokens")
    n_vocab = int(getattr(toks, "count", 0) or 0) if toks is not None else 0
    if not n_vocab:
        v = h.get(f"{arch}.vocab_size")
        n_vocab = v if _pos_int(v) else 32000
    ff = h.get(f"{arch}.feed_forward_length")
    n_ff = max(ff) if isinstance(ff, list) and ff else ff
    return n_vocab, n_ff if _pos_int(n_ff) else 0


def read_model_facts(path: str) -> ModelFacts:
    """The facts of the model at path: one read of its header, then the tensor tables of its
    other splits (their sizes only). A file read before in the same version comes from the facts
    cache (ggufrope/facts_cache.py) without opening it."""
    from ggufrope.gguf.splits import is_split
    if is_split(path):
        return _read_model_facts(path)
    from ggufrope import facts_cache
    return facts_cache.cached(path, _read_model_facts)


def _read_model_facts(path: str) -> ModelFacts:
    with open_model(path) as (facts, _):
        return facts


@contextmanager
def open_model(path: str) -> Iterator[tuple[ModelFacts, GGUFHeader]]:
    """The model's facts with its header still open, for a command that also shows raw fields
    (`inspect`): the same single read as read_model_facts."""
    from ggufrope.gguf import ValueType, reader
    from ggufrope.gguf.splits import is_split, split_paths
    with reader.read_header(path) as h:
        arch = h.get("general.architecture")
        arch = arch if isinstance(arch, str) else ""
        meta: dict[str, Any] = {}
        for k, f in h.fields.items():
            if k in ("general.architecture", "general.name", "general.file_type") or \
                    (arch and k.startswith(arch + ".") and (f.vtype != ValueType.ARRAY or f.count <= _MAX_ARRAY)):
                meta[k] = h.value(f)
        info = ModelInfo.from_metadata(meta)
        undo = _undo_values(h, arch) if arch else {}
        n_vocab, n_ff = _shape(h, arch)
        rope_tensors = tuple(sorted({t.name.split(".")[0] for t in h.tensors if t.name.startswith("rope_")}))
        here = SplitPart(path, len(h.tensors), sum(t.nbytes for t in h.tensors), h.file_size)
        parts = tuple(here if s == path else _split_part(s) for s in split_paths(path)) if is_split(path) else ()
        trained, src = trained_context(info.rope, undo)
        base, base_src = trained_freq_base(info.rope, undo)
        if info.loaded_freq_base(base) != base:
            base, base_src = info.loaded_freq_base(base), f"{base_src} x alpha^(d/(d-2)) (rope.scaling.alpha, as llama.cpp loads it)"
        yield ModelFacts(path=path, arch=arch, name=info.name, info=info, n_vocab=n_vocab, n_ff=n_ff,
                         weights_bytes=sum(p.tensor_bytes for p in parts) if parts else here.tensor_bytes,
                         split_parts=parts, has_chat_template="tokenizer.chat_template" in h.fields,
                         rope_tensors=rope_tensors, trained_ctx=trained, trained_ctx_source=src,
                         freq_base=base, freq_base_source=base_src, undo=undo), h


def _split_part(path: str) -> SplitPart:
    from ggufrope.gguf import reader
    with reader.read_header(path) as h:
        return SplitPart(path, len(h.tensors), sum(t.nbytes for t in h.tensors), h.file_size)
