/*
 * mapworker.c: the parent's side of a mapping worker: start it, feed it, watch it, believe nothing.
 *
 * Shaped after OpenSSH's privilege separation and Postfix's master: the worker (mapworker_child.c)
 * is started fresh by exec of this very binary with an empty environment and only its socket open,
 * so it never held a secret; it talks over one socketpair with a small vocabulary of framed
 * messages (mapworker_proto.h). This side:
 *
 *   - sends a batch of events in one frame and reads one RESULT per event, answering RECALLs from
 *     the store in between, all through one poll loop (it never blocks on a write the worker does
 *     not read);
 *   - keeps a wall-clock deadline per event (the CPU cap, then the cap again plus a second): a
 *     worker past it that is still running is SIGKILLed (one starved by a busy machine gets a
 *     little more, within a hard bound); one that dies is reaped through its pidfd. The event in flight
 *     fails with the reason and is a dead letter; an event that took down MAPWORKER_STRIKES
 *     workers is never sent again;
 *   - checks every frame before copying it: lengths against the bytes there and the limits,
 *     counts, UTF-8, no NUL in keys, and every request's method and path against the fixed table
 *     of Klaviyo endpoints. A frame that breaks a rule kills the worker (it is not ours anymore);
 *   - replaces a dead worker on next use, with a back-off that grows while workers keep dying
 *     before a clean batch, so no crash loop costs more than one restart per back-off.
 *
 * Invariant: nothing a worker sends reaches the store, a log or delivery unchecked, and no call
 * here waits longer than its deadline, whatever the worker does.
 */
#include "mapworker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "klaviyo_endpoints.h"
#include "klaviyo_limits.h"
#include "log.h"
#include "mapworker_proto.h"
#include "mapworker_record.h"
#include "utf8.h"

#if defined(__SANITIZE_ADDRESS__)
#define MW_SANITIZED 1
#else
#define MW_SANITIZED 0
#endif

#define BACKOFF_MAX_MS 30000
#define GRACE_MS 250                   /* past the deadline, a starved worker gets this much more */
#define CPU_MARGIN_MS 250              /* ... while its CPU time on the event is within cap + this */
#define HARD_FACTOR 4                  /* ... up to this many times the deadline, whatever it does */
#define NSTRIKES 64


typedef struct ev_at { int status; size_t reason, doc, doc_len; int req0, nreq, can0, ncan, mem0, nmem; } ev_at;
typedef struct req_at { size_t method, path, body, body_len, profile, key, due; int scheduled; } req_at;

struct mapworker {
    mapper_config cfg;
    char *strings[7];
    int files, handlers;
    pid_t pid;
    int fd, pidfd;                     /* -1 when no worker runs */
    int (*recall)(void *ud, const char *key, size_t klen, strbuf *out);
    void *recall_ud;
    int (*interrupt)(void *ud);        /* between two results: stop the batch here (a reload) */
    void *interrupt_ud;
    int shared;                        /* other workers map the tenant too: MW_BATCH_FORGET */
    long long restart_at;              /* ms: no restart before */
    int backoff_ms;
    struct { long long id; int strikes; } strikes[NSTRIKES];
    int next_strike;
    strbuf in, out;                    /* bytes from and to the worker */
    size_t in_off, out_off;
    char death[256];                   /* why the last worker went */
    long long last_cpu_ms;             /* the worker's CPU time at its last result, as it said */
    /* The last batch's results: strings in one arena, by offset, pointed at once complete. */
    strbuf arena;
    ev_at *ev;
    req_at *req;
    size_t *can, *memk, *memv;
    int nev, nreq, ncan, nmem, cap_ev, cap_req, cap_can, cap_mem;
    map_result *results;
    map_request *reqs_out;
    const char **cans_out, **mk_out, **mv_out;
};

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The worker's CPU time so far (utime + stime of /proc/PID/stat), in ms; -1 if unknown. */
static long long worker_cpu_ms(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');             /* the command may hold spaces and parentheses */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (long long)((ut + st) * 1000 / (unsigned long long)(hz > 0 ? hz : 100));
}

static long long event_budget_ms(const mapworker *w) {
    if (w->cfg.caps.seconds <= 0) return 60000;
    long long cap = (long long)(w->cfg.caps.seconds * 1000);
    return 2 * cap + MAPWORKER_MARGIN_MS;
}

/* ------------------------------ the process ------------------------------- */

