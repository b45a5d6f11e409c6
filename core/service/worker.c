/*
 * worker.c: mapping threads, from the journal to the outbox.
 *
 * Each thread is the home of the tenants whose id hashes to it: it reads their
 * journal a batch at a time, in journal order, and does their chores. A batch is
 * mapped in chunks by every thread that has nothing of its own to do (one tenant
 * on every core) and committed in journal order (worker_batch.c), so the outbox
 * holds each profile's requests in the order their webhooks arrived. The scripts
 * themselves run in worker processes (mapworker.c), one per thread and tenant
 * (a thread starts its own for a tenant of another thread when it first helps),
 * whose watchdog bounds how long a runaway script holds a thread: cap plus
 * margin per event, then the event is a dead letter and ingest, the journal and
 * other threads went on; a tenant whose worker died or stopped short is mapped
 * by its home thread alone for a while, so a runaway one does not take the others.
 * A reload (workers_halt) takes over between two events: the batch in hand stops at the next result,
 * what was mapped is committed, and the rest is mapped by the new scripts.
 *
 * Invariant: an event's outcome is committed in one transaction with
 * everything it produced (outbox rows, schedules, cancels, memory, its new
 * state). A crash before that commit leaves the event journaled, and the next
 * start maps it again; after it, nothing is mapped twice.
 *
 * Each pass also moves a tenant's due schedules to the outbox and purges what
 * the retention window let go; the WAL is checkpointed by the store's own
 * thread (store.c), never here.
 * The mapping never touches the network; delivery (deliver/) takes the
 * outbox from here. Event states: states.h.
 *
 * Several nodes on one store: a thread maps only the tenants this node holds (ownership.h), and each
 * batch's transaction is fenced by the lease's epoch (store_fence), so a node that lost a tenant
 * writes none of its outcomes: they stay journaled for the new owner. A tenant taken again after
 * another node mapped it gets a new mapping worker (its cached memory may be stale).
 */
#include "worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "event_counts.h"
#include "json.h"
#include "log.h"
#include "mapper.h"
#include "mapper_settings.h"
#include "mapworker.h"
#include "outbox.h"
#include "ownership.h"
#include "store_db.h"
#include "store_health.h"
#include "worker_internal.h"

