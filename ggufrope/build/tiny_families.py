"""The per-architecture builders of the tiny random-weight models (build/tiny_model.py
write_tiny_family): for each family the metadata keys and the tensors its llama.cpp loader wants
(src/models/<arch>.cpp load_arch_tensors), checked by tests/test_kv_model.py against llama.cpp."""
from __future__ import annotations


# Tiny models of other architecture families, for the memory model's tests against llama.cpp
# (ggufrope/kv_model.py). Each entry: (metadata keys beyond the common ones, per-layer tensors).
# Shapes are numpy order (ggml's ne reversed). n_embd 64, 2 heads of 32 unless a family says.
def _attn(e: int, q: int, k: int, v: int, o: int | None = None):
    return [("attn_norm.weight", (e,)), ("attn_q.weight", (q, e)), ("attn_k.weight", (k, e)),
            ("attn_v.weight", (v, e)), ("attn_output.weight", (e, o or q))]


def _ffn(e: int, f: int, norm: bool = True):
    return ([("ffn_norm.weight", (e,))] if norm else []) + \
        [("ffn_gate.weight", (f, e)), ("ffn_up.weight", (f, e)), ("ffn_down.weight", (e, f))]


class Shape:
    """The sizes every family's tensors and keys are written from."""

    def __init__(self, family: str, n_layer: int, n_head_kv: int, head_dim: int, swa: int | None, d: dict):
        import gguf
        self.family, self.n_layer, self.n_head_kv, self.head_dim, self.swa, self.d = \
            family, n_layer, n_head_kv, head_dim, swa, d
        self.ARRAY, self.U32, self.F32 = gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT32, gguf.GGUFValueType.FLOAT32
        self.e, self.hq, self.kv, self.f = 2 * head_dim, 2 * head_dim, n_head_kv * head_dim, 64
        U32 = self.U32
        self.base = {"context_length": (U32, d.get("n_ctx", 4096)), "embedding_length": (U32, self.e),
                     "block_count": (U32, n_layer), "feed_forward_length": (U32, self.f),
                     "attention.head_count": (U32, 2), "attention.head_count_kv": (U32, n_head_kv),
                     "attention.layer_norm_rms_epsilon": (self.F32, 1e-6)}


def _gemma(c: Shape):
    U32, e, kv = c.U32, c.e, c.kv
    keys = {**c.base, "attention.key_length": (U32, c.head_dim), "attention.value_length": (U32, c.head_dim),
            "attention.sliding_window": (U32, c.swa)}
    lt = _attn(e, c.hq, kv, kv) + [("post_attention_norm.weight", (e,))] + _ffn(e, c.f) + \
        [("post_ffw_norm.weight", (e,))]
    if c.family == "gemma3":
        lt += [("attn_q_norm.weight", (c.head_dim,)), ("attn_k_norm.weight", (c.head_dim,))]
    return c.family, keys, lt, True


def _cohere2(c: Shape):
    keys = {**c.base, "attention.sliding_window": (c.U32, c.swa), "logit_scale": (c.F32, 1.0),
            "attention.layer_norm_epsilon": (c.F32, 1e-5)}
    return "cohere2", keys, _attn(c.e, c.hq, c.kv, c.kv) + _ffn(c.e, c.f, norm=False), True


def _deepseek2(c: Shape):
    U32, e, head_dim = c.U32, c.e, c.head_dim
    rope, nope, vdim, rank, qrank = 32, head_dim - 32, c.d.get("v_dim", 32), 64, 32
    keys = {**c.base, "attention.q_lora_rank": (U32, qrank), "attention.kv_lora_rank": (U32, rank),
            "rope.dimension_count": (U32, rope), "leading_dense_block_count": (U32, c.n_layer),
            "expert_feed_forward_length": (U32, 32), "expert_shared_count": (U32, 0)}
    lt = [("attn_norm.weight", (e,)), ("attn_q_a_norm.weight", (qrank,)), ("attn_kv_a_norm.weight", (rank,)),
          ("attn_q_a.weight", (qrank, e)), ("attn_q_b.weight", (2 * head_dim, qrank)),
          ("attn_kv_a_mqa.weight", (rank + rope, e)), ("attn_output.weight", (e, 2 * vdim))] + _ffn(e, c.f)
    if c.family != "deepseek2-kv":     # deepseek2-mla; mistral4 is deepseek2's loader (models.h l.1399)
        # as convert_hf_to_gguf writes MLA: one K "head" of kv_lora_rank + rope, V = the latent
        keys.update({"attention.head_count_kv": (U32, 1), "attention.key_length": (U32, rank + rope),
                     "attention.value_length": (U32, rank), "attention.key_length_mla": (U32, head_dim),
                     "attention.value_length_mla": (U32, vdim)})
        lt += [("attn_k_b.weight", (2, rank, nope)), ("attn_v_b.weight", (2, vdim, rank))]
    else:
        keys.update({"attention.head_count_kv": (U32, 2), "attention.key_length": (U32, head_dim),
                     "attention.value_length": (U32, vdim)})
        lt += [("attn_kv_b.weight", (2 * (nope + vdim), rank))]
    if c.family == "deepseek32":
        return _dsa(c, keys, lt, qrank)
    return {"mistral4": "mistral4"}.get(c.family, "deepseek2"), keys, lt, False


def _dsa(c: Shape, keys: dict, lt: list, qrank: int):
    """deepseek32 (src/models/deepseek32.cpp load_arch_tensors): deepseek2's MLA layers plus a lightning
    indexer per layer (indexer.*: K norm with bias, head weights, K and Q projections); the indexer keys
    and expert_gating_func are required"""
    U32, e, n_idx, idx = c.U32, c.e, 2, c.d.get("indexer_dim", 64)
    keys = {**keys, "attention.indexer.head_count": (U32, n_idx), "attention.indexer.key_length": (U32, idx),
            "attention.indexer.top_k": (U32, 8), "expert_gating_func": (U32, 2)}
    lt = lt + [("indexer.k_norm.weight", (idx,)), ("indexer.k_norm.bias", (idx,)), ("indexer.proj.weight", (n_idx, e)),
               ("indexer.attn_k.weight", (idx, e)), ("indexer.attn_q_b.weight", (n_idx * idx, qrank))]
    return "deepseek32", keys, lt, False


