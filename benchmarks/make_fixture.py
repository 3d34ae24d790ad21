"""Generate the benchmark fixture: a Llama-3.2-1B-shaped Q8_0 GGUF (~1.3 GB) carrying the
real Llama-3 tokenizer (128,256 tokens, 280,147 merges) in its header.

The header is written by gguf-py's GGUFWriter (the tool that writes most GGUF files in the
wild, so the header has the same layout and no spare room). Tensor data is random bytes
streamed in 64 MiB chunks -- not sparse, not zeros, so neither `cp` nor the file system can
shortcut the copy.

    .venv/bin/python benchmarks/make_fixture.py [--out PATH] [--force]

The fixture is cached: it is regenerated only if missing (or with --force).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "out", "llama-3.2-1b-shaped.Q8_0.gguf")
VOCAB = os.path.expanduser(
    "~/.cache/ggufrope/src/llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf")

# Llama-3.2-1B
N_LAYER, N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_VOCAB = 16, 2048, 32, 8, 8192, 128256
HEAD_DIM = N_EMBD // N_HEAD
CHUNK = 64 * 1024 * 1024


def tensor_plan() -> list[tuple[str, tuple[int, ...], GGMLQuantizationType]]:
    """(name, ggml shape ne[0] first, type) in llama.cpp's usual order; embeddings tied."""
    q8, f32 = GGMLQuantizationType.Q8_0, GGMLQuantizationType.F32
    kv = N_HEAD_KV * HEAD_DIM
    ts = [("token_embd.weight", (N_EMBD, N_VOCAB), q8),
          ("rope_freqs.weight", (HEAD_DIM // 2,), f32)]
    for i in range(N_LAYER):
        p = f"blk.{i}."
        ts += [(p + "attn_norm.weight", (N_EMBD,), f32),
               (p + "attn_q.weight", (N_EMBD, N_EMBD), q8),
               (p + "attn_k.weight", (N_EMBD, kv), q8),
               (p + "attn_v.weight", (N_EMBD, kv), q8),
               (p + "attn_output.weight", (N_EMBD, N_EMBD), q8),
               (p + "ffn_norm.weight", (N_EMBD,), f32),
               (p + "ffn_gate.weight", (N_EMBD, N_FF), q8),
               (p + "ffn_up.weight", (N_EMBD, N_FF), q8),
               (p + "ffn_down.weight", (N_FF, N_EMBD), q8)]
    ts.append(("output_norm.weight", (N_EMBD,), f32))
    return ts


def nbytes(shape: tuple[int, ...], qtype: GGMLQuantizationType) -> int:
    blck, size = GGML_QUANT_SIZES[qtype]
    n = 1
    for d in shape:
        n *= d
    return n // blck * size


def copy_tokenizer(w: GGUFWriter, vocab_path: str) -> int:
    """Copy every tokenizer.* key of the vocab-only file; returns the number of tokens."""
    r = GGUFReader(vocab_path)
    n_tokens = 0
    for key, f in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = f.types[0]
        if vtype == GGUFValueType.ARRAY:
            sub = f.types[-1]
            val = f.contents()
            w.add_key_value(key, val, vtype, sub_type=sub)
            if key == "tokenizer.ggml.tokens":
                n_tokens = len(val)
        else:
            w.add_key_value(key, f.contents(), vtype)
    return n_tokens


def make_fixture(out: str, vocab_path: str = VOCAB, seed: int = 0, log=print) -> str:
    t0 = time.monotonic()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".partial"
    logging.getLogger("gguf").setLevel(logging.WARNING)
    w = GGUFWriter(tmp, "llama")
    w.add_name("Llama 3.2 1B Instruct (benchmark fixture, random weights)")
    w.add_type("model")
    w.add_file_type(7)  # MOSTLY_Q8_0
    w.add_quantization_version(2)
    w.add_block_count(N_LAYER)
    w.add_context_length(131072)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_vocab_size(N_VOCAB)
    w.add_rope_dimension_count(HEAD_DIM)
    n_tok = copy_tokenizer(w, vocab_path)
    if n_tok != N_VOCAB:
        raise SystemExit(f"{vocab_path}: {n_tok} tokens, expected {N_VOCAB}")

    plan = tensor_plan()
    for name, shape, qt in plan:
        # gguf-py shapes are numpy order (outermost first); raw_dtype marks the bytes as qt
        w.add_tensor_info(name, tuple(reversed(shape)), np.dtype(np.float32), nbytes(shape, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    # stream the tensor data the way GGUFWriter.write_tensor_data lays it out
    rng = np.random.default_rng(seed)
    fout = w.fout[0]
    total = sum(nbytes(s, q) for _, s, q in plan)
    done = 0
    for name, shape, qt in plan:
        w.write_padding(fout, fout.tell())
        n = nbytes(shape, qt)
        left = n
        while left:
            k = min(CHUNK, left)
            fout.write(rng.bytes(k))
            left -= k
        done += n
        w.write_padding(fout, n)
        log(f"\rwriting tensor data {done / total * 100:5.1f}%", end="")
    log("")
    fout.flush()
    os.fsync(fout.fileno())
    w.close()
    os.replace(tmp, out)
    log(f"wrote {out} ({os.path.getsize(out) / 1e9:.2f} GB) in {time.monotonic() - t0:.1f} s")
    return out


def ensure_fixture(out: str = DEFAULT_OUT, force: bool = False, log=print) -> str:
    if os.path.exists(out) and not force:
        return out
    return make_fixture(out, log=log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--force", action="store_true", help="regenerate even if it exists")
    a = ap.parse_args()
    path = ensure_fixture(a.out, a.force, log=lambda *s, **k: print(*s, **k, file=sys.stderr, flush=True))
    print(path)


if __name__ == "__main__":
    main()
