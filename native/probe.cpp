// ggufrope-probe: print what this llama.cpp resolves from a GGUF model's metadata for RoPE
// and context length, and (--which-keys) find empirically which RoPE keys it reads.
//
// NOTE: this tool includes llama.cpp *internal* headers from src/ (llama-model.h,
// llama-model-loader.h, llama-context.h, ...). That is deliberate and acceptable because the
// ggufrope superbuild always compiles it against the exact llama.cpp tree it ships with
// (LLAMA_CPP_DIR); it is not meant to build against any other llama.cpp version.
//
// How values are obtained (nothing is re-implemented, all numbers come from llama.cpp code):
//   "hparams"   : llama_model_loader (reads only the GGUF header) + llama_model_create +
//                 llama_model::load_hparams(). No vocab, no tensors, no tensor data.
//   "effective" : llama_model_load_from_file() with no_alloc = true and load_mode = NONE
//                 (the same "simulate" path llama.cpp's --fit uses: tensors are created as
//                 metadata only, no data is read or allocated), then llama_init_from_model()
//                 with the requested n_ctx and RoPE flags; the values are read back from the
//                 context's llama_cparams, and n_ctx_train_after is the model's n_ctx_train
//                 after context creation (llama_init_from_model may raise it for YaRN).
//   --which-keys: repeated hparams-only loads, each with one sentinel --override-kv, each in
//                 a forked child so that a GGML_ASSERT in llama.cpp cannot take the probe down.

#include "ggufrope_common.h"

#include "llama.h"
#include "ggml.h"
#include "gguf.h"

#include "llama-arch.h"
#include "llama-context.h"
#include "llama-cparams.h"
#include "llama-hparams.h"
#include "llama-model-loader.h"
#include "llama-model.h"

#include <memory>
#include <string>
#include <vector>

#ifndef _WIN32
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#define GGUFROPE_HAVE_FORK 1
#endif

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

// --------------------------------------------------------------------------------------
// --override-kv parsing: same syntax and quirks as llama.cpp common/arg.cpp (parse_csv_row)
// and common/common.cpp (string_parse_kv_override): int via atol, float via atof, bool
// only "true"/"false", str at most 127 chars, key shorter than 128 chars.
// --------------------------------------------------------------------------------------

static std::vector<std::string> parse_csv_row(const std::string & input) {
    std::vector<std::string> fields;
    std::string field;
    bool in_quotes = false;
    for (size_t i = 0; i < input.length(); ++i) {
        const char ch = input[i];
        if (ch == '"') {
            if (!in_quotes) {
                if (!field.empty()) {
                    field += '"';
                } else {
                    in_quotes = true;
                }
            } else {
                if (i + 1 < input.length() && input[i + 1] == '"') {
                    field += '"';
                    ++i;
                } else {
                    in_quotes = false;
                }
            }
        } else if (ch == ',') {
            if (in_quotes) {
                field += ',';
            } else {
                fields.push_back(std::move(field));
                field.clear();
            }
        } else {
            field += ch;
        }
    }
    fields.push_back(std::move(field));
    return fields;
}

static void parse_kv_override(const std::string & item, std::vector<llama_model_kv_override> & out) {
    const char * data = item.c_str();
    const char * sep = strchr(data, '=');
    if (sep == nullptr || sep - data >= 128) {
        throw usage_error("malformed KV override '" + item + "'");
    }
    llama_model_kv_override kvo;
    memset(&kvo, 0, sizeof(kvo));
    memcpy(kvo.key, data, sep - data);
    kvo.key[sep - data] = 0;
    sep++;
    if (strncmp(sep, "int:", 4) == 0) {
        kvo.tag = LLAMA_KV_OVERRIDE_TYPE_INT;
        kvo.val_i64 = std::atol(sep + 4);
    } else if (strncmp(sep, "float:", 6) == 0) {
        kvo.tag = LLAMA_KV_OVERRIDE_TYPE_FLOAT;
        kvo.val_f64 = std::atof(sep + 6);
    } else if (strncmp(sep, "bool:", 5) == 0) {
        kvo.tag = LLAMA_KV_OVERRIDE_TYPE_BOOL;
        if (strcmp(sep + 5, "true") == 0) {
            kvo.val_bool = true;
        } else if (strcmp(sep + 5, "false") == 0) {
            kvo.val_bool = false;
        } else {
            throw usage_error("invalid boolean value for KV override '" + item + "'");
        }
    } else if (strncmp(sep, "str:", 4) == 0) {
        kvo.tag = LLAMA_KV_OVERRIDE_TYPE_STR;
        if (strlen(sep + 4) > 127) {
            throw usage_error("malformed KV override '" + item + "', value cannot exceed 127 chars");
        }
        strncpy(kvo.val_str, sep + 4, 127);
        kvo.val_str[127] = '\0';
    } else {
        throw usage_error("invalid type for KV override '" + item + "'");
    }
    out.push_back(kvo);
}

