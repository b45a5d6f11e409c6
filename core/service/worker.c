/*
 * worker.c: mapping threads, from the journal to the outbox.
 *
 * Each thread owns the tenants whose id hashes to it, so one tenant's events
 * are mapped by one thread, in journal order: the outbox then holds each
 * profile's requests in the order their webhooks arrived. The scripts
 * themselves run in the tenant's worker process (mapworker.c), which this
 * thread feeds a batch at a time and whose watchdog bounds how long a
 * runaway script holds the thread: cap plus margin per event, then the
 * event is a dead letter and ingest, the journal and other threads went on.
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
#include "tail.h"

#define BATCH 256
enum { STOP_DRAIN = 1, STOP_NOW = 2 };  /* drain: one more pass; now: after the batch in hand */
#define DEFER_GIVE_UP_MS (24LL * 3600 * 1000)

typedef struct thread {
    struct workers *w;
    int index;
    pthread_t tid;
    store_db *db;
    outbox_writer *writer;        /* prepared statements on db */
    mapworker **mappers;          /* by tenant index; NULL for tenants of other threads */
    struct recall_ctx *recall;    /* by tenant index, for out:recall from the store */
    long long *epochs;            /* by tenant index: the lease's epoch of the last batch (0: none yet) */
    long long last_deferred_try;      /* these two: monotonic ms (a step of the wall clock */
    long long last_purge;             /* must not stop the chores for an hour) */
    int failing;                  /* the store refused this thread's last write (1) or read (2) */
} thread;

struct workers {
    const config *cfg;
    ownership *own;               /* which tenants this node maps (NULL: all) */
    thread *threads;
    int n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned long long wakes;     /* bumped by workers_wake */
    int stopping;                         /* STOP_DRAIN or STOP_NOW once asked */
};

static unsigned hash(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* ------------------------------- mapping ---------------------------------- */

typedef struct pending_event {
    long long id, received;
    char *body;
    int len;
} pending_event;

typedef struct batch_reader { pending_event *out; int n; } batch_reader;

static int copy_event(void *ud, const store_event *e) {
    batch_reader *br = ud;
    pending_event *p = &br->out[br->n++];
    p->id = e->id;
    p->len = (int)e->len;
    p->body = malloc(e->len + 1);                 /* with a NUL: the mapper reads one byte past */
    if (!p->body) abort();
    memcpy(p->body, e->body, e->len);
    p->body[e->len] = 0;
    p->received = e->received_at;
    return br->n == BATCH;
}

/* Reads up to BATCH events of one tenant in one state, in journal order. */
static int read_batch(thread *t, const char *tenant, event_state state, pending_event *out) {
    batch_reader br = { out, 0 };
    return store_journal_each(t->db, tenant, state, BATCH, copy_event, &br) < 0 ? -1 : br.n;
}

/* One batch's results, copied out of the mapper (its result lasts only until
 * the next event): strings in one arena, by offset, so it can grow. */
typedef struct copied_request { size_t method, path, body, body_len, profile, key, due; int scheduled; } copied_request;

typedef struct results {
    strbuf arena;
    struct { long long id; int status; size_t reason; int req0, nreq, can0, ncan, mem0, nmem; } *ev;
    copied_request *req;
    size_t *can, *memk, *memv;
    int nev, nreq, ncan, nmem, cap_ev, cap_req, cap_can, cap_mem;
} results;

static size_t keep(results *rs, const char *s, size_t n) {
    size_t at = rs->arena.len;
    strbuf_add(&rs->arena, s ? s : "", n);
    strbuf_addc(&rs->arena, 0);
    return at;
}

#define GROW(arr, n, cap) do { if ((n) == (cap)) { (cap) = (cap) ? (cap) * 2 : 64; \
    (arr) = realloc((arr), (size_t)(cap) * sizeof *(arr)); if (!(arr)) abort(); } } while (0)

