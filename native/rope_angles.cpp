// ggufrope-rope-angles: run ggml's own RoPE op (ggml_rope_ext, CPU backend, f32) on unit
// vectors and report, per position and per rotated dimension pair, the rotation angle and
// the magnitude the op applied.
//
// For every pair i (0 <= i < n_dims/2) the input has x = 1, y = 0, where the pair is
// (2i, 2i+1) in "norm" mode and (i, i + n_dims/2) in "neox" mode (GGML_ROPE_TYPE_NEOX).
// After the op the pair holds (mscale*cos(theta), mscale*sin(theta)), so
//   angle  = atan2(y', x')   -- theta wrapped to (-pi, pi]
//   mscale = hypot(x', y')   -- attn_factor times YaRN's 1 + 0.1*ln(1/freq_scale) when ext_factor != 0
// This is ggml's arithmetic (float32, ops.cpp rope_yarn / ggml_rope_cache_init), not a
// re-implementation, so it is the ground truth for ggufrope's Python RoPE model.
// The op runs on the CPU backend obtained through the ggml-backend registry.

#include "ggufrope_common.h"

#include "ggml.h"
#include "ggml-backend.h"

#include <cmath>
#include <string>
#include <vector>

using namespace ggufrope;

static const char * USAGE =
    "usage: ggufrope-rope-angles --n-dims D --positions p1,p2,... [options]\n"
    "\n"
    "Evaluate ggml_rope_ext (CPU, f32) on unit vectors and print\n"
    "  {\"ok\":true,\"n_dims\":D,\"head_dim\":H,\"mode\":\"norm\",\"positions\":[...],\n"
    "   \"corr_dims\":[lo,hi],\"angles\":[[n_dims/2 floats] per position],\n"
    "   \"mscale\":[[n_dims/2 floats] per position]}\n"
    "angles are atan2(y,x) of the rotated pair (radians, wrapped to (-pi,pi]), mscale is\n"
    "hypot(x,y) (the magnitude factor ggml applied).\n"
    "\n"
    "  --n-dims D          number of rotated dims (even, required)\n"
    "  --head-dim H        row size of the input (default: D; must be >= D)\n"
    "  --freq-base B       default 10000\n"
    "  --freq-scale S      default 1\n"
    "  --ext-factor E      default 0 (YaRN off)\n"
    "  --attn-factor A     default 1\n"
    "  --beta-fast F       default 32\n"
    "  --beta-slow F       default 1\n"
    "  --n-ctx-orig N      default 0 (used for the YaRN correction dims)\n"
    "  --mode norm|neox    default norm\n"
    "  --positions LIST    comma separated int32 positions (required)\n"
    "  --freq-factors LIST optional n_dims/2 comma separated floats, passed as the op's\n"
    "                      freq factors tensor (rope_freqs / LongRoPE factors)\n"
    "  --threads N         CPU threads for the graph (default 1)\n"
    "  --verbose           let ggml log to stderr\n";