/* Ends the worker (if any) and waits for it: the caller decided it goes. */
static void stop_worker(mapworker *w) {
    if (w->pid <= 0) return;
    kill(w->pid, SIGKILL);
    while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {}
    close(w->fd);
    if (w->pidfd >= 0) close(w->pidfd);
    w->pid = 0;
    w->fd = w->pidfd = -1;
    w->in.len = w->out.len = w->in_off = w->out_off = 0;
}

/* The worker is gone or must go: reap it and say why in w->death. We_killed: the watchdog. */
static void lose_worker(mapworker *w, int cause, const char *why) {
    if (w->pid <= 0) return;
    int status = 0;
    if (cause == CAUSE_CRASH || cause == CAUSE_EXIT) {
        /* The channel closed: the worker is dying. Give it a moment to be reaped for its status. */
        struct pollfd p = { .fd = w->pidfd, .events = POLLIN };
        if (w->pidfd >= 0) poll(&p, 1, 1000);
    }
    if (waitpid(w->pid, &status, WNOHANG) != w->pid) {
        kill(w->pid, SIGKILL);
        while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR) {}
        if (cause == CAUSE_CRASH || cause == CAUSE_EXIT) cause = CAUSE_PROTOCOL, why = "closed its channel and lived on";
    }
    close(w->fd);
    if (w->pidfd >= 0) close(w->pidfd);
    w->pid = 0;
    w->fd = w->pidfd = -1;
    w->in.len = w->out.len = w->in_off = w->out_off = 0;
    if (cause == CAUSE_TIMEOUT) {
        snprintf(w->death, sizeof w->death, "worker killed: %s", why);
    } else if (cause == CAUSE_PROTOCOL || cause == CAUSE_LOAD) {
        snprintf(w->death, sizeof w->death, "worker killed: %s", why);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        cause = CAUSE_CRASH;
        snprintf(w->death, sizeof w->death, "worker crashed: signal %d%s", sig,
                 sig == SIGSYS ? " (a system call outside its seccomp filter)" :
                 sig == SIGKILL ? " (killed from outside, or out of memory)" : "");
    } else {
        cause = CAUSE_EXIT;
        snprintf(w->death, sizeof w->death, "worker exited: status %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    mapworker_record_death(w->cfg.tenant, cause, w->death);
    w->restart_at = now_ms() + w->backoff_ms;
    w->backoff_ms = w->backoff_ms ? (w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2) : 100;
}

/* fork+exec of this binary as `returnflow __mapworker TENANT`: an empty environment, fd 3 the
 * socket, 0-2 /dev/null (a sanitizer build keeps stderr for its reports), nothing else open.
 * Through /proc/self/exe, the running image itself: a binary replaced on disk by an upgrade still
 * starts workers that speak this parent's protocol. */
static int spawn(mapworker *w, char *err, size_t errlen) {
    static char exe_path[] = "/proc/self/exe";
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -1;
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, sv[1], MW_FD);
    for (int fd = 0; fd < (MW_SANITIZED ? 2 : 3); fd++) posix_spawn_file_actions_adddup2(&fa, devnull, fd);
    posix_spawn_file_actions_addclosefrom_np(&fa, MW_FD + 1);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char tenant[160];
    snprintf(tenant, sizeof tenant, "%s", w->cfg.tenant);
    char *argv[] = { "returnflow", "__mapworker", tenant, NULL };
    /* Nothing of the parent's environment (it may hold secrets); a sanitizer build passes on only
     * the sanitizers' own options, so a worker's report reads like the parent's. */
    char *envp[3] = { NULL, NULL, NULL };
    char asan[1024];
    if (MW_SANITIZED) {
        /* A worker's crash is the watchdog's to report (by its signal), not the sanitizer's. */
        const char *opts = getenv("ASAN_OPTIONS");
        snprintf(asan, sizeof asan, "ASAN_OPTIONS=%.800s%shandle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigill=0:"
                 "handle_sigfpe=0", opts ? opts : "", opts && *opts ? ":" : "");
        envp[0] = asan;
        for (char **v = environ; *v; v++)
            if (strncmp(*v, "UBSAN_OPTIONS=", 14) == 0) envp[1] = *v;
    }
    pid_t pid;
    int rc = posix_spawn(&pid, exe_path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (devnull >= 0) close(devnull);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        snprintf(err, errlen, "cannot start a mapping worker: %s", strerror(rc));
        return -1;
    }
    w->pid = pid;
    w->fd = sv[0];
    fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
    w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    w->in.len = w->out.len = w->in_off = w->out_off = 0;
    return 0;
}