def _gpt_oss(c: Shape):
    U32, e = c.U32, c.e
    n_exp, f_exp = 4, 32
    keys = {**c.base, "attention.sliding_window": (U32, c.swa), "rope.dimension_count": (U32, c.head_dim),
            "expert_count": (U32, n_exp), "expert_used_count": (U32, 2),
            "expert_feed_forward_length": (U32, f_exp)}
    lt = _attn(e, c.hq, c.kv, c.kv) + [
        ("attn_output.bias", (e,)), ("post_attention_norm.weight", (e,)), ("attn_sinks.weight", (2,)),
        ("ffn_gate_inp.weight", (n_exp, e)), ("ffn_gate_inp.bias", (n_exp,)),
        ("ffn_gate_exps.weight", (n_exp, f_exp, e)), ("ffn_down_exps.weight", (n_exp, e, f_exp)),
        ("ffn_up_exps.weight", (n_exp, f_exp, e)), ("ffn_gate_exps.bias", (n_exp, f_exp)),
        ("ffn_down_exps.bias", (n_exp, e)), ("ffn_up_exps.bias", (n_exp, f_exp))]
    return "gpt-oss", keys, lt, False


def _ssm_keys(c: Shape) -> tuple[dict, int, int, int, int]:
    d_inner, d_state, d_conv, dt_rank = 2 * c.e, 16, 4, 8
    return ({"ssm.conv_kernel": (c.U32, d_conv), "ssm.inner_size": (c.U32, d_inner),
             "ssm.state_size": (c.U32, d_state), "ssm.time_step_rank": (c.U32, dt_rank)},
            d_inner, d_state, d_conv, dt_rank)


def _jamba(c: Shape):
    # attention on the layers whose head_count_kv is not 0, Mamba on the others (src/models/jamba.cpp)
    e = c.e
    ssm_keys, d_inner, d_state, d_conv, dt_rank = _ssm_keys(c)
    kv_arr = [c.n_head_kv if il % 3 == 2 else 0 for il in range(c.n_layer)]
    keys = {**c.base, "attention.head_count_kv": (c.ARRAY, kv_arr), **ssm_keys}
    ssm = [("ssm_in.weight", (2 * d_inner, e)), ("ssm_conv1d.weight", (d_inner, d_conv)),
           ("ssm_conv1d.bias", (d_inner,)), ("ssm_x.weight", (dt_rank + 2 * d_state, d_inner)),
           ("ssm_dt_norm.weight", (dt_rank,)), ("ssm_dt.weight", (d_inner, dt_rank)), ("ssm_dt.bias", (d_inner,)),
           ("ssm_b_norm.weight", (d_state,)), ("ssm_c_norm.weight", (d_state,)), ("ssm_a", (d_inner, d_state)),
           ("ssm_d", (d_inner,)), ("ssm_out.weight", (e, d_inner))]
    per_layer = [[("attn_norm.weight", (e,))] + (_attn(e, e, c.kv, c.kv)[1:] if kv_arr[il] else ssm) + _ffn(e, c.f)
                 for il in range(c.n_layer)]
    return "jamba", keys, per_layer, True


def _mamba(c: Shape):
    e = c.e
    ssm_keys, d_inner, d_state, d_conv, dt_rank = _ssm_keys(c)
    keys = {k: v for k, v in c.base.items() if not k.startswith("attention.head")}
    keys.update({"feed_forward_length": (c.U32, 0), "attention.head_count": (c.U32, 0), **ssm_keys})
    lt = [("attn_norm.weight", (e,)), ("ssm_in.weight", (2 * d_inner, e)),
          ("ssm_conv1d.weight", (d_inner, d_conv)), ("ssm_conv1d.bias", (d_inner,)),
          ("ssm_x.weight", (dt_rank + 2 * d_state, d_inner)), ("ssm_dt.weight", (d_inner, dt_rank)),
          ("ssm_dt.bias", (d_inner,)), ("ssm_a", (d_inner, d_state)), ("ssm_d", (d_inner,)),
          ("ssm_out.weight", (e, d_inner))]
    return "mamba", keys, lt, True


def _moe(e: int, n_exp: int, f_exp: int, f_sh: int | None = None):
    """Routed experts (gate/up/down exps) and, with f_sh, a gated shared expert (qwen2moe style)."""
    lt = [("ffn_gate_inp.weight", (n_exp, e)), ("ffn_gate_exps.weight", (n_exp, f_exp, e)),
          ("ffn_up_exps.weight", (n_exp, f_exp, e)), ("ffn_down_exps.weight", (n_exp, e, f_exp))]
    if f_sh:
        lt += [("ffn_gate_inp_shexp.weight", (e,)), ("ffn_gate_shexp.weight", (f_sh, e)),
               ("ffn_up_shexp.weight", (f_sh, e)), ("ffn_down_shexp.weight", (e, f_sh))]
    return lt


