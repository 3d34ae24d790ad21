// ggufrope-gguf-oracle: dump a GGUF file as parsed by ggml's own reader (ggml/src/gguf.cpp).
//
// This is a differential-testing oracle for ggufrope's Python GGUF parser, so it does no
// validation of its own: whatever gguf_init_from_file() accepts is printed, whatever it
// rejects becomes {"ok": false, "error": <ggml's log messages>}.
//
// The file is opened the way llama.cpp's llama_model_loader opens models:
// gguf_init_from_file(fname, {no_alloc = true, ctx = &ggml_ctx}), i.e. tensor infos are
// turned into (data-less) ggml tensors but tensor data is never read. Pass --no-ctx to use
// ctx = NULL instead (skips the ggml_context creation step).
//
// Output notes (see docs/native.md):
//   * strings come from ggml's C-string accessors (gguf_get_val_str / gguf_get_arr_str /
//     gguf_get_key), so a string containing a NUL byte is reported up to the first NUL;
//   * bytes that are not valid UTF-8 are escaped as \udcXX (Python "surrogateescape");
//   * bool values are what ggml stores: any non-zero byte reads as true;
//   * float32 values are printed with %.9g, float64 with %.17g, NaN/Inf as NaN/Infinity;
//   * tensor "shape" is ne[] with trailing 1s removed (ggml does not keep the n_dims stored
//     in the file; ggml_n_dims() semantics), "ne" is the full 4-element ne[].

#include "ggufrope_common.h"

#include "ggml.h"
#include "gguf.h"

#include <csignal>
#include <cctype>
#include <string>
#include <unistd.h>

using namespace ggufrope;

static const char * USAGE =
    "usage: ggufrope-gguf-oracle FILE [--no-ctx] [--verbose]\n"
    "\n"
    "Parse FILE with ggml's gguf reader (gguf_init_from_file, no_alloc=true) and print\n"
    "one JSON object:\n"
    "  {\"ok\":true,\"version\":3,\"alignment\":32,\"data_offset\":N,\"n_kv\":N,\"n_tensors\":N,\n"
    "   \"kv\":[{\"key\":K,\"type\":\"UINT32|...|STRING|ARRAY\",\"value\":V,\"array_type\":T}...],\n"
    "   \"tensors\":[{\"name\":S,\"type\":\"Q4_1\",\"type_id\":3,\"shape\":[...],\"ne\":[4 ints],\n"
    "                \"offset\":N,\"size\":N}...]}\n"
    "On rejection: {\"ok\":false,\"error\":\"...\"} and exit code 1.\n"
    "\n"
    "  --no-ctx    call gguf_init_from_file with ctx=NULL (default: create a no_alloc ggml\n"
    "              context like llama.cpp's model loader does)\n"
    "  --verbose   let ggml log to stderr\n";

static const char * gguf_type_upper(enum gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8:   return "UINT8";
        case GGUF_TYPE_INT8:    return "INT8";
        case GGUF_TYPE_UINT16:  return "UINT16";
        case GGUF_TYPE_INT16:   return "INT16";
        case GGUF_TYPE_UINT32:  return "UINT32";
        case GGUF_TYPE_INT32:   return "INT32";
        case GGUF_TYPE_FLOAT32: return "FLOAT32";
        case GGUF_TYPE_BOOL:    return "BOOL";
        case GGUF_TYPE_STRING:  return "STRING";
        case GGUF_TYPE_ARRAY:   return "ARRAY";
        case GGUF_TYPE_UINT64:  return "UINT64";
        case GGUF_TYPE_INT64:   return "INT64";
        case GGUF_TYPE_FLOAT64: return "FLOAT64";
        default:                return "UNKNOWN";
    }
}