// llama.cpp wants the array terminated by an entry with an empty key
static std::vector<llama_model_kv_override> terminated(std::vector<llama_model_kv_override> v) {
    llama_model_kv_override end;
    memset(&end, 0, sizeof(end));
    v.push_back(end);
    return v;
}

static llama_model_kv_override make_override(const std::string & key, char kind, double num, const char * str) {
    llama_model_kv_override o;
    memset(&o, 0, sizeof(o));
    snprintf(o.key, sizeof(o.key), "%s", key.c_str());
    switch (kind) {
        case 'i': o.tag = LLAMA_KV_OVERRIDE_TYPE_INT;   o.val_i64  = (int64_t) num; break;
        case 'f': o.tag = LLAMA_KV_OVERRIDE_TYPE_FLOAT; o.val_f64  = num;           break;
        case 'b': o.tag = LLAMA_KV_OVERRIDE_TYPE_BOOL;  o.val_bool = num != 0.0;    break;
        case 's': o.tag = LLAMA_KV_OVERRIDE_TYPE_STR;   snprintf(o.val_str, sizeof(o.val_str), "%s", str); break;
    }
    return o;
}

// --------------------------------------------------------------------------------------
// names
// --------------------------------------------------------------------------------------

static const char * rope_type_name(int t) {
    switch (t) {
        case LLAMA_ROPE_TYPE_NONE:   return "none";
        case LLAMA_ROPE_TYPE_NORM:   return "norm";
        case LLAMA_ROPE_TYPE_NEOX:   return "neox";
        case LLAMA_ROPE_TYPE_MROPE:  return "mrope";
        case LLAMA_ROPE_TYPE_IMROPE: return "imrope";
        case LLAMA_ROPE_TYPE_VISION: return "vision";
        default:                     return "unknown";
    }
}

static const char * rope_scaling_name(int t) {
    switch (t) {
        case LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED: return "unspecified";
        case LLAMA_ROPE_SCALING_TYPE_NONE:        return "none";
        case LLAMA_ROPE_SCALING_TYPE_LINEAR:      return "linear";
        case LLAMA_ROPE_SCALING_TYPE_YARN:        return "yarn";
        case LLAMA_ROPE_SCALING_TYPE_LONGROPE:    return "longrope";
        default:                                  return "unknown";
    }
}

static const char * swa_type_name(int t) {
    switch (t) {
        case LLAMA_SWA_TYPE_NONE:      return "none";
        case LLAMA_SWA_TYPE_STANDARD:  return "standard";
        case LLAMA_SWA_TYPE_CHUNKED:   return "chunked";
        case LLAMA_SWA_TYPE_SYMMETRIC: return "symmetric";
        default:                       return "unknown";
    }
}

// --------------------------------------------------------------------------------------
// log capture
// --------------------------------------------------------------------------------------

struct log_state {
    bool verbose = false;
    std::string all;     // everything (INFO included): override-consultation detection
    std::string errors;  // ERROR lines: explain failures
    std::string warnings; // WARN lines (e.g. an --override-kv with the wrong type is ignored)
};

static log_state g_log;

static void log_capture(enum ggml_log_level level, const char * text, void *) {
    if (g_log.verbose) {
        fputs(text, stderr);
    }
    if (g_log.all.size() < (64u << 20)) {
        g_log.all += text;
    }
    if (level == GGML_LOG_LEVEL_ERROR) {
        g_log.errors += text;
    }
    if (level == GGML_LOG_LEVEL_WARN && g_log.warnings.size() < (1u << 20)) {
        g_log.warnings += text;
    }
}

