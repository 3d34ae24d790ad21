// Capture of llama.cpp / ggml logging (installed with llama_log_set in main.cpp): the probe
// reads it to explain failures (ERROR lines), to list ignored overrides (WARN lines) and, in
// --which-keys, to see whether the loader consulted an override (llama_model_loader::get_key
// logs the key when it applies one). Printed to stderr as well with --verbose.

#include "probe.h"

namespace ggufrope {

log_state g_log;

void log_capture(enum ggml_log_level level, const char * text, void *) {
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

std::string last_error_lines(const std::string & s, size_t max_lines) {
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

void write_override_warnings(json_writer & w) {
    w.key("override_warnings").begin_array();
    std::vector<std::string> seen;
    for (const auto & line : split(g_log.warnings, '\n')) {
        if (line.find("override") == std::string::npos) continue;
        bool dup = false;
        for (const auto & x : seen) dup = dup || x == line;
        if (dup) continue;
        seen.push_back(line);
        w.str(line);
    }
    w.end_array();
}

} // namespace ggufrope
