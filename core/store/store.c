/*
 * store.c: the journal, durable before anything is acknowledged.
 *
 * Invariant: a webhook's callback reports success only after the transaction
 * holding its row has committed with a full fsync (WAL, synchronous=FULL). A
 * crash at any instant then loses nothing that was acknowledged.
 *
 * Group commit: one writer thread owns the write connection. Appends queue up
 * on the loop thread; the writer takes everything queued, commits it as one
 * transaction (one fsync), then hands the batch back through a uv_async, so
 * the callbacks run on the loop. While a commit is in flight the next batch
 * gathers: the busier the server, the more webhooks share an fsync.
 *
 * A commit the store refuses (a full disk) answers its webhooks 503, so Loop sends them again, and
 * marks the journal failing (store_health.h: /healthz degraded); while it fails, the writer tries a
 * one-page write every second when no webhook comes, so the service is ready again by itself once
 * the disk has room.
 *
 * Upkeep (SQLite's checkpoints: store_maintain) runs on a thread of its own, a connection of its own,
 * once a second (checkpointer.c): not inside the journal's commits, where it would stall the
 * acknowledgements, and not on a mapping thread, whose time is the pipeline's rate.
 *
 * The thread and its queue are the same for every backend; the append itself is the backend's
 * (store_journal_commit). Schema: docs/store.md. The store is the single source of truth after a
 * restart: what is journaled and not done resumes.
 */
#include "store.h"

#include "checkpointer.h"
#include "clock.h"
#include "store_db.h"
#include "store_health.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct append {
    struct append *next;
    char *tenant;
    char version[24];             /* "" when none */
    char *body;
    size_t len;
    int64_t received_at;          /* ms since the epoch */
    store_journal_cb cb;
    void *ud;
    int status;
    int64_t id;
} append;

struct store {
    uv_loop_t *loop;
    char node[64];                /* kept with every row journaled ("": none); config.c caps it at 63 */
    uv_async_t done_async;
    store_db *db;                 /* the writer thread's */
    pthread_t writer;
    checkpointer *upkeep;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    append *queue, **queue_tail;  /* waiting for a commit */
    append *done, **done_tail;    /* committed (or failed), callbacks to run */
    size_t pending;               /* queued or committing, loop-thread view */
    int stopping;
    int failing;                  /* writer thread: the last commit was refused */
    void (*closed)(void *ud);
    void *closed_ud;
    void (*committed)(void *ud);  /* writer thread, after each successful commit */
    void *committed_ud;
};



/* Commits one batch as one transaction; sets each append's status and id. */
static void commit_batch(store *s, append *batch) {
    int n = 0;
    for (append *a = batch; a; a = a->next) n++;
    store_journal_row *rows = calloc((size_t)n, sizeof *rows);
    if (!rows) abort();
    int i = 0;
    for (append *a = batch; a; a = a->next, i++)
        rows[i] = (store_journal_row){ .tenant = a->tenant, .version = a->version[0] ? a->version : NULL,
                                       .node = s->node[0] ? s->node : NULL, .body = a->body, .len = a->len,
                                       .received_at = a->received_at };
    int ok = store_journal_commit(s->db, rows, n) == 0;
    if (!ok) {
        char why[256];
        snprintf(why, sizeof why, "%s", store_db_error(s->db));
        if (!s->failing) store_log_error("journal commit failed: the webhooks of this batch are answered 503", s->db);
        s->failing = 1;
        store_health_failed(STORE_PART_JOURNAL, store_db_fault(s->db), why);
    } else if (s->failing) {
        s->failing = 0;
        store_health_ok(STORE_PART_JOURNAL);
    }
    i = 0;
    for (append *a = batch; a; a = a->next, i++) {
        a->status = ok ? 0 : -1;
        a->id = ok ? rows[i].id : 0;
    }
    free(rows);
}

/* While the journal fails and no webhook comes: a tiny write, to learn whether the store takes
 * writes again. */
static void probe(store *s) {
    if (store_journal_probe(s->db) != 0) return;
    s->failing = 0;
    store_health_ok(STORE_PART_JOURNAL);
}

