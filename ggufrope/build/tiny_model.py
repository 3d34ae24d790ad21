"""A tiny random-weight llama model that llama.cpp loads and runs, written with gguf-py.
Used by the post-build smoke test (with quantized weights, which is where a miscompiled CPU
backend crashes) and by the tests."""
from __future__ import annotations

import numpy as np

from ggufrope.build.tiny_families import BUILDERS, Shape, gemma3n_globals


def write_tiny_llama(path: str, *, n_ctx: int = 256, head_dim: int = 32, n_head: int = 2,
                     n_head_kv: int = 1, n_layer: int = 2, n_vocab: int = 285, n_ff: int = 64,
                     freq_base: float = 10000.0, extra: dict | None = None, seed: int = 0,
                     endianess=None, arch: str = "llama", tensor_dtype=np.float32,
                     quant: str | None = None) -> str:
    """A tiny random-weight llama model that llama.cpp loads and runs (written with gguf-py)."""
    import gguf
    rng = np.random.default_rng(seed)
    n_embd = head_dim * n_head
    kw = {} if endianess is None else {"endianess": endianess}
    w = gguf.GGUFWriter(path, arch, **kw)
    w.add_name("tiny-test")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(freq_base)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)
    _add_vocab(w, n_vocab)
    for k, v in (extra or {}).items():
        w.add_key_value(k, v[1], v[0]) if isinstance(v, tuple) else w.add_string(k, v)

    def t(name, *shape):
        data = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        if quant is not None and len(shape) == 2:
            qtype = getattr(gguf.GGMLQuantizationType, quant.upper())
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, data.astype(tensor_dtype))

    for name, shape in _tensor_shapes(n_vocab, n_embd, n_layer, head_dim * n_head_kv, n_ff):
        t(name, *shape)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _add_vocab(w, n_vocab: int) -> None:
    """A SentencePiece vocabulary: <unk> <s> </s>, a byte token for every byte (SPM needs them:
    llama_vocab::byte_to_token) and the 26 letters."""
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + \
           ["\u2581" + chr(ord("a") + i) for i in range(26)]
    assert n_vocab == len(toks), f"n_vocab must be {len(toks)}"
    w.add_token_list(toks)
    w.add_token_scores([0.0] * len(toks))
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * 26)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)


def _tensor_shapes(n_vocab: int, n_embd: int, n_layer: int, n_embd_kv: int, n_ff: int):
    """(name, shape) of every tensor of a llama graph, in file order."""
    yield "token_embd.weight", (n_vocab, n_embd)
    yield "output_norm.weight", (n_embd,)
    yield "output.weight", (n_vocab, n_embd)
    for i in range(n_layer):
        yield f"blk.{i}.attn_norm.weight", (n_embd,)
        yield f"blk.{i}.attn_q.weight", (n_embd, n_embd)
        yield f"blk.{i}.attn_k.weight", (n_embd_kv, n_embd)
        yield f"blk.{i}.attn_v.weight", (n_embd_kv, n_embd)
        yield f"blk.{i}.attn_output.weight", (n_embd, n_embd)
        yield f"blk.{i}.ffn_norm.weight", (n_embd,)
        yield f"blk.{i}.ffn_gate.weight", (n_ff, n_embd)
        yield f"blk.{i}.ffn_down.weight", (n_embd, n_ff)
        yield f"blk.{i}.ffn_up.weight", (n_ff, n_embd)


def _family(family: str, n_layer: int, n_head_kv: int, head_dim: int, swa: int | None, d: dict):
    """(arch, keys, layer tensors, tied output) of a family (tiny_families.FAMILIES)."""
    if family not in BUILDERS:
        raise ValueError(f"unknown tiny family {family!r}")
    return BUILDERS[family](Shape(family, n_layer, n_head_kv, head_dim, swa, d))


def write_tiny_family(path: str, family: str, *, n_layer: int = 6, n_head_kv: int = 1, head_dim: int = 32,
                      swa: int | None = 512, name: str | None = "tiny-test", seed: int = 0, **d) -> str:
    """A tiny random-weight model of one architecture family (tiny_families.FAMILIES) that llama.cpp loads."""
    import gguf
    rng = np.random.default_rng(seed)
    arch, keys, layer_tensors, tied, *model_tensors = _family(family, n_layer, n_head_kv, head_dim, swa, d)
    e = 2 * head_dim
    n_vocab = 285
    w = gguf.GGUFWriter(path, arch)
    if name is not None:
        w.add_name(name)
    for k, (vt, v) in keys.items():    # xielu.* are the only keys without the arch prefix (llama-arch.cpp)
        w.add_key_value(k if k.startswith("xielu.") else f"{arch}.{k}", v, vt)
    for k, v in d.get("extra", {}).items():
        w.add_key_value(k, v[1], v[0])
    w.add_file_type(0)
    _add_vocab(w, n_vocab)
    final_norm = "token_embd_norm.weight" if arch.startswith("lfm2") else "output_norm.weight"   # lfm2's name
    tensors = [("token_embd.weight", (n_vocab, e)), (final_norm, (e,))]
    if arch.startswith("rwkv"):    # rwkv's input norm (token_embd_norm) and biased output norm
        tensors += [("token_embd_norm.weight", (e,)), ("token_embd_norm.bias", (e,)), ("output_norm.bias", (e,))]
    if arch == "gemma3n":
        tensors += gemma3n_globals(e, n_layer, n_vocab)
    if not tied:
        tensors.append(("output.weight", (n_vocab, e)))
    tensors += model_tensors[0] if model_tensors else []     # a family's own model-level tensors
    per_layer = isinstance(layer_tensors[0], list)
    for i in range(len(layer_tensors) if per_layer else n_layer):   # per-layer lists may add MTP blocks
        lt = layer_tensors[i] if per_layer else layer_tensors
        tensors += [(f"blk.{i}.{n}", s) for n, s in lt]
    for n, s in tensors:
        w.add_tensor(n, (rng.standard_normal(s) * 0.02).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