static void keep_result(results *rs, long long id, const map_result *r) {
    GROW(rs->ev, rs->nev, rs->cap_ev);
    int e = rs->nev++;
    rs->ev[e].id = id;
    rs->ev[e].status = r->status;
    rs->ev[e].reason = keep(rs, r->reason, strlen(r->reason));
    rs->ev[e].req0 = rs->nreq;
    rs->ev[e].nreq = r->nrequests;
    for (int i = 0; i < r->nrequests; i++) {
        const map_request *q = &r->requests[i];
        GROW(rs->req, rs->nreq, rs->cap_req);
        copied_request *c = &rs->req[rs->nreq++];
        c->method = keep(rs, q->method, strlen(q->method));
        c->path = keep(rs, q->path, strlen(q->path));
        c->body = keep(rs, q->body, q->body_len);
        c->body_len = q->body_len;
        c->profile = keep(rs, q->profile, strlen(q->profile));
        c->scheduled = q->schedule_key != NULL;
        c->key = c->scheduled ? keep(rs, q->schedule_key, strlen(q->schedule_key)) : 0;
        c->due = c->scheduled ? keep(rs, q->due, strlen(q->due)) : 0;
    }
    rs->ev[e].can0 = rs->ncan;
    rs->ev[e].ncan = r->ncancels;
    for (int i = 0; i < r->ncancels; i++) {
        GROW(rs->can, rs->ncan, rs->cap_can);
        rs->can[rs->ncan++] = keep(rs, r->cancels[i], strlen(r->cancels[i]));
    }
    rs->ev[e].mem0 = rs->nmem;
    rs->ev[e].nmem = r->nmemory;
    for (int i = 0; i < r->nmemory; i++) {
        int cap = rs->cap_mem;
        GROW(rs->memk, rs->nmem, cap);
        GROW(rs->memv, rs->nmem, rs->cap_mem);
        rs->memk[rs->nmem] = keep(rs, r->memory_keys[i], strlen(r->memory_keys[i]));
        rs->memv[rs->nmem] = keep(rs, r->memory_values[i], strlen(r->memory_values[i]));
        rs->nmem++;
    }
}

static void results_free(results *rs) {
    strbuf_free(&rs->arena);
    free(rs->ev);
    free(rs->req);
    free(rs->can);
    free(rs->memk);
    free(rs->memv);
}

/* The store took this thread's writes (or reads) again. */
static void store_worked(thread *t) {
    if (!t->failing) return;
    t->failing = 0;
    store_health_ok(STORE_PART_MAPPING);
}

/* Writes a batch's outcomes in journal order, in as few transactions as the other writers allow: a
 * transaction ends after a multiple of COMMIT_CHUNK events when another writer waits for the store's
 * write lock (store_write_wanted: under a burst, the journal), else at the batch's end. A refusal
 * leaves that transaction's events and the rest journaled, to be mapped again on a later pass, and
 * tells store_health.h (once). *committed: how many of rs's events are stored. Why 32: the lock is
 * taken in turns (the journal's commits between two transactions: store_db.h), and a webhook's
 * acknowledgement waits for the transaction in hand; 32 events keep that wait near a millisecond.
 * Why not always 32: with nobody waiting, one transaction for the batch (256) writes each page it
 * touches once instead of up to 8 times, and pays one commit (a filled journal, one mapping thread:
 * the WAL written 20% smaller, the thread's commits and waits for its turn about half). */
#define COMMIT_CHUNK 32
static int commit_chunk(thread *t, const char *tenant, const char *version, long long epoch, const results *rs,
                        int from, int *to);
static int commit_results(thread *t, const char *tenant, const char *version, long long epoch, const results *rs,
                          int *committed) {
    *committed = 0;
    while (*committed < rs->nev) {
        int to;
        if (commit_chunk(t, tenant, version, epoch, rs, *committed, &to) != 0) return -1;
        *committed = to;
    }
    return 0;
}

/* One transaction, from event `from` to *to (set: the end of rs, or earlier when another writer waits).
 * Each is fenced by the tenant's lease (store_fence): a node that lost the tenant stores none of it,
 * and what is left stays journaled for the new owner. */