/* The next frame from the worker, writing what is queued meanwhile. 0: a frame (type, payload);
 * -1: the worker closed its channel; -2: deadline; -3: a frame over the limit (why says). */
static int next_frame(mapworker *w, long long deadline, uint32_t *type, mw_reader *payload, const char **why) {
    if (w->in_off) {
        memmove(w->in.data, w->in.data + w->in_off, w->in.len - w->in_off);
        w->in.len -= w->in_off;
        w->in_off = 0;
    }
    for (;;) {
        if (w->in.len >= 8) {
            uint32_t head[2];
            memcpy(head, w->in.data, 8);
            if (head[1] > MW_MAX_FRAME) { *why = "sent a frame over the 64 MiB limit"; return -3; }
            if (w->in.len - 8 >= head[1]) {
                *type = head[0];
                *payload = (mw_reader){ w->in.data + 8, w->in.data + 8 + head[1], 0 };
                w->in_off = 8 + (size_t)head[1];
                return 0;
            }
        }
        /* Past the deadline, what the worker already sent is still read (one poll that does not
         * wait): a parent that was not running (SIGSTOP, a starved machine) finds the worker's
         * result waiting, and that is not the worker's overrun. */
        long long left = deadline - now_ms();
        struct pollfd p = { .fd = w->fd, .events = POLLIN | (w->out_off < w->out.len ? POLLOUT : 0) };
        int n = poll(&p, 1, left <= 0 ? 0 : left > 1000 ? 1000 : (int)left);
        if (n < 0 && errno != EINTR) return -1;
        if (n <= 0) {
            if (left <= 0) return -2;
            continue;
        }
        if (p.revents & POLLOUT) {
            /* send, not write: a worker that closed its end must not SIGPIPE the service. */
            ssize_t k = send(w->fd, w->out.data + w->out_off, w->out.len - w->out_off, MSG_NOSIGNAL);
            if (k < 0 && errno != EAGAIN && errno != EINTR) return -1;
            if (k > 0) w->out_off += (size_t)k;
            if (w->out_off == w->out.len) w->out.len = w->out_off = 0;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            strbuf_reserve(&w->in, 1 << 16);
            ssize_t k = read(w->fd, w->in.data + w->in.len, w->in.cap - w->in.len);
            if (k == 0) return -1;
            if (k < 0 && errno != EAGAIN && errno != EINTR) return -1;
            if (k > 0) w->in.len += (size_t)k;
        }
    }
}

static void queue_load(mapworker *w) {
    size_t at = mw_begin_frame(&w->out, MW_LOAD);
    mw_put_u32(&w->out, (uint32_t)(w->cfg.caps.memory_bytes >> 20));
    mw_put_u32(&w->out, (uint32_t)(w->cfg.caps.seconds * 1000));
    mw_put_u32(&w->out, (uint32_t)w->cfg.backfill);
    const char *s[] = { w->cfg.scripts_dir, w->cfg.display_dir, w->cfg.tenant, w->cfg.key_kind, w->cfg.site_id,
                        w->cfg.revision, w->cfg.segments_property };
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) mw_put_cstr(&w->out, s[i]);
    mw_end_frame(&w->out, at);
}

