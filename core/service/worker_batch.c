/*
 * worker_batch.c: one tenant's batch, from the journal to the outbox, on every mapping thread.
 *
 * The home thread of a tenant (worker.c) reads a batch of its journaled events and cuts it into
 * chunks of COMMIT_CHUNK events. Every thread that is free takes chunks, in journal order, and maps
 * each on its own mapping worker of the tenant; a chunk's outcome is committed as soon as every
 * chunk before it is, by whichever thread finishes it, so the outbox holds each profile's requests
 * in the order their webhooks arrived, as with one thread.
 *
 * Invariant: the results are those of mapping the batch in order on one worker. What could differ is
 * the memory an event recalls: a chunk mapped while an earlier chunk was not yet committed read the
 * store without that chunk's writes. So each chunk notes every key its events read from outside the
 * chunk (its worker forgets its cache before each chunk: MW_BATCH_FORGET, so each such read reaches
 * the store through the recall callback), and before it is committed, the keys written by the chunks
 * committed since its mapping began are checked against them: from its first event that read one,
 * the chunk is mapped again, once everything before it is stored, by the committing thread, whose
 * turn holds back the later chunks meanwhile. A key written earlier in the same chunk is read from
 * the worker's own cache and is right as it is.
 *
 * Also invariant (worker.c's): an event's outcome is committed in one transaction with everything
 * it produced; a crash before leaves it journaled, to be mapped again.
 *
 * Not here: per-state Lua globals are not shared between workers (each keeps its own, as each kept
 * its own across reloads and restarts before: docs/mapping-api.md says memory is the one state
 * events share); deferred events are mapped again by the home thread alone, in order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event_counts.h"
#include "json.h"
#include "log.h"
#include "map_results.h"
#include "mapper.h"
#include "store_health.h"
#include "strmap.h"
#include "tail.h"
#include "worker_internal.h"

#define DEFER_GIVE_UP_MS (24LL * 3600 * 1000)
#define UNSTEADY_MS 30000             /* a tenant whose worker died or stopped short: home thread only */
#define HELP_MS 500                   /* a helper's chunk stops after the event that passes this, so a
                                         thread that helps is back for its own tenants soon */

/* ------------------------------- reading ---------------------------------- */

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

#define GROW(arr, n, cap) do { if ((n) == (cap)) { (cap) = (cap) ? (cap) * 2 : 64; \
    (arr) = realloc((arr), (size_t)(cap) * sizeof *(arr)); if (!(arr)) abort(); } } while (0)

/* The store took this thread's writes (or reads): the mapping part works, whichever thread failed.
 * A tenant's chunks are committed by whichever thread holds its cursor, so the thread that met the
 * failure may never commit again; clearing only its own failure left /healthz degraded with all work
 * done (pg_restart_spec under ASan). store_health_ok is a no-op while the part is well. */
static void store_worked(thread *t) {
    t->failing = 0;
    store_health_ok(STORE_PART_MAPPING);
}

/* Outcomes are written in journal order, in as few transactions as the other writers allow: a
 * transaction ends after a multiple of COMMIT_CHUNK events when another writer waits for the store's
 * write lock (store_write_wanted: under a burst, the journal), else when the writer has nothing more
 * in order. A refusal leaves that transaction's events and the rest journaled, to be mapped again
 * on a later pass, and tells store_health.h (once). Why 32: the lock is taken in turns (the
 * journal's commits between two transactions: store_db.h), and a webhook's acknowledgement waits
 * for the transaction in hand; 32 events keep that wait near a millisecond. Why not always 32: with
 * nobody waiting, one transaction for a batch writes each page it touches once instead of up to 8
 * times, and pays one commit. Each transaction is fenced by the tenant's lease (store_fence): a node
 * that lost the tenant stores none of it, and what is left stays journaled for the new owner. */
#define COMMIT_CHUNK 32
#define EAGER_BATCHES 8               /* a tenant's batches committed chunk by chunk after a remap */

typedef struct txn {
    thread *t;
    const char *tenant, *version;
    long long epoch;
    int open, n;                  /* a transaction is open, with n events */
} txn;