static unsigned hash(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* ------------------------------- threads ---------------------------------- */

/* out:recall when the mapper's cache misses: the store is the memory. A chunk mapped beside
 * others of its tenant notes the key (worker_batch.c checks it before its commit). */
static int recall_from_store(void *ud, const char *key, size_t klen, strbuf *out) {
    recall_ctx *rc = ud;
    if (rc->log) worker_chunk_recalled(rc->log, key, klen, mapworker_event_in_hand(rc->m));
    return store_memory_recall(rc->t->db, rc->tenant, key, klen, out);
}

static int halted(workers *w);

/* Asked after each result: a reload takes over between two events, and a thread helping with another
 * tenant's batch stops at its deadline (worker_batch.c), the worker with the rest of its chunk. */
static int interrupt_cb(void *ud) {
    recall_ctx *rc = ud;
    return halted(rc->t->w) || (rc->deadline && clock_mono_ms() > rc->deadline);
}

static void load_memory(thread *t, int ti) {
    recall_ctx *rc = &t->recall[ti];
    rc->t = t;
    rc->tenant = t->w->cfg->tenants[ti].id;
    rc->m = t->mappers[ti];
    rc->log = NULL;
    mapworker_set_recall(t->mappers[ti], recall_from_store, rc);
    mapworker_set_interrupt(t->mappers[ti], interrupt_cb, rc);   /* a reload takes over between events */
    /* Every chunk reads what is outside it from the store, where the read is logged and checked
     * (worker_batch.c), even on a lone thread: that thread maps a batch's chunks before it commits
     * them, and a cache kept from chunk to chunk was dropped when it grew past its bound, after which
     * a chunk read a value its uncommitted predecessors had changed and the chunks after it built on
     * that value unchecked (tenant_cores_spec). */
    mapworker_set_shared(t->mappers[ti], 1);
}

/* The tenant's scripts in their own worker process (mapworker.c): nothing of them runs here. */
static mapworker *new_mapper(const config *cfg, const tenant_config *tc, strbuf *problems) {
    mapper_config mc = mapper_config_of(cfg, tc);
    return mapworker_new(&mc, problems);
}

mapworker *worker_mapper(thread *t, int ti) {
    if (t->mappers[ti]) return t->mappers[ti];
    strbuf problems = {0};
    t->mappers[ti] = new_mapper(t->w->cfg, &t->w->cfg->tenants[ti], &problems);
    strbuf_free(&problems);                       /* they loaded on the home thread: a reload says */
    if (t->mappers[ti]) load_memory(t, ti);
    return t->mappers[ti];
}

/* Whether this node maps the tenant now. A tenant taken again at another epoch gets a new worker:
 * another node may have changed its memory meanwhile, which the old worker's cache would hide. */
static int owned(thread *t, int ti, long long *epoch) {
    if (!ownership_holds(t->w->own, t->w->cfg->tenants[ti].id, epoch)) return 0;
    if (t->epochs[ti] && t->epochs[ti] != *epoch) {
        strbuf problems = {0};
        mapworker *m = new_mapper(t->w->cfg, &t->w->cfg->tenants[ti], &problems);
        strbuf_free(&problems);
        if (m) {
            mapworker_free(t->mappers[ti]);
            t->mappers[ti] = m;
            load_memory(t, ti);
        }
    }
    t->epochs[ti] = *epoch;
    return 1;
}

static int halted(workers *w) {
    pthread_mutex_lock(&w->mu);
    int now = w->stopping == STOP_NOW;
    pthread_mutex_unlock(&w->mu);
    return now;
}

static void *thread_main(void *arg) {
    thread *t = arg;
    pthread_setname_np(pthread_self(), "rf-map");
    workers *w = t->w;
    const config *cfg = w->cfg;
    unsigned long long seen = (unsigned long long)-1;
    for (;;) {
        /* Nothing new for this thread's tenants: it takes chunks of another thread's batch (one
         * tenant on every core), and makes its own pass at least once a second all the same. */
        pthread_mutex_lock(&w->mu);
        int help = 0;
        if (seen == w->wakes && !w->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);   /* the cv waits on it (worker_start) */
            until.tv_sec += 1;                    /* schedules and deferred events need a clock too */
            while (seen == w->wakes && !w->stopping && !(help = worker_chunk_waiting(w)) &&
                   pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0) {}
            if (clock_mono_ms() - t->last_pass > 1000) help = 0;
        }
        int stopping = w->stopping;
        if (!help) seen = w->wakes;
        pthread_mutex_unlock(&w->mu);
        if (stopping == STOP_NOW) break;
        if (help) {
            worker_help(t);
            continue;
        }
        t->last_pass = clock_mono_ms();
        int busy = 0;
        for (int ti = 0; ti < cfg->ntenants; ti++) {
            if (!t->home[ti]) continue;
            if (ti && halted(w)) break;             /* a reload waits for one event, not a pass */
            long long epoch;
            if (!owned(t, ti, &epoch)) continue;    /* another node maps it (ownership.h) */
            /* One batch per tenant per pass: a tenant with a backlog shares the thread, and
             * schedules, dry files, reloads and a stop are never kept waiting behind it. */
            int mapped = worker_map_journaled(t, ti, epoch);
            if (halted(w)) break;                   /* the batch stopped between two events for it */
            if (mapped >= BATCH) busy = 1;
            long long mono = clock_mono_ms();
            if (mapped || mono - t->last_deferred_try > 30000) {
                worker_map_deferred(t, ti, epoch);   /* what they waited for may have come */
                t->last_deferred_try = mono;
            }
            store_fire_schedules(t->db, cfg->tenants[ti].id);
            if (!t->last_purge || mono - t->last_purge > 3600 * 1000)
                store_purge(t->db, cfg->tenants[ti].id, clock_now_ms() - (long long)cfg->retention_days * 86400 * 1000);
        }
        if (!t->last_purge || clock_mono_ms() - t->last_purge > 3600 * 1000) t->last_purge = clock_mono_ms();
        if (stopping) break;
        if (busy) {                                  /* more is waiting: go on without sleeping */
            pthread_mutex_lock(&w->mu);
            seen = w->wakes - 1;
            pthread_mutex_unlock(&w->mu);
        }
    }
    for (int ti = 0; ti < cfg->ntenants; ti++) {   /* Lua states first: they may still free buffers */
        mapworker_free(t->mappers[ti]);
        t->mappers[ti] = NULL;
    }
    json_thread_done();
    sandbox_thread_done();
    return NULL;
}

