// ggufrope-rpc-worker: llama.cpp's RPC server (ggml_backend_rpc_start_server, the engine behind
// ggml-rpc-server) with one addition, a capacity cap: --mem-mib N makes every served device
// report at most N MiB of free and total memory.
//
// Why: a llama.cpp client spreads layers over its devices in proportion to the free memory
// each reports (src/llama-model.cpp, load_tensors, the default split) and `--fit` sizes the
// context from it. A CPU worker reports the host's whole RAM; on a machine that does other
// work too, the owner wants to lend only part of it. ggml-rpc-server of this llama.cpp has no
// such option (older trees had `-m MEM`, for the CPU backend only).
//
// The cap is what the worker advertises; allocations are not limited (as with the old -m).
// Everything else (protocol, devices, threads, cache) is ggml-rpc-server's:
//
//   ggufrope-rpc-worker [-H host] [-p port] [-t threads] [-d dev1,dev2] [-c] [--mem-mib N]
//
// A device wrapper forwards every call to the real device; only get_memory is capped. The
// backend created for it points back at the wrapper (backend->device), because the RPC
// server answers GET_DEVICE_MEMORY from ggml_backend_get_device(backend).

#include "ggml-backend.h"
#include "ggml-backend-impl.h"
#include "ggml-rpc.h"

#include <algorithm>
#include <cerrno>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Params {
    std::string host = "127.0.0.1";
    int port = 50052;
    int threads = std::max(1u, std::thread::hardware_concurrency() / 2);
    std::vector<std::string> devices;
    bool cache = false;
    size_t mem_mib = 0;  // 0: no cap
};

void usage(const char * argv0, const Params & p) {
    fprintf(stderr,
            "Usage: %s [options]\n\n"
            "llama.cpp's RPC server (ggml-rpc-server) with an optional memory cap.\n\n"
            "  -H, --host HOST        host to bind to (default: %s)\n"
            "  -p, --port PORT        port to bind to (default: %d)\n"
            "  -t, --threads N        threads for the CPU device (default: %d)\n"
            "  -d, --device LIST      comma-separated devices (default: accelerators, else CPU)\n"
            "  -c, --cache            enable the local tensor cache ($LLAMA_CACHE/rpc)\n"
            "  --mem-mib N            report at most N MiB free/total per device\n"
            "  --list-devices         print the devices and exit\n",
            argv0, p.host.c_str(), p.port, p.threads);
}

bool parse_int(const char * s, long long lo, long long hi, long long & out) {
    char * end = nullptr;
    errno = 0;
    long long v = std::strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        return false;
    }
    out = v;
    return true;
}

struct CappedDevice {
    ggml_backend_device dev;     // first member: a ggml_backend_dev_t points here
    ggml_backend_dev_t inner;
    size_t cap;
};

CappedDevice * capped(ggml_backend_dev_t d) {
    return reinterpret_cast<CappedDevice *>(d);
}

void capped_get_memory(ggml_backend_dev_t d, size_t * free, size_t * total) {
    CappedDevice * c = capped(d);
    c->inner->iface.get_memory(c->inner, free, total);
    *free = std::min(*free, c->cap);
    *total = std::min(*total, c->cap);
}

void capped_get_props(ggml_backend_dev_t d, ggml_backend_dev_props * props) {
    CappedDevice * c = capped(d);
    c->inner->iface.get_props(c->inner, props);
    props->memory_free = std::min(props->memory_free, c->cap);
    props->memory_total = std::min(props->memory_total, c->cap);
}

ggml_backend_t capped_init_backend(ggml_backend_dev_t d, const char * params) {
    CappedDevice * c = capped(d);
    ggml_backend_t b = c->inner->iface.init_backend(c->inner, params);
    if (b) {
        b->device = d;
    }
    return b;
}

ggml_backend_dev_t make_capped(ggml_backend_dev_t inner, size_t cap) {
    auto * c = new CappedDevice{*inner, inner, cap};  // lives as long as the server: never freed
    c->dev.iface.get_memory = capped_get_memory;
    c->dev.iface.get_props = capped_get_props;
    c->dev.iface.init_backend = capped_init_backend;
    return &c->dev;
}

std::vector<ggml_backend_dev_t> pick_devices(const Params & p) {
    std::vector<ggml_backend_dev_t> out;
    for (const auto & name : p.devices) {
        ggml_backend_dev_t dev = ggml_backend_dev_by_name(name.c_str());
        if (!dev) {
            fprintf(stderr, "error: unknown device: %s\n", name.c_str());
            return {};
        }
        out.push_back(dev);
    }
    if (out.empty()) {  // as ggml-rpc-server: accelerators first, else the CPU
        for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
            ggml_backend_dev_t dev = ggml_backend_dev_get(i);
            auto t = ggml_backend_dev_type(dev);
            if (t != GGML_BACKEND_DEVICE_TYPE_CPU && t != GGML_BACKEND_DEVICE_TYPE_ACCEL) {
                out.push_back(dev);
            }
        }
    }
    if (out.empty()) {
        if (ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)) {
            out.push_back(dev);
        }
    }
    return out;
}

}  // namespace