/* Starts a worker and loads the scripts in it. 0, or -1 with problems appended. */
static int start(mapworker *w, strbuf *problems) {
    char err[256];
    if (spawn(w, err, sizeof err) != 0) {
        strbuf_adds(problems, err);
        strbuf_addc(problems, '\n');
        return -1;
    }
    queue_load(w);
    uint32_t type;
    mw_reader r;
    const char *why = "";
    int rc = next_frame(w, now_ms() + MAPWORKER_LOAD_MS, &type, &r, &why);
    if (rc == 0 && type == MW_LOADED) {
        uint32_t ok = mw_get_u32(&r), files = mw_get_u32(&r), handlers = mw_get_u32(&r);
        size_t n;
        const char *text = mw_get_str(&r, &n);
        if (!r.bad && n <= MW_MAX_PROBLEMS) {
            /* Problems are shown to the merchant and logged: valid UTF-8, printable, or '?'. */
            for (size_t i = 0; i < n;) {
                int k = utf8_len((const unsigned char *)text + i, (const unsigned char *)text + n);
                unsigned char c = (unsigned char)text[i];
                if (k == 0 || (k == 1 && c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) { strbuf_addc(problems, '?'); i++; }
                else { strbuf_add(problems, text + i, (size_t)k); i += (size_t)k; }
            }
            if (ok) {
                w->files = (int)files;
                w->handlers = (int)handlers;
                return 0;
            }
            stop_worker(w);
            if (n == 0) strbuf_adds(problems, "the scripts do not load\n");
            return -1;
        }
        why = "sent a malformed LOADED frame";
        rc = -3;
    }
    char msg[300];
    if (rc == -2) {
        stop_worker(w);
        snprintf(msg, sizeof msg, "%s:1: worker killed: loading the scripts took over %d s", w->cfg.display_dir ?
                 w->cfg.display_dir : w->cfg.scripts_dir, MAPWORKER_LOAD_MS / 1000);
    } else {
        if (rc == 0) why = "sent an unexpected frame while loading";
        lose_worker(w, rc == -1 ? CAUSE_CRASH : CAUSE_PROTOCOL, why);
        snprintf(msg, sizeof msg, "%s:1: %s while loading the scripts", w->cfg.display_dir ? w->cfg.display_dir
                 : w->cfg.scripts_dir, w->death);
    }
    strbuf_adds(problems, msg);
    strbuf_addc(problems, '\n');
    return -1;
}

static char *dup_or(const char *s, const char *fallback) {
    const char *v = s && *s ? s : fallback;
    if (!v) return NULL;
    char *d = strdup(v);
    if (!d) abort();
    return d;
}

mapworker *mapworker_new(const mapper_config *cfg, strbuf *problems) {
    mapworker *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->cfg = *cfg;
    w->fd = w->pidfd = -1;
    w->cfg.scripts_dir = w->strings[0] = dup_or(cfg->scripts_dir, "scripts");
    w->cfg.tenant = w->strings[1] = dup_or(cfg->tenant, "default");
    w->cfg.key_kind = w->strings[2] = dup_or(cfg->key_kind, "private");
    w->cfg.site_id = w->strings[3] = dup_or(cfg->site_id, NULL);
    w->cfg.revision = w->strings[4] = dup_or(cfg->revision, "2026-07-15");
    w->cfg.segments_property = w->strings[5] = dup_or(cfg->segments_property, "returnflow_segments");
    w->cfg.display_dir = w->strings[6] = dup_or(cfg->display_dir, NULL);
    if (start(w, problems) != 0) {
        mapworker_free(w);
        return NULL;
    }
    return w;
}

void mapworker_free(mapworker *w) {
    if (!w) return;
    stop_worker(w);
    strbuf_free(&w->in);
    strbuf_free(&w->out);
    strbuf_free(&w->arena);
    free(w->ev); free(w->req); free(w->can); free(w->memk); free(w->memv);
    free(w->results); free(w->reqs_out); free(w->cans_out); free(w->mk_out); free(w->mv_out);
    for (int i = 0; i < 7; i++) free(w->strings[i]);
    free(w);
}

void mapworker_set_recall(mapworker *w, int (*fallback)(void *ud, const char *key, size_t klen, strbuf *out), void *ud) {
    w->recall = fallback;
    w->recall_ud = ud;
}

void mapworker_set_interrupt(mapworker *w, int (*interrupt)(void *ud), void *ud) {
    w->interrupt = interrupt;
    w->interrupt_ud = ud;
}

void mapworker_counts(const mapworker *w, int *files, int *handlers) {
    *files = w->files;
    *handlers = w->handlers;
}

/* ------------------------------- results ---------------------------------- */

static size_t keep(mapworker *w, const char *s, size_t n) {
    size_t at = w->arena.len;
    strbuf_add(&w->arena, s, n);
    strbuf_addc(&w->arena, 0);
    return at;
}

/* Fit for a key, a profile, a path or a body: at most max bytes, no NUL, valid UTF-8. */
static int clean(const char *s, size_t n, size_t max) {
    if (n > max) return 0;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (p < end) {
        uint64_t v;
        /* Eight bytes at a time while they are ASCII and none is NUL (most of a body is). */
        if (end - p >= 8 && (memcpy(&v, p, 8), ((v | ((v - ones) & ~v)) & highs) == 0)) {
            p += 8;
            continue;
        }
        if (*p == 0) return 0;                      /* no byte of a longer sequence is 0 */
        int k = utf8_len(p, end);
        if (!k) return 0;
        p += k;
    }
    return 1;
}

/* 2026-07-15T10:00:00Z, with optional fractions or an offset instead of Z. */
static int iso_time(const char *s, size_t n) {
    static const char form[] = "dddd-dd-ddTdd:dd:dd";
    if (n < 20 || n > 35) return 0;
    for (size_t i = 0; i < sizeof form - 1; i++)
        if (form[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != form[i]) return 0;
    for (size_t i = sizeof form - 1; i < n; i++)
        if (!strchr("0123456789.:+-Z", s[i]) || !s[i]) return 0;
    return 1;
}

/* A reason shown to the merchant and logged: cut, valid UTF-8, no control characters. */
static size_t keep_reason(mapworker *w, const char *s, size_t n) {
    size_t at = w->arena.len;
    if (n > MW_MAX_REASON) n = MW_MAX_REASON;
    for (size_t i = 0; i < n;) {
        int k = utf8_len((const unsigned char *)s + i, (const unsigned char *)s + n);
        unsigned char c = (unsigned char)s[i];
        if (k == 0 || (k == 1 && (c < 0x20 || c == 0x7f))) { strbuf_addc(&w->arena, k == 0 ? '?' : ' '); i++; }
        else { strbuf_add(&w->arena, s + i, (size_t)k); i += (size_t)k; }
    }
    strbuf_addc(&w->arena, 0);
    return at;
}

#define GROW(arr, n, cap) do { if ((n) == (cap)) { (cap) = (cap) ? (cap) * 2 : 64; \
    (arr) = realloc((arr), (size_t)(cap) * sizeof *(arr)); if (!(arr)) abort(); } } while (0)

