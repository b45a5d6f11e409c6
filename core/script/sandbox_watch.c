/*
 * sandbox_watch.c: the run-time cap, watched from one thread so a script that behaves pays nothing.
 *
 * Every thread that runs sandbox calls has a slot here. Entering a capped call writes the cap and
 * makes the slot's sequence number odd; leaving makes it even: two stores, no system call (a POSIX
 * timer armed and disarmed around each call cost two timer_settime calls an event). One watchdog
 * thread a process reads, every tick, the CPU clock of each thread inside a call. It counts a
 * call's CPU time from the first tick that saw it, so it never fails a call early and is late by
 * at most one tick; the tick shrinks to what is left of the nearest cap (at most WATCH_TICK). On a
 * breach it queues CAP_SIGNAL to that thread with the call's sequence number; the handler, on the
 * thread itself (as lua.c answers SIGINT), sets the Lua hook on the running coroutine only if that
 * very call is still running. The hook is never touched from another thread.
 *
 * Idle: after a second with no call inside, the watchdog sleeps until a call wakes it (the only
 * time entering a call makes a system call).
 *
 * Invariants: a slot is signalled only under watch_lock, and leaves the list under it, so a thread
 * that has exited is never signalled; the handler acts only on a signal from this process that
 * names the running call.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sandbox_internal.h"

#define CAP_SIGNAL (SIGRTMIN + 3)
#define WATCH_TICK_NS 10000000LL          /* 10 ms: the most a breach is noticed late */
#define WATCH_MIN_NS 500000LL             /* never sleep less than 0.5 ms */
#define WATCH_IDLE_TICKS 100              /* ticks with no call inside before the watchdog sleeps */
#define WATCH_STACK (256u << 10)

typedef struct watch_slot {
    struct watch_slot *next;
    pid_t tid;
    clockid_t clock;                      /* the thread's CPU clock */
    _Atomic uint64_t seq;                 /* odd while inside a capped call */
    _Atomic int64_t cap_ns;
    /* the watchdog's own, under watch_lock */
    uint64_t seen_seq, signalled_seq;
    int64_t seen_cpu;                     /* the thread's CPU time when seen_seq was first seen */
} watch_slot;

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_wake;
static watch_slot *slots;
static atomic_int watch_idle;
static int watch_started, watch_running, watch_error;
static pid_t watch_pid;
static uid_t watch_uid;
static pthread_key_t slot_key;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static _Thread_local watch_slot *my_slot;

_Thread_local sandbox *sandbox_calling;

static int64_t ns_of(const struct timespec *ts) { return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec; }

/* ------------------------------ the handler -------------------------------- */

static void on_cap_signal(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    watch_slot *s = my_slot;
    sandbox *sb = sandbox_calling;
    if (!s || !sb || si->si_code != SI_QUEUE || si->si_pid != getpid()) return;
    if ((uint64_t)(uintptr_t)si->si_value.sival_ptr != atomic_load(&s->seq)) return;   /* that call ended */
    if (sb->armed && !sb->broken) sandbox_breach(sb, CAP_TIME);
}

/* ------------------------------ the watchdog ------------------------------- */

static void send_breach(watch_slot *s, uint64_t seq) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = CAP_SIGNAL;
    si.si_code = SI_QUEUE;
    si.si_pid = watch_pid;
    si.si_uid = watch_uid;
    si.si_value.sival_ptr = (void *)(uintptr_t)seq;
    syscall(SYS_rt_tgsigqueueinfo, watch_pid, s->tid, CAP_SIGNAL, &si);
}

/* One look at every slot; returns how long to sleep, or -1 when no call is inside. */
static int64_t watch_round(void) {
    int64_t sleep = -1;
    for (watch_slot *s = slots; s; s = s->next) {
        uint64_t seq = atomic_load(&s->seq);
        if (!(seq & 1)) continue;
        struct timespec ts;
        if (clock_gettime(s->clock, &ts) != 0) continue;
        int64_t cpu = ns_of(&ts);
        if (seq != s->seen_seq) { s->seen_seq = seq; s->seen_cpu = cpu; }
        int64_t left = atomic_load(&s->cap_ns) - (cpu - s->seen_cpu);
        if (left <= 0) {
            if (s->signalled_seq != seq) send_breach(s, seq);
            s->signalled_seq = seq;
            left = WATCH_TICK_NS;               /* until the call ends */
        }
        if (sleep < 0 || left < sleep) sleep = left;
    }
    return sleep;
}