int main(int argc, char ** argv) {
    std::setlocale(LC_NUMERIC, "C");
    ggml_backend_load_all();

    Params p;
    bool list = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&](const char * what) -> const char * {
            if (++i >= argc) {
                fprintf(stderr, "error: %s needs a value\n", what);
                std::exit(1);
            }
            return argv[i];
        };
        long long n = 0;
        if (a == "-H" || a == "--host") {
            p.host = value("--host");
        } else if (a == "-p" || a == "--port") {
            if (!parse_int(value("--port"), 1, 65535, n)) {
                fprintf(stderr, "error: --port: not a TCP port: %s\n", argv[i]);
                return 1;
            }
            p.port = (int) n;
        } else if (a == "-t" || a == "--threads") {
            if (!parse_int(value("--threads"), 1, 4096, n)) {
                fprintf(stderr, "error: --threads: not a thread count: %s\n", argv[i]);
                return 1;
            }
            p.threads = (int) n;
        } else if (a == "-d" || a == "--device") {
            std::stringstream ss(value("--device"));
            std::string item;
            while (std::getline(ss, item, ',')) {
                if (!item.empty()) {
                    p.devices.push_back(item);
                }
            }
        } else if (a == "-c" || a == "--cache") {
            p.cache = true;
        } else if (a == "--mem-mib") {
            if (!parse_int(value("--mem-mib"), 1, 1LL << 40, n)) {
                fprintf(stderr, "error: --mem-mib: not a positive number of MiB: %s\n", argv[i]);
                return 1;
            }
            p.mem_mib = (size_t) n;
        } else if (a == "--list-devices") {
            list = true;
        } else if (a == "-h" || a == "--help") {
            usage(argv[0], p);
            return 0;
        } else {
            fprintf(stderr, "error: unknown argument: %s\n", a.c_str());
            usage(argv[0], p);
            return 1;
        }
    }

    if (list) {
        for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
            ggml_backend_dev_t dev = ggml_backend_dev_get(i);
            size_t free = 0, total = 0;
            ggml_backend_dev_memory(dev, &free, &total);
            printf("%s\t%s\t%zu\t%zu\n", ggml_backend_dev_name(dev), ggml_backend_dev_description(dev),
                   total / 1024 / 1024, free / 1024 / 1024);
        }
        return 0;
    }

    std::vector<ggml_backend_dev_t> devices = pick_devices(p);
    if (devices.empty()) {
        fprintf(stderr, "error: no devices to serve\n");
        return 1;
    }
    if (p.mem_mib) {
        for (auto & d : devices) {
            d = make_capped(d, p.mem_mib * 1024 * 1024);
        }
    }

    std::string cache_dir;
    if (p.cache) {
        const char * env = std::getenv("LLAMA_CACHE");
        const char * xdg = std::getenv("XDG_CACHE_HOME");
        const char * home = std::getenv("HOME");
        std::filesystem::path base = env ? std::filesystem::path(env)
                                   : xdg ? std::filesystem::path(xdg) / "llama.cpp"
                                   : std::filesystem::path(home ? home : ".") / ".cache" / "llama.cpp";
        std::filesystem::path dir = base / "rpc";
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec) {
            fprintf(stderr, "error: cannot create the cache directory %s\n", dir.string().c_str());
            return 1;
        }
        cache_dir = dir.string();
    }

    ggml_backend_reg_t reg = ggml_backend_reg_by_name("RPC");
    if (!reg) {
        fprintf(stderr, "error: this build has no RPC backend (GGML_RPC=OFF)\n");
        return 1;
    }
    auto start = (decltype(ggml_backend_rpc_start_server) *) ggml_backend_reg_get_proc_address(
        reg, "ggml_backend_rpc_start_server");
    if (!start) {
        fprintf(stderr, "error: the RPC backend has no ggml_backend_rpc_start_server\n");
        return 1;
    }
    if (p.mem_mib) {
        printf("ggufrope: devices report at most %zu MiB (--mem-mib)\n", p.mem_mib);
    }
    fflush(stdout);
    std::string endpoint = p.host + ":" + std::to_string(p.port);
    start(endpoint.c_str(), p.cache ? cache_dir.c_str() : nullptr, (size_t) p.threads, devices.size(),
          devices.data());
    return 1;  // the server only returns when it cannot listen or accept
}