def _qwen3next(c: Shape):
    # src/models/qwen3next.cpp load_arch_tensors: every `full_attention_interval`-th layer is gated
    # attention (Q and its gate in one attn_q), the others a gated delta net; MoE with a shared expert.
    # qwen35 (src/models/qwen35.cpp): the same layers with beta/alpha apart, a dense FFN, M-RoPE sections;
    # qwen35moe (qwen35moe.cpp): qwen35's layers with qwen3next's experts
    U32, e, hd = c.U32, c.e, c.head_dim
    d_state, n_group, dt_rank, d_conv = 64, 2, 4, 4        # head_k_dim, k heads, v heads: 0.4 MiB of state
    d_inner = d_state * dt_rank                             # value_dim
    conv_dim = 2 * d_state * n_group + d_inner
    keys = {**c.base, "rope.dimension_count": (U32, hd), "ssm.conv_kernel": (U32, d_conv),
            "ssm.inner_size": (U32, d_inner), "ssm.state_size": (U32, d_state), "ssm.time_step_rank": (U32, dt_rank),
            "ssm.group_count": (U32, n_group)}
    recr = c.d.get("recurrent_layers")          # a per-layer bool array, else full_attention_interval
    if recr is not None:
        keys["attention.recurrent_layers"] = (c.ARRAY, [bool(x) for x in recr])
    else:
        interval = c.d.get("interval", 4)
        keys["full_attention_interval"] = (U32, interval)
        recr = [(il + 1) % interval != 0 for il in range(c.n_layer)]
    attn = [("attn_q.weight", (2 * c.hq, e)), ("attn_k.weight", (c.kv, e)), ("attn_v.weight", (c.kv, e)),
            ("attn_output.weight", (e, c.hq)), ("attn_q_norm.weight", (hd,)), ("attn_k_norm.weight", (hd,))]
    gdn = [("attn_qkv.weight", (conv_dim, e)), ("attn_gate.weight", (d_inner, e)),
           ("ssm_conv1d.weight", (conv_dim, d_conv)), ("ssm_dt.bias", (dt_rank,)), ("ssm_a", (dt_rank,)),
           ("ssm_norm.weight", (d_state,)), ("ssm_out.weight", (e, d_inner))]
    if c.family == "qwen3next":
        gdn += [("ssm_ba.weight", (2 * dt_rank, e))]
    else:
        keys["rope.dimension_sections"] = (c.ARRAY, [hd // 4 - 2, hd // 8 + 1, hd // 8 + 1, 0])   # sum = n_rot/2
        gdn += [("ssm_beta.weight", (dt_rank, e)), ("ssm_alpha.weight", (dt_rank, e))]
    ffn = _ffn(e, c.f, norm=False)
    if c.family != "qwen35":
        keys.update({"expert_count": (U32, 4), "expert_used_count": (U32, 2), "expert_feed_forward_length": (U32, 32),
                     "expert_shared_feed_forward_length": (U32, 32)})
        ffn = _moe(e, 4, 32, 32)
    per_layer = [[("attn_norm.weight", (e,)), ("post_attention_norm.weight", (e,))]
                 + (gdn if recr[il] else attn) + ffn for il in range(c.n_layer)]
    return c.family, keys, per_layer, True


def _llama4(c: Shape):
    # src/models/llama4.cpp load_arch_tensors: every interleave_moe_layer_step-th layer is MoE with a
    # shared expert of the experts' width, the others a dense FFN
    U32, e, step, f_exp = c.U32, c.e, 2, 32
    keys = {**c.base, "rope.dimension_count": (U32, c.head_dim), "expert_count": (U32, 4),
            "expert_used_count": (U32, 1), "expert_feed_forward_length": (U32, f_exp),
            "interleave_moe_layer_step": (U32, step)}
    if c.swa is not None:
        keys["attention.sliding_window"] = (U32, c.swa)
    moe = _moe(e, 4, f_exp) + [("ffn_gate_shexp.weight", (f_exp, e)), ("ffn_up_shexp.weight", (f_exp, e)),
                               ("ffn_down_shexp.weight", (e, f_exp))]
    per_layer = [_attn(e, c.hq, c.kv, c.kv) + [("ffn_norm.weight", (e,))]
                 + (moe if (il + 1) % step == 0 else _ffn(e, c.f, norm=False)) for il in range(c.n_layer)]
    return "llama4", keys, per_layer, False


def _mamba2(c: Shape) -> tuple[dict, list]:
    """The Mamba2 mixer keys and tensors of granitehybrid/nemotron_h/falcon-h1 (their load_arch_tensors:
    ssm_in over 2 d_inner + 2 n_group d_state + n_head, conv over d_inner + 2 n_group d_state)."""
    U32, e = c.U32, c.e
    d_inner, d_state, n_group, n_head, d_conv = 2 * e, 64, 2, 4, 4     # granitehybrid asserts d_inner = 2 n_embd
    conv = d_inner + 2 * n_group * d_state
    keys = {"ssm.conv_kernel": (U32, d_conv), "ssm.inner_size": (U32, d_inner), "ssm.state_size": (U32, d_state),
            "ssm.time_step_rank": (U32, n_head), "ssm.group_count": (U32, n_group)}
    return keys, [("ssm_in.weight", (d_inner + conv + n_head, e)), ("ssm_conv1d.weight", (conv, d_conv)),
                  ("ssm_conv1d.bias", (conv,)), ("ssm_dt.bias", (n_head,)), ("ssm_a", (n_head, 1)),
                  ("ssm_d", (n_head, 1)), ("ssm_norm.weight", (n_group, d_inner // n_group)),
                  ("ssm_out.weight", (e, d_inner))]


def _granitehybrid(c: Shape):
    # src/models/granite-hybrid.cpp: a layer with head_count_kv 0 is Mamba2, the others attention; dense FFN
    e = c.e
    ssm_keys, mixer = _mamba2(c)
    kv_arr = [c.n_head_kv if il % 3 == 1 else 0 for il in range(c.n_layer)]
    keys = {**c.base, "attention.head_count_kv": (c.ARRAY, kv_arr), "rope.dimension_count": (c.U32, c.head_dim),
            **ssm_keys}
    per_layer = [[("attn_norm.weight", (e,))] + (_attn(e, c.hq, c.kv, c.kv)[1:] if kv_arr[il] else mixer)
                 + _ffn(e, c.f) for il in range(c.n_layer)]
    return "granitehybrid", keys, per_layer, True


def _nemotron_h(c: Shape):
    # src/models/nemotron-h.cpp: Mamba2 (head_count_kv 0, feed_forward_length 0), attention
    # (head_count_kv > 0, no FFN) and MLP (feed_forward_length > 0: up/down, no gate) layers;
    # layers; nemotron_h_moe (same loader) has MoE layers "E" (routed up/down experts + a shared one)
    U32, e, n_exp, f_exp = c.U32, c.e, 4, 32
    ssm_keys, mixer = _mamba2(c)
    kinds = c.d.get("pattern", "M-M*-M")[:c.n_layer]
    kv_arr = [c.n_head_kv if k == "*" else 0 for k in kinds]
    ff_arr = [c.f if k in "-E" else 0 for k in kinds]
    keys = {**c.base, "attention.head_count_kv": (c.ARRAY, kv_arr), "feed_forward_length": (c.ARRAY, ff_arr),
            "attention.key_length": (U32, c.head_dim), "attention.value_length": (U32, c.head_dim),
            "attention.layer_norm_epsilon": (c.F32, 1e-5), **ssm_keys}
    if c.family == "nemotron_h_moe":
        keys.update({"expert_count": (U32, n_exp), "expert_used_count": (U32, 2),
                     "expert_feed_forward_length": (U32, f_exp), "expert_shared_feed_forward_length": (U32, f_exp)})
    layer = {"M": mixer, "*": _attn(e, c.hq, c.kv, c.kv)[1:],
             "-": [("ffn_up.weight", (c.f, e)), ("ffn_down.weight", (e, c.f))],
             "E": [("ffn_gate_inp.weight", (n_exp, e)), ("exp_probs_b.bias", (n_exp,)),
                   ("ffn_up_exps.weight", (n_exp, f_exp, e)), ("ffn_down_exps.weight", (n_exp, e, f_exp)),
                   ("ffn_up_shexp.weight", (f_exp, e)), ("ffn_down_shexp.weight", (e, f_exp))]}
    return c.family, keys, [[("attn_norm.weight", (e,))] + layer[k] for k in kinds], True


def _falcon_h1(c: Shape):
    # src/models/falcon-h1.cpp: every layer runs attention and a Mamba2 mixer side by side, then a
    # dense FFN (whose norm has no ".weight" suffix)
    e = c.e
    ssm_keys, mixer = _mamba2(c)
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim), **ssm_keys}
    lt = _attn(e, c.hq, c.kv, c.kv) + mixer + [("ffn_norm", (e,))] + _ffn(e, c.f, norm=False)
    return "falcon-h1", keys, lt, False


def _phi3(c: Shape):
    # src/models/phi3.cpp load_arch_tensors: fused gate+up in ffn_up (2 n_ff rows), no ffn_gate; the
    # file's sliding_window is read and then switched off (load_arch_hparams)
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim)}
    if c.swa is not None:
        keys["attention.sliding_window"] = (c.U32, c.swa)
    lt = _attn(c.e, c.hq, c.kv, c.kv) + [("ffn_norm.weight", (c.e,)), ("ffn_up.weight", (2 * c.f, c.e)),
                                         ("ffn_down.weight", (c.e, c.f))]
    return "phi3", keys, lt, False


