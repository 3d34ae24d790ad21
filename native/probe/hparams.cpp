// The hparams table (hparams.def) put to work: an hparams-only load into an hp_snap, its JSON
// ("hparams" / "hparams_extra"), and access to one field by hp_field for --which-keys.

#include "probe.h"

#include "llama-arch.h"
#include "llama-hparams.h"
#include "llama-model-loader.h"
#include "llama-model.h"

#include <memory>

namespace ggufrope {

const char * rope_type_name(int t) {
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

const char * rope_scaling_name(int t) {
    switch (t) {
        case LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED: return "unspecified";
        case LLAMA_ROPE_SCALING_TYPE_NONE:        return "none";
        case LLAMA_ROPE_SCALING_TYPE_LINEAR:      return "linear";
        case LLAMA_ROPE_SCALING_TYPE_YARN:        return "yarn";
        case LLAMA_ROPE_SCALING_TYPE_LONGROPE:    return "longrope";
        default:                                  return "unknown";
    }
}

const char * swa_type_name(int t) {
    switch (t) {
        case LLAMA_SWA_TYPE_NONE:      return "none";
        case LLAMA_SWA_TYPE_STANDARD:  return "standard";
        case LLAMA_SWA_TYPE_CHUNKED:   return "chunked";
        case LLAMA_SWA_TYPE_SYMMETRIC: return "symmetric";
        default:                       return "unknown";
    }
}

void snap_set_error(hp_snap & s, int status, const std::string & msg) {
    s.status = status;
    snprintf(s.error, sizeof(s.error), "%s", msg.c_str());
}

// ---- load ---------------------------------------------------------------------------------

static int count_swa_layers(const llama_hparams & hp) {
    int n = 0;
    for (uint32_t il = 0; il < hp.n_layer(); ++il) {
        if (hp.is_swa(il)) n++;
    }
    return n;
}

static void fill_snap(hp_snap & s, const llama_model & model, const llama_model_loader & ml) {
    const llama_hparams & hp = model.hparams;
    snprintf(s.arch, sizeof(s.arch), "%s", ml.get_arch_name().c_str());
#define HP(name, kind, section, expr) s.name = static_cast<hp_kind_##kind::type>(expr);
#include "hparams.def"
#undef HP
    for (int i = 0; i < 4; ++i) s.rope_sections[i] = hp.rope_sections[i];
    s.n_swa_list = 0;
    for (uint32_t il = 0; il < hp.n_layer() && s.n_swa_list < 512; ++il) {
        if (hp.is_swa(il)) s.swa_list[s.n_swa_list++] = (short) il;
    }
    s.n_rope_tensors = 0;
    for (const auto & it : ml.weights_map) {
        if (it.first.find("rope") != std::string::npos && s.n_rope_tensors < 8) {
            snprintf(s.rope_tensors[s.n_rope_tensors++], 64, "%s", it.first.c_str());
        }
    }
}

void load_hparams_only(const std::string & path, gguf_context * meta,
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

// ---- JSON ---------------------------------------------------------------------------------

enum class hp_section { core, extra };

static void write_section(json_writer & w, const hp_snap & s, hp_section sec) {
#define HP(name, kind, section, expr) \
    if (sec == hp_section::section) { w.key(#name); hp_kind_##kind::write(w, s.name); }
#include "hparams.def"
#undef HP
}

void write_hparams(json_writer & w, const hp_snap & s) {
    w.key("hparams").begin_object();
    write_section(w, s, hp_section::core);
    w.end_object();

    w.key("hparams_extra").begin_object();
    write_section(w, s, hp_section::extra);
    w.key("rope_sections").begin_array();
    for (int i = 0; i < 4; ++i) w.i64(s.rope_sections[i]);
    w.end_array();
    w.key("swa_layers").begin_array();
    for (int i = 0; i < s.n_swa_list; ++i) w.i64(s.swa_list[i]);
    w.end_array();
    w.key("rope_tensors").begin_array();
    for (int i = 0; i < s.n_rope_tensors; ++i) w.str(s.rope_tensors[i]);
    w.end_array();
    w.end_object();
}

// ---- one field ----------------------------------------------------------------------------

const char * hp_field_name(hp_field f) {
    switch (f) {
#define HP(name, kind, section, expr) case hp_field::name: return #name;
#include "hparams.def"
#undef HP
    }
    return "?";
}

double hp_value(const hp_snap & s, hp_field f) {
    switch (f) {
#define HP(name, kind, section, expr) case hp_field::name: return (double) s.name;
#include "hparams.def"
#undef HP
    }
    return NAN;
}

void write_hp_value(json_writer & w, hp_field f, double v) {
    switch (f) {
#define HP(name, kind, section, expr) \
        case hp_field::name: hp_kind_##kind::write(w, static_cast<hp_kind_##kind::type>(v)); return;
#include "hparams.def"
#undef HP
    }
}

} // namespace ggufrope
