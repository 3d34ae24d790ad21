// --which-keys: which RoPE keys this llama.cpp reads for the model's architecture, found
// empirically. For each key, an hparams-only load with one sentinel --override-kv (plus the
// user's overrides) runs in a forked child (isolation.cpp) and is compared with a baseline
// load; the key is "read" if the loader consulted the override, the resolved hparam moved, or
// the load failed only with the sentinel.

#include "probe.h"

#include "gguf.h"

namespace ggufrope {

struct key_test {
    const char * suffix; // key without the "{arch}." prefix
    char         kind;   // override type: i f b s
    hp_field     field;  // resolved hparam it lands in
};

static const key_test KEY_TESTS[] = {
    { "context_length",                        'i', hp_field::n_ctx_train           },
    { "rope.dimension_count",                  'i', hp_field::n_rot                 },
    { "rope.freq_base",                        'f', hp_field::rope_freq_base_train  },
    { "rope.scale_linear",                     'f', hp_field::rope_freq_scale_train },
    { "rope.scaling.type",                     's', hp_field::rope_scaling_type     },
    { "rope.scaling.factor",                   'f', hp_field::rope_freq_scale_train },
    { "rope.scaling.original_context_length",  'i', hp_field::n_ctx_orig_yarn       },
    { "rope.scaling.attn_factor",              'f', hp_field::rope_attn_factor      },
    { "rope.scaling.finetuned",                'b', hp_field::rope_finetuned        },
    { "rope.scaling.yarn_log_multiplier",      'f', hp_field::rope_yarn_log_mul     },
    { "rope.scaling.yarn_ext_factor",          'f', hp_field::yarn_ext_factor       },
    { "rope.scaling.yarn_attn_factor",         'f', hp_field::yarn_attn_factor      },
    { "rope.scaling.yarn_beta_fast",           'f', hp_field::yarn_beta_fast        },
    { "rope.scaling.yarn_beta_slow",           'f', hp_field::yarn_beta_slow        },
};

// not in the required list, reported separately under "extra_keys"
static const key_test EXTRA_KEY_TESTS[] = {
    { "rope.freq_base_swa",       'f', hp_field::rope_freq_base_train_swa },
    { "rope.dimension_count_swa", 'i', hp_field::n_rot_swa                },
    { "rope.scaling.alpha",       'f', hp_field::rope_scaling_alpha       },
};

struct sentinel {
    double      num = 0;     // override value (i/f/b)
    std::string str;         // override value (s)
    double      expect = 0;  // expected resolved hparam
};

static sentinel pick_sentinel(const key_test & t, double base) {
    sentinel s;
    const hp_field f = t.field;
    switch (t.kind) {
        case 'i': {
            const double d = (f == hp_field::n_rot || f == hp_field::n_rot_swa) ? (base > 2 ? -2 : 2) : 1003;
            s.num = base + d;
            s.expect = s.num;
        } break;
        case 'b':
            s.num = base != 0.0 ? 0 : 1;
            s.expect = s.num;
            break;
        case 's':
            s.str = (int) base == LLAMA_ROPE_SCALING_TYPE_YARN ? "linear" : "yarn";
            s.expect = s.str == "yarn" ? LLAMA_ROPE_SCALING_TYPE_YARN : LLAMA_ROPE_SCALING_TYPE_LINEAR;
            break;
        case 'f': {
            // exactly representable sentinels, distinct from the baseline
            double cand[2] = {0, 0};
            if (f == hp_field::rope_freq_scale_train) { cand[0] = 7.0;     cand[1] = 5.0; }     // factor F -> scale 1/F
            else if (f == hp_field::rope_freq_base_train || f == hp_field::rope_freq_base_train_swa) { cand[0] = 12345.5; cand[1] = 23456.5; }
            else if (f == hp_field::rope_attn_factor)  { cand[0] = 1.25;    cand[1] = 1.5;  }
            else if (f == hp_field::rope_yarn_log_mul) { cand[0] = 0.125;   cand[1] = 0.25; }
            else if (f == hp_field::yarn_ext_factor)   { cand[0] = 0.4375;  cand[1] = 0.5625; }
            else if (f == hp_field::yarn_attn_factor)  { cand[0] = 1.4375;  cand[1] = 1.5625; }
            else if (f == hp_field::yarn_beta_fast)    { cand[0] = 23.5;    cand[1] = 24.5; }
            else if (f == hp_field::yarn_beta_slow)    { cand[0] = 1.75;    cand[1] = 2.75; }
            else                                       { cand[0] = 3.25;    cand[1] = 4.25; }
            for (double c : cand) {
                const double exp = f == hp_field::rope_freq_scale_train ? (double) (1.0f / (float) c) : (double) (float) c;
                if ((float) exp != (float) base) {
                    s.num = c;
                    s.expect = exp;
                    break;
                }
            }
        } break;
    }
    return s;
}

int which_keys(const probe_opts & o) {
    // baseline with the user's overrides (if any)
    hp_snap base = run_isolated("", [&](hp_snap & s) { load_hparams_only(o.model, nullptr, o.overrides, s); });
    if (base.status != 0) {
        fail(std::string("baseline load failed: ") + base.error);
    }
    const std::string arch = base.arch;
    const std::string prefix = arch + ".";

    // which tested keys are present in the file (plain GGUF header read)
    gguf_context * meta = nullptr;
    ggml_context * meta_ctx = nullptr;
    {
        gguf_init_params gp = { /*.no_alloc =*/ true, /*.ctx =*/ &meta_ctx };
        meta = gguf_init_from_file(o.model.c_str(), gp);
        if (!meta) {
            fail("gguf_init_from_file failed: " + last_error_lines(g_log.errors));
        }
    }
    auto present = [&](const std::string & suffix) { return gguf_find_key(meta, (prefix + suffix).c_str()) >= 0; };
    const bool factor_present = present("rope.scaling.factor");

    // metadata copy without rope.scaling.factor, to test the rope.scale_linear fallback honestly
    // (llama.cpp reads scale_linear only when the factor is absent: src/llama-model.cpp:1425)
    gguf_context * meta_nofactor = nullptr;
    hp_snap base_nofactor;
    memset(&base_nofactor, 0, sizeof(base_nofactor));
    if (factor_present) {
        meta_nofactor = gguf_init_empty();
        gguf_set_kv(meta_nofactor, meta);
        gguf_remove_key(meta_nofactor, (prefix + "rope.scaling.factor").c_str());
        base_nofactor = run_isolated("", [&](hp_snap & s) { load_hparams_only(o.model, meta_nofactor, o.overrides, s); });
    }

    json_writer w;
    w.begin_object();
    w.kv_bool("ok", true);
    w.kv_str("model", o.model);
    w.kv_str("arch", arch);
    w.kv_str("rope_type", rope_type_name(base.rope_type));
    // a key can be read by the generic loader and still be irrelevant at inference when the
    // architecture does not apply RoPE at all (rope_type "none", e.g. gpt2, mpt)
    w.kv_bool("arch_uses_rope", base.rope_type != LLAMA_ROPE_TYPE_NONE);
    w.kv_str("method", "sentinel --override-kv per key, hparams-only load in a forked child; "
                       "read = override consulted by llama_model_loader::get_key, or the resolved hparam moved, "
                       "or the load failed only with the sentinel");

    struct result { std::string suffix; bool read; };
    std::vector<result> results, extra_results;
    json_writer details;
    details.begin_object();

    auto run_tests = [&](const key_test * tests, size_t n, std::vector<result> & out) {
        for (size_t ti = 0; ti < n; ++ti) {
            const key_test & t = tests[ti];
            const std::string key = prefix + t.suffix;
            const bool is_scale_linear = std::string(t.suffix) == "rope.scale_linear";
            const bool use_nofactor = is_scale_linear && factor_present;
            const hp_snap & b = use_nofactor ? base_nofactor : base;

            details.key(t.suffix).begin_object();
            details.kv_str("key", key);
            details.kv_str("hparam", hp_field_name(t.field));
            details.kv_bool("present_in_file", present(t.suffix));

            if (use_nofactor && b.status != 0) {
                details.kv_str("error", std::string("baseline without rope.scaling.factor failed: ") + b.error);
                details.kv_bool("read", false);
                details.end_object();
                out.push_back({t.suffix, false});
                continue;
            }

            const double bv = hp_value(b, t.field);
            const sentinel sv = pick_sentinel(t, bv);

            std::vector<llama_model_kv_override> ovr;
            for (const auto & u : o.overrides) {
                if (key != u.key) ovr.push_back(u); // the sentinel replaces a user override of the same key
            }
            ovr.push_back(make_override(key, t.kind, sv.num, sv.str.c_str()));

            hp_snap r = run_isolated(key, [&](hp_snap & s) {
                load_hparams_only(o.model, use_nofactor ? meta_nofactor : nullptr, ovr, s);
            });

            const bool consulted = r.consulted != 0;
            bool moved = false;
            bool load_failed = r.status != 0;
            if (!load_failed) {
                const double rv = hp_value(r, t.field);
                moved = (float) rv != (float) bv;
            }
            const bool read = consulted || moved || load_failed;

            details.key("baseline");
            write_hp_value(details, t.field, bv);
            details.key("sentinel");
            if (t.kind == 's') details.str(sv.str);
            else if (t.kind == 'b') details.boolean(sv.num != 0);
            else if (t.kind == 'i') details.i64((int64_t) sv.num);
            else details.f64(sv.num);
            if (!load_failed) {
                details.key("observed");
                write_hp_value(details, t.field, hp_value(r, t.field));
            } else {
                details.kv_null("observed");
                details.kv_str("load_error", r.error);
            }
            details.kv_bool("consulted", consulted);
            details.kv_bool("moved", moved);
            details.kv_bool("read", read);
            if (is_scale_linear) {
                details.kv_bool("tested_with_factor_removed", use_nofactor);
                details.kv_str("note", factor_present
                    ? "rope.scale_linear is only read when rope.scaling.factor is absent; this file has "
                      "rope.scaling.factor, so here scale_linear is shadowed; tested on a metadata copy with "
                      "rope.scaling.factor removed"
                    : "rope.scale_linear is only read when rope.scaling.factor is absent (true for this file)");
                details.kv_bool("shadowed_in_this_file", factor_present);
            }
            details.end_object();
            out.push_back({t.suffix, read});
        }
    };

    run_tests(KEY_TESTS, sizeof(KEY_TESTS) / sizeof(KEY_TESTS[0]), results);
    run_tests(EXTRA_KEY_TESTS, sizeof(EXTRA_KEY_TESTS) / sizeof(EXTRA_KEY_TESTS[0]), extra_results);
    details.end_object();

    w.key("keys").begin_object();
    for (const auto & r : results) w.kv_bool(r.suffix, r.read);
    w.end_object();
    w.key("extra_keys").begin_object();
    for (const auto & r : extra_results) w.kv_bool(r.suffix, r.read);
    w.end_object();
    w.key("details").raw(details.out);
    w.end_object();

    if (meta_nofactor) gguf_free(meta_nofactor);
    gguf_free(meta);
    if (meta_ctx) ggml_free(meta_ctx);

    print_json_line(w.out);
    return 0;
}

} // namespace ggufrope
