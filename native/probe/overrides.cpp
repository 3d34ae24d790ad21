// --override-kv parsing: same syntax and quirks as llama.cpp common/arg.cpp:1350 (parse_csv_row)
// and common/common.cpp:653 (string_parse_kv_override): int via atol, float via atof, bool
// only "true"/"false", str at most 127 chars, key shorter than 128 chars.

#include "probe.h"

namespace ggufrope {

std::vector<std::string> parse_csv_row(const std::string & input) {
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

void parse_kv_override(const std::string & item, std::vector<llama_model_kv_override> & out) {
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

std::vector<llama_model_kv_override> terminated(std::vector<llama_model_kv_override> v) {
    llama_model_kv_override end;
    memset(&end, 0, sizeof(end));
    v.push_back(end);
    return v;
}

llama_model_kv_override make_override(const std::string & key, char kind, double num, const char * str) {
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

void write_overrides(json_writer & w, const std::vector<llama_model_kv_override> & ovr) {
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

} // namespace ggufrope