// one element of type t at p (non-string types)
static void write_scalar(json_writer & w, enum gguf_type t, const void * p) {
    switch (t) {
        case GGUF_TYPE_UINT8:   { uint8_t  v; memcpy(&v, p, sizeof v); w.u64(v); } break;
        case GGUF_TYPE_INT8:    { int8_t   v; memcpy(&v, p, sizeof v); w.i64(v); } break;
        case GGUF_TYPE_UINT16:  { uint16_t v; memcpy(&v, p, sizeof v); w.u64(v); } break;
        case GGUF_TYPE_INT16:   { int16_t  v; memcpy(&v, p, sizeof v); w.i64(v); } break;
        case GGUF_TYPE_UINT32:  { uint32_t v; memcpy(&v, p, sizeof v); w.u64(v); } break;
        case GGUF_TYPE_INT32:   { int32_t  v; memcpy(&v, p, sizeof v); w.i64(v); } break;
        case GGUF_TYPE_FLOAT32: { float    v; memcpy(&v, p, sizeof v); w.f32(v); } break;
        case GGUF_TYPE_BOOL:    { bool     v; memcpy(&v, p, sizeof v); w.boolean(v); } break;
        case GGUF_TYPE_UINT64:  { uint64_t v; memcpy(&v, p, sizeof v); w.u64(v); } break;
        case GGUF_TYPE_INT64:   { int64_t  v; memcpy(&v, p, sizeof v); w.i64(v); } break;
        case GGUF_TYPE_FLOAT64: { double   v; memcpy(&v, p, sizeof v); w.f64(v); } break;
        default: w.null(); break;
    }
}

static size_t elem_size(enum gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: return 1;
        case GGUF_TYPE_BOOL:  return sizeof(bool);   // ggml stores bools as C++ bool (1 byte)
        case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
        case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
        case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
        default: return 0;
    }
}

static std::string upper(const char * s) {
    std::string r = s ? s : "?";
    for (auto & c : r) c = (char) toupper((unsigned char) c);
    return r;
}

// collected ggml log output (errors/warnings explain a rejection)
struct log_capture {
    bool verbose = false;
    std::string errors;
};

static void capture_log(enum ggml_log_level level, const char * text, void * ud) {
    auto * cap = static_cast<log_capture *>(ud);
    if (cap->verbose) {
        fputs(text, stderr);
    }
    if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_CONT) {
        cap->errors += text;
    }
}

static void on_fatal_signal(int sig) {
    // async-signal-safe: fixed strings and write() only
    const char * msg = "{\"ok\":false,\"error\":\"fatal signal in ggml gguf reader\",\"signal\":\"?\"}\n";
    switch (sig) {
        case SIGSEGV: msg = "{\"ok\":false,\"error\":\"fatal signal in ggml gguf reader\",\"signal\":\"SIGSEGV\"}\n"; break;
        case SIGBUS:  msg = "{\"ok\":false,\"error\":\"fatal signal in ggml gguf reader\",\"signal\":\"SIGBUS\"}\n"; break;
        case SIGFPE:  msg = "{\"ok\":false,\"error\":\"fatal signal in ggml gguf reader\",\"signal\":\"SIGFPE\"}\n"; break;
        case SIGILL:  msg = "{\"ok\":false,\"error\":\"fatal signal in ggml gguf reader\",\"signal\":\"SIGILL\"}\n"; break;
    }
    ssize_t r = write(1, msg, strlen(msg));
    (void) r;
    _exit(1);
}

static std::string trim_log(const std::string & s) {
    // join lines with "; ", drop empty ones
    std::string out;
    for (const auto & line : split(s, '\n')) {
        if (line.empty()) continue;
        if (!out.empty()) out += "; ";
        out += line;
    }
    return out;
}