def _exaone4(c: Shape):
    # src/models/exaone4.cpp load_arch_tensors: post-norms only (no attn_norm/ffn_norm), Q/K norms;
    # llama.cpp gives it SWA only at 64 layers (load_arch_hparams)
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim)}
    if c.swa is not None:
        keys["attention.sliding_window"] = (c.U32, c.swa)
    lt = _attn(e, c.hq, c.kv, c.kv)[1:] + [("post_attention_norm.weight", (e,)), ("attn_q_norm.weight", (c.head_dim,)),
                                           ("attn_k_norm.weight", (c.head_dim,))] \
        + _ffn(e, c.f, norm=False) + [("post_ffw_norm.weight", (e,))]
    return "exaone4", keys, lt, False


def _lfm2(c: Shape):
    # src/models/lfm2.cpp load_arch_tensors: a layer with head_count_kv 0 is a short convolution
    # (conv over shortconv.l_cache tokens), the others attention with Q/K norms; dense FFN on every
    # layer; the final norm is named token_embd_norm
    U32, e = c.U32, c.e
    l_cache = c.d.get("l_cache", 3)
    kv_arr = [c.n_head_kv if il % 3 == 2 else 0 for il in range(c.n_layer)]
    keys = {**c.base, "attention.head_count_kv": (c.ARRAY, kv_arr), "shortconv.l_cache": (U32, l_cache),
            "rope.dimension_count": (U32, c.head_dim)}
    if c.d.get("window"):
        keys["attention.sliding_window"] = (U32, c.d["window"])
    attn = _attn(e, c.hq, c.kv, c.kv)[1:] + [("attn_q_norm.weight", (c.head_dim,)),
                                            ("attn_k_norm.weight", (c.head_dim,))]
    conv = [("shortconv.conv.weight", (e, l_cache)), ("shortconv.in_proj.weight", (3 * e, e)),
            ("shortconv.out_proj.weight", (e, e))]
    n_dense = c.n_layer
    if c.family == "lfm2moe":      # lfm2moe.cpp: layers from leading_dense_block_count on are MoE
        n_dense, n_exp, f_exp = 2, 4, 32
        keys.update({"leading_dense_block_count": (U32, n_dense), "expert_count": (U32, n_exp),
                     "expert_used_count": (U32, 2), "expert_feed_forward_length": (U32, f_exp),
                     "expert_gating_func": (U32, 2)})
        moe = [("ffn_norm.weight", (e,))] + _moe(e, n_exp, f_exp) + [("exp_probs_b.bias", (n_exp,))]
    per_layer = [[("attn_norm.weight", (e,))] + (attn if kv_arr[il] else conv)
                 + (_ffn(e, c.f) if il < n_dense else moe) for il in range(c.n_layer)]
    return c.family, keys, per_layer, True


def _rwkv7(c: Shape):
    # src/models/rwkv7.cpp load_arch_tensors: no attention heads, a wkv state of wkv.head_size per
    # channel; the input norm token_embd_norm sits before block 0 (written by write_tiny_family)
    U32, e, ff = c.U32, c.e, c.f
    decay, iclr, vres, gate = 16, 16, 16, 32
    keys = _rwkv_keys(c)
    keys.update({"attention.decay_lora_rank": (U32, decay), "attention.iclr_lora_rank": (U32, iclr),
                 "attention.value_residual_mix_lora_rank": (U32, vres), "attention.gate_lora_rank": (U32, gate)})

    def lora(x: str, r: int):
        return [(f"time_mix_{x}0.weight", (e,)), (f"time_mix_{x}1.weight", (r, e)), (f"time_mix_{x}2.weight", (e, r))]
    per_layer = [_rwkv_norms(e) + lora("w", decay) + lora("a", iclr) + lora("v", iclr if il == 0 else vres)
                 + [("time_mix_g1.weight", (gate, e)), ("time_mix_g2.weight", (e, gate)),
                    ("time_mix_lerp_fused.weight", (6, 1, 1, e))]
                 + [(f"time_mix_{n}.weight", (e,)) for n in ("k_k", "k_a", "r_k")]
                 + [(f"time_mix_{n}.weight", (e, e)) for n in ("key", "value", "receptance", "output")]
                 + [("channel_mix_lerp_k.weight", (1, 1, e)), ("channel_mix_key.weight", (ff, e)),
                    ("channel_mix_value.weight", (e, ff))] for il in range(c.n_layer)]
    return "rwkv7", keys, per_layer, False


