// ggufrope-probe: arguments and the default mode (hparams + effective); --which-keys is in
// which_keys.cpp. What the tool does and how is described in probe.h.

#include "probe.h"

#include "ggml.h"

using namespace ggufrope;

static const char * USAGE =
    "usage: ggufrope-probe MODEL [options]\n"
    "       ggufrope-probe --which-keys MODEL [--override-kv ...]\n"
    "\n"
    "Print the RoPE / context hyper-parameters llama.cpp resolves from MODEL's metadata\n"
    "(\"hparams\") and the values a llama_context ends up with for the given flags\n"
    "(\"effective\"), without reading tensor data.\n"
    "\n"
    "options (same meaning as the llama.cpp CLI flags):\n"
    "  --ctx N, -c N                 context size (default 0 = n_ctx_train)\n"
    "  --rope-scaling TYPE           none | linear | yarn | longrope\n"
    "  --rope-scale F                sets freq_scale = 1/F\n"
    "  --rope-freq-base F\n"
    "  --rope-freq-scale F\n"
    "  --yarn-orig-ctx N\n"
    "  --yarn-ext-factor F           (negative = from model)\n"
    "  --yarn-attn-factor F          (negative = from model)\n"
    "  --yarn-beta-fast F            (negative = from model)\n"
    "  --yarn-beta-slow F            (negative = from model)\n"
    "  --override-kv KEY=TYPE:VALUE[,KEY=TYPE:VALUE...]   TYPE: int float bool str (repeatable)\n"
    "  --which-keys                  find which RoPE keys this llama.cpp reads for MODEL's arch\n"
    "  --no-effective                skip the context creation (\"effective\": null)\n"
    "  --verbose                     let llama.cpp log to stderr\n"
    "\n"
    "Output: one JSON object on stdout; errors as {\"ok\":false,\"error\":...}, exit code 1.\n";

static probe_opts parse_args(int argc, char ** argv) {
    probe_opts o;
    arg_cursor a(argc, argv);
    while (!a.done()) {
        if (a.match("--help") || a.match("-h")) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (a.match("--which-keys")) {
            o.which_keys = true;
        } else if (a.match("--verbose")) {
            o.verbose = true;
        } else if (a.match("--no-effective")) {
            o.no_effective = true;
        } else if (a.match("--ctx") || a.match("-c") || a.match("--ctx-size")) {
            const int64_t v = parse_i64(a.value(), "--ctx");
            if (v < 0 || v > UINT32_MAX) throw usage_error("--ctx out of range");
            o.n_ctx = (uint32_t) v;
        } else if (a.match("--rope-scaling")) {
            const std::string v = a.value();
            if      (v == "none")     o.rope_scaling_type = LLAMA_ROPE_SCALING_TYPE_NONE;
            else if (v == "linear")   o.rope_scaling_type = LLAMA_ROPE_SCALING_TYPE_LINEAR;
            else if (v == "yarn")     o.rope_scaling_type = LLAMA_ROPE_SCALING_TYPE_YARN;
            else if (v == "longrope") o.rope_scaling_type = LLAMA_ROPE_SCALING_TYPE_LONGROPE;
            else throw usage_error("--rope-scaling must be none, linear, yarn or longrope, got '" + v + "'");
        } else if (a.match("--rope-scale")) {
            o.rope_freq_scale = 1.0f / parse_f32(a.value(), "--rope-scale");
        } else if (a.match("--rope-freq-base")) {
            o.rope_freq_base = parse_f32(a.value(), "--rope-freq-base");
        } else if (a.match("--rope-freq-scale")) {
            o.rope_freq_scale = parse_f32(a.value(), "--rope-freq-scale");
        } else if (a.match("--yarn-orig-ctx")) {
            const int64_t v = parse_i64(a.value(), "--yarn-orig-ctx");
            if (v < 0 || v > UINT32_MAX) throw usage_error("--yarn-orig-ctx out of range");
            o.yarn_orig_ctx = (uint32_t) v;
        } else if (a.match("--yarn-ext-factor")) {
            o.yarn_ext_factor = parse_f32(a.value(), "--yarn-ext-factor");
        } else if (a.match("--yarn-attn-factor")) {
            o.yarn_attn_factor = parse_f32(a.value(), "--yarn-attn-factor");
        } else if (a.match("--yarn-beta-fast")) {
            o.yarn_beta_fast = parse_f32(a.value(), "--yarn-beta-fast");
        } else if (a.match("--yarn-beta-slow")) {
            o.yarn_beta_slow = parse_f32(a.value(), "--yarn-beta-slow");
        } else if (a.match("--override-kv")) {
            for (const auto & item : parse_csv_row(a.value())) {
                parse_kv_override(item, o.overrides);
            }
        } else {
            const std::string arg = a.peek();
            if (arg.size() > 1 && arg[0] == '-') {
                throw usage_error("unknown option: " + arg);
            }
            if (!o.model.empty()) {
                throw usage_error("more than one MODEL given: '" + o.model + "' and '" + arg + "'");
            }
            o.model = arg;
            a.i++;
        }
    }
    if (o.model.empty()) {
        throw usage_error("missing MODEL (see --help)");
    }
    return o;
}

// the default mode: {"ok", "model", "arch", "overrides", "hparams", "hparams_extra",
// "effective" (or null + "effective_error"), "override_warnings"}
static void probe_model(const probe_opts & o) {
    hp_snap s;
    load_hparams_only(o.model, nullptr, o.overrides, s);
    if (s.status != 0) {
        fail(std::string("loading hparams failed: ") + s.error);
    }

    json_writer w;
    w.begin_object();
    w.kv_bool("ok", true);
    w.kv_str("model", o.model);
    w.kv_str("arch", s.arch);
    write_overrides(w, o.overrides);
    write_hparams(w, s);

    if (o.no_effective) {
        w.kv_null("effective");
    } else {
        json_writer eff;
        eff.begin_object();
        std::string err;
        if (write_effective(eff, o, err)) {
            eff.end_object();
            // eff.out is {"effective":{...}}; splice its member into w
            w.raw(eff.out.substr(1, eff.out.size() - 2));
        } else {
            w.kv_null("effective");
            w.kv_str("effective_error", err);
        }
    }
    write_override_warnings(w);
    w.end_object();
    print_json_line(w.out);
}

int main(int argc, char ** argv) {
    probe_opts o;
    try {
        o = parse_args(argc, argv);
    } catch (const std::exception & e) {
        fail(e.what());
    }

    g_log.verbose = o.verbose;
    llama_log_set(log_capture, nullptr); // also sets ggml's logger
    ggml_set_abort_callback(abort_to_json);
    llama_backend_init();

    {
        FILE * f = fopen(o.model.c_str(), "rb");
        if (!f) {
            fail("cannot open model file '" + o.model + "': " + strerror(errno));
        }
        fclose(f);
    }

    try {
        if (o.which_keys) {
            const int rc = which_keys(o);
            llama_backend_free();
            return rc;
        }
        probe_model(o);
    } catch (const std::exception & e) {
        fail(e.what());
    }

    llama_backend_free();
    return 0;
}
