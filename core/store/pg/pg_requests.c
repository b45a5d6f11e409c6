/*
 * pg_requests.c: the outbox as delivery sees it, on PostgreSQL: the queue a scan reads, rows marked
 * in flight, what each answer leaves in a row, and the tenants Klaviyo refused.
 *
 * Invariants, as SQLite's (requests.c): a row is REQUEST_SENDING only while one deliverer has it in
 * flight; mark_sending and settle are each one transaction, and say whether it was written, because
 * delivery sends nothing it could not record.
 */
#include "pg_store.h"

#include <stdlib.h>

typedef struct pg_scan {
    const store_backend *backend; /* first, as every backend's scan (store_backend.h) */
    PGresult *rows;
    int next, count;
} pg_scan;

store_scan *pg_scan_queued(store_db *db, const char *tenant, int limit) {
    static const pg_stmt st = { "scan_queued", "SELECT id, profile, method, path, body, attempts, next_at, created_at "
                                               "FROM outbox WHERE tenant = $1 AND state = $2 ORDER BY id LIMIT $3" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_int(&pp, REQUEST_QUEUED);
    pg_int(&pp, limit);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) return NULL;
    pg_scan *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->backend = &store_pg_backend;
    s->rows = r;
    s->count = PQntuples(r);
    return (store_scan *)s;
}

int pg_scan_next(store_scan *scan, store_request *q) {
    pg_scan *s = (pg_scan *)scan;
    if (s->next >= s->count) return 0;
    PGresult *r = s->rows;
    int i = s->next++;
    q->id = pg_ll(r, i, 0);
    q->profile = PQgetvalue(r, i, 1);
    q->method = PQgetvalue(r, i, 2);
    q->path = PQgetvalue(r, i, 3);
    q->body = PQgetvalue(r, i, 4);
    q->body_len = (size_t)PQgetlength(r, i, 4);
    q->attempts = (int)pg_ll(r, i, 5);
    q->next_at = pg_ll(r, i, 6);
    q->created_at = pg_ll(r, i, 7);
    return 1;
}

void pg_scan_end(store_scan *scan) {
    pg_scan *s = (pg_scan *)scan;
    if (!s) return;
    PQclear(s->rows);
    free(s);
}

