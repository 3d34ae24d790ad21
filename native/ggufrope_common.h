// Shared helpers for the ggufrope native tools: a tiny JSON writer, number formatting,
// strict argument parsing and the uniform error/exit convention.
//
// Conventions (all tools):
//   * exactly one JSON object on stdout;
//   * on error: {"ok": false, "error": "..."} on stdout and exit code 1;
//   * llama.cpp / ggml logging is silenced unless --verbose (then it goes to stderr).
//
// Only depends on ggml.h so every tool can include it.
#pragma once

#include "ggml.h"

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace ggufrope {

// --------------------------------------------------------------------------------------
// errors
// --------------------------------------------------------------------------------------

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline std::string strfmt(const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    const int n = vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    std::string s;
    if (n > 0) {
        s.resize((size_t) n + 1);
        vsnprintf(&s[0], s.size(), fmt, ap2);
        s.resize((size_t) n);
    }
    va_end(ap2);
    return s;
}

// --------------------------------------------------------------------------------------
// JSON
// --------------------------------------------------------------------------------------

// Decode one well-formed UTF-8 sequence at s[i..n). Returns its length (1..4) or 0 if the
// bytes at i do not start a valid sequence. "Valid" follows the Unicode definition that
// Python's UTF-8 codec uses: no overlong forms, no surrogates (U+D800..U+DFFF), nothing
// above U+10FFFF.
inline size_t utf8_valid_seq_len(const unsigned char * s, size_t i, size_t n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
        return 1;
    }
    auto cont = [&](size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) {
        return cont(1) ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2)) {
            return 0;
        }
        const unsigned char c1 = s[i + 1];
        if (c == 0xE0 && c1 < 0xA0) return 0; // overlong
        if (c == 0xED && c1 > 0x9F) return 0; // surrogates
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3)) {
            return 0;
        }
        const unsigned char c1 = s[i + 1];
        if (c == 0xF0 && c1 < 0x90) return 0; // overlong
        if (c == 0xF4 && c1 > 0x8F) return 0; // > U+10FFFF
        return 4;
    }
    return 0; // 0x80..0xC1, 0xF5..0xFF
}

// JSON string escaping. Valid UTF-8 passes through unchanged; '"', '\\' and control
// characters are escaped (\n \r \t \b \f, else \u00XX). Every byte that is not part of a
// valid UTF-8 sequence is written as the lone surrogate \udcXX (XX = the byte, lower-case
// hex), which is exactly Python's "surrogateescape" error handler:
//     json.loads(out)[...].encode("utf-8", "surrogateescape") == original bytes
// and equals json.dumps(raw.decode("utf-8", "surrogateescape")) modulo ensure_ascii.
inline void json_escape_to(std::string & out, const char * data, size_t n) {
    const unsigned char * s = reinterpret_cast<const unsigned char *>(data);
    out.push_back('"');
    size_t i = 0;
    while (i < n) {
        const unsigned char c = s[i];
        if (c < 0x80) {
            switch (c) {
                case '"':  out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n";  break;
                case '\r': out += "\\r";  break;
                case '\t': out += "\\t";  break;
                case '\b': out += "\\b";  break;
                case '\f': out += "\\f";  break;
                default:
                    if (c < 0x20) {
                        out += strfmt("\\u%04x", c);
                    } else {
                        out.push_back((char) c);
                    }
            }
            i++;
            continue;
        }
        const size_t len = utf8_valid_seq_len(s, i, n);
        if (len == 0) {
            out += strfmt("\\udc%02x", c);
            i++;
        } else {
            out.append(data + i, len);
            i += len;
        }
    }
    out.push_back('"');
}

inline std::string json_str(const std::string & s) {
    std::string out;
    json_escape_to(out, s.data(), s.size());
    return out;
}

// Non-finite numbers are not JSON; we emit the tokens Python's json module accepts.
inline std::string json_nonfinite(double v) {
    if (std::isnan(v)) return "NaN";
    return v > 0 ? "Infinity" : "-Infinity";
}

// float32: %.9g round-trips every float32
inline std::string json_f32(float v) {
    if (!std::isfinite(v)) return json_nonfinite(v);
    return strfmt("%.9g", (double) v);
}

// float64: %.17g round-trips every float64
inline std::string json_f64(double v) {
    if (!std::isfinite(v)) return json_nonfinite(v);
    return strfmt("%.17g", v);
}

// Minimal streaming JSON writer that takes care of commas. Output is accumulated in a
// string and printed at the end, so an error half-way never leaves partial JSON behind.
class json_writer {
public:
    std::string out;

    json_writer & begin_object() { sep(); out.push_back('{'); first.push_back(true); return *this; }
    json_writer & end_object()   { out.push_back('}'); first.pop_back(); return *this; }
    json_writer & begin_array()  { sep(); out.push_back('['); first.push_back(true); return *this; }
    json_writer & end_array()    { out.push_back(']'); first.pop_back(); return *this; }

    json_writer & key(const std::string & k) {
        sep();
        json_escape_to(out, k.data(), k.size());
        out.push_back(':');
        after_key = true;
        return *this;
    }