def _rwkv_keys(c: Shape) -> dict:
    """No attention heads; a wkv state of wkv.head_size per channel (rwkv6.cpp/rwkv7.cpp load_arch_hparams)."""
    keys = {k: v for k, v in c.base.items() if not k.startswith("attention.head")}
    keys.update({"attention.head_count": (c.U32, 0), "wkv.head_size": (c.U32, c.head_dim),
                 "attention.layer_norm_epsilon": (c.F32, 1e-5)})
    if "token_shift_count" in c.d:
        keys["token_shift_count"] = (c.U32, c.d["token_shift_count"])
    return keys


def _rwkv_norms(e: int):
    return [(f"{n}.{w}", (e,)) for n in ("attn_norm", "attn_norm_2", "time_mix_ln") for w in ("weight", "bias")]


def _rwkv6(c: Shape):
    # src/models/rwkv6.cpp load_arch_tensors: data-dependent token shift (w1/w2 over 5 mixes), decay LoRA
    U32, e, ff, hs = c.U32, c.e, c.f, c.head_dim
    mix, dec = 32, 64
    keys = {**_rwkv_keys(c), "time_mix_extra_dim": (U32, mix), "time_decay_extra_dim": (U32, dec)}
    lt = _rwkv_norms(e) + [
        ("time_mix_w1.weight", (5 * mix, e)), ("time_mix_w2.weight", (5, e, mix)),
        ("time_mix_lerp_x.weight", (1, 1, e)), ("time_mix_lerp_fused.weight", (5, 1, 1, e)),
        ("time_mix_first.weight", (e // hs, hs)), ("time_mix_decay.weight", (e,)),
        ("time_mix_decay_w1.weight", (dec, e)), ("time_mix_decay_w2.weight", (e, dec))] + \
        [(f"time_mix_{n}.weight", (e, e)) for n in ("key", "value", "receptance", "gate", "output")] + \
        [("channel_mix_lerp_k.weight", (1, 1, e)), ("channel_mix_lerp_r.weight", (1, 1, e)),
         ("channel_mix_key.weight", (ff, e)), ("channel_mix_value.weight", (e, ff)),
         ("channel_mix_receptance.weight", (e, e))]
    return "rwkv6", keys, lt, False


def _gemma3n(c: Shape):
    # src/models/gemma3n.cpp load_arch_tensors: gemma3's attention + AltUp (4 inputs) and LAuReL (rank 64)
    # per layer, per-layer token embeddings of 256 per layer (hparams defaults, llama-hparams.h l.264-267)
    e, hd, alt, pl, rank = c.e, c.head_dim, 4, 256, 64
    keys = {**c.base, "attention.key_length": (c.U32, hd), "attention.value_length": (c.U32, hd),
            "attention.sliding_window": (c.U32, c.swa)}
    lt = _attn(e, c.hq, c.kv, c.kv) + [("attn_q_norm.weight", (hd,)), ("attn_k_norm.weight", (hd,)),
                                       ("post_attention_norm.weight", (e,))] + _ffn(e, c.f) + [
        ("post_ffw_norm.weight", (e,)), ("inp_gate.weight", (pl, e)), ("proj.weight", (e, pl)),
        ("post_norm.weight", (e,)), ("altup_correct_coef.weight", (alt, alt)), ("altup_correct_scale.weight", (e,)),
        ("altup_predict_coef.weight", (alt * alt, alt)), ("altup_router.weight", (alt, e)),
        ("altup_router_norm.weight", (e,)), ("laurel_l.weight", (rank, e)), ("laurel_r.weight", (e, rank)),
        ("laurel_post_norm.weight", (e,))]
    return "gemma3n", keys, lt, True


def gemma3n_globals(e: int, n_layer: int, n_vocab: int):
    """gemma3n's model-level tensors beyond the embedding and the final norm."""
    return [("altup_proj.weight", (3, e, e)), ("altup_unembd_proj.weight", (3, e, e)),
            ("per_layer_token_embd.weight", (n_vocab, 256 * n_layer)),
            ("per_layer_model_proj.weight", (256 * n_layer, e)), ("per_layer_proj_norm.weight", (256,))]


def _qk_norm(n: int, m: int | None = None):
    return [("attn_q_norm.weight", (n,)), ("attn_k_norm.weight", (m or n,))]


def _qkv_bias(c: Shape):
    return [("attn_q.bias", (c.hq,)), ("attn_k.bias", (c.kv,)), ("attn_v.bias", (c.kv,))]


def _shexp(e: int, f: int):
    """An ungated shared expert (gate/up/down shexp)."""
    return [("ffn_gate_shexp.weight", (f, e)), ("ffn_up_shexp.weight", (f, e)), ("ffn_down_shexp.weight", (e, f))]


def _moe_keys(c: Shape, n_exp: int = 4, f_exp: int = 32, **more) -> dict:
    keys = {"expert_count": (c.U32, n_exp), "expert_used_count": (c.U32, 2), "expert_feed_forward_length": (c.U32, f_exp)}
    keys.update({k: (c.U32, v) for k, v in more.items()})
    return keys


def _nextn(e: int):
    """An MTP (nextn) block's own tensors, after its attention and FFN (glm4-moe.cpp, bailingmoe2.cpp)."""
    return [("nextn.eh_proj.weight", (e, 2 * e)), ("nextn.enorm.weight", (e,)), ("nextn.hnorm.weight", (e,)),
            ("nextn.shared_head_norm.weight", (e,))]


def _glm4(c: Shape):
    # src/models/glm4.cpp load_arch_tensors: Q/K/V biases, post-attention and post-FFN norms, gate+up fused
    # in ffn_up (2 n_ff rows); GLM rotates half of each head (rope.dimension_count)
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim // 2)}
    lt = _attn(e, c.hq, c.kv, c.kv) + _qkv_bias(c) + [
        ("post_attention_norm.weight", (e,)), ("ffn_norm.weight", (e,)), ("ffn_up.weight", (2 * c.f, e)),
        ("ffn_down.weight", (e, c.f)), ("post_ffw_norm.weight", (e,))]
    return "glm4", keys, lt, False


def _dense_then_experts_with_mtp(c: Shape):
    """What glm4moe and bailingmoe2 share: a dense first layer, then sigmoid-routed experts
    (exp_probs_b) with a shared one, rotating half of each head, and nextn_predict_layers MTP blocks
    after the trunk (block_count counts them). (layers in all, keys, an expert layer's FFN tensors)"""
    nextn = c.d.get("nextn", 1)
    n_all = c.n_layer + nextn
    keys = {**c.base, "block_count": (c.U32, n_all), "nextn_predict_layers": (c.U32, nextn),
            "rope.dimension_count": (c.U32, c.head_dim // 2),
            **_moe_keys(c, expert_shared_count=1, leading_dense_block_count=1, expert_gating_func=2)}
    return n_all, keys, _moe(c.e, 4, 32) + [("exp_probs_b.bias", (4,))] + _shexp(c.e, 32)


def _glm4moe(c: Shape):
    # src/models/glm4-moe.cpp load_arch_tensors: leading_dense_block_count dense layers, then routed
    # experts (sigmoid router with exp_probs_b) and a shared expert; post_attention_norm is the FFN's
    # input norm. nextn_predict_layers MTP blocks follow the trunk (block_count counts them): attention,
    # experts and nextn.* tensors, loaded (skipped) by llama.cpp and given no KV cells
    e = c.e
    n_all, keys, moe = _dense_then_experts_with_mtp(c)
    attn = _attn(e, c.hq, c.kv, c.kv) + _qkv_bias(c) + [("post_attention_norm.weight", (e,))]
    per_layer = [attn + (_ffn(e, c.f, norm=False) if il == 0 else moe) + (_nextn(e) if il >= c.n_layer else [])
                 for il in range(n_all)]
    return "glm4moe", keys, per_layer, False


def _qwen_vl(c: Shape):
    # src/models/qwen2vl.cpp, qwen3vl.cpp, qwen3vlmoe.cpp load_arch_tensors (text only): M-RoPE with
    # rope.dimension_sections (required; pairs summing to n_rot/2); qwen2vl has Q/K/V biases, qwen3vl(moe)
    # Q/K norms, qwen3vlmoe routed experts without a shared one
    U32, e, hd = c.U32, c.e, c.head_dim
    keys = {**c.base, "rope.dimension_count": (U32, hd),
            "rope.dimension_sections": (c.ARRAY, [hd // 4 - 2, hd // 8 + 1, hd // 8 + 1, 0])}
    lt = _attn(e, c.hq, c.kv, c.kv) + (_qkv_bias(c) if c.family == "qwen2vl" else _qk_norm(hd))
    if c.family == "qwen3vlmoe":
        keys.update(_moe_keys(c))
        return c.family, keys, lt + [("ffn_norm.weight", (e,))] + _moe(e, 4, 32), False
    return c.family, keys, lt + _ffn(e, c.f), False


def _ernie4_5(c: Shape):
    # src/models/ernie4-5.cpp load_arch_tensors; ernie4_5-moe (same loader): layers from
    # leading_dense_block_count on are MoE (every interleave_moe_layer_step-th: 1 here) with a shared expert
    U32, e = c.U32, c.e
    keys = {**c.base, "rope.dimension_count": (U32, c.head_dim)}
    if c.family == "ernie4_5":
        return "ernie4_5", keys, _attn(e, c.hq, c.kv, c.kv) + _ffn(e, c.f), False
    keys.update(_moe_keys(c, leading_dense_block_count=1, interleave_moe_layer_step=1,
                          expert_shared_feed_forward_length=32))
    moe = [("ffn_norm.weight", (e,))] + _moe(e, 4, 32) + _shexp(e, 32)
    return "ernie4_5-moe", keys, [_attn(e, c.hq, c.kv, c.kv) + (_ffn(e, c.f) if il == 0 else moe)
                                  for il in range(c.n_layer)], False


def _seed_oss(c: Shape):
    # src/models/seed-oss.cpp load_arch_tensors: the FFN's input norm is post_attention_norm
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim)}
    lt = _attn(e, c.hq, c.kv, c.kv) + [("post_attention_norm.weight", (e,))] + _ffn(e, c.f, norm=False)
    return "seed_oss", keys, lt, False


def _minimax_m2(c: Shape):
    # src/models/minimax-m2.cpp load_arch_tensors: Q/K norms over all heads, experts of feed_forward_length
    # with exp_probs_b (sigmoid router); MiniMax-M2 rotates half of each head
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim // 2), **_moe_keys(c, expert_gating_func=2)}
    lt = _attn(e, c.hq, c.kv, c.kv) + _qk_norm(c.hq, c.kv) + [("ffn_norm.weight", (e,))] + _moe(e, 4, c.f) \
        + [("exp_probs_b.bias", (4,))]
    return "minimax-m2", keys, lt, False


def _olmoe(c: Shape):
    # src/models/olmoe.cpp load_arch_tensors: Q/K norms over n_embd (so n_head_kv = n_head), experts of
    # feed_forward_length
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim), **_moe_keys(c)}
    lt = _attn(e, c.hq, c.kv, c.kv) + _qk_norm(e) + [("ffn_norm.weight", (e,))] + _moe(e, 4, c.f)
    return "olmoe", keys, lt, False


def _phimoe(c: Shape):
    # src/models/phimoe.cpp load_arch_tensors: biased layer norms and output, experts of feed_forward_length
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim), **_moe_keys(c)}
    lt = _attn(e, c.hq, c.kv, c.kv) + [("attn_norm.bias", (e,)), ("attn_output.bias", (e,)),
                                       ("ffn_norm.weight", (e,)), ("ffn_norm.bias", (e,))] + _moe(e, 4, c.f)
    return "phimoe", keys, lt, False, [("output_norm.bias", (e,)), ("output.bias", (285,))]