static std::string last_error_lines(const std::string & s, size_t max_lines = 3) {
    std::vector<std::string> lines;
    for (auto & l : split(s, '\n')) {
        if (!l.empty()) lines.push_back(l);
    }
    std::string out;
    const size_t start = lines.size() > max_lines ? lines.size() - max_lines : 0;
    for (size_t i = start; i < lines.size(); ++i) {
        if (!out.empty()) out += "; ";
        out += lines[i];
    }
    return out;
}

// --------------------------------------------------------------------------------------
// hparams snapshot (POD, so it can be sent through a pipe from a forked child)
// --------------------------------------------------------------------------------------

struct hp_snap {
    int  status;              // 0 ok, 1 exception, 2 ggml abort, 3 child died
    char error[1024];
    char arch[64];
    int  consulted;           // override for the watched key was looked up by the loader
    int  override_type_rejected; // ... but with a type llama.cpp rejected (warned + ignored)

    uint32_t n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_embd_head_k, n_embd_head_v;
    uint32_t n_rot, n_rot_swa, n_ctx_orig_yarn, n_swa;
    int      rope_type, rope_scaling_type, swa_type;
    float    rope_freq_base_train, rope_freq_scale_train;
    float    rope_freq_base_train_swa, rope_freq_scale_train_swa;
    float    yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
    float    rope_yarn_log_mul, rope_attn_factor, rope_scaling_alpha;
    int      rope_finetuned;
    int      rope_sections[4];
    int      n_swa_layers;
    int      n_rope_tensors;
    char     rope_tensors[8][64];
};

static void snap_set_error(hp_snap & s, int status, const std::string & msg) {
    s.status = status;
    snprintf(s.error, sizeof(s.error), "%s", msg.c_str());
}

static void fill_snap(hp_snap & s, const llama_model & model, const llama_model_loader & ml) {
    const llama_hparams & hp = model.hparams;
    snprintf(s.arch, sizeof(s.arch), "%s", ml.get_arch_name().c_str());
    s.n_ctx_train     = hp.n_ctx_train;
    s.n_embd          = hp.n_embd;
    s.n_layer         = hp.n_layer();
    s.n_head          = hp.n_head(0);
    s.n_head_kv       = hp.n_head_kv(0);
    s.n_embd_head_k   = hp.n_embd_head_k(0);
    s.n_embd_head_v   = hp.n_embd_head_v(0);
    s.n_rot           = hp.n_rot_full;
    s.n_rot_swa       = hp.n_rot_swa;
    s.n_ctx_orig_yarn = hp.n_ctx_orig_yarn;
    s.n_swa           = hp.n_swa;
    s.rope_type       = (int) hp.rope_type;
    s.rope_scaling_type = (int) hp.rope_scaling_type_train;
    s.swa_type        = (int) hp.swa_type;
    s.rope_freq_base_train      = hp.rope_freq_base_train;
    s.rope_freq_scale_train     = hp.rope_freq_scale_train;
    s.rope_freq_base_train_swa  = hp.rope_freq_base_train_swa;
    s.rope_freq_scale_train_swa = hp.rope_freq_scale_train_swa;
    s.yarn_ext_factor   = hp.yarn_ext_factor;
    s.yarn_attn_factor  = hp.yarn_attn_factor;
    s.yarn_beta_fast    = hp.yarn_beta_fast;
    s.yarn_beta_slow    = hp.yarn_beta_slow;
    s.rope_yarn_log_mul = hp.rope_yarn_log_mul;
    s.rope_attn_factor  = hp.rope_attn_factor;
    s.rope_scaling_alpha = hp.rope_scaling_alpha;
    s.rope_finetuned    = hp.rope_finetuned ? 1 : 0;
    for (int i = 0; i < 4; ++i) s.rope_sections[i] = hp.rope_sections[i];
    s.n_swa_layers = 0;
    for (uint32_t il = 0; il < hp.n_layer(); ++il) {
        if (hp.is_swa(il)) s.n_swa_layers++;
    }
    s.n_rope_tensors = 0;
    for (const auto & it : ml.weights_map) {
        if (it.first.find("rope") != std::string::npos && s.n_rope_tensors < 8) {
            snprintf(s.rope_tensors[s.n_rope_tensors++], 64, "%s", it.first.c_str());
        }
    }
}