static void add_failed(mapworker *w, const char *reason) {
    GROW(w->ev, w->nev, w->cap_ev);
    w->ev[w->nev++] = (ev_at){ .status = MAP_FAILED, .reason = keep_reason(w, reason, strlen(reason)),
                               .doc = (size_t)-1, .req0 = w->nreq, .can0 = w->ncan, .mem0 = w->nmem };
}

static const char *bad(char *why, size_t len, const char *fmt, int i) {
    snprintf(why, len, fmt, i);
    return why;
}

/* Copies one RESULT frame into the batch. NULL, or what is wrong with it (nothing is kept then). */
static const char *take_result(mapworker *w, mw_reader *r, char *why, size_t wlen) {
    size_t arena0 = w->arena.len;
    int nreq0 = w->nreq, ncan0 = w->ncan, nmem0 = w->nmem;
    ev_at e = { .req0 = w->nreq, .can0 = w->ncan, .mem0 = w->nmem, .doc = (size_t)-1 };
    const char *fault = NULL;
    size_t n;
    w->last_cpu_ms = mw_get_u32(r);                 /* its own CPU time, ms: only ever extends a deadline */
    uint32_t status = mw_get_u32(r);
    const char *s = mw_get_str(r, &n);
    e.reason = keep_reason(w, s, n);
    uint32_t count = mw_get_u32(r);
    if (status > MAP_DEFERRED) fault = "an unknown status";
    else if (count > MW_MAX_REQUESTS) fault = "over 1000 requests";
    else if (count && status != MAP_MAPPED) fault = "requests of an event that was not mapped";
    for (uint32_t i = 0; !fault && i < count; i++) {
        req_at q = {0};
        size_t ml, pl, bl, fl, kl, dl;
        const char *method = mw_get_str(r, &ml), *path = mw_get_str(r, &pl), *body = mw_get_str(r, &bl);
        const char *profile = mw_get_str(r, &fl);
        q.scheduled = mw_get_u32(r) != 0;
        const char *key = mw_get_str(r, &kl), *due = mw_get_str(r, &dl);
        if (r->bad) break;
        if (!clean(method, ml, 16) || !clean(path, pl, 2048)) { fault = bad(why, wlen, "request %d: a malformed method or path", (int)i + 1); break; }
        q.method = keep(w, method, ml);
        q.path = keep(w, path, pl);
        if (!klaviyo_endpoint_allowed(w->arena.data + q.method, w->arena.data + q.path, w->cfg.key_kind, w->cfg.site_id)) {
            fault = bad(why, wlen, "request %d: not one of the Klaviyo endpoints a mapping may use", (int)i + 1);
            break;
        }
        if (!clean(body, bl, klaviyo_body_limit(w->arena.data + q.path))) { fault = bad(why, wlen, "request %d: a body over the limit or not UTF-8", (int)i + 1); break; }
        if (!clean(profile, fl, MW_MAX_KEY)) { fault = bad(why, wlen, "request %d: a malformed profile", (int)i + 1); break; }
        if (q.scheduled && (kl == 0 || !clean(key, kl, MW_MAX_KEY) || !iso_time(due, dl))) {
            fault = bad(why, wlen, "scheduled request %d: a malformed key or due time", (int)i + 1);
            break;
        }
        q.body = keep(w, body, bl);
        q.body_len = bl;
        q.profile = keep(w, profile, fl);
        q.key = q.scheduled ? keep(w, key, kl) : 0;
        q.due = q.scheduled ? keep(w, due, dl) : 0;
        GROW(w->req, w->nreq, w->cap_req);
        w->req[w->nreq++] = q;
    }
    e.nreq = w->nreq - e.req0;
    count = fault ? 0 : mw_get_u32(r);
    if (!fault && (count > MW_MAX_CANCELS || (count && status != MAP_MAPPED))) fault = "too many cancels, or cancels of an event not mapped";
    for (uint32_t i = 0; !fault && !r->bad && i < count; i++) {
        s = mw_get_str(r, &n);
        if (!clean(s, n, MW_MAX_KEY)) { fault = bad(why, wlen, "cancel %d: a malformed key", (int)i + 1); break; }
        GROW(w->can, w->ncan, w->cap_can);
        w->can[w->ncan++] = keep(w, s, n);
    }
    e.ncan = w->ncan - e.can0;
    count = fault ? 0 : mw_get_u32(r);
    if (!fault && (count > MW_MAX_MEMORY || (count && status != MAP_MAPPED))) fault = "too many memory writes, or writes of an event not mapped";
    for (uint32_t i = 0; !fault && !r->bad && i < count; i++) {
        size_t kl, vl;
        const char *key = mw_get_str(r, &kl), *value = mw_get_str(r, &vl);
        if (!clean(key, kl, MW_MAX_KEY) || kl == 0 || !clean(value, vl, MW_MAX_MEMORY_VALUE)) {
            fault = bad(why, wlen, "memory write %d: a key or value over its limit, or not UTF-8", (int)i + 1);
            break;
        }
        int cap = w->cap_mem;
        GROW(w->memk, w->nmem, cap);
        GROW(w->memv, w->nmem, w->cap_mem);
        w->memk[w->nmem] = keep(w, key, kl);
        w->memv[w->nmem++] = keep(w, value, vl);
    }
    e.nmem = w->nmem - e.mem0;
    if (!fault) {
        s = mw_get_str(r, &n);
        if (!r->bad && n) {
            if (!clean(s, n, MW_MAX_FRAME)) fault = "a document that is not UTF-8";
            else { e.doc = keep(w, s, n); e.doc_len = n; }
        }
    }
    if (!fault && (r->bad || r->p != r->end)) fault = "a malformed RESULT frame";
    if (fault) {
        w->arena.len = arena0;
        w->nreq = nreq0;
        w->ncan = ncan0;
        w->nmem = nmem0;
        return fault;
    }
    e.status = (int)status;
    GROW(w->ev, w->nev, w->cap_ev);
    w->ev[w->nev++] = e;
    return NULL;
}