def _hunyuan(c: Shape):
    # src/models/hunyuan-moe.cpp load_arch_tensors: Q/K norms, experts of feed_forward_length and a shared
    # expert as wide; hunyuan-dense (hunyuan-vl.cpp's loader): the same attention, a dense FFN
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim)}
    lt = _attn(e, c.hq, c.kv, c.kv) + _qk_norm(c.head_dim)
    if c.family == "hunyuan-dense":
        return "hunyuan-dense", keys, lt + _ffn(e, c.f), False
    keys.update(_moe_keys(c))
    return "hunyuan-moe", keys, lt + [("ffn_norm.weight", (e,))] + _moe(e, 4, c.f) + _shexp(e, c.f), False


def _dots1(c: Shape):
    # src/models/dots1.cpp load_arch_tensors: K and V as wide as Q (n_head_kv = n_head), Q/K norms,
    # leading_dense_block_count dense layers, then experts with expert_shared_count shared ones; the graph
    # aborts without expert_gating_func (llama-graph.cpp l.2072), which the converter writes (sigmoid)
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim),
            **_moe_keys(c, expert_shared_count=1, leading_dense_block_count=1, expert_gating_func=2)}
    moe = [("ffn_norm.weight", (e,))] + _moe(e, 4, 32) + [("exp_probs_b.bias", (4,))] + _shexp(e, 32)
    return "dots1", keys, [_attn(e, c.hq, c.kv, c.kv) + _qk_norm(c.head_dim) + (_ffn(e, c.f) if il == 0 else moe)
                           for il in range(c.n_layer)], False


