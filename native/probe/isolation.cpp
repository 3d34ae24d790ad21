// Isolation for --which-keys: each hparams-only load runs in a forked child, so that a
// GGML_ASSERT in llama.cpp (e.g. an invalid rope.scaling.type is an assert in
// llama_model::load_hparams, not an error return) cannot take the probe down. The child sends
// its hp_snap (a POD) back through a pipe; an abort or a signal becomes the snapshot's error.
// Without fork() (Windows) the load runs in-process, unprotected.

#include "probe.h"

#ifndef _WIN32
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#define GGUFROPE_HAVE_FORK 1
#endif

namespace ggufrope {

// llama.cpp logs "Using metadata override (...) '<key>' = " only when it applies an override
// for <key> (src/llama-model-loader.cpp:187), and "Bad metadata override type for key '<key>'"
// when it rejects one for its type (src/llama-model-loader.cpp:210)
static void detect_consultation(hp_snap & s, const std::string & watch_key, bool type_rejection) {
    s.consulted = g_log.all.find("'" + watch_key + "' = ") != std::string::npos ? 1 : 0;
    if (!type_rejection) return;
    s.override_type_rejected =
        g_log.all.find("Bad metadata override type for key '" + watch_key + "'") != std::string::npos ? 1 : 0;
    if (s.override_type_rejected) s.consulted = 1;
}

#ifdef GGUFROPE_HAVE_FORK

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

hp_snap run_isolated(const std::string & watch_key, const std::function<void(hp_snap &)> & fn) {
    hp_snap s;
    memset(&s, 0, sizeof(s));
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
            detect_consultation(cs, watch_key, true);
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
    return s;
}

#else

hp_snap run_isolated(const std::string & watch_key, const std::function<void(hp_snap &)> & fn) {
    hp_snap s;
    memset(&s, 0, sizeof(s));
    g_log.all.clear();
    fn(s);
    if (!watch_key.empty()) {
        detect_consultation(s, watch_key, false);
    }
    return s;
}

#endif

} // namespace ggufrope