/* Points the public results at the arena, now that it no longer moves. */
static void build(mapworker *w) {
    w->results = realloc(w->results, (size_t)(w->nev ? w->nev : 1) * sizeof *w->results);
    w->reqs_out = realloc(w->reqs_out, (size_t)(w->nreq ? w->nreq : 1) * sizeof *w->reqs_out);
    w->cans_out = realloc(w->cans_out, (size_t)(w->ncan ? w->ncan : 1) * sizeof *w->cans_out);
    w->mk_out = realloc(w->mk_out, (size_t)(w->nmem ? w->nmem : 1) * sizeof *w->mk_out);
    w->mv_out = realloc(w->mv_out, (size_t)(w->nmem ? w->nmem : 1) * sizeof *w->mv_out);
    if (!w->results || !w->reqs_out || !w->cans_out || !w->mk_out || !w->mv_out) abort();
    const char *a = w->arena.data;
    for (int i = 0; i < w->nreq; i++) {
        const req_at *q = &w->req[i];
        w->reqs_out[i] = (map_request){ .method = a + q->method, .path = a + q->path, .body = a + q->body,
                                        .body_len = q->body_len, .profile = a + q->profile,
                                        .schedule_key = q->scheduled ? a + q->key : NULL,
                                        .due = q->scheduled ? a + q->due : NULL };
    }
    for (int i = 0; i < w->ncan; i++) w->cans_out[i] = a + w->can[i];
    for (int i = 0; i < w->nmem; i++) { w->mk_out[i] = a + w->memk[i]; w->mv_out[i] = a + w->memv[i]; }
    for (int i = 0; i < w->nev; i++) {
        const ev_at *e = &w->ev[i];
        w->results[i] = (map_result){ .status = (map_status)e->status, .reason = a + e->reason,
                                      .requests = w->reqs_out + e->req0, .nrequests = e->nreq,
                                      .cancels = w->cans_out + e->can0, .ncancels = e->ncan,
                                      .memory_keys = w->mk_out + e->mem0, .memory_values = w->mv_out + e->mem0,
                                      .nmemory = e->nmem };
    }
}