// hparams-only load: GGUF header -> llama_model_loader -> llama_model::load_hparams.
// `meta` (optional) replaces the file's metadata (used to test keys with another key removed).
static void load_hparams_only(const std::string & path, gguf_context * meta,
                              const std::vector<llama_model_kv_override> & overrides, hp_snap & s) {
    memset(&s, 0, sizeof(s));
    auto ovr = terminated(overrides);
    try {
        llama_model_params mp = llama_model_default_params();
        mp.kv_overrides = ovr.data();
        mp.load_mode    = LLAMA_LOAD_MODE_NONE;
        mp.no_alloc     = true;
        mp.n_gpu_layers = 0;

        std::vector<std::string> splits;
        std::unique_ptr<llama_model_loader> ml;
        if (meta) {
            ml.reset(new llama_model_loader(meta, nullptr, nullptr, std::string(), splits, nullptr,
                                            LLAMA_LOAD_MODE_NONE, false, true, false, ovr.data(), nullptr));
        } else {
            ml.reset(new llama_model_loader(nullptr, nullptr, nullptr, path, splits, nullptr,
                                            LLAMA_LOAD_MODE_NONE, false, true, false, ovr.data(), nullptr));
        }
        std::unique_ptr<llama_model> model(llama_model_create(*ml, mp));
        if (!model) {
            throw std::runtime_error("llama_model_create returned null (architecture '" + ml->get_arch_name() + "' not supported)");
        }
        model->hparams.vocab_only = false;
        model->hparams.no_alloc   = true;
        model->load_hparams(*ml);
        fill_snap(s, *model, *ml);
        s.status = 0;
    } catch (const std::exception & e) {
        std::string msg = e.what();
        const std::string logged = last_error_lines(g_log.errors, 2);
        if (msg.empty() || msg.find("failed to load model") != std::string::npos) {
            if (!logged.empty()) msg += " (" + logged + ")";
        }
        snap_set_error(s, 1, msg);
    }
}

// ---- isolation: run a load in a forked child, get the snapshot back through a pipe ----

static int      g_child_fd   = -1;
static hp_snap * g_child_snap = nullptr;

static void write_all(int fd, const void * buf, size_t n) {
    const char * p = static_cast<const char *>(buf);
    while (n > 0) {
        const ssize_t w = write(fd, p, n);
        if (w <= 0) return;
        p += w;
        n -= (size_t) w;
    }
}

static void child_abort_cb(const char * message) {
    if (g_child_snap && g_child_fd >= 0) {
        snap_set_error(*g_child_snap, 2, std::string("ggml abort: ") + (message ? message : "?"));
        write_all(g_child_fd, g_child_snap, sizeof(hp_snap));
    }
    _exit(2);
}

// watch_key: full key name whose override consultation should be detected ("" = none)
template <class F>
static hp_snap run_isolated(const std::string & watch_key, F && fn) {
    hp_snap s;
    memset(&s, 0, sizeof(s));
#ifdef GGUFROPE_HAVE_FORK
    int fds[2];
    if (pipe(fds) != 0) {
        snap_set_error(s, 3, "pipe() failed");
        return s;
    }
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        snap_set_error(s, 3, "fork() failed");
        return s;
    }
    if (pid == 0) {
        close(fds[0]);
        g_child_fd = fds[1];
        static hp_snap cs;
        memset(&cs, 0, sizeof(cs));
        g_child_snap = &cs;
        g_log.all.clear();
        g_log.errors.clear();
        ggml_set_abort_callback(child_abort_cb);
        fn(cs);
        if (!watch_key.empty()) {
            cs.consulted = g_log.all.find("'" + watch_key + "' = ") != std::string::npos ? 1 : 0;
            cs.override_type_rejected =
                g_log.all.find("Bad metadata override type for key '" + watch_key + "'") != std::string::npos ? 1 : 0;
            if (cs.override_type_rejected) cs.consulted = 1;
        }
        write_all(fds[1], &cs, sizeof(cs));
        close(fds[1]);
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    char * p = reinterpret_cast<char *>(&s);
    while (got < sizeof(s)) {
        const ssize_t r = read(fds[0], p + got, sizeof(s) - got);
        if (r <= 0) break;
        got += (size_t) r;
    }
    close(fds[0]);
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    if (got != sizeof(s)) {
        memset(&s, 0, sizeof(s));
        if (WIFSIGNALED(wstatus)) {
            snap_set_error(s, 3, strfmt("child killed by signal %d", WTERMSIG(wstatus)));
        } else {
            snap_set_error(s, 3, strfmt("child exited with status %d without a result", WEXITSTATUS(wstatus)));
        }
    }
#else
    g_log.all.clear();
    fn(s);
    if (!watch_key.empty()) {
        s.consulted = g_log.all.find("'" + watch_key + "' = ") != std::string::npos ? 1 : 0;
    }
#endif
    return s;
}