int main(int argc, char ** argv) {
    int   n_dims      = -1;
    int   head_dim    = -1;
    float freq_base   = 10000.0f;
    float freq_scale  = 1.0f;
    float ext_factor  = 0.0f;
    float attn_factor = 1.0f;
    float beta_fast   = 32.0f;
    float beta_slow   = 1.0f;
    int   n_ctx_orig  = 0;
    int   mode        = 0;
    int   n_threads   = 1;
    bool  verbose     = false;
    bool  have_pos    = false;
    std::vector<int32_t> positions;
    std::vector<float>   freq_factors;

    try {
        arg_cursor a(argc, argv);
        while (!a.done()) {
            if (a.match("--help") || a.match("-h")) {
                fputs(USAGE, stdout);
                return 0;
            } else if (a.match("--n-dims")) {
                n_dims = (int) parse_i64(a.value(), "--n-dims");
            } else if (a.match("--head-dim")) {
                head_dim = (int) parse_i64(a.value(), "--head-dim");
            } else if (a.match("--freq-base")) {
                freq_base = parse_f32(a.value(), "--freq-base");
            } else if (a.match("--freq-scale")) {
                freq_scale = parse_f32(a.value(), "--freq-scale");
            } else if (a.match("--ext-factor")) {
                ext_factor = parse_f32(a.value(), "--ext-factor");
            } else if (a.match("--attn-factor")) {
                attn_factor = parse_f32(a.value(), "--attn-factor");
            } else if (a.match("--beta-fast")) {
                beta_fast = parse_f32(a.value(), "--beta-fast");
            } else if (a.match("--beta-slow")) {
                beta_slow = parse_f32(a.value(), "--beta-slow");
            } else if (a.match("--n-ctx-orig")) {
                n_ctx_orig = (int) parse_i64(a.value(), "--n-ctx-orig");
            } else if (a.match("--threads")) {
                n_threads = (int) parse_i64(a.value(), "--threads");
            } else if (a.match("--mode")) {
                const std::string m = a.value();
                if (m == "norm" || m == "normal") {
                    mode = 0;
                } else if (m == "neox") {
                    mode = GGML_ROPE_TYPE_NEOX;
                } else {
                    throw usage_error("--mode must be norm or neox, got '" + m + "'");
                }
            } else if (a.match("--positions")) {
                have_pos = true;
                positions.clear();
                for (const auto & p : split(a.value(), ',')) {
                    const int64_t v = parse_i64(p, "--positions");
                    if (v < INT32_MIN || v > INT32_MAX) {
                        throw usage_error("--positions: value out of int32 range: " + p);
                    }
                    positions.push_back((int32_t) v);
                }
            } else if (a.match("--freq-factors")) {
                freq_factors.clear();
                for (const auto & f : split(a.value(), ',')) {
                    freq_factors.push_back(parse_f32(f, "--freq-factors"));
                }
            } else if (a.match("--verbose")) {
                verbose = true;
            } else {
                throw usage_error("unknown argument: " + a.peek());
            }
        }
        if (n_dims <= 0) {
            throw usage_error("--n-dims is required and must be > 0");
        }
        if (n_dims % 2 != 0) {
            throw usage_error("--n-dims must be even");
        }
        if (head_dim < 0) {
            head_dim = n_dims;
        }
        if (head_dim < n_dims) {
            throw usage_error("--head-dim must be >= --n-dims");
        }
        if (!have_pos || positions.empty()) {
            throw usage_error("--positions is required");
        }
        if (!freq_factors.empty() && (int) freq_factors.size() != n_dims / 2) {
            throw usage_error(strfmt("--freq-factors needs n_dims/2 = %d values, got %zu", n_dims / 2, freq_factors.size()));
        }
        if (n_threads < 1) {
            throw usage_error("--threads must be >= 1");
        }
    } catch (const std::exception & e) {
        fail(e.what());
    }

    ggml_log_set(verbose ? log_stderr : log_noop, nullptr);
    ggml_set_abort_callback(abort_to_json);

    const int64_t n_pos  = (int64_t) positions.size();
    const int     n_pair = n_dims / 2;

    // CPU backend through the generic backend API: works whether ggml-cpu is linked in or
    // built as a loadable module (GGML_BACKEND_DL).
    ggml_backend_load_all();
    ggml_backend_t backend = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
    if (!backend) {
        fail("no CPU backend available");
    }
    {
        ggml_backend_dev_t dev = ggml_backend_get_device(backend);
        ggml_backend_reg_t reg = dev ? ggml_backend_dev_backend_reg(dev) : nullptr;
        auto set_n_threads = reg ? (ggml_backend_set_n_threads_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads") : nullptr;
        if (set_n_threads) {
            set_n_threads(backend, n_threads);
        }
    }

    ggml_init_params ip = {
        /*.mem_size   =*/ 16 * ggml_tensor_overhead() + ggml_graph_overhead(),
        /*.mem_buffer =*/ nullptr,
        /*.no_alloc   =*/ true,
    };
    ggml_context * ctx = ggml_init(ip);
    if (!ctx) {
        fail("ggml_init failed");
    }

    ggml_tensor * x   = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, head_dim, 1, n_pos); // [n_embd, n_head, n_token]
    ggml_tensor * pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n_pos);
    ggml_tensor * ff  = freq_factors.empty() ? nullptr : ggml_new_tensor_1d(ctx, GGML_TYPE_F32, n_pair);

    ggml_tensor * out = ggml_rope_ext(ctx, x, pos, ff, n_dims, mode, n_ctx_orig,
                                      freq_base, freq_scale, ext_factor, attn_factor, beta_fast, beta_slow);
    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, out);

    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
    if (!buf) {
        fail("failed to allocate tensors on the CPU backend");
    }

    const bool neox = (mode & GGML_ROPE_TYPE_NEOX) != 0;
    auto idx_x = [&](int i) { return neox ? i : 2 * i; };
    auto idx_y = [&](int i) { return neox ? i + n_pair : 2 * i + 1; };

    std::vector<float> xd((size_t) head_dim * n_pos, 0.0f);
    for (int64_t p = 0; p < n_pos; ++p) {
        float * row = xd.data() + p * head_dim;
        for (int i = 0; i < n_pair; ++i) {
            row[idx_x(i)] = 1.0f;
            row[idx_y(i)] = 0.0f;
        }
    }
    ggml_backend_tensor_set(x, xd.data(), 0, xd.size() * sizeof(float));
    ggml_backend_tensor_set(pos, positions.data(), 0, n_pos * sizeof(int32_t));
    if (ff) {
        ggml_backend_tensor_set(ff, freq_factors.data(), 0, n_pair * sizeof(float));
    }

    const ggml_status st = ggml_backend_graph_compute(backend, gf);
    if (st != GGML_STATUS_SUCCESS) {
        fail(strfmt("ggml_backend_graph_compute failed: status %d", (int) st));
    }

    std::vector<float> outd((size_t) head_dim * n_pos);
    ggml_backend_tensor_get(out, outd.data(), 0, outd.size() * sizeof(float));

    float corr_dims[2];
    ggml_rope_yarn_corr_dims(n_dims, n_ctx_orig, freq_base, beta_fast, beta_slow, corr_dims);

    const float * od = outd.data();

    json_writer w;
    w.begin_object();
    w.kv_bool("ok", true);
    w.kv_i64("n_dims", n_dims);
    w.kv_i64("head_dim", head_dim);
    w.kv_str("mode", neox ? "neox" : "norm");
    w.kv_f32("freq_base", freq_base);
    w.kv_f32("freq_scale", freq_scale);
    w.kv_f32("ext_factor", ext_factor);
    w.kv_f32("attn_factor", attn_factor);
    w.kv_f32("beta_fast", beta_fast);
    w.kv_f32("beta_slow", beta_slow);
    w.kv_i64("n_ctx_orig", n_ctx_orig);
    w.key("corr_dims").begin_array().f32(corr_dims[0]).f32(corr_dims[1]).end_array();
    w.key("positions").begin_array();
    for (auto p : positions) w.i64(p);
    w.end_array();

    w.key("angles").begin_array();
    for (int64_t p = 0; p < n_pos; ++p) {
        const float * row = od + p * head_dim;
        w.begin_array();
        for (int i = 0; i < n_pair; ++i) {
            w.f32((float) std::atan2((double) row[idx_y(i)], (double) row[idx_x(i)]));
        }
        w.end_array();
    }
    w.end_array();

    w.key("mscale").begin_array();
    for (int64_t p = 0; p < n_pos; ++p) {
        const float * row = od + p * head_dim;
        w.begin_array();
        for (int i = 0; i < n_pair; ++i) {
            w.f32((float) std::hypot((double) row[idx_x(i)], (double) row[idx_y(i)]));
        }
        w.end_array();
    }
    w.end_array();
    w.end_object();

    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    ggml_backend_free(backend);
    print_json_line(w.out);
    return 0;
}