static int txn_failed(txn *x) {
    thread *t = x->t;
    char why[256];
    snprintf(why, sizeof why, "%s", store_db_error(t->db));
    store_fault fault = store_db_fault(t->db);
    if (!t->failing) store_log_error("cannot store mapping results; the batch stays journaled and is mapped again", t->db);
    store_rollback(t->db);
    x->open = 0;
    t->failing = 1;
    store_health_failed(STORE_PART_MAPPING, fault, why);
    return -1;
}

static int txn_begin(txn *x) {
    thread *t = x->t;
    int ok = store_begin(t->db) == 0;
    int fence = ok ? store_fence(t->db, x->tenant, ownership_node(t->w->own), x->epoch) : 1;
    if (fence == 0) {                             /* another node holds the tenant now: it maps them */
        store_rollback(t->db);
        char f[200];
        snprintf(f, sizeof f, "\"tenant\":\"%s\"", x->tenant);
        log_line("info", "lease lost during a batch: its outcomes are not stored, the next owner maps them", f);
        return -1;
    }
    x->open = 1;
    x->n = 0;
    return ok && fence > 0 ? 0 : txn_failed(x);
}

/* Commits the open transaction, if any. */
static int txn_end(txn *x) {
    if (!x->open) return 0;
    if (store_commit(x->t->db) != 0) return txn_failed(x);
    x->open = 0;
    store_worked(x->t);
    return 0;
}

/* Writes event e of rs. Returns 1 if it committed what came before first (another writer's turn),
 * 0, or -1 if the store refused (nothing open then). */
static int txn_put(txn *x, const map_results *rs, int e) {
    int flushed = 0;
    if (x->open && x->n && x->n % COMMIT_CHUNK == 0 && store_write_wanted(x->t->db)) {
        if (txn_end(x) != 0) return -1;
        flushed = 1;
    }
    if (!x->open && txn_begin(x) != 0) return -1;
    map_result r = map_results_get(rs, e, &x->t->view);
    if (outbox_write(x->t->writer, &(outbox_target){ .tenant = x->tenant, .version = x->version, .record_outcome = 1 },
                     rs->ev[e].id, &r) != 0)
        return txn_failed(x);
    x->n++;
    return flushed;
}

/* Writes all of rs. *committed: how many of its events are stored. */
static int commit_results(thread *t, const char *tenant, const char *version, long long epoch, const map_results *rs,
                          int *committed) {
    txn x = { t, tenant, version, epoch, 0, 0 };
    *committed = 0;
    for (int e = 0; e < rs->nev; e++) {
        int rc = txn_put(&x, rs, e);
        if (rc < 0) return -1;
        if (rc) *committed = e;
    }
    if (txn_end(&x) != 0) return -1;
    *committed = rs->nev;
    return 0;
}

/* The console's live tail (tail.h): each committed event's outcome, with its webhook's trigger and
 * customer. */