    json_writer & raw(const std::string & v) { sep(); out += v; return *this; }
    json_writer & str(const std::string & v) { sep(); json_escape_to(out, v.data(), v.size()); return *this; }
    json_writer & str(const char * v, size_t n) { sep(); json_escape_to(out, v, n); return *this; }
    json_writer & boolean(bool v)   { return raw(v ? "true" : "false"); }
    json_writer & null()            { return raw("null"); }
    json_writer & i64(int64_t v)    { return raw(strfmt("%lld", (long long) v)); }
    json_writer & u64(uint64_t v)   { return raw(strfmt("%llu", (unsigned long long) v)); }
    json_writer & f32(float v)      { return raw(json_f32(v)); }
    json_writer & f64(double v)     { return raw(json_f64(v)); }

    // key + value shorthands
    json_writer & kv_str (const std::string & k, const std::string & v) { return key(k).str(v); }
    json_writer & kv_bool(const std::string & k, bool v)                { return key(k).boolean(v); }
    json_writer & kv_i64 (const std::string & k, int64_t v)             { return key(k).i64(v); }
    json_writer & kv_u64 (const std::string & k, uint64_t v)            { return key(k).u64(v); }
    json_writer & kv_f32 (const std::string & k, float v)               { return key(k).f32(v); }
    json_writer & kv_f64 (const std::string & k, double v)              { return key(k).f64(v); }
    json_writer & kv_null(const std::string & k)                        { return key(k).null(); }

private:
    std::vector<bool> first;
    bool after_key = false;

    void sep() {
        if (after_key) {
            after_key = false;
            return;
        }
        if (!first.empty()) {
            if (!first.back()) {
                out.push_back(',');
            }
            first.back() = false;
        }
    }
};

inline void print_json_line(const std::string & s) {
    fwrite(s.data(), 1, s.size(), stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

inline std::string error_json(const std::string & msg, const char * extra_key = nullptr, bool extra_val = false) {
    json_writer w;
    w.begin_object();
    w.kv_bool("ok", false);
    w.kv_str("error", msg);
    if (extra_key) {
        w.kv_bool(extra_key, extra_val);
    }
    w.end_object();
    return w.out;
}

[[noreturn]] inline void fail(const std::string & msg) {
    print_json_line(error_json(msg));
    exit(1);
}

// --------------------------------------------------------------------------------------
// logging
// --------------------------------------------------------------------------------------

inline void log_noop(enum ggml_log_level, const char *, void *) {}

inline void log_stderr(enum ggml_log_level, const char * text, void *) {
    fputs(text, stderr);
    fflush(stderr);
}

// ggml's GGML_ABORT / GGML_ASSERT end in abort(); with this callback installed the process
// still exits, but with a JSON error object on stdout and exit code 1 instead of a raw
// SIGABRT. The JSON carries "ggml_abort": true so callers can tell it apart from a clean
// rejection.
inline void abort_to_json(const char * message) {
    print_json_line(error_json(std::string("ggml abort: ") + (message ? message : "?"), "ggml_abort", true));
    _Exit(1);
}

// --------------------------------------------------------------------------------------
// argument parsing
// --------------------------------------------------------------------------------------

inline int64_t parse_i64(const std::string & s, const char * what) {
    if (s.empty()) {
        throw usage_error(strfmt("%s: empty value", what));
    }
    char * end = nullptr;
    errno = 0;
    const long long v = strtoll(s.c_str(), &end, 10);
    if (errno != 0 || end == s.c_str() || *end != '\0') {
        throw usage_error(strfmt("%s: invalid integer '%s'", what, s.c_str()));
    }
    return v;
}

inline double parse_f64(const std::string & s, const char * what) {
    if (s.empty()) {
        throw usage_error(strfmt("%s: empty value", what));
    }
    char * end = nullptr;
    errno = 0;
    const double v = strtod(s.c_str(), &end);
    if (end == s.c_str() || *end != '\0') {
        throw usage_error(strfmt("%s: invalid number '%s'", what, s.c_str()));
    }
    return v;
}

inline float parse_f32(const std::string & s, const char * what) {
    return (float) parse_f64(s, what);
}

inline std::vector<std::string> split(const std::string & s, char sep) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        const size_t pos = s.find(sep, start);
        if (pos == std::string::npos) {
            parts.push_back(s.substr(start));
            break;
        }
        parts.push_back(s.substr(start, pos - start));
        start = pos + 1;
    }
    return parts;
}

// Simple cursor over argv: supports "--opt value" and "--opt=value".
struct arg_cursor {
    int argc;
    char ** argv;
    int i = 1;

    arg_cursor(int argc, char ** argv) : argc(argc), argv(argv) {}

    bool done() const { return i >= argc; }
    std::string peek() const { return argv[i]; }

    // If argv[i] is `name` or `name=...`, consume it and return true; the value (if any) is
    // fetched with value().
    bool match(const char * name) {
        const std::string a = argv[i];
        const size_t n = strlen(name);
        if (a == name) {
            pending_inline = false;
            i++;
            current = name;
            return true;
        }
        if (a.size() > n && a.compare(0, n, name) == 0 && a[n] == '=') {
            pending_inline = true;
            inline_value = a.substr(n + 1);
            i++;
            current = name;
            return true;
        }
        return false;
    }

    std::string value() {
        if (pending_inline) {
            pending_inline = false;
            return inline_value;
        }
        if (i >= argc) {
            throw usage_error(strfmt("missing value for %s", current.c_str()));
        }
        return argv[i++];
    }

private:
    bool pending_inline = false;
    std::string inline_value;
    std::string current;
};

} // namespace ggufrope
