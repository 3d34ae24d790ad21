// Drain llama.cpp's asynchronous logger when a tool exits.
//
// common/log.cpp prints through a worker thread and deliberately leaks the logger singleton
// (common_log_main), so nothing flushes its queue when main() returns: on a busy machine the
// tail of the output (llama-perplexity's "Final estimate", llama-completion's generated text
// and timings) is lost although the exit code is 0 (llama.cpp#22142). Measured on this 2-core
// machine with three busy-loop processes beside it: 34 of 40 llama-perplexity runs lost their
// final line.
//
// The top-level CMakeLists.txt compiles this file into the llama.cpp tools ggufrope runs.
// A static object registers, before main(), an atexit handler that pauses the logger:
// common_log::pause() queues an end marker and joins the worker, which first writes every
// message queued before it. It runs on a normal exit (return from main, exit()); _exit()
// from a signal handler (llama-cli's second Ctrl-C) skips it, as it should.
// GGUFROPE_NO_LOG_DRAIN=1 turns it off (benchmarks/bench_log_drain.py compares both in one run).

#include "log.h"

#include <cstdlib>

namespace {

void ggufrope_drain_log() {
    const char * off = std::getenv("GGUFROPE_NO_LOG_DRAIN");
    if (off && *off && *off != '0') {
        return;
    }
    common_log_pause(common_log_main());
}

struct DrainAtExit {
    DrainAtExit() { std::atexit(ggufrope_drain_log); }
};

const DrainAtExit drain_at_exit;

}  // namespace