static void *watch_main(void *arg) {
    (void)arg;
    int idle = 0;
    pthread_mutex_lock(&watch_lock);
    watch_running = 1;                          /* glibc's thread start (rseq, ...) is behind us */
    pthread_cond_broadcast(&watch_wake);
    for (;;) {
        int64_t sleep = watch_round();
        if (sleep < 0 && ++idle >= WATCH_IDLE_TICKS) {
            atomic_store(&watch_idle, 1);       /* then look again: a call entering now sees the flag */
            if (watch_round() < 0) pthread_cond_wait(&watch_wake, &watch_lock);
            atomic_store(&watch_idle, 0);
            idle = 0;
            continue;
        }
        if (sleep >= 0) idle = 0;
        if (sleep < 0 || sleep > WATCH_TICK_NS) sleep = WATCH_TICK_NS;
        if (sleep < WATCH_MIN_NS) sleep = WATCH_MIN_NS;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t t = ns_of(&until) + sleep;
        until.tv_sec = (time_t)(t / 1000000000LL);
        until.tv_nsec = (long)(t % 1000000000LL);
        pthread_cond_timedwait(&watch_wake, &watch_lock, &until);
    }
    return NULL;
}

/* ------------------------------ thread slots ------------------------------- */

static void slot_drop(void *p) {
    watch_slot *s = p;
    if (!s) return;
    pthread_mutex_lock(&watch_lock);
    for (watch_slot **at = &slots; *at; at = &(*at)->next)
        if (*at == s) { *at = s->next; break; }
    pthread_mutex_unlock(&watch_lock);
    if (my_slot == s) my_slot = NULL;
    free(s);
}

static void watch_init(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_cap_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    pthread_condattr_t ca;
    pthread_attr_t ta;
    pthread_t t;
    watch_pid = getpid();
    watch_uid = getuid();
    if (sigaction(CAP_SIGNAL, &sa, NULL) != 0 || pthread_key_create(&slot_key, slot_drop) != 0 ||
        pthread_condattr_init(&ca) != 0) { watch_error = errno ? errno : EAGAIN; return; }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&watch_wake, &ca);
    pthread_condattr_destroy(&ca);
    /* The watchdog never takes the signal: only the threads it watches do. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_attr_init(&ta);
    pthread_attr_setstacksize(&ta, WATCH_STACK);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &ta, watch_main, NULL);
    pthread_attr_destroy(&ta);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) { watch_error = rc; return; }
    /* Returns once the thread runs its own code: a seccomp filter installed right after (the
     * mapping worker) must not meet the system calls of a thread still starting. */
    pthread_mutex_lock(&watch_lock);
    while (!watch_running) pthread_cond_wait(&watch_wake, &watch_lock);
    pthread_mutex_unlock(&watch_lock);
    watch_started = 1;
}

int sandbox_watchdog_start(void) {
    pthread_once(&watch_once, watch_init);
    if (watch_started) return 0;
    errno = watch_error;
    return -1;
}

static int slot_new(void) {
    if (sandbox_watchdog_start() != 0) return -1;
    watch_slot *s = calloc(1, sizeof *s);
    if (!s) { errno = ENOMEM; return -1; }
    s->tid = gettid();
    if (pthread_getcpuclockid(pthread_self(), &s->clock) != 0) { free(s); errno = EINVAL; return -1; }
    pthread_setspecific(slot_key, s);
    pthread_mutex_lock(&watch_lock);
    s->next = slots;
    slots = s;
    pthread_mutex_unlock(&watch_lock);
    my_slot = s;
    return 0;
}

int sandbox_watch_enter(double seconds) {
    if (!my_slot && slot_new() != 0) return -1;
    watch_slot *s = my_slot;
    atomic_store_explicit(&s->cap_ns, (int64_t)(seconds * 1e9), memory_order_relaxed);
    atomic_store(&s->seq, atomic_load_explicit(&s->seq, memory_order_relaxed) + 1);
    if (atomic_load(&watch_idle)) {
        pthread_mutex_lock(&watch_lock);
        pthread_cond_signal(&watch_wake);
        pthread_mutex_unlock(&watch_lock);
    }
    return 0;
}

void sandbox_watch_leave(void) {
    watch_slot *s = my_slot;
    if (s && (atomic_load_explicit(&s->seq, memory_order_relaxed) & 1))
        atomic_store_explicit(&s->seq, atomic_load_explicit(&s->seq, memory_order_relaxed) + 1,
                              memory_order_release);
}

void sandbox_thread_done(void) {
    watch_slot *s = my_slot;
    if (!s) return;
    pthread_setspecific(slot_key, NULL);
    slot_drop(s);
}