// --------------------------------------------------------------------------------------
// JSON output of a snapshot
// --------------------------------------------------------------------------------------

static void write_hparams(json_writer & w, const hp_snap & s) {
    w.key("hparams").begin_object();
    w.kv_u64("n_ctx_train",   s.n_ctx_train);
    w.kv_u64("n_embd",        s.n_embd);
    w.kv_u64("n_layer",       s.n_layer);
    w.kv_u64("n_head",        s.n_head);
    w.kv_u64("n_head_kv",     s.n_head_kv);
    w.kv_u64("n_embd_head_k", s.n_embd_head_k);
    w.kv_u64("n_embd_head_v", s.n_embd_head_v);
    w.kv_u64("n_rot",         s.n_rot);
    w.kv_str("rope_type",         rope_type_name(s.rope_type));
    w.kv_str("rope_scaling_type", rope_scaling_name(s.rope_scaling_type));
    w.kv_f32("rope_freq_base_train",  s.rope_freq_base_train);
    w.kv_f32("rope_freq_scale_train", s.rope_freq_scale_train);
    w.kv_u64("n_ctx_orig_yarn",   s.n_ctx_orig_yarn);
    w.kv_bool("rope_finetuned",   s.rope_finetuned != 0);
    w.kv_f32("yarn_ext_factor",   s.yarn_ext_factor);
    w.kv_f32("yarn_attn_factor",  s.yarn_attn_factor);
    w.kv_f32("yarn_beta_fast",    s.yarn_beta_fast);
    w.kv_f32("yarn_beta_slow",    s.yarn_beta_slow);
    w.kv_f32("rope_yarn_log_mul", s.rope_yarn_log_mul);
    w.kv_f32("rope_attn_factor",  s.rope_attn_factor);
    w.end_object();

    // not part of the core shape, but cheap and relevant for long-context settings
    w.key("hparams_extra").begin_object();
    w.kv_u64("n_rot_swa",                 s.n_rot_swa);
    w.kv_str("swa_type",                  swa_type_name(s.swa_type));
    w.kv_u64("n_swa",                     s.n_swa);
    w.kv_i64("n_swa_layers",              s.n_swa_layers);
    w.kv_f32("rope_freq_base_train_swa",  s.rope_freq_base_train_swa);
    w.kv_f32("rope_freq_scale_train_swa", s.rope_freq_scale_train_swa);
    w.kv_f32("rope_scaling_alpha",        s.rope_scaling_alpha);
    w.key("rope_sections").begin_array();
    for (int i = 0; i < 4; ++i) w.i64(s.rope_sections[i]);
    w.end_array();
    w.key("rope_tensors").begin_array();
    for (int i = 0; i < s.n_rope_tensors; ++i) w.str(s.rope_tensors[i]);
    w.end_array();
    w.end_object();
}

static void write_overrides(json_writer & w, const std::vector<llama_model_kv_override> & ovr) {
    w.key("overrides").begin_array();
    for (const auto & o : ovr) {
        w.begin_object();
        w.kv_str("key", o.key);
        switch (o.tag) {
            case LLAMA_KV_OVERRIDE_TYPE_INT:   w.kv_str("type", "int");   w.kv_i64("value", o.val_i64);   break;
            case LLAMA_KV_OVERRIDE_TYPE_FLOAT: w.kv_str("type", "float"); w.kv_f64("value", o.val_f64);   break;
            case LLAMA_KV_OVERRIDE_TYPE_BOOL:  w.kv_str("type", "bool");  w.kv_bool("value", o.val_bool); break;
            case LLAMA_KV_OVERRIDE_TYPE_STR:   w.kv_str("type", "str");   w.kv_str("value", o.val_str);   break;
        }
        w.end_object();
    }
    w.end_array();
}