int pg_queued_at_least(store_db *db, const char *tenant, int n) {
    static const pg_stmt st = { "queued_at_least", "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE tenant = $1 AND "
                                                   "state = $2 LIMIT $3) q" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_int(&pp, REQUEST_QUEUED);
    pg_int(&pp, n);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    int yes = r && pg_ll(r, 0, 0) >= n;
    PQclear(r);
    return yes;
}

long long pg_queued_count(store_db *db, const char *tenant) {
    static const pg_stmt st = { "queued_count", "SELECT coalesce((SELECT n FROM queue_counts WHERE tenant = $1), 0)" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) return -1;
    long long n = pg_ll(r, 0, 0);
    PQclear(r);
    return n;
}

long long pg_queued_through(store_db *db, const char *tenant, long long last_id) {
    static const pg_stmt st = { "queued_through", "SELECT count(*) FROM outbox WHERE tenant = $1 AND state = $2 AND id <= $3" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_int(&pp, REQUEST_QUEUED);
    pg_int(&pp, last_id);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) return -1;
    long long n = pg_ll(r, 0, 0);
    PQclear(r);
    return n;
}

/* Runs st over rows [0, n) in one transaction (bind fills one row's parameters). 0, or -1 with
 * nothing written and the failure kept for store_db_fault. */
static int each_in_one_transaction(store_db *db, const pg_stmt *st, int n,
                                   void (*bind)(pg_params *pp, int i, const void *ud), const void *ud) {
    pg_db *p = pg_of(db);
    if (pg_begin(db) != 0) return -1;
    for (int i = 0; i < n; i++) {
        pg_params pp = { 0 };
        bind(&pp, i, ud);
        if (pg_do(p, st, &pp) != 0) goto fail;
    }
    if (pg_commit(db) == 0) return 0;
fail:
    pg_rollback(db);
    return -1;
}

typedef struct sending_args { const long long *ids; const store_bulk_mark *bulk; } sending_args;

static void bind_sending(pg_params *pp, int i, const void *ud) {
    const sending_args *a = ud;
    int in_bulk = a->bulk && a->bulk[i].size > 0;
    pg_int(pp, REQUEST_SENDING);
    pg_int(pp, in_bulk ? a->bulk[i].first : 0);
    pg_int(pp, in_bulk ? a->bulk[i].size : 0);
    pg_int(pp, a->ids[i]);
}

int pg_mark_sending(store_db *db, const long long *ids, const store_bulk_mark *bulk, int n) {
    /* size 0: alone, so no bulk job of an earlier send stays (NULL) */
    static const pg_stmt st = { "mark_sending", "UPDATE outbox SET state = $1, bulk_job = nullif($2::bigint, 0), "
                                                "bulk_size = nullif($3::int, 0) WHERE id = $4" };
    if (n <= 0) return 0;
    sending_args a = { ids, bulk };
    if (each_in_one_transaction(db, &st, n, bind_sending, &a) == 0) return 0;
    if (PQstatus(pg_of(db)->conn) != CONNECTION_OK) pg_unsure_sending(pg_of(db), ids, n);
    return -1;
}

void pg_requeue_sending(store_db *db) {
    static const pg_stmt st = { "requeue_sending", "UPDATE outbox SET state = $1 WHERE state = $2" };
    pg_params pp = { 0 };
    pg_int(&pp, REQUEST_QUEUED);
    pg_int(&pp, REQUEST_SENDING);
    pg_do(pg_of(db), &st, &pp);
}

typedef struct settle_args { const long long *ids; const store_outcome *o; } settle_args;

static void bind_outcome(pg_params *pp, int i, const void *ud) {
    const settle_args *a = ud;
    const store_outcome *o = &a->o[i];
    pg_int(pp, o->state);
    pg_int(pp, o->status);
    pg_int(pp, o->next_at);
    pg_text_clean(pp, o->error);
    pg_int(pp, o->attempt ? 1 : 0);
    pg_int(pp, a->ids[i]);
}

int pg_settle(store_db *db, const long long *ids, const store_outcome *outcomes, int n) {
    static const pg_stmt st = { "settle", "UPDATE outbox SET state = $1, last_status = $2, next_at = $3, last_error = $4, "
                                          "attempts = attempts + $5 WHERE id = $6" };
    if (n <= 0) return 0;
    settle_args a = { ids, outcomes };
    return each_in_one_transaction(db, &st, n, bind_outcome, &a);
}

int pg_mark_delivered_upto(store_db *db, const char *tenant, long long last) {
    static const pg_stmt st = { "mark_delivered_upto", "UPDATE outbox SET state = $1 WHERE tenant = $2 AND state = $3 AND id <= $4" };
    pg_params pp = { 0 };
    pg_int(&pp, REQUEST_DELIVERED);
    pg_text(&pp, tenant);
    pg_int(&pp, REQUEST_QUEUED);
    pg_int(&pp, last);
    return pg_do(pg_of(db), &st, &pp);
}

void pg_pause_tenant(store_db *db, const char *tenant, const char *reason, long long at) {
    static const pg_stmt st = { "pause_tenant", "INSERT INTO tenant_status(tenant, paused, reason, at) VALUES ($1, 1, $2, $3) "
                                                "ON CONFLICT (tenant) DO UPDATE SET paused = 1, reason = excluded.reason, "
                                                "at = excluded.at" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_text_clean(&pp, reason);
    pg_int(&pp, at);
    pg_do(pg_of(db), &st, &pp);
}

void pg_unpause_all(store_db *db) {
    static const pg_stmt st = { "unpause_all", "DELETE FROM tenant_status" };
    pg_do(pg_of(db), &st, NULL);
}

int pg_tenant_paused(store_db *db, const char *tenant) {
    static const pg_stmt st = { "tenant_paused", "SELECT count(*) FROM tenant_status WHERE tenant = $1 AND paused = 1" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    int yes = r && pg_ll(r, 0, 0) > 0;
    PQclear(r);
    return yes;
}