static int commit_chunk(thread *t, const char *tenant, const char *version, long long epoch, const results *rs,
                        int from, int *to) {
    const char *a = rs->arena.data;
    int ok = store_begin(t->db) == 0;
    int fence = ok ? store_fence(t->db, tenant, ownership_node(t->w->own), epoch) : 1;
    if (fence == 0) {                             /* another node holds the tenant now: it maps them */
        store_rollback(t->db);
        char f[200];
        snprintf(f, sizeof f, "\"tenant\":\"%s\",\"events\":%d", tenant, rs->nev - from);
        log_line("info", "lease lost during a batch: its outcomes are not stored, the next owner maps them", f);
        return -1;
    }
    ok = ok && fence > 0;
    *to = rs->nev;
    for (int e = from; ok && e < rs->nev; e++) {
        if (e > from && (e - from) % COMMIT_CHUNK == 0 && store_write_wanted(t->db)) {
            *to = e;                              /* another writer's turn: the rest in the next one */
            break;
        }
        map_request reqs[rs->ev[e].nreq ? rs->ev[e].nreq : 1];
        const char *cans[rs->ev[e].ncan ? rs->ev[e].ncan : 1];
        const char *mk[rs->ev[e].nmem ? rs->ev[e].nmem : 1], *mv[rs->ev[e].nmem ? rs->ev[e].nmem : 1];
        for (int i = 0; i < rs->ev[e].nreq; i++) {
            const copied_request *c = &rs->req[rs->ev[e].req0 + i];
            reqs[i] = (map_request){ .method = a + c->method, .path = a + c->path, .body = a + c->body,
                                     .body_len = c->body_len, .profile = a + c->profile,
                                     .schedule_key = c->scheduled ? a + c->key : NULL,
                                     .due = c->scheduled ? a + c->due : NULL };
        }
        for (int i = 0; i < rs->ev[e].ncan; i++) cans[i] = a + rs->can[rs->ev[e].can0 + i];
        for (int i = 0; i < rs->ev[e].nmem; i++) {
            mk[i] = a + rs->memk[rs->ev[e].mem0 + i];
            mv[i] = a + rs->memv[rs->ev[e].mem0 + i];
        }
        map_result r = { .status = (map_status)rs->ev[e].status, .reason = a + rs->ev[e].reason,
                         .requests = reqs, .nrequests = rs->ev[e].nreq, .cancels = cans, .ncancels = rs->ev[e].ncan,
                         .memory_keys = mk, .memory_values = mv, .nmemory = rs->ev[e].nmem };
        ok = outbox_write(t->writer, &(outbox_target){ .tenant = tenant, .version = version, .record_outcome = 1 },
                          rs->ev[e].id, &r) == 0;
    }
    if (ok) ok = store_commit(t->db) == 0;
    if (!ok) {
        char why[256];
        snprintf(why, sizeof why, "%s", store_db_error(t->db));
        store_fault fault = store_db_fault(t->db);
        if (!t->failing) store_log_error("cannot store mapping results; the batch stays journaled and is mapped again", t->db);
        store_rollback(t->db);
        t->failing = 1;
        store_health_failed(STORE_PART_MAPPING, fault, why);
        return -1;
    }
    store_worked(t);
    return 0;
}

/* The console's live tail (tail.h): each committed event's outcome, with its webhook's trigger and
 * customer. */
static void publish_tail(const char *tenant, const results *rs, int committed, const pending_event *batch, int n) {
    static const char *const outcome[] = { "mapped", "dropped", "failed", "deferred" };
    for (int e = 0, i = 0; e < committed; e++) {
        while (i < n && batch[i].id != rs->ev[e].id) i++;
        if (i == n) break;
        const char *reason = rs->arena.data + rs->ev[e].reason;
        tail_publish(tenant, rs->ev[e].id, outcome[rs->ev[e].status & 3], reason, batch[i].body, (size_t)batch[i].len);
    }
}

