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
 * Checkpoints run on a thread of their own (a connection of their own, passive, once a second): not
 * inside the journal's commits, where they would stall the acknowledgements, and not on a mapping
 * thread, whose time is the pipeline's rate.
 *
 * Schema: schema.c and docs/store.md. The database is the single source of truth after a
 * restart: what is journaled and not done resumes.
 */
#include "store.h"

#include "clock.h"
#include "store_faults.h"
#include "store_health.h"
#include "store_sqlite.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    uv_async_t done_async;
    sqlite3 *db;
    sqlite3_stmt *insert;
    pthread_t writer, checkpointer;
    sqlite3 *checkpoint_db;       /* the checkpointer's own connection */
    pthread_cond_t checkpoint_cv; /* wakes the checkpointer only when stopping (cv is the writer's) */
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
    int ok = store_sqlite_exec(s->db, "BEGIN IMMEDIATE") == 0;
    for (append *a = batch; a && ok; a = a->next) {
        sqlite3_bind_text(s->insert, 1, a->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->insert, 2, a->received_at);
        sqlite3_bind_blob(s->insert, 3, a->body, (int)a->len, SQLITE_STATIC);
        store_sqlite_text_or_null(s->insert, 4, a->version);
        ok = sqlite3_step(s->insert) == SQLITE_DONE;
        a->id = sqlite3_last_insert_rowid(s->db);
        sqlite3_reset(s->insert);
    }
    if (ok) ok = store_sqlite_exec(s->db, "COMMIT") == 0;
    if (!ok) {
        int code = sqlite3_extended_errcode(s->db);
        char why[256];
        snprintf(why, sizeof why, "%s", sqlite3_errmsg(s->db));
        if (!s->failing) store_sqlite_log("journal commit failed: the webhooks of this batch are answered 503", s->db);
        store_sqlite_exec(s->db, "ROLLBACK");
        s->failing = 1;
        store_health_failed(STORE_PART_JOURNAL, store_sqlite_fault(code), why);
    } else if (s->failing) {
        s->failing = 0;
        store_health_ok(STORE_PART_JOURNAL);
    }
    for (append *a = batch; a; a = a->next) {
        a->status = ok ? 0 : -1;
        if (!ok) a->id = 0;
    }
}

/* While the journal fails and no webhook comes: one page written and committed (the schema's
 * version, set to what it is), to learn whether the store takes writes again. */
static void probe(store *s) {
    int ok = store_sqlite_exec(s->db, "BEGIN IMMEDIATE") == 0 && store_sqlite_exec(s->db, "PRAGMA user_version = 1") == 0 &&
             store_sqlite_exec(s->db, "COMMIT") == 0;
    if (!ok) { store_sqlite_exec(s->db, "ROLLBACK"); return; }
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

/* Copies the WAL back into the database once a second, passively (never waiting on a writer). */
static void *checkpointer_main(void *arg) {
    store *s = arg;
    pthread_setname_np(pthread_self(), "rf-checkpoint");
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);      /* checkpoint_cv's clock, as cv's */
        until.tv_sec += 1;
        if (pthread_cond_timedwait(&s->checkpoint_cv, &s->mu, &until) == 0 || s->stopping) continue;
        pthread_mutex_unlock(&s->mu);
        sqlite3_wal_checkpoint_v2(s->checkpoint_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&s->mu);
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

static int make_dir(const char *dir, char *err, size_t errlen) {
    if (mkdir(dir, 0750) == 0 || errno == EEXIST) return 0;
    snprintf(err, errlen, "cannot create the data directory %s: %s", dir, strerror(errno));
    return -1;
}

store *store_open(uv_loop_t *loop, const char *data_dir, char *err, size_t errlen) {
    if (make_dir(data_dir, err, errlen)) return NULL;
    store *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->loop = loop;
    s->queue_tail = &s->queue;
    s->done_tail = &s->done;
    char path[1024];
    snprintf(path, sizeof path, "%s/returnflow.db", data_dir);
    store_faults_init();
    int opened = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (opened == SQLITE_OK) sqlite3_busy_timeout(s->db, 5000);   /* before any statement: wait out a lock */
    if (opened != SQLITE_OK ||
        store_sqlite_schema(s->db) != 0 ||
        store_sqlite_exec(s->db, "DELETE FROM tenant_status") != 0 ||   /* a start unpauses: the key may have been fixed */
        sqlite3_prepare_v2(s->db, "INSERT INTO events(tenant, received_at, body, script_version) VALUES (?, ?, ?, ?)", -1,
                           &s->insert, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the store %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sqlite3_finalize(s->insert);
        sqlite3_close(s->db);
        free(s);
        return NULL;
    }
    if (sqlite3_open_v2(path, &s->checkpoint_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the store %s: %s", path,
                 s->checkpoint_db ? sqlite3_errmsg(s->checkpoint_db) : "out of memory");
        goto fail_db;
    }
    sqlite3_busy_timeout(s->checkpoint_db, 5000);
    store_sqlite_exec(s->checkpoint_db, "SELECT 1 FROM sqlite_master LIMIT 1");   /* opens the WAL: a checkpoint needs it */
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t cv_attr;
    pthread_condattr_init(&cv_attr);
    pthread_condattr_setclock(&cv_attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &cv_attr);
    pthread_cond_init(&s->checkpoint_cv, &cv_attr);
    pthread_condattr_destroy(&cv_attr);
    uv_async_init(loop, &s->done_async, on_done);
    s->done_async.data = s;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the journal writer: %s", strerror(errno));
        goto fail_async;
    }
    if (pthread_create(&s->checkpointer, NULL, checkpointer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the checkpointer: %s", strerror(errno));
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->writer, NULL);
        goto fail_async;
    }
    return s;
fail_async:
    sqlite3_finalize(s->insert);
    sqlite3_close(s->checkpoint_db);
    sqlite3_close(s->db);
    uv_close((uv_handle_t *)&s->done_async, on_async_closed);   /* frees s */
    return NULL;
fail_db:
    sqlite3_close(s->checkpoint_db);
    sqlite3_finalize(s->insert);
    sqlite3_close(s->db);
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
    pthread_cond_destroy(&s->checkpoint_cv);
    free(s);
    if (closed) closed(ud);
}

void store_close(store *s, void (*closed)(void *ud), void *ud) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->cv);
    pthread_cond_signal(&s->checkpoint_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);      /* the writer commits what was queued before it stops */
    pthread_join(s->checkpointer, NULL);
    sqlite3_close(s->checkpoint_db);
    on_done(&s->done_async);            /* and those callbacks run now */
    sqlite3_finalize(s->insert);
    sqlite3_close(s->db);
    s->closed = closed;
    s->closed_ud = ud;
    uv_close((uv_handle_t *)&s->done_async, on_async_closed);
}

