// "effective": the values a llama_context ends up with for the given flags. The model is
// loaded with no_alloc = true and load_mode = NONE (llama.cpp's --fit "simulate" path: tensors
// are metadata only, no data is read or allocated), then llama_init_from_model() runs for real
// and its llama_cparams are read back.

#include "probe.h"

#include "llama-context.h"
#include "llama-cparams.h"
#include "llama-hparams.h"
#include "llama-model.h"

namespace ggufrope {

bool write_effective(json_writer & w, const probe_opts & o, std::string & err) {
    auto ovr = terminated(o.overrides);

    llama_model_params mp = llama_model_default_params();
    mp.kv_overrides    = ovr.data();
    mp.no_alloc        = true;
    mp.load_mode       = LLAMA_LOAD_MODE_NONE;
    mp.n_gpu_layers    = 0;
    mp.use_extra_bufts = false;

    g_log.errors.clear();
    llama_model * model = llama_model_load_from_file(o.model.c_str(), mp);
    if (!model) {
        err = "model load (no_alloc) failed: " + last_error_lines(g_log.errors);
        return false;
    }

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx             = o.n_ctx; // 0 = n_ctx_train, like the CLI's -c 0 / default
    cp.n_seq_max         = 1;
    cp.n_threads         = 1;
    cp.n_threads_batch   = 1;
    cp.rope_scaling_type = (llama_rope_scaling_type) o.rope_scaling_type;
    cp.rope_freq_base    = o.rope_freq_base;
    cp.rope_freq_scale   = o.rope_freq_scale;
    cp.yarn_orig_ctx     = o.yarn_orig_ctx;
    cp.yarn_ext_factor   = o.yarn_ext_factor;
    cp.yarn_attn_factor  = o.yarn_attn_factor;
    cp.yarn_beta_fast    = o.yarn_beta_fast;
    cp.yarn_beta_slow    = o.yarn_beta_slow;
    cp.no_perf           = true;

    const uint32_t n_ctx_train_before = model->hparams.n_ctx_train;

    g_log.errors.clear();
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        err = "context creation (no_alloc) failed: " + last_error_lines(g_log.errors);
        llama_model_free(model);
        return false;
    }

    const llama_cparams & c = ctx->get_cparams();
    const llama_hparams & hp = model->hparams;

    float corr[2] = {0.0f, 0.0f};
    ggml_rope_yarn_corr_dims((int) hp.n_rot_full, (int) c.n_ctx_orig_yarn, c.rope_freq_base,
                             c.yarn_beta_fast, c.yarn_beta_slow, corr);

    w.key("effective").begin_object();
    w.kv_u64("n_ctx",             c.n_ctx);
    w.kv_str("rope_scaling_type", rope_scaling_name(c.rope_scaling_type));
    w.kv_f32("freq_base",         c.rope_freq_base);
    w.kv_f32("freq_scale",        c.rope_freq_scale);
    w.kv_u64("n_ctx_orig_yarn",   c.n_ctx_orig_yarn);
    w.kv_f32("yarn_ext_factor",   c.yarn_ext_factor);
    w.kv_f32("yarn_attn_factor",  c.yarn_attn_factor);
    w.kv_f32("yarn_beta_fast",    c.yarn_beta_fast);
    w.kv_f32("yarn_beta_slow",    c.yarn_beta_slow);
    w.kv_u64("n_ctx_train_after", hp.n_ctx_train);
    // extras
    w.kv_u64("n_ctx_requested",    o.n_ctx);
    w.kv_u64("n_ctx_seq",          c.n_ctx_seq);
    w.kv_u64("n_ctx_train_before", n_ctx_train_before);
    w.key("yarn_corr_dims").begin_array().f32(corr[0]).f32(corr[1]).end_array();
    w.kv_bool("flash_attn", c.flash_attn);

    // what the graph actually feeds to ggml_rope_ext for layer 0, the first full-attention layer
    // and the first SWA layer (when there are such layers)
    int first_swa = -1, first_full = -1;
    for (uint32_t il = 0; il < hp.n_layer(); ++il) {
        if (hp.is_swa(il)) { if (first_swa < 0) first_swa = (int) il; }
        else if (first_full < 0) first_full = (int) il;
    }
    auto layer_obj = [&](const char * name, int il) {
        w.key(name).begin_object();
        w.kv_i64("layer", il);
        w.kv_f32("freq_base",  model->get_rope_freq_base(c, il));
        w.kv_f32("freq_scale", model->get_rope_freq_scale(c, il));
        w.kv_u64("n_rot",      hp.n_rot(il));
        const ggml_tensor * f = model->layers.size() > (size_t) il ? model->get_rope_factors(c, il) : nullptr;
        if (f) w.kv_str("rope_factors", ggml_get_name(f)); else w.kv_null("rope_factors");
        w.end_object();
    };
    if (hp.n_layer() > 0) {
        layer_obj("layer0", 0);
    }
    if (first_full >= 0) {
        layer_obj("first_full_layer", first_full);
    } else {
        w.kv_null("first_full_layer");
    }
    if (first_swa >= 0) {
        layer_obj("first_swa_layer", first_swa);
    } else {
        w.kv_null("first_swa_layer");
    }
    w.end_object();

    llama_free(ctx);
    llama_model_free(model);
    return true;
}

} // namespace ggufrope