/* Stops the first `started` threads (how: STOP_DRAIN or STOP_NOW), then frees everything: a thread
 * frees its own mappers when it ends; those of a thread that never ran are freed here. The one
 * teardown of both a stop and a start that failed half-way. */
static void release(workers *w, int started, int how) {
    pthread_mutex_lock(&w->mu);
    w->stopping = how;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n; i++) {
        thread *t = &w->threads[i];
        if (i < started) pthread_join(t->tid, NULL);
        else if (t->mappers)
            for (int ti = 0; ti < w->cfg->ntenants; ti++) mapworker_free(t->mappers[ti]);
        free(t->mappers);
        free(t->home);
        free(t->recall);
        free(t->epochs);
        outbox_writer_free(t->writer);
        map_results_view_free(&t->view);
        store_db_close(t->db);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->threads);
    free(w->unsteady_until);
    free(w->eager);
    free(w);
}

workers *workers_start(const config *cfg, ownership *own, char *err, size_t errlen) {
    workers *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->cfg = cfg;
    w->own = own;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    w->n = cfg->workers > 0 ? cfg->workers : (int)(cores > 0 ? cores : 1);
    if (!cfg->ntenants) w->n = 0;                 /* one tenant is mapped on every thread (worker_batch.c) */
    w->threads = calloc((size_t)(w->n ? w->n : 1), sizeof *w->threads);
    w->unsteady_until = calloc((size_t)(cfg->ntenants ? cfg->ntenants : 1), sizeof *w->unsteady_until);
    w->eager = calloc((size_t)(cfg->ntenants ? cfg->ntenants : 1), sizeof *w->eager);
    if (!w->threads || !w->unsteady_until || !w->eager) abort();
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t cv_attr;                   /* its timed waits on the monotonic clock */
    pthread_condattr_init(&cv_attr);
    pthread_condattr_setclock(&cv_attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &cv_attr);
    pthread_condattr_destroy(&cv_attr);
    int started = 0;
    for (int i = 0; i < w->n; i++) {
        thread *t = &w->threads[i];
        t->w = w;
        t->index = i;
        t->mappers = calloc((size_t)cfg->ntenants, sizeof *t->mappers);
        t->home = calloc((size_t)(cfg->ntenants ? cfg->ntenants : 1), 1);
        t->recall = calloc((size_t)cfg->ntenants, sizeof *t->recall);
        t->epochs = calloc((size_t)(cfg->ntenants ? cfg->ntenants : 1), sizeof *t->epochs);
        if (!t->mappers || !t->home || !t->recall || !t->epochs) abort();
        /* Relaxed: a mapping lost to a power cut leaves its event journaled, and it is mapped again. */
        char why[1200];
        if (!(t->db = store_db_open(config_store_location(cfg), STORE_RELAXED, why, sizeof why))) {
            snprintf(err, errlen, "worker %d: %s", i, why);
            goto fail;
        }
        store_checkpoint_every(t->db, 0);    /* never on this thread: the store's checkpointer does it */
        t->writer = outbox_writer_new(t->db);
        if (!t->writer) {
            snprintf(err, errlen, "worker %d: cannot prepare its statements on %s/returnflow.db", i, cfg->data_dir);
            goto fail;
        }
    }
    for (int ti = 0; ti < cfg->ntenants; ti++) {
        const tenant_config *tc = &cfg->tenants[ti];
        thread *t = &w->threads[hash(tc->id) % (unsigned)w->n];
        strbuf problems = {0};
        t->mappers[ti] = new_mapper(cfg, tc, &problems);
        if (!t->mappers[ti]) {
            snprintf(err, errlen, "tenant %s: the scripts do not load:\n%.*s", tc->id, (int)problems.len,
                     problems.data ? problems.data : "");
            strbuf_free(&problems);
            goto fail;
        }
        strbuf_free(&problems);
        t->home[ti] = 1;
        load_memory(t, ti);
    }
    for (; started < w->n; started++)
        if (pthread_create(&w->threads[started].tid, NULL, thread_main, &w->threads[started]) != 0) {
            snprintf(err, errlen, "cannot start mapping thread %d", started);
            goto fail;
        }
    return w;
fail:
    release(w, started, STOP_NOW);
    return NULL;
}

void workers_wake(workers *w) {
    pthread_mutex_lock(&w->mu);
    w->wakes++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void workers_stop(workers *w) { release(w, w->n, STOP_DRAIN); }
void workers_halt(workers *w) { release(w, w->n, STOP_NOW); }
