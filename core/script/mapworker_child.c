/*
 * mapworker_child.c: a mapping worker, the process that runs one tenant's scripts for serve.
 *
 * serve starts it (mapworker.c) as `returnflow __mapworker TENANT`, with an empty environment and
 * only its end of a socketpair open (fd 3; 0, 1 and 2 are /dev/null, or the parent's stderr in a
 * sanitizer build). It reads the tenant's mapper_config, locks itself in, loads the scripts, and
 * then maps the batches of events the parent sends, one RESULT frame per event, in order.
 *
 * Invariant: no script runs before the lock-down is complete. The lock-down, in order: no core
 * files and no ptrace from siblings (RLIMIT_CORE 0, PR_SET_DUMPABLE 0), a bounded address space
 * (RLIMIT_AS; not under AddressSanitizer, whose shadow memory needs terabytes of it), few file
 * descriptors, no new privileges, a Landlock ruleset (where the kernel has one) that leaves only
 * the scripts folder readable, the CPU cap's watchdog thread, no new process or thread
 * (RLIMIT_NPROC 0), then a seccomp filter that allows only what mapping needs: reading
 * files (opened read-only: `require` and the reload after a cap), memory, time, the CPU cap's
 * signal to a thread of this process, and writing to the socket. The filter covers every thread:
 * the CPU cap's watchdog (sandbox_watch.c) is started after Landlock and before RLIMIT_NPROC 0. Anything else kills the process (SIGSYS), which the
 * parent reports as a crash. The worker holds no secret: the config it gets has none.
 *
 * What it deliberately does not do: validate its own output (the parent does, as it must trust
 * nothing from here), or time itself out past the sandbox's caps (the parent's watchdog does).
 */
#include "mapworker_child.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>            /* PROT_EXEC; its MAP_FAILED is not the mapper's */
#undef MAP_FAILED
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mapper.h"
#include "mapworker_proto.h"

#if defined(__SANITIZE_ADDRESS__)
#define MW_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MW_SANITIZED 1
#endif
#endif
#ifndef MW_SANITIZED
#define MW_SANITIZED 0
#endif

#define MAX_INCOMING (1u << 30)          /* a frame from the parent: a sanity bound, not a defence */
#define CACHE_KEEP 4096                  /* recalled values kept between batches */

static strbuf in, out;

static void die(void) { _exit(0); }      /* no atexit handlers, no leak check: the parent is gone */

static void read_full(void *p, size_t n) {
    char *c = p;
    while (n) {
        ssize_t k = read(MW_FD, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) die();
        c += k;
        n -= (size_t)k;
    }
}

static void write_full(const char *p, size_t n) {
    while (n) {
        ssize_t k = write(MW_FD, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) die();
        p += k;
        n -= (size_t)k;
    }
}

/* Reads one frame into `in`; returns its type. */
static uint32_t read_frame(void) {
    uint32_t head[2];
    read_full(head, sizeof head);
    if (head[1] > MAX_INCOMING) die();
    in.len = 0;
    strbuf_reserve(&in, head[1] + 1);
    read_full(in.data, head[1]);
    in.len = head[1];
    in.data[in.len] = 0;
    return head[0];
}

static void flush(void) {
    write_full(out.data, out.len);
    out.len = 0;
}

/* ------------------------------ lock-down --------------------------------- */

static size_t address_space_now(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1) pages = 0;
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void limits(const sandbox_caps *caps) {
    struct rlimit none = { 0, 0 }, files = { 32, 32 };
    setrlimit(RLIMIT_CORE, &none);
    setrlimit(RLIMIT_NOFILE, &files);
    if (!MW_SANITIZED) {
        /* What the binary maps now, plus the Lua state's cap four times over (the host's own buffers
         * for one event, the state rebuilt after a breach), plus a fixed 256 MiB. */
        size_t cap = caps->memory_bytes ? caps->memory_bytes : (size_t)1 << 30;
        size_t as = address_space_now() + 4 * cap + ((size_t)256 << 20);
        struct rlimit lim = { as, as };
        setrlimit(RLIMIT_AS, &lim);
    }
}

/* Landlock (Linux 5.13+): only the scripts folder stays readable; nothing is writable. A kernel
 * without it leaves this layer out (seccomp still stands); the return says which. */
static int landlock(const char *dir) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1) return 0;
    struct landlock_ruleset_attr attr = { .handled_access_fs = (1ULL << 13) - 1 };   /* ABI 1: every right */
    if (abi >= 2) attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (rs < 0) return 0;
    struct landlock_path_beneath_attr rule = { .allowed_access = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR };
    rule.parent_fd = open(dir, O_PATH | O_CLOEXEC);
    int ok = rule.parent_fd >= 0 &&
             syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) == 0 &&
             syscall(SYS_landlock_restrict_self, rs, 0) == 0;
    if (rule.parent_fd >= 0) close(rule.parent_fd);
    close(rs);
    return ok;
}