static void *writer_main(void *arg) {
    store *s = arg;
    pthread_setname_np(pthread_self(), "rf-journal");
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->queue && !s->stopping) {
            if (!s->failing) { pthread_cond_wait(&s->cv, &s->mu); continue; }
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);      /* the cv's clock: a step cannot stretch it */
            until.tv_sec += 1;
            if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0 || s->queue || s->stopping) continue;
            pthread_mutex_unlock(&s->mu);
            probe(s);
            pthread_mutex_lock(&s->mu);
        }
        if (!s->queue && s->stopping) break;
        append *batch = s->queue;
        s->queue = NULL;
        s->queue_tail = &s->queue;
        pthread_mutex_unlock(&s->mu);

        commit_batch(s, batch);

        if (batch->status == 0 && s->committed) s->committed(s->committed_ud);
        pthread_mutex_lock(&s->mu);
        *s->done_tail = batch;
        while (*s->done_tail) s->done_tail = &(*s->done_tail)->next;
        uv_async_send(&s->done_async);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Loop thread: runs the callbacks of every committed batch. */
static void on_done(uv_async_t *handle) {
    store *s = handle->data;
    pthread_mutex_lock(&s->mu);
    append *list = s->done;
    s->done = NULL;
    s->done_tail = &s->done;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        append *a = list;
        list = a->next;
        s->pending--;
        if (a->cb) a->cb(a->ud, a->status, a->id);
        free(a->tenant);
        free(a->body);
        free(a);
    }
}

static void on_async_closed(uv_handle_t *handle);

store *store_open(uv_loop_t *loop, const char *location, const char *node, char *err, size_t errlen) {
    store *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->loop = loop;
    snprintf(s->node, sizeof s->node, "%s", node ? node : "");
    s->queue_tail = &s->queue;
    s->done_tail = &s->done;
    if (!(s->db = store_db_open(location, STORE_CREATE | STORE_JOURNAL, err, errlen))) goto fail_store;
    if (!(s->upkeep = checkpointer_start(location, err, errlen))) goto fail_db;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t cv_attr;
    pthread_condattr_init(&cv_attr);
    pthread_condattr_setclock(&cv_attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &cv_attr);
    pthread_condattr_destroy(&cv_attr);
    uv_async_init(loop, &s->done_async, on_done);
    s->done_async.data = s;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the journal writer: %s", strerror(errno));
        goto fail_async;
    }
    return s;
fail_async:
    checkpointer_stop(s->upkeep);
    store_db_close(s->db);
    uv_close((uv_handle_t *)&s->done_async, on_async_closed);   /* frees s */
    return NULL;
fail_db:
    store_db_close(s->db);
fail_store:
    free(s);
    return NULL;
}

void store_journal_append(store *s, const char *tenant, const char *version, const char *body, size_t len,
                          store_journal_cb cb, void *ud) {
    append *a = calloc(1, sizeof *a);
    if (!a) abort();
    snprintf(a->version, sizeof a->version, "%s", version ? version : "");
    a->tenant = strdup(tenant);
    a->body = malloc(len ? len : 1);
    if (!a->tenant || !a->body) abort();
    memcpy(a->body, body, len);
    a->len = len;
    a->received_at = clock_now_ms();
    a->cb = cb;
    a->ud = ud;
    s->pending++;
    pthread_mutex_lock(&s->mu);
    *s->queue_tail = a;
    s->queue_tail = &a->next;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

size_t store_pending(const store *s) { return s->pending; }

void store_on_commit(store *s, void (*committed)(void *ud), void *ud) {
    s->committed = committed;
    s->committed_ud = ud;
}

static void on_async_closed(uv_handle_t *handle) {
    store *s = handle->data;
    void (*closed)(void *) = s->closed;
    void *ud = s->closed_ud;
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    if (closed) closed(ud);
}

void store_close(store *s, void (*closed)(void *ud), void *ud) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);      /* the writer commits what was queued before it stops */
    checkpointer_stop(s->upkeep);
    on_done(&s->done_async);            /* and those callbacks run now */
    store_db_close(s->db);
    s->closed = closed;
    s->closed_ud = ud;
    uv_close((uv_handle_t *)&s->done_async, on_async_closed);
}