static void publish_tail(const char *tenant, const map_results *rs, int committed, const pending_event *batch, int n) {
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
static void observe_latency(const char *tenant, const map_results *rs, int committed, const pending_event *batch, int n) {
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


/* Keeps one event's result: a deferral past a day is given up, a failure is logged. Returns 0 if the
 * result changes nothing (a deferred event still waiting, in the deferred pass). */
static int take_result(map_results *rs, const char *tenant, const pending_event *e, const map_result *got,
                       event_state state, long long now) {
    map_result r = *got;
    char reason[600];
    if (r.status == MAP_DEFERRED && now - e->received > DEFER_GIVE_UP_MS) {
        snprintf(reason, sizeof reason, "deferred for a day, given up: %.500s", r.reason);
        r.status = MAP_FAILED;
        r.reason = reason;
    }
    if (state == EVENT_DEFERRED && r.status == MAP_DEFERRED) return 0;   /* still waiting */
    map_results_add(rs, e->id, &r);
    if (r.status == MAP_FAILED) {
        strbuf f = {0};
        strbuf_adds(&f, "\"tenant\":");
        json_append_string(&f, tenant, strlen(tenant));
        char id[48];
        snprintf(id, sizeof id, ",\"event\":%lld,\"reason\":", e->id);
        strbuf_adds(&f, id);
        json_append_string(&f, r.reason, strlen(r.reason));
        strbuf_addc(&f, 0);
        log_line("warn", "event failed, kept as a dead letter", f.data);
        strbuf_free(&f);
    }
    return 1;
}

/* Counts, the console's tail and the latency of the events [0, committed) of rs. */
static void report(const char *tenant, const map_results *rs, int committed, const pending_event *batch, int n,
                   event_state state) {
    unsigned long long by_outcome[MAP_DEFERRED + 1] = {0};
    for (int e = 0; e < committed; e++) by_outcome[rs->ev[e].status]++;
    for (int o = 0; o <= MAP_DEFERRED; o++) event_counts_add(tenant, (map_status)o, by_outcome[o]);
    publish_tail(tenant, rs, committed, batch, n);
    if (state == EVENT_JOURNALED) observe_latency(tenant, rs, committed, batch, n);
}

/* A read of the journal failed (or worked again): store_health.h. Returns n, or 0 for a failure. */
static int read_checked(thread *t, int n) {
    if (n < 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", store_db_error(t->db));
        t->failing = 2;
        store_health_failed(STORE_PART_MAPPING, store_db_fault(t->db), why);
        return 0;
    }
    if (t->failing == 2) store_worked(t);         /* a read was what failed, and reads work again */
    return n;
}

static void label_events(const char *tenant, const pending_event *batch, int n, mapworker_event *events,
                         char (*labels)[64]) {
    for (int i = 0; i < n; i++) {
        snprintf(labels[i], sizeof labels[i], "%s#%lld", tenant, batch[i].id);
        events[i] = (mapworker_event){ batch[i].id, batch[i].body, (size_t)batch[i].len, labels[i] };
    }
}

/* ------------------------------ deferred ---------------------------------- */

int worker_map_deferred(thread *t, int ti, long long epoch) {
    const tenant_config *tc = &t->w->cfg->tenants[ti];
    mapworker *m = worker_mapper(t, ti);
    if (!m) return 0;
    pending_event *batch = malloc(BATCH * sizeof *batch);
    mapworker_event *events = malloc(BATCH * sizeof *events);
    char (*labels)[64] = malloc(BATCH * sizeof *labels);
    if (!batch || !events || !labels) abort();
    int n = read_checked(t, read_batch(t, tc->id, EVENT_DEFERRED, batch));
    map_results rs = {0};
    long long now = clock_now_ms();
    label_events(tc->id, batch, n, events, labels);
    int k = n ? mapworker_map_batch(m, events, n, 0) : 0;
    for (int i = 0; i < k; i++) take_result(&rs, tc->id, &batch[i], mapworker_result(m, i), EVENT_DEFERRED, now);
    int committed;
    int rc = commit_results(t, tc->id, tc->scripts_version, epoch, &rs, &committed);
    report(tc->id, &rs, committed, batch, n, EVENT_DEFERRED);
    if (rc == 0) rc = rs.nev;
    for (int i = 0; i < n; i++) free(batch[i].body);
    free(batch);
    free(events);
    free(labels);
    map_results_free(&rs);
    return rc;
}

/* ------------------------------- chunks ----------------------------------- */

enum { CHUNK_WAITING, CHUNK_MAPPING, CHUNK_MAPPED, CHUNK_DONE };
enum { GOING, STOPPED_SHORT, NO_WORKER, COMMIT_FAILED };   /* a batch's course */

typedef struct recalled { size_t key, klen; int at; } recalled;

typedef struct chunk {
    int from, n;                  /* the batch's events [from, from + n) */
    int state;
    int visible;                  /* the batch's chunks committed when its mapping began */
    int k;                        /* events mapped (k < n: stopped short) */
    int written;                  /* events written in order (stored, or in the open transaction) */
    int committed;                /* events committed */
    int no_worker;                /* no mapping worker would run */
    map_results rs;
    strbuf keys;                  /* the keys its events read from the store, by offset */
    recalled *recalls;
    int nrecalls, cap_recalls;
} chunk;

typedef struct tenant_batch {
    int ti;
    long long epoch;
    thread *home;
    pending_event *events;
    mapworker_event *mw;
    char (*labels)[64];
    int n;
    chunk chunks[BATCH / COMMIT_CHUNK];
    int nchunks;
    int next;                     /* the first chunk no thread took */
    int closed;                   /* no more chunks are taken (a reload): the rest waits */
    int cursor;                   /* chunks [0, cursor) are done with, in journal order */
    int committing;               /* a thread holds the cursor */
    int mapping;                  /* chunks being mapped now */
    int course;                   /* GOING, or why the rest of the batch waits */
    int remapped;                 /* events mapped again for a recall an earlier chunk changed */
    int eager;                    /* each chunk committed as soon as it is mapped (EAGER_BATCHES) */
    int linked;                   /* in w->open */
    struct tenant_batch *next_open;
    strmap *written;              /* keys the chunks [written_from, written_to) wrote (first_stale_read) */
    int written_from, written_to;
} tenant_batch;

void worker_chunk_recalled(chunk *c, const char *key, size_t klen, int at) {
    GROW(c->recalls, c->nrecalls, c->cap_recalls);
    c->recalls[c->nrecalls++] = (recalled){ c->keys.len, klen, at };
    strbuf_add(&c->keys, key, klen);
}

/* Under mu. */
static void unlink_batch(workers *w, tenant_batch *b) {
    if (!b->linked) return;
    for (tenant_batch **p = &w->open; *p; p = &(*p)->next_open)
        if (*p == b) { *p = b->next_open; break; }
    b->linked = 0;
}

/* Under mu: takes the batch's next chunk for mapping, or -1. */
static int take_chunk(workers *w, tenant_batch *b) {
    if (w->stopping == STOP_NOW) b->closed = 1;  /* a reload: what was taken is committed, no more */
    if (b->closed || b->course != GOING || b->next >= b->nchunks) { unlink_batch(w, b); return -1; }
    int ci = b->next++;
    b->chunks[ci].state = CHUNK_MAPPING;
    b->chunks[ci].visible = b->cursor;
    b->mapping++;
    if (b->next == b->nchunks) unlink_batch(w, b);
    return ci;
}

static int steady(const workers *w, int ti) { return clock_mono_ms() >= w->unsteady_until[ti]; }

int worker_chunk_waiting(workers *w) {
    for (tenant_batch *b = w->open; b; b = b->next_open)
        if (!b->closed && b->course == GOING && b->next < b->nchunks && steady(w, b->ti)) return 1;
    return 0;
}

/* Maps events [from, chunk end) of chunk c on this thread's worker into c->rs; log: note recalls. */
static void map_events(thread *t, tenant_batch *b, chunk *c, int from, int log) {
    const tenant_config *tc = &t->w->cfg->tenants[b->ti];
    mapworker *m = worker_mapper(t, b->ti);
    int k = -1;
    if (m) {
        recall_ctx *rc = &t->recall[b->ti];
        rc->log = log ? c : NULL;
        k = mapworker_map_batch(m, b->mw + c->from + from, c->n - from, 0);
        rc->log = NULL;
        long long now = clock_now_ms();
        for (int i = 0; i < k; i++)
            take_result(&c->rs, tc->id, &b->events[c->from + from + i], mapworker_result(m, i), EVENT_JOURNALED, now);
    }
    c->no_worker = k < 0;
    c->k = from + (k < 0 ? 0 : k);
}

/* The first event of chunk ci that read a key a chunk stored since its mapping began wrote (c->k if
 * none): from there on, it read the store too early. */
static int first_stale_read(tenant_batch *b, int ci) {
    const chunk *c = &b->chunks[ci];
    if (!c->nrecalls || c->visible >= ci) return c->k;
    /* Chunks before ci are written (the caller holds the cursor): their keys are kept from one chunk
     * to the next, as one thread's chunks all began with none committed (visible 0). */
    if (!b->written || b->written_from != c->visible || b->written_to > ci) {
        strmap_free(b->written);
        b->written = strmap_new();
        b->written_from = b->written_to = c->visible;
    }
    strmap *written = b->written;
    for (int p = b->written_to; p < ci; p++) {
        const map_results *rs = &b->chunks[p].rs;
        for (int e = 0; e < b->chunks[p].written; e++)
            for (int i = 0; i < rs->ev[e].nmem; i++) {
                const char *key = rs->arena.data + rs->memk[rs->ev[e].mem0 + i];
                strmap_put(written, key, strlen(key), "", 0);
            }
    }
    b->written_to = ci;
    int first = c->k;
    for (int r = 0; r < c->nrecalls; r++) {
        size_t len;
        if (c->recalls[r].at < first && strmap_get(written, c->keys.data + c->recalls[r].key, c->recalls[r].klen, &len))
            first = c->recalls[r].at;
    }
    return first;
}

/* Writes events [from, to) of chunk ci into x; every transaction that ends meanwhile stores what
 * the chunks [first, ci] wrote so far. */
static int write_chunk(txn *x, tenant_batch *b, int first, int ci, int from, int to) {
    chunk *c = &b->chunks[ci];
    for (int e = from; e < to; e++) {
        int rc = txn_put(x, &c->rs, e);
        if (rc < 0) return -1;
        if (rc)
            for (int p = first; p <= ci; p++) b->chunks[p].committed = b->chunks[p].written;
        c->written = e + 1;
    }
    return 0;
}

/* Commits the mapped chunks [from, to), every chunk before them being done with (the caller holds
 * the cursor), in as few transactions as store_write_wanted allows. A chunk with a stale read: the
 * events before it are committed, the rest mapped again now, the store being exact for them, and
 * written. Returns the chunks done with (the rest of the batch waits after one that stopped short),
 * or -1 if the store refused. */
static int commit_chunks(thread *t, tenant_batch *b, int from, int to) {
    const tenant_config *tc = &t->w->cfg->tenants[b->ti];
    txn x = { t, tc->id, tc->scripts_version, b->epoch, 0, 0 };
    int done = 0;
    for (int ci = from; ci < to; ci++) {
        chunk *c = &b->chunks[ci];
        int stale = first_stale_read(b, ci);
        if (write_chunk(&x, b, from, ci, 0, stale < c->k ? stale : c->k) != 0) return -1;
        if (stale < c->k) {
            if (txn_end(&x) != 0) return -1;
            for (int p = from; p <= ci; p++) b->chunks[p].committed = b->chunks[p].written;
            map_results_cut(&c->rs, stale);
            map_events(t, b, c, stale, 0);
            b->remapped += c->k - stale;
            if (write_chunk(&x, b, from, ci, stale, c->k) != 0) return -1;
        }
        done++;
        if (c->no_worker || c->k < c->n) break;   /* the rest waits for a later pass */
    }
    if (txn_end(&x) != 0) return -1;
    for (int p = from; p < from + done; p++) b->chunks[p].committed = b->chunks[p].written;
    return done;
}

/* Under mu: commits the mapped chunks at the cursor, in order, unless another thread does. */
static void advance(thread *t, tenant_batch *b) {
    workers *w = t->w;
    while (b->course == GOING && !b->committing && b->cursor < b->nchunks &&
           b->chunks[b->cursor].state == CHUNK_MAPPED) {
        int from = b->cursor, to = from;
        while (to < b->nchunks && b->chunks[to].state == CHUNK_MAPPED) to++;
        b->committing = 1;
        pthread_mutex_unlock(&w->mu);
        int done = commit_chunks(t, b, from, to);
        pthread_mutex_lock(&w->mu);
        b->committing = 0;
        if (done < 0) {
            b->course = COMMIT_FAILED;
            break;
        }
        for (int ci = from; ci < from + done; ci++) {
            chunk *c = &b->chunks[ci];
            c->state = CHUNK_DONE;
            b->cursor++;
            if (c->no_worker) b->course = NO_WORKER;
            else if (c->committed < c->n) b->course = STOPPED_SHORT;
            if (c->k < c->n) w->unsteady_until[b->ti] = clock_mono_ms() + UNSTEADY_MS;
        }
    }
    if (b->course != GOING) unlink_batch(w, b);
    pthread_cond_broadcast(&w->cv);
}

/* Under mu: whether the chunks at the cursor are to be committed now. While another thread maps
 * (the commit then overlaps its mapping), or when nothing is left to take; a thread mapping the batch
 * alone maps it whole first, so that it is written in one transaction when nobody waits, unless the
 * batch is eager. */
static int commit_now(const tenant_batch *b) {
    return b->mapping > 0 || b->next == b->nchunks || b->closed || b->course != GOING || b->eager;
}

/* Maps chunk ci (taken under mu), then commits what is in order, if it is time. */
static void run_chunk(thread *t, tenant_batch *b, int ci) {
    chunk *c = &b->chunks[ci];
    recall_ctx *rc = &t->recall[b->ti];
    rc->deadline = b->home == t ? 0 : clock_mono_ms() + HELP_MS;
    map_events(t, b, c, 0, 1);
    rc->deadline = 0;
    pthread_mutex_lock(&t->w->mu);
    c->state = CHUNK_MAPPED;
    b->mapping--;
    if (c->k < c->n) t->w->unsteady_until[b->ti] = clock_mono_ms() + UNSTEADY_MS;
    if (commit_now(b)) advance(t, b);
    else pthread_cond_broadcast(&t->w->cv);
    pthread_mutex_unlock(&t->w->mu);
}

int worker_help(thread *t) {
    workers *w = t->w;
    pthread_mutex_lock(&w->mu);
    for (tenant_batch *b = w->open; b; b = b->next_open) {
        if (b->home == t || !steady(w, b->ti)) continue;
        int ci = take_chunk(w, b);
        if (ci < 0) continue;
        pthread_mutex_unlock(&w->mu);
        run_chunk(t, b, ci);
        return 1;
    }
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int worker_map_journaled(thread *t, int ti, long long epoch) {
    workers *w = t->w;
    const tenant_config *tc = &w->cfg->tenants[ti];
    tenant_batch *b = calloc(1, sizeof *b);
    if (!b) abort();
    b->ti = ti;
    b->epoch = epoch;
    b->home = t;
    b->events = malloc(BATCH * sizeof *b->events);
    b->mw = malloc(BATCH * sizeof *b->mw);
    b->labels = malloc(BATCH * sizeof *b->labels);
    if (!b->events || !b->mw || !b->labels) abort();
    b->eager = w->eager[ti] > 0;
    b->n = read_checked(t, read_batch(t, tc->id, EVENT_JOURNALED, b->events));
    label_events(tc->id, b->events, b->n, b->mw, b->labels);
    for (int from = 0; from < b->n; from += COMMIT_CHUNK) {
        chunk *c = &b->chunks[b->nchunks++];
        c->from = from;
        c->n = b->n - from < COMMIT_CHUNK ? b->n - from : COMMIT_CHUNK;
    }
    pthread_mutex_lock(&w->mu);
    if (w->n > 1 && b->nchunks > 1) {             /* the other threads may take chunks */
        b->next_open = w->open;
        w->open = b;
        b->linked = 1;
        pthread_cond_broadcast(&w->cv);
    }
    for (;;) {
        int ci = take_chunk(w, b);
        if (ci >= 0) {
            pthread_mutex_unlock(&w->mu);
            run_chunk(t, b, ci);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        advance(t, b);                            /* nothing to take: what is mapped goes in */
        if (!b->mapping && !b->committing && (b->course != GOING || b->cursor == b->next)) break;
        pthread_cond_wait(&w->cv, &w->mu);
    }
    unlink_batch(w, b);
    pthread_mutex_unlock(&w->mu);

    int committed = 0;
    for (int ci = 0; ci < b->nchunks; ci++) {
        chunk *c = &b->chunks[ci];
        committed += c->committed;
        report(tc->id, &c->rs, c->committed, b->events + c->from, c->n, EVENT_JOURNALED);
        map_results_free(&c->rs);
        strbuf_free(&c->keys);
        free(c->recalls);
    }
    /* A value most events read (a running count) makes a thread that maps ahead map most of its
     * chunks twice: each read it before the chunks ahead of it were stored. The tenant's next
     * batches store each chunk before the next is mapped, then try mapping ahead again. */
    if (b->remapped) w->eager[ti] = EAGER_BATCHES;
    else if (w->eager[ti] > 0) w->eager[ti]--;
    if (b->remapped) {
        char f[200];
        snprintf(f, sizeof f, "\"tenant\":\"%s\",\"events\":%d", tc->id, b->remapped);
        log_line("info", "events mapped again: an earlier event of their batch changed what they recalled", f);
    }
    int course = b->course, n = b->n, rest = b->cursor < b->nchunks;
    for (int i = 0; i < n; i++) free(b->events[i].body);
    free(b->events);
    free(b->mw);
    free(b->labels);
    strmap_free(b->written);
    free(b);
    if (course == COMMIT_FAILED) return -1;
    if (course == STOPPED_SHORT || (course == GOING && rest)) return BATCH;   /* the rest waits */
    if (course == GOING && n == BATCH) return committed ? committed : 1;   /* more may wait */
    return committed;
}
