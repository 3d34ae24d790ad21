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
//
// One file per job (this header declares what they share):
//   overrides.cpp  --override-kv parsing and its JSON
//   log.cpp        llama.cpp log capture (errors, warnings, override consultation)
//   hparams.def    the hparams table, each field named once (X-macro)
//   hparams.cpp    hparams-only load into an hp_snap, its JSON, field access by hp_field
//   isolation.cpp  run a load in a forked child, snapshot back through a pipe
//   effective.cpp  no_alloc model + real llama_context: "effective"
//   which_keys.cpp --which-keys
//   main.cpp       arguments and the default mode
#pragma once

#include "ggufrope_common.h"

#include "llama.h"

#include <functional>
#include <string>
#include <vector>

struct gguf_context;

namespace ggufrope {

// ---- options (main.cpp) ----------------------------------------------------------------

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

// ---- --override-kv (overrides.cpp) -------------------------------------------------------

std::vector<std::string> parse_csv_row(const std::string & input);
void parse_kv_override(const std::string & item, std::vector<llama_model_kv_override> & out);
// llama.cpp wants the array terminated by an entry with an empty key
std::vector<llama_model_kv_override> terminated(std::vector<llama_model_kv_override> v);
// kind: i f b s (the override type); num for i/f/b, str for s
llama_model_kv_override make_override(const std::string & key, char kind, double num, const char * str);
void write_overrides(json_writer & w, const std::vector<llama_model_kv_override> & ovr);

// ---- log capture (log.cpp) ---------------------------------------------------------------

struct log_state {
    bool verbose = false;
    std::string all;      // everything (INFO included): override-consultation detection
    std::string errors;   // ERROR lines: explain failures
    std::string warnings; // WARN lines (e.g. an --override-kv with the wrong type is ignored)
};

extern log_state g_log;

void log_capture(enum ggml_log_level level, const char * text, void *);
std::string last_error_lines(const std::string & s, size_t max_lines = 3);
// "override_warnings": llama.cpp warns and ignores an override whose type does not match the key
void write_override_warnings(json_writer & w);

// ---- the hparams table (hparams.def, hparams.cpp) -----------------------------------------

const char * rope_type_name(int t);
const char * rope_scaling_name(int t);
const char * swa_type_name(int t);

// the kinds in hparams.def: how a value is stored in hp_snap and written as JSON
struct hp_kind_u32          { using type = uint32_t; static void write(json_writer & w, type v) { w.u64(v); } };
struct hp_kind_count        { using type = int;      static void write(json_writer & w, type v) { w.i64(v); } };
struct hp_kind_f32          { using type = float;    static void write(json_writer & w, type v) { w.f32(v); } };
struct hp_kind_flag         { using type = bool;     static void write(json_writer & w, type v) { w.boolean(v); } };
struct hp_kind_rope_type    { using type = int;      static void write(json_writer & w, type v) { w.str(rope_type_name(v)); } };
struct hp_kind_rope_scaling { using type = int;      static void write(json_writer & w, type v) { w.str(rope_scaling_name(v)); } };
struct hp_kind_swa_type     { using type = int;      static void write(json_writer & w, type v) { w.str(swa_type_name(v)); } };

enum class hp_field {
#define HP(name, kind, section, expr) name,
#include "hparams.def"
#undef HP
};

// hparams snapshot (POD, so it can be sent through a pipe from a forked child)
struct hp_snap {
    int  status;                 // 0 ok, 1 exception, 2 ggml abort, 3 child died
    char error[1024];
    char arch[64];
    int  consulted;              // override for the watched key was looked up by the loader
    int  override_type_rejected; // ... but with a type llama.cpp rejected (warned + ignored)

#define HP(name, kind, section, expr) hp_kind_##kind::type name;
#include "hparams.def"
#undef HP

    int  rope_sections[4];
    int  n_swa_list;             // layers with hp.is_swa(il), in order (at most 512: LLAMA_MAX_LAYERS)
    short swa_list[512];
    int  n_rope_tensors;
    char rope_tensors[8][64];
};

void snap_set_error(hp_snap & s, int status, const std::string & msg);

// hparams-only load: GGUF header -> llama_model_loader -> llama_model::load_hparams.
// `meta` (optional) replaces the file's metadata (used to test keys with another key removed).
void load_hparams_only(const std::string & path, gguf_context * meta,
                       const std::vector<llama_model_kv_override> & overrides, hp_snap & s);

void write_hparams(json_writer & w, const hp_snap & s); // "hparams" and "hparams_extra"

const char * hp_field_name(hp_field f);
double       hp_value(const hp_snap & s, hp_field f);
void         write_hp_value(json_writer & w, hp_field f, double v); // v from hp_value

// ---- isolation (isolation.cpp) -------------------------------------------------------------

// Run fn (a load) in a forked child and return its snapshot; a ggml abort or a crash in the
// child becomes status 2 / 3 with the reason in .error. watch_key: full key name whose
// override consultation should be detected ("" = none).
hp_snap run_isolated(const std::string & watch_key, const std::function<void(hp_snap &)> & fn);

// ---- the jobs ---------------------------------------------------------------------------

// "effective": no_alloc model + real llama_context (effective.cpp); false + err on failure
bool write_effective(json_writer & w, const probe_opts & o, std::string & err);

int which_keys(const probe_opts & o); // which_keys.cpp; prints the JSON line

} // namespace ggufrope