void mapworker_set_shared(mapworker *w, int shared) { w->shared = shared; }

int mapworker_event_in_hand(const mapworker *w) { return w->nev; }

const map_result *mapworker_result(const mapworker *w, int i) { return &w->results[i]; }

const char *mapworker_doc(const mapworker *w, int i, size_t *len) {
    if (w->ev[i].doc == (size_t)-1) { *len = 0; return NULL; }
    *len = w->ev[i].doc_len;
    return w->arena.data + w->ev[i].doc;
}

/* ------------------------------- batches ---------------------------------- */

static int *strikes_of(mapworker *w, long long id) {
    if (!id) return NULL;
    for (int i = 0; i < NSTRIKES; i++)
        if (w->strikes[i].id == id) return &w->strikes[i].strikes;
    return NULL;
}

static void strike(mapworker *w, long long id) {
    int *s = strikes_of(w, id);
    if (s) { (*s)++; return; }
    if (!id) return;
    w->strikes[w->next_strike].id = id;
    w->strikes[w->next_strike].strikes = 1;
    w->next_strike = (w->next_strike + 1) % NSTRIKES;
}

static int struck_out(mapworker *w, long long id) {
    int *s = strikes_of(w, id);
    return s && *s >= MAPWORKER_STRIKES;
}

int mapworker_map_batch(mapworker *w, const mapworker_event *events, int n, int want_doc) {
    w->arena.len = 0;
    w->nev = w->nreq = w->ncan = w->nmem = 0;
    if (n <= 0) return 0;
    char why[400];
    if (struck_out(w, events[0].id)) {
        snprintf(why, sizeof why, "not tried again: this event took down %d mapping workers (last: %s)",
                 MAPWORKER_STRIKES, w->death[0] ? w->death : "?");
        add_failed(w, why);
        build(w);
        return 1;
    }
    siginfo_t gone = {0};
    if (w->pid > 0 && waitid(P_PID, (id_t)w->pid, &gone, WEXITED | WNOHANG | WNOWAIT) == 0 && gone.si_pid)
        lose_worker(w, CAUSE_CRASH, "");          /* it died idle (killed from outside?): no event to blame */
    if (w->pid <= 0) {
        if (now_ms() < w->restart_at) return -1;
        strbuf problems = {0};
        int rc = start(w, &problems);
        if (rc != 0) {
            strbuf_addc(&problems, 0);
            mapworker_record_death(w->cfg.tenant, CAUSE_LOAD, problems.data);
            snprintf(w->death, sizeof w->death, "%.250s", problems.data);
            w->restart_at = now_ms() + (w->backoff_ms ? w->backoff_ms : 100);
            w->backoff_ms = w->backoff_ms ? (w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2) : 200;
        }
        strbuf_free(&problems);
        if (rc != 0) return -1;
    }
    int m = 0;
    size_t bytes = 0;
    while (m < n && (m == 0 || (bytes + events[m].len < MW_MAX_BATCH_BYTES && !struck_out(w, events[m].id))))
        bytes += events[m++].len;
    size_t at = mw_begin_frame(&w->out, MW_BATCH);
    mw_put_u32(&w->out, (want_doc ? MW_BATCH_WANT_DOC : 0) | (w->shared ? MW_BATCH_FORGET : 0));
    mw_put_u32(&w->out, (uint32_t)m);
    for (int i = 0; i < m; i++) {
        mw_put_cstr(&w->out, events[i].label);
        mw_put_str(&w->out, events[i].text, events[i].len);
    }
    mw_end_frame(&w->out, at);

    /* The deadline is wall-clock, but a machine too busy to run the worker is not the script's
     * fault: past it, the worker gets GRACE_MS more at a time while the CPU it spent on the event
     * (its CPU time now, from /proc, less its own count at the end of the previous event) is
     * within the cap plus CPU_MARGIN_MS, up to HARD_FACTOR times the budget whatever it says. */
    long long budget = event_budget_ms(w), deadline = now_ms() + budget, hard = now_ms() + HARD_FACTOR * budget;
    long long cap_ms = (long long)(w->cfg.caps.seconds * 1000), cpu_base = worker_cpu_ms(w->pid);
    int recalls = 0;
    strbuf found = {0};
    while (w->nev < m) {
        uint32_t type;
        mw_reader r;
        const char *fault = NULL;
        int rc = next_frame(w, deadline, &type, &r, &fault);
        if (rc == -2) {
            long long cpu = worker_cpu_ms(w->pid), now = now_ms();
            if (cap_ms > 0 && cpu >= 0 && cpu_base >= 0 && now < hard && cpu - cpu_base <= cap_ms + CPU_MARGIN_MS) {
                deadline = now + GRACE_MS < hard ? now + GRACE_MS : hard;
                continue;
            }
            snprintf(why, sizeof why, "%lld ms cap exceeded", (long long)(w->cfg.caps.seconds * 1000));
            lose_worker(w, CAUSE_TIMEOUT, why);
        } else if (rc == -1) {
            lose_worker(w, CAUSE_CRASH, "");
        } else if (rc == -3) {
            lose_worker(w, CAUSE_PROTOCOL, fault);
        } else if (type == MW_RESULT) {
            fault = take_result(w, &r, why, sizeof why);
            if (!fault) {
                deadline = now_ms() + budget;
                hard = now_ms() + HARD_FACTOR * budget;
                cpu_base = w->last_cpu_ms;
                recalls = 0;
                /* A reload waits one event, not a batch: the rest of the batch is in this worker's
                 * hands, so it goes (quietly: nothing went wrong) and a new one maps the rest. */
                if (w->nev < m && w->interrupt && w->interrupt(w->interrupt_ud)) { stop_worker(w); break; }
                continue;
            }
            char what[400];
            snprintf(what, sizeof what, "its result was refused: %.300s", fault);
            lose_worker(w, CAUSE_PROTOCOL, what);
        } else if (type == MW_RECALL && ++recalls <= MW_MAX_RECALLS) {
            size_t klen;
            const char *key = mw_get_str(&r, &klen);
            if (!r.bad && r.p == r.end && klen <= MW_MAX_KEY) {
                found.len = 0;
                int ok = w->recall && w->recall(w->recall_ud, key, klen, &found);
                size_t f = mw_begin_frame(&w->out, MW_RECALLED);
                mw_put_u32(&w->out, (uint32_t)ok);
                mw_put_str(&w->out, ok ? found.data : "", ok ? found.len : 0);
                mw_end_frame(&w->out, f);
                continue;
            }
            lose_worker(w, CAUSE_PROTOCOL, "sent a malformed recall");
        } else {
            lose_worker(w, CAUSE_PROTOCOL, type == MW_RECALL ? "asked over 100000 recalls for one event"
                                                             : "sent a frame it may not send");
        }
        /* The worker is gone: the event it was on fails, the rest wait for the next call. */
        strike(w, events[w->nev].id);
        add_failed(w, w->death);
        break;
    }
    strbuf_free(&found);
    if (w->nev == m && w->pid > 0) w->backoff_ms = 0;   /* a clean batch: the next death restarts at once */
    build(w);
    return w->nev;
}

map_status mapworker_map(mapworker *w, const char *text, size_t len, const char *label, strbuf *doc) {
    mapworker_event e = { .text = text, .len = len, .label = label };
    int k = mapworker_map_batch(w, &e, 1, doc != NULL);
    if (k < 1) {
        char why[400];
        snprintf(why, sizeof why, "no mapping worker runs: %s", w->death[0] ? w->death : "it would not start");
        add_failed(w, why);
        build(w);
    }
    size_t dlen;
    const char *d = mapworker_doc(w, 0, &dlen);
    if (doc && d) strbuf_add(doc, d, dlen);
    else if (doc) {                                 /* the worker died on it: the document says so */
        const map_result *r = &w->results[0];
        strbuf_adds(doc, "{\"input\":");
        json_append_string(doc, label, strlen(label));
        strbuf_adds(doc, ",\"trigger\":null,\"status\":\"failed\",\"reason\":");
        json_append_string(doc, r->reason, strlen(r->reason));
        strbuf_adds(doc, ",\"requests\":[],\"scheduled\":[],\"cancelled\":[]}");
    }
    return w->results[0].status;
}

const map_result *mapworker_last(const mapworker *w) { return &w->results[0]; }