int main(int argc, char ** argv) {
    std::string path;
    bool verbose = false;
    bool use_ctx = true;

    try {
        arg_cursor a(argc, argv);
        while (!a.done()) {
            if (a.match("--help") || a.match("-h")) {
                fputs(USAGE, stdout);
                return 0;
            } else if (a.match("--verbose")) {
                verbose = true;
            } else if (a.match("--no-ctx")) {
                use_ctx = false;
            } else if (a.peek().size() > 1 && a.peek()[0] == '-' && a.peek() != "--") {
                throw usage_error("unknown option: " + a.peek());
            } else {
                if (a.peek() == "--") { a.i++; if (a.done()) break; }
                if (!path.empty()) throw usage_error("more than one FILE given");
                path = a.peek();
                a.i++;
            }
        }
        if (path.empty()) throw usage_error("missing FILE (see --help)");
    } catch (const std::exception & e) {
        fail(e.what());
    }

    log_capture cap;
    cap.verbose = verbose;
    ggml_log_set(capture_log, &cap);
    ggml_set_abort_callback(abort_to_json);
    signal(SIGSEGV, on_fatal_signal);
    signal(SIGBUS,  on_fatal_signal);
    signal(SIGFPE,  on_fatal_signal);
    signal(SIGILL,  on_fatal_signal);

    struct ggml_context * gctx = nullptr;
    struct gguf_init_params params = {
        /*.no_alloc =*/ true,
        /*.ctx      =*/ use_ctx ? &gctx : nullptr,
    };

    struct gguf_context * ctx = nullptr;
    try {
        ctx = gguf_init_from_file(path.c_str(), params);
    } catch (const std::exception & e) {
        fail(std::string("exception in gguf_init_from_file: ") + e.what());
    }
    if (ctx == nullptr) {
        std::string msg = trim_log(cap.errors);
        if (msg.empty()) msg = "gguf_init_from_file failed";
        fail(msg);
    }

    json_writer w;
    w.begin_object();
    w.kv_bool("ok", true);
    w.kv_str("file", path);
    w.kv_u64("version", gguf_get_version(ctx));
    w.kv_u64("alignment", gguf_get_alignment(ctx));
    w.kv_u64("data_offset", gguf_get_data_offset(ctx));

    const int64_t n_kv = gguf_get_n_kv(ctx);
    const int64_t n_tensors = gguf_get_n_tensors(ctx);
    w.kv_i64("n_kv", n_kv);
    w.kv_i64("n_tensors", n_tensors);

    w.key("kv").begin_array();
    for (int64_t i = 0; i < n_kv; ++i) {
        const enum gguf_type t = gguf_get_kv_type(ctx, i);
        w.begin_object();
        w.kv_str("key", gguf_get_key(ctx, i));
        w.kv_str("type", gguf_type_upper(t));
        if (t == GGUF_TYPE_ARRAY) {
            const enum gguf_type at = gguf_get_arr_type(ctx, i);
            const size_t n = gguf_get_arr_n(ctx, i);
            w.kv_str("array_type", gguf_type_upper(at));
            w.kv_u64("n", n);
            w.key("value").begin_array();
            if (at == GGUF_TYPE_STRING) {
                for (size_t j = 0; j < n; ++j) {
                    w.str(gguf_get_arr_str(ctx, i, j));
                }
            } else {
                const char * data = static_cast<const char *>(gguf_get_arr_data(ctx, i));
                const size_t es = elem_size(at);
                for (size_t j = 0; j < n; ++j) {
                    write_scalar(w, at, data + j * es);
                }
            }
            w.end_array();
        } else if (t == GGUF_TYPE_STRING) {
            w.kv_str("value", gguf_get_val_str(ctx, i));
        } else {
            w.key("value");
            write_scalar(w, t, gguf_get_val_data(ctx, i));
        }
        w.end_object();
    }
    w.end_array();

    w.key("tensors").begin_array();
    for (int64_t i = 0; i < n_tensors; ++i) {
        const enum ggml_type tt = gguf_get_tensor_type(ctx, i);
        const int64_t * ne = gguf_get_tensor_ne(ctx, i);
        int n_dims = 1;
        for (int d = GGML_MAX_DIMS - 1; d >= 1; --d) {
            if (ne[d] != 1) { n_dims = d + 1; break; }
        }
        w.begin_object();
        w.kv_str("name", gguf_get_tensor_name(ctx, i));
        w.kv_str("type", upper(ggml_type_name(tt)));
        w.kv_i64("type_id", (int64_t) tt);
        w.key("shape").begin_array();
        for (int d = 0; d < n_dims; ++d) w.i64(ne[d]);
        w.end_array();
        w.key("ne").begin_array();
        for (int d = 0; d < GGML_MAX_DIMS; ++d) w.i64(ne[d]);
        w.end_array();
        w.kv_u64("offset", gguf_get_tensor_offset(ctx, i));
        w.kv_u64("size", gguf_get_tensor_size(ctx, i));
        w.end_object();
    }
    w.end_array();
    w.end_object();

    gguf_free(ctx);
    if (gctx) ggml_free(gctx);

    print_json_line(w.out);
    return 0;
}