def _grok(c: Shape):
    # src/models/grok.cpp load_arch_tensors: attention output norm, experts (GELU) and a post-FFN norm
    # (layer_output_norm); the dense FFN beside the experts is optional (Grok-1 has none)
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim), **_moe_keys(c)}
    lt = _attn(e, c.hq, c.kv, c.kv) + [("attn_output_norm.weight", (e,)), ("ffn_norm.weight", (e,))] \
        + _moe(e, 4, 32) + [("layer_output_norm.weight", (e,))]
    return "grok", keys, lt, False


def _dbrx(c: Shape):
    # src/models/dbrx.cpp load_arch_tensors: fused QKV, attention output norm (LayerNorm: layer_norm_epsilon
    # and clamp_kqv are required keys), experts of feed_forward_length and no FFN norm
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim), "attention.layer_norm_epsilon": (c.F32, 1e-5),
            "attention.clamp_kqv": (c.F32, 8.0), **_moe_keys(c)}
    lt = [("attn_norm.weight", (e,)), ("attn_qkv.weight", (c.hq + 2 * c.kv, e)), ("attn_output.weight", (e, c.hq)),
          ("attn_output_norm.weight", (e,))] + _moe(e, 4, c.f)
    return "dbrx", keys, lt, False


def _arcee(c: Shape):
    # src/models/arcee.cpp load_arch_tensors: llama attention, an ungated FFN (ReLU^2: up and down only)
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim)}
    lt = _attn(e, c.hq, c.kv, c.kv) + [("ffn_norm.weight", (e,)), ("ffn_up.weight", (c.f, e)),
                                       ("ffn_down.weight", (e, c.f))]
    return "arcee", keys, lt, False


def _apertus(c: Shape):
    # src/models/apertus.cpp load_arch_tensors: Q/K norms, an ungated xIELU FFN whose xielu.* constants
    # (keys without the arch prefix) are required
    e = c.e
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim),
            **{f"xielu.{k}": (c.F32, v) for k, v in (("alpha_n", 0.8), ("alpha_p", 0.8), ("beta", 0.5),
                                                      ("eps", -1e-6))}}
    lt = _attn(e, c.hq, c.kv, c.kv) + [("ffn_norm.weight", (e,)), ("ffn_up.weight", (c.f, e)),
                                       ("ffn_down.weight", (e, c.f))] + _qk_norm(c.head_dim)
    return "apertus", keys, lt, False


def _bailingmoe2(c: Shape):
    # src/models/bailingmoe2.cpp load_arch_tensors: fused QKV, Q/K norms, a dense first layer, then experts
    # with a shared one; nextn_predict_layers MTP blocks (always skipped: TENSOR_SKIP) add nextn.* and
    # layer_output_norm; Ling 2.0 rotates half of each head
    e = c.e
    n_all, keys, moe = _dense_then_experts_with_mtp(c)
    attn = [("attn_norm.weight", (e,)), ("attn_qkv.weight", (c.hq + 2 * c.kv, e)),
            ("attn_output.weight", (e, c.hq))] + _qk_norm(c.head_dim) + [("ffn_norm.weight", (e,))]
    mtp = _nextn(e) + [("layer_output_norm.weight", (e,))]
    return "bailingmoe2", keys, [attn + (_ffn(e, c.f, norm=False) if il == 0 else moe)
                                 + (mtp if il >= c.n_layer else []) for il in range(n_all)], False


def _cohere2moe(c: Shape):
    # src/models/cohere2moe.cpp load_arch_tensors: cohere2's parallel block (no FFN norm), the first
    # leading_dense_block_count layers dense, then experts (sigmoid router by default); sliding_window and
    # leading_dense_block_count are required
    U32, e = c.U32, c.e
    keys = {**c.base, "attention.sliding_window": (U32, c.swa), "logit_scale": (c.F32, 1.0),
            "attention.layer_norm_epsilon": (c.F32, 1e-5), "rope.dimension_count": (U32, c.head_dim),
            **_moe_keys(c, leading_dense_block_count=1)}
    return "cohere2moe", keys, [_attn(e, c.hq, c.kv, c.kv) + (_ffn(e, c.f, norm=False) if il == 0 else _moe(e, 4, 32))
                                for il in range(c.n_layer)], False


def _smallthinker(c: Shape):
    # src/models/smallthinker.cpp load_arch_tensors: llama attention, experts only (softmax router);
    # a sliding_window > 0 makes it iSWA with a 4096 window (load_arch_hparams)
    keys = {**c.base, "rope.dimension_count": (c.U32, c.head_dim), **_moe_keys(c, expert_gating_func=1)}
    if c.swa is not None:
        keys["attention.sliding_window"] = (c.U32, c.swa)
    return "smallthinker", keys, _attn(c.e, c.hq, c.kv, c.kv) + [("ffn_norm.weight", (c.e,))] + _moe(c.e, 4, 32), False


def _swa_array(c: Shape, default: list[bool]) -> list[bool]:
    pat = c.d.get("pattern", default)
    return [bool(pat[il % len(pat)]) for il in range(c.n_layer)]


def _granite_swa(c: Shape):
    # src/models/granite-swa.cpp load_arch_tensors: attention sinks, a dense FFN (no experts);
    # sliding_window, a per-layer sliding_window_pattern array and logit_scale are required
    U32, e = c.U32, c.e
    keys = {**c.base, "rope.dimension_count": (U32, c.head_dim), "logit_scale": (c.F32, 1.0),
            "attention.sliding_window": (U32, c.swa),
            "attention.sliding_window_pattern": (c.ARRAY, _swa_array(c, [True, True, True, False]))}
    lt = _attn(e, c.hq, c.kv, c.kv) + [("attn_sinks.weight", (2,))] + _ffn(e, c.f)
    return "granite_swa", keys, lt, True