/* returnflow_mapping_seconds: from each committed event's journaling to now (a first mapping only: a
 * deferred event's later passes would count the deferral). */
static void observe_latency(const char *tenant, const results *rs, int committed, const pending_event *batch, int n) {
    double seconds[BATCH];
    int k = 0;
    long long now = clock_now_ms();
    for (int e = 0, i = 0; e < committed && k < BATCH; e++) {
        while (i < n && batch[i].id != rs->ev[e].id) i++;
        if (i == n) break;
        if (rs->ev[e].status != MAP_DEFERRED) seconds[k++] = (double)(now - batch[i].received) / 1000.0;
    }
    event_counts_observe(tenant, seconds, k);
}

/* Maps one batch of one tenant's events in one state and commits their
 * outcomes together: the write lock is held only for the writes, never while
 * scripts run. Returns events whose state changed, or -1. */
static int map_batch(thread *t, int ti, event_state state, long long epoch) {
    const tenant_config *tc = &t->w->cfg->tenants[ti];
    mapworker *m = t->mappers[ti];
    pending_event *batch = malloc(BATCH * sizeof *batch);
    mapworker_event *events = malloc(BATCH * sizeof *events);
    char (*labels)[64] = malloc(BATCH * sizeof *labels);
    if (!batch || !events || !labels) abort();
    int n = read_batch(t, tc->id, state, batch);
    if (n < 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", store_db_error(t->db));
        t->failing = 2;
        store_health_failed(STORE_PART_MAPPING, store_db_fault(t->db), why);
        n = 0;
    } else if (t->failing == 2) {
        store_worked(t);                          /* a read was what failed, and reads work again */
    }
    results rs = {0};
    long long now = clock_now_ms();
    for (int i = 0; i < n; i++) {
        snprintf(labels[i], sizeof labels[i], "%s#%lld", tc->id, batch[i].id);
        events[i] = (mapworker_event){ batch[i].id, batch[i].body, (size_t)batch[i].len, labels[i] };
    }
    /* k < n: the worker died on event k-1; the rest are mapped in a later pass, once what came
     * before is stored (a new worker recalls those events' memory writes from the store). */
    int k = n ? mapworker_map_batch(m, events, n, 0) : 0;
    for (int i = 0; i < k; i++) {
        pending_event *e = &batch[i];
        map_result r = *mapworker_result(m, i);
        char reason[600];
        if (r.status == MAP_DEFERRED && now - e->received > DEFER_GIVE_UP_MS) {
            snprintf(reason, sizeof reason, "deferred for a day, given up: %.500s", r.reason);
            r.status = MAP_FAILED;
            r.reason = reason;
        }
        if (state == EVENT_DEFERRED && r.status == MAP_DEFERRED) continue;   /* still waiting */
        keep_result(&rs, e->id, &r);
        if (r.status == MAP_FAILED) {
            strbuf f = {0};
            strbuf_adds(&f, "\"tenant\":");
            json_append_string(&f, tc->id, strlen(tc->id));
            char id[48];
            snprintf(id, sizeof id, ",\"event\":%lld,\"reason\":", e->id);
            strbuf_adds(&f, id);
            json_append_string(&f, r.reason, strlen(r.reason));
            strbuf_addc(&f, 0);
            log_line("warn", "event failed, kept as a dead letter", f.data);
            strbuf_free(&f);
        }
    }
    int committed;
    int rc = commit_results(t, tc->id, tc->scripts_version, epoch, &rs, &committed);
    unsigned long long by_outcome[MAP_DEFERRED + 1] = {0};
    for (int e = 0; e < committed; e++) by_outcome[rs.ev[e].status]++;
    for (int o = 0; o <= MAP_DEFERRED; o++) event_counts_add(tc->id, (map_status)o, by_outcome[o]);
    publish_tail(tc->id, &rs, committed, batch, n);
    if (state == EVENT_JOURNALED) observe_latency(tc->id, &rs, committed, batch, n);
    if (rc == 0) rc = rs.nev;
    for (int i = 0; i < n; i++) free(batch[i].body);
    free(batch);
    free(events);
    free(labels);
    results_free(&rs);
    if (rc >= 0 && k >= 0 && k < n) return BATCH;                               /* the rest waits */
    if (rc >= 0 && state == EVENT_JOURNALED && n == BATCH) return rc ? rc : 1;   /* more may wait */
    return rc;
}