// --------------------------------------------------------------------------------------
// effective values: no_alloc model + real llama_context
// --------------------------------------------------------------------------------------

struct probe_opts {
    std::string model;
    bool which_keys   = false;
    bool verbose      = false;
    bool no_effective = false;
    uint32_t n_ctx    = 0;
    int   rope_scaling_type = LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED;
    float rope_freq_base    = 0.0f;
    float rope_freq_scale   = 0.0f;
    uint32_t yarn_orig_ctx  = 0;
    float yarn_ext_factor   = -1.0f;
    float yarn_attn_factor  = -1.0f;
    float yarn_beta_fast    = -1.0f;
    float yarn_beta_slow    = -1.0f;
    std::vector<llama_model_kv_override> overrides;
};

static bool write_effective(json_writer & w, const probe_opts & o, std::string & err) {
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

    // what the graph actually feeds to ggml_rope_ext for layer 0 and (if any) SWA layers
    int first_swa = -1;
    for (uint32_t il = 0; il < hp.n_layer(); ++il) {
        if (hp.is_swa(il)) { first_swa = (int) il; break; }
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

// --------------------------------------------------------------------------------------
// --which-keys
// --------------------------------------------------------------------------------------

struct key_test {
    const char * suffix;
    char         kind;   // override type: i f b s
    const char * field;  // resolved hparam it lands in
};

static const key_test KEY_TESTS[] = {
    { "context_length",                        'i', "n_ctx_train"           },
    { "rope.dimension_count",                  'i', "n_rot"                 },
    { "rope.freq_base",                        'f', "rope_freq_base_train"  },
    { "rope.scale_linear",                     'f', "rope_freq_scale_train" },
    { "rope.scaling.type",                     's', "rope_scaling_type"     },
    { "rope.scaling.factor",                   'f', "rope_freq_scale_train" },
    { "rope.scaling.original_context_length",  'i', "n_ctx_orig_yarn"       },
    { "rope.scaling.attn_factor",              'f', "rope_attn_factor"      },
    { "rope.scaling.finetuned",                'b', "rope_finetuned"        },
    { "rope.scaling.yarn_log_multiplier",      'f', "rope_yarn_log_mul"     },
    { "rope.scaling.yarn_ext_factor",          'f', "yarn_ext_factor"       },
    { "rope.scaling.yarn_attn_factor",         'f', "yarn_attn_factor"      },
    { "rope.scaling.yarn_beta_fast",           'f', "yarn_beta_fast"        },
    { "rope.scaling.yarn_beta_slow",           'f', "yarn_beta_slow"        },
};

// not in the required list, reported separately under "extra_keys"
static const key_test EXTRA_KEY_TESTS[] = {
    { "rope.freq_base_swa",       'f', "rope_freq_base_train_swa" },
    { "rope.dimension_count_swa", 'i', "n_rot_swa"                },
    { "rope.scaling.alpha",       'f', "rope_scaling_alpha"       },
};

static double snap_field(const hp_snap & s, const std::string & f) {
    if (f == "n_ctx_train")              return s.n_ctx_train;
    if (f == "n_rot")                    return s.n_rot;
    if (f == "n_rot_swa")                return s.n_rot_swa;
    if (f == "rope_freq_base_train")     return s.rope_freq_base_train;
    if (f == "rope_freq_base_train_swa") return s.rope_freq_base_train_swa;
    if (f == "rope_freq_scale_train")    return s.rope_freq_scale_train;
    if (f == "rope_scaling_type")        return s.rope_scaling_type;
    if (f == "n_ctx_orig_yarn")          return s.n_ctx_orig_yarn;
    if (f == "rope_attn_factor")         return s.rope_attn_factor;
    if (f == "rope_finetuned")           return s.rope_finetuned;
    if (f == "rope_yarn_log_mul")        return s.rope_yarn_log_mul;
    if (f == "yarn_ext_factor")          return s.yarn_ext_factor;
    if (f == "yarn_attn_factor")         return s.yarn_attn_factor;
    if (f == "yarn_beta_fast")           return s.yarn_beta_fast;
    if (f == "yarn_beta_slow")           return s.yarn_beta_slow;
    if (f == "rope_scaling_alpha")       return s.rope_scaling_alpha;
    return NAN;
}

static void write_field_value(json_writer & w, const std::string & field, double v) {
    if (field == "rope_scaling_type") {
        w.str(rope_scaling_name((int) v));
    } else if (field == "rope_finetuned") {
        w.boolean(v != 0.0);
    } else if (field == "n_ctx_train" || field == "n_rot" || field == "n_rot_swa" || field == "n_ctx_orig_yarn") {
        w.i64((int64_t) v);
    } else {
        w.f32((float) v);
    }
}

struct sentinel {
    double      num = 0;     // override value (i/f/b)
    std::string str;         // override value (s)
    double      expect = 0;  // expected resolved hparam
};

static sentinel pick_sentinel(const key_test & t, double base) {
    sentinel s;
    const std::string f = t.field;
    switch (t.kind) {
        case 'i': {
            const double d = (f == "n_rot" || f == "n_rot_swa") ? (base > 2 ? -2 : 2) : 1003;
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
            if (f == "rope_freq_scale_train") { cand[0] = 7.0;     cand[1] = 5.0; }     // factor F -> scale 1/F
            else if (f == "rope_freq_base_train" || f == "rope_freq_base_train_swa") { cand[0] = 12345.5; cand[1] = 23456.5; }
            else if (f == "rope_attn_factor")  { cand[0] = 1.25;    cand[1] = 1.5;  }
            else if (f == "rope_yarn_log_mul") { cand[0] = 0.125;   cand[1] = 0.25; }
            else if (f == "yarn_ext_factor")   { cand[0] = 0.4375;  cand[1] = 0.5625; }
            else if (f == "yarn_attn_factor")  { cand[0] = 1.4375;  cand[1] = 1.5625; }
            else if (f == "yarn_beta_fast")    { cand[0] = 23.5;    cand[1] = 24.5; }
            else if (f == "yarn_beta_slow")    { cand[0] = 1.75;    cand[1] = 2.75; }
            else                               { cand[0] = 3.25;    cand[1] = 4.25; }
            for (double c : cand) {
                const double exp = f == "rope_freq_scale_train" ? (double) (1.0f / (float) c) : (double) (float) c;
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

static int which_keys(const probe_opts & o) {
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
            details.kv_str("hparam", t.field);
            details.kv_bool("present_in_file", present(t.suffix));

            if (use_nofactor && b.status != 0) {
                details.kv_str("error", std::string("baseline without rope.scaling.factor failed: ") + b.error);
                details.kv_bool("read", false);
                details.end_object();
                out.push_back({t.suffix, false});
                continue;
            }

            const double bv = snap_field(b, t.field);
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
                const double rv = snap_field(r, t.field);
                moved = (float) rv != (float) bv;
            }
            const bool read = consulted || moved || load_failed;

            details.key("baseline");
            write_field_value(details, t.field, bv);
            details.key("sentinel");
            if (t.kind == 's') details.str(sv.str);
            else if (t.kind == 'b') details.boolean(sv.num != 0);
            else if (t.kind == 'i') details.i64((int64_t) sv.num);
            else details.f64(sv.num);
            if (!load_failed) {
                details.key("observed");
                write_field_value(details, t.field, snap_field(r, t.field));
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

// --------------------------------------------------------------------------------------
// main
// --------------------------------------------------------------------------------------

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
        // llama.cpp warns and ignores an override whose type does not match the key
        w.key("override_warnings").begin_array();
        {
            std::vector<std::string> seen;
            for (const auto & line : split(g_log.warnings, '\n')) {
                if (line.find("override") == std::string::npos) continue;
                bool dup = false;
                for (const auto & x : seen) dup = dup || x == line;
                if (dup) continue;
                seen.push_back(line);
                w.str(line);
            }
        }
        w.end_array();
        w.end_object();
        print_json_line(w.out);
    } catch (const std::exception & e) {
        fail(e.what());
    }

    llama_backend_free();
    return 0;
}