def _gemma4(c: Shape):
    # src/models/gemma4.cpp: a per-layer sliding_window_pattern array (required); full layers have their
    # own head size (key_length) and proportional RoPE (the model-level rope_freqs), SWA layers
    # key_length_swa and rope.dimension_count_swa; the last attention.shared_kv_layers layers have no K/V
    # and reuse the last SWA / full layer that has them; no per-layer embeddings (length 0)
    U32, e, hd = c.U32, c.e, c.head_dim
    full, shared = 2 * hd, c.d.get("shared_kv_layers", 0)
    swa = _swa_array(c, [True] * 4 + [False])
    keys = {**c.base, "attention.key_length": (U32, full), "attention.value_length": (U32, full),
            "attention.key_length_swa": (U32, hd), "attention.value_length_swa": (U32, hd),
            "rope.dimension_count": (U32, full), "rope.dimension_count_swa": (U32, hd),
            "attention.sliding_window": (U32, c.swa), "attention.sliding_window_pattern": (c.ARRAY, swa),
            "attention.shared_kv_layers": (U32, shared), "embedding_length_per_layer_input": (U32, 0)}

    def layer(il: int):
        h = hd if swa[il] else full
        kv = [("attn_k.weight", (c.n_head_kv * h, e)), ("attn_v.weight", (c.n_head_kv * h, e)),
              ("attn_k_norm.weight", (h,))] if il < c.n_layer - shared else []
        return [("attn_norm.weight", (e,)), ("attn_q.weight", (2 * h, e)), ("attn_output.weight", (e, 2 * h)),
                ("attn_q_norm.weight", (h,)), ("post_attention_norm.weight", (e,))] + kv + _ffn(e, c.f) \
            + [("post_ffw_norm.weight", (e,))]
    return "gemma4", keys, [layer(il) for il in range(c.n_layer)], True, [("rope_freqs.weight", (full // 2,))]


def _graniteswitch(c: Shape):
    # src/models/granite-switch.cpp load_arch_tensors: fused QKV, a dense FFN, and per layer stacked LoRA
    # deltas (lora_a/lora_b) for every projection, one slot per adapter plus the base; the adapter keys
    # are required. llama.cpp adds the router's attention layer after the last (no tensors of its own)
    U32, e, f, q, kv = c.U32, c.e, c.f, c.hq, c.kv
    slots, rank = 2, 4
    keys = {**c.base, "rope.dimension_count": (U32, c.head_dim), "logit_scale": (c.F32, 1.0),
            "adapters.count": (U32, slots - 1), "adapters.lora_rank": (U32, rank),
            "adapters.token_ids_activate": (c.ARRAY, [40]), "adapters.token_ids_substitute": (c.ARRAY, [41])}

    def lora(name: str, n_in: int, n_out: int):
        return [(f"{name}.lora_a", (slots, rank, n_in)), (f"{name}.lora_b", (slots, n_out, rank))]
    lt = [("attn_norm.weight", (e,)), ("attn_qkv.weight", (q + 2 * kv, e)), ("attn_output.weight", (e, q))] \
        + _ffn(e, f) + lora("attn_q", e, q) + lora("attn_k", e, kv) + lora("attn_v", e, kv) \
        + lora("attn_output", q, e) + lora("ffn_gate", e, f) + lora("ffn_up", e, f) + lora("ffn_down", f, e)
    return "graniteswitch", keys, lt, True


BUILDERS = {"gemma2": _gemma, "gemma3": _gemma, "cohere2": _cohere2, "deepseek2-mla": _deepseek2,
             "deepseek2-kv": _deepseek2, "gpt-oss": _gpt_oss, "jamba": _jamba, "mamba": _mamba,
             "qwen3next": _qwen3next, "qwen35": _qwen3next,
             "qwen35moe": _qwen3next, "llama4": _llama4,
             "granitehybrid": _granitehybrid, "nemotron_h": _nemotron_h, "falcon-h1": _falcon_h1,
             "nemotron_h_moe": _nemotron_h, "phi3": _phi3, "exaone4": _exaone4,
             "lfm2": _lfm2, "lfm2moe": _lfm2,
             "rwkv7": _rwkv7, "rwkv6": _rwkv6,
             "gemma3n": _gemma3n, "glm4": _glm4, "glm4moe": _glm4moe, "qwen2vl": _qwen_vl, "qwen3vl": _qwen_vl,
             "qwen3vlmoe": _qwen_vl, "ernie4_5": _ernie4_5, "ernie4_5-moe": _ernie4_5, "seed_oss": _seed_oss,
             "minimax-m2": _minimax_m2, "olmoe": _olmoe, "phimoe": _phimoe, "hunyuan-moe": _hunyuan,
             "hunyuan-dense": _hunyuan, "dots1": _dots1, "grok": _grok, "dbrx": _dbrx, "arcee": _arcee,
             "apertus": _apertus, "bailingmoe2": _bailingmoe2, "mistral4": _deepseek2, "deepseek32": _deepseek2,
             "cohere2moe": _cohere2moe, "smallthinker": _smallthinker, "granite_swa": _granite_swa,
             "gemma4": _gemma4, "graniteswitch": _graniteswitch}


FAMILIES = ("gemma2", "gemma3", "cohere2", "gpt-oss", "deepseek2-mla", "deepseek2-kv", "mamba", "jamba",
            "qwen3next", "qwen35", "qwen35moe", "llama4", "granitehybrid", "nemotron_h", "falcon-h1",
            "nemotron_h_moe", "phi3", "exaone4", "lfm2", "lfm2moe", "rwkv7", "rwkv6", "gemma3n", "glm4", "glm4moe",
            "qwen2vl", "qwen3vl", "qwen3vlmoe", "ernie4_5", "ernie4_5-moe", "seed_oss", "minimax-m2", "olmoe",
            "phimoe", "hunyuan-moe", "hunyuan-dense", "dots1", "grok", "dbrx", "arcee", "apertus", "bailingmoe2",
            "mistral4", "deepseek32", "cohere2moe", "smallthinker", "granite_swa", "gemma4", "graniteswitch")