static int allow(scmp_filter_ctx f, const char *name) {
    int nr = seccomp_syscall_resolve_name(name);
    return nr == __NR_SCMP_ERROR ? 0 : seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0);
}

/* The filter. Default: kill the whole process (under a sanitizer: fail the call with EPERM, so a
 * report the sanitizer writes on the way out is not cut short; documented in docs/security.md). */
static int seccomp_enter(void) {
    scmp_filter_ctx f = seccomp_init(MW_SANITIZED ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_KILL_PROCESS);
    if (!f) return -1;
    static const char *const plain[] = {
        "read", "pread64", "readv", "close", "lseek", "fstat", "newfstatat", "statx", "getdents64",
        "brk", "munmap", "mremap", "madvise", "futex", "clock_gettime", "clock_getres", "gettimeofday",
        "time", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "gettid", "getpid",
        "getrandom", "exit",
        "exit_group", "restart_syscall", "fcntl",
        /* glibc's qsort (the encoder sorts keys) asks sysinfo for the machine's memory before it
         * picks a merge buffer: without it a big properties object killed the worker. */
        "sysinfo", NULL,
    };
    /* Every thread: the run-time cap's watchdog was started before the filter. */
    int rc = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1);
    for (int i = 0; plain[i]; i++) rc |= allow(f, plain[i]);
    /* The watchdog's breach signal, to a thread of this process only. */
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(rt_tgsigqueueinfo), 1,
                           SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0));
    /* Writes only to the socket and to stderr: a script's print goes there (escaped and cut by the
     * sandbox), and stderr is /dev/null unless a sanitized build keeps it for its reports. */
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(write), 1, SCMP_A0(SCMP_CMP_EQ, MW_FD, 0));
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(write), 1, SCMP_A0(SCMP_CMP_EQ, 2, 0));
    /* Memory, never executable. */
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    /* Files, read-only: no write access mode, no creation, truncation or tmpfile. */
    const scmp_datum_t writing = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | (O_TMPFILE & ~O_DIRECTORY);
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, writing, 0));
    rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(open), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, writing, 0));
    if (rc == 0) rc = seccomp_load(f);
    seccomp_release(f);
    return rc;
}

/* ------------------------------- mapping ---------------------------------- */

/* out:recall missed the mapper's cache: ask the parent, which answers from the store. */
static int recall_from_parent(void *ud, const char *key, size_t klen, strbuf *found) {
    (void)ud;
    size_t at = mw_begin_frame(&out, MW_RECALL);
    mw_put_str(&out, key, klen);
    mw_end_frame(&out, at);
    flush();
    if (read_frame() != MW_RECALLED) die();
    mw_reader r = { in.data, in.data + in.len, 0 };
    uint32_t ok = mw_get_u32(&r);
    size_t n;
    const char *json = mw_get_str(&r, &n);
    if (r.bad || !ok) return 0;
    strbuf_add(found, json, n);
    return 1;
}

static void put_result(const map_result *res, const strbuf *doc, int want_doc) {
    struct timespec cpu;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
    size_t at = mw_begin_frame(&out, MW_RESULT);
    mw_put_u32(&out, (uint32_t)(cpu.tv_sec * 1000 + cpu.tv_nsec / 1000000));   /* for the watchdog */
    mw_put_u32(&out, (uint32_t)res->status);
    mw_put_cstr(&out, res->reason);
    mw_put_u32(&out, (uint32_t)res->nrequests);
    for (int i = 0; i < res->nrequests; i++) {
        const map_request *q = &res->requests[i];
        mw_put_cstr(&out, q->method);
        mw_put_cstr(&out, q->path);
        mw_put_str(&out, q->body, q->body_len);
        mw_put_cstr(&out, q->profile);
        mw_put_u32(&out, q->schedule_key != NULL);
        mw_put_cstr(&out, q->schedule_key);
        mw_put_cstr(&out, q->due);
    }
    mw_put_u32(&out, (uint32_t)res->ncancels);
    for (int i = 0; i < res->ncancels; i++) mw_put_cstr(&out, res->cancels[i]);
    mw_put_u32(&out, (uint32_t)res->nmemory);
    for (int i = 0; i < res->nmemory; i++) {
        mw_put_cstr(&out, res->memory_keys[i]);
        mw_put_cstr(&out, res->memory_values[i]);
    }
    mw_put_str(&out, want_doc ? doc->data : "", want_doc ? doc->len : 0);
    mw_end_frame(&out, at);
    flush();
}