/* ------------------------------- threads ---------------------------------- */

typedef struct recall_ctx { thread *t; const char *tenant; } recall_ctx;

/* out:recall when the mapper's cache misses: the store is the memory. */
static int recall_from_store(void *ud, const char *key, size_t klen, strbuf *out) {
    recall_ctx *rc = ud;
    return store_memory_recall(rc->t->db, rc->tenant, key, klen, out);
}

static int halted(workers *w);
static int halted_cb(void *ud) { return halted(ud); }

static void load_memory(thread *t, int ti) {
    recall_ctx *rc = &t->recall[ti];
    rc->t = t;
    rc->tenant = t->w->cfg->tenants[ti].id;
    mapworker_set_recall(t->mappers[ti], recall_from_store, rc);
    mapworker_set_interrupt(t->mappers[ti], halted_cb, t->w);    /* a reload takes over between events */
}

/* The tenant's scripts in their own worker process (mapworker.c): nothing of them runs here. */
static mapworker *new_mapper(const config *cfg, const tenant_config *tc, strbuf *problems) {
    mapper_config mc = mapper_config_of(cfg, tc);
    return mapworker_new(&mc, problems);
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
        pthread_mutex_lock(&w->mu);
        if (seen == w->wakes && !w->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);   /* the cv waits on it (worker_start) */
            until.tv_sec += 1;                    /* schedules and deferred events need a clock too */
            pthread_cond_timedwait(&w->cv, &w->mu, &until);
        }
        int stopping = w->stopping;
        seen = w->wakes;
        pthread_mutex_unlock(&w->mu);
        if (stopping == STOP_NOW) break;
        int busy = 0;
        for (int ti = 0; ti < cfg->ntenants; ti++) {
            if (!t->mappers[ti]) continue;
            if (ti && halted(w)) break;             /* a reload waits for one event, not a pass */
            long long epoch;
            if (!owned(t, ti, &epoch)) continue;    /* another node maps it (ownership.h) */
            /* One batch per tenant per pass: a tenant with a backlog shares the thread, and
             * schedules, dry files, reloads and a stop are never kept waiting behind it. */
            int mapped = map_batch(t, ti, EVENT_JOURNALED, epoch);
            if (halted(w)) break;                   /* the batch stopped between two events for it */
            if (mapped >= BATCH) busy = 1;
            long long mono = clock_mono_ms();
            if (mapped || mono - t->last_deferred_try > 30000) {
                map_batch(t, ti, EVENT_DEFERRED, epoch);   /* what they waited for may have come */
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
        free(t->recall);
        free(t->epochs);
        outbox_writer_free(t->writer);
        store_db_close(t->db);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->threads);
    free(w);
}

workers *workers_start(const config *cfg, ownership *own, char *err, size_t errlen) {
    workers *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->cfg = cfg;
    w->own = own;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    w->n = cfg->workers > 0 ? cfg->workers : (int)(cores > 0 ? cores : 1);
    if (w->n > cfg->ntenants) w->n = cfg->ntenants;   /* a thread per tenant at most: tenants are its unit */
    w->threads = calloc((size_t)(w->n ? w->n : 1), sizeof *w->threads);
    if (!w->threads) abort();
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
        t->recall = calloc((size_t)cfg->ntenants, sizeof *t->recall);
        t->epochs = calloc((size_t)(cfg->ntenants ? cfg->ntenants : 1), sizeof *t->epochs);
        if (!t->mappers || !t->recall || !t->epochs) abort();
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