static void map_batch(mapper *m) {
    mw_reader r = { in.data, in.data + in.len, 0 };
    uint32_t flags = mw_get_u32(&r), n = mw_get_u32(&r);
    /* The batch frame is reused by recalls: copy it out first. */
    strbuf batch = {0};
    strbuf_add(&batch, r.p, (size_t)(r.end - r.p));
    r = (mw_reader){ batch.data, batch.data + batch.len, 0 };
    strbuf doc = {0}, body = {0}, label = {0};
    /* With FORGET, the batches before may not all be stored, or other workers of the tenant may have
     * stored since: every value this batch reads from outside its own events must come from the
     * parent, which keeps count of them (worker_batch.c, job_pipe.c). Without it, the last batch is
     * stored, and the cache is right until it is dropped past its bound. */
    if ((flags & MW_BATCH_FORGET) || mapper_memory_count(m) > CACHE_KEEP) mapper_forget_memory(m);
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        size_t llen, blen;
        const char *l = mw_get_str(&r, &llen);
        const char *b = mw_get_str(&r, &blen);
        if (r.bad) die();
        label.len = body.len = doc.len = 0;
        strbuf_add(&label, l, llen);
        strbuf_addc(&label, 0);
        strbuf_reserve(&body, blen + 1);          /* the mapper reads one byte past: a NUL */
        strbuf_add(&body, b, blen);
        body.data[blen] = 0;
        mapper_map(m, body.data ? body.data : "", blen, label.data, &doc);
        put_result(mapper_result(m), &doc, flags & MW_BATCH_WANT_DOC);
    }
    strbuf_free(&batch);
    strbuf_free(&doc);
    strbuf_free(&body);
    strbuf_free(&label);
}

/* ------------------------------- main ------------------------------------- */

static char *take(mw_reader *r) {
    size_t n;
    const char *s = mw_get_str(r, &n);
    if (r->bad || n == 0) return NULL;
    char *c = malloc(n + 1);
    if (!c) die();
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}

int mapworker_child_main(int argc, char **argv) {
    (void)argc; (void)argv;
    prctl(PR_SET_PDEATHSIG, SIGKILL);             /* the parent is gone: so are we */
    if (getppid() == 1) die();
    prctl(PR_SET_DUMPABLE, 0);
    struct rlimit none = { 0, 0 };
    setrlimit(RLIMIT_CORE, &none);
    signal(SIGPIPE, SIG_IGN);

    if (read_frame() != MW_LOAD) die();
    mw_reader r = { in.data, in.data + in.len, 0 };
    mapper_config mc = {0};
    uint32_t mib = mw_get_u32(&r), ms = mw_get_u32(&r);
    mc.caps.memory_bytes = (size_t)mib << 20;
    mc.caps.seconds = ms / 1000.0;
    mc.backfill = (int)mw_get_u32(&r);
    mc.scripts_dir = take(&r);
    mc.display_dir = take(&r);
    mc.tenant = take(&r);
    mc.key_kind = take(&r);
    mc.site_id = take(&r);
    mc.revision = take(&r);
    mc.segments_property = take(&r);
    if (r.bad || !mc.scripts_dir) die();

    tzset();                                      /* /etc/localtime, read now: not readable later */
    limits(&mc.caps);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    landlock(mc.scripts_dir);
    /* The run-time cap's watchdog thread: started now, inside Landlock and no_new_privs, before
     * RLIMIT_NPROC forbids a new thread; the seccomp filter below covers it too (TSYNC). */
    int watching = sandbox_watchdog_start() == 0;
    setrlimit(RLIMIT_NPROC, &none);
    strbuf problems = {0};
    if (!watching || seccomp_enter() != 0) {
        strbuf_adds(&problems, watching ? "the mapping worker cannot enter its seccomp filter\n"
                                        : "the mapping worker cannot start its run-time cap's watchdog\n");
        size_t at = mw_begin_frame(&out, MW_LOADED);
        mw_put_u32(&out, 0); mw_put_u32(&out, 0); mw_put_u32(&out, 0);
        mw_put_str(&out, problems.data, problems.len);
        mw_end_frame(&out, at);
        flush();
        die();
    }

    mapper *m = mapper_new(&mc, &problems);       /* the scripts' first code runs here, inside */
    int files = 0, handlers = 0;
    if (m) mapper_counts(m, &files, &handlers);
    size_t at = mw_begin_frame(&out, MW_LOADED);
    mw_put_u32(&out, m != NULL);
    mw_put_u32(&out, (uint32_t)files);
    mw_put_u32(&out, (uint32_t)handlers);
    mw_put_str(&out, problems.data, problems.len);
    mw_end_frame(&out, at);
    flush();
    strbuf_free(&problems);
    if (!m) die();
    mapper_set_recall(m, recall_from_parent, NULL);
    for (;;) {
        if (read_frame() != MW_BATCH) die();
        map_batch(m);
    }
}
