/*
 * requests.c: the outbox as delivery sees it: the queue a scan reads, rows marked in flight, and
 * what each answer leaves in a row.
 *
 * Invariant: a row is REQUEST_SENDING only while one deliverer has it in flight; a deliverer's start
 * puts every such row back in the queue (one deliverer per data folder: DATA/delivery.lock). Every
 * change is one short transaction, so a batch job writing beside delivery waits milliseconds, never a
 * request's round trip; and every change says whether it was written, because delivery sends nothing
 * it could not record (deliver/settle.c).
 */
#include "store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

struct store_scan { const store_backend *backend; sqlite3_stmt *st; };

store_scan *sqlite_scan_queued(store_db *db, const char *tenant, int limit) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT o.id, o.profile, o.method, o.path, " STORE_SQLITE_BODY ", o.attempts, "
                                   "o.next_at, o.created_at FROM outbox o WHERE o.tenant = ? AND o.state = ? "
                                   "ORDER BY o.id LIMIT ?", -1, &st,
                           NULL) != SQLITE_OK) return NULL;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, REQUEST_QUEUED);
    sqlite3_bind_int(st, 3, limit);
    store_scan *s = malloc(sizeof *s);
    if (!s) abort();
    s->backend = &store_sqlite_backend;
    s->st = st;
    return s;
}

int sqlite_scan_next(store_scan *s, store_request *r) {
    sqlite3_stmt *st = s->st;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) return 0;
    if (rc != SQLITE_ROW) return -1;
    r->id = sqlite3_column_int64(st, 0);
    r->profile = (const char *)sqlite3_column_text(st, 1);
    r->method = (const char *)sqlite3_column_text(st, 2);
    r->path = (const char *)sqlite3_column_text(st, 3);
    r->body = sqlite3_column_blob(st, 4);
    r->body_len = (size_t)sqlite3_column_bytes(st, 4);
    if (!r->body) r->body = "";
    r->attempts = sqlite3_column_int(st, 5);
    r->next_at = sqlite3_column_int64(st, 6);
    r->created_at = sqlite3_column_int64(st, 7);
    return 1;
}

void sqlite_scan_end(store_scan *s) {
    if (!s) return;
    sqlite3_finalize(s->st);
    free(s);
}

int sqlite_queued_at_least(store_db *db, const char *tenant, int n) {
    sqlite3_stmt *st;
    int yes = 0;
    if (sqlite3_prepare_v2(db->db, "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE tenant = ? AND state = ? LIMIT ?)",
                           -1, &st, NULL) != SQLITE_OK) return 0;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, REQUEST_QUEUED);
    sqlite3_bind_int(st, 3, n);
    if (sqlite3_step(st) == SQLITE_ROW) yes = sqlite3_column_int(st, 0) >= n;
    sqlite3_finalize(st);
    return yes;
}

long long sqlite_queued_count(store_db *db, const char *tenant) {
    sqlite3_stmt *st;
    long long n = -1;
    if (sqlite3_prepare_v2(db->db, "SELECT coalesce((SELECT n FROM queue_counts WHERE tenant = ?), 0)", -1, &st,
                           NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

long long sqlite_queued_through(store_db *db, const char *tenant, long long last_id) {
    sqlite3_stmt *st;
    long long n = -1;
    if (sqlite3_prepare_v2(db->db, "SELECT count(*) FROM outbox WHERE tenant = ? AND state = ? AND id <= ?", -1, &st,
                           NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, REQUEST_QUEUED);
    sqlite3_bind_int64(st, 3, last_id);
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Runs `st` over ids[0..n) in one transaction (bind fills one row's parameters). BEGIN IMMEDIATE
 * waits out the busy timeout: no statement of this connection may be open (a scan's read
 * transaction on an old snapshot would make it fail at once, SQLite's SQLITE_BUSY_SNAPSHOT, without
 * waiting: the "stays busy" bursts of before). 0, or -1 with nothing written. */
static int each_in_one_transaction(store_db *db, const char *sql, int n,
                                   void (*bind)(sqlite3_stmt *st, int i, const void *ud), const void *ud) {
    sqlite3_stmt *st = NULL;
    if (store_sqlite_write_begin(db) != 0) return -1;
    int ok = sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) == SQLITE_OK;
    for (int i = 0; ok && i < n; i++) {
        bind(st, i, ud);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    sqlite3_finalize(st);
    if (ok && store_sqlite_write_commit(db) == 0) return 0;
    /* Keep the failing call's error for store_db_fault: the rollback must not replace it. */
    int code = sqlite3_extended_errcode(db->db);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(db->db));
    store_sqlite_write_rollback(db);
    store_sqlite_keep_error(db, code, msg);
    return -1;
}

typedef struct sending_args { const long long *ids; const store_bulk_mark *bulk; } sending_args;

static void bind_sending(sqlite3_stmt *st, int i, const void *ud) {
    const sending_args *a = ud;
    sqlite3_bind_int(st, 1, REQUEST_SENDING);
    if (a->bulk && a->bulk[i].size > 0) {
        sqlite3_bind_int64(st, 2, a->bulk[i].first);
        sqlite3_bind_int(st, 3, a->bulk[i].size);
    } else {                                      /* alone: no bulk job of an earlier send stays */
        sqlite3_bind_null(st, 2);
        sqlite3_bind_null(st, 3);
    }
    sqlite3_bind_int64(st, 4, a->ids[i]);
}

int sqlite_mark_sending(store_db *db, const long long *ids, const store_bulk_mark *bulk, int n) {
    if (n <= 0) return 0;
    sending_args a = { ids, bulk };
    return each_in_one_transaction(db, "UPDATE outbox SET state = ?, bulk_job = ?, bulk_size = ? WHERE id = ?", n,
                                   bind_sending, &a);
}

void sqlite_requeue_sending(store_db *db) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "UPDATE outbox SET state = ? WHERE state = ?", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_int(st, 1, REQUEST_QUEUED);
    sqlite3_bind_int(st, 2, REQUEST_SENDING);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

typedef struct settle_args { const long long *ids; const store_outcome *o; } settle_args;

static void bind_outcome(sqlite3_stmt *st, int i, const void *ud) {
    const settle_args *a = ud;
    const store_outcome *o = &a->o[i];
    sqlite3_bind_int(st, 1, (int)o->state);
    sqlite3_bind_int(st, 2, (int)o->status);
    sqlite3_bind_int64(st, 3, o->next_at);
    if (o->error) sqlite3_bind_text(st, 4, o->error, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 4);
    sqlite3_bind_int(st, 5, o->attempt ? 1 : 0);
    sqlite3_bind_int64(st, 6, a->ids[i]);
}

int sqlite_settle(store_db *db, const long long *ids, const store_outcome *outcomes, int n) {
    if (n <= 0) return 0;
    settle_args a = { ids, outcomes };
    return each_in_one_transaction(db, "UPDATE outbox SET state = ?, last_status = ?, next_at = ?, last_error = ?, "
                                       "attempts = attempts + ? WHERE id = ?", n, bind_outcome, &a);
}

int sqlite_mark_delivered_upto(store_db *db, const char *tenant, long long last) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "UPDATE outbox SET state = ?1 WHERE tenant = ?2 AND state = ?3 AND id <= ?4", -1,
                           &st, NULL) != SQLITE_OK) return 0;
    sqlite3_bind_int(st, 1, REQUEST_DELIVERED);
    sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, REQUEST_QUEUED);
    sqlite3_bind_int64(st, 4, last);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

void sqlite_pause_tenant(store_db *db, const char *tenant, const char *reason, long long at) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "INSERT OR REPLACE INTO tenant_status(tenant, paused, reason, at) "
                                   "VALUES (?, 1, ?, ?)", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, at);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

void sqlite_unpause_all(store_db *db) { sqlite3_exec(db->db, "DELETE FROM tenant_status", NULL, NULL, NULL); }

int sqlite_tenant_paused(store_db *db, const char *tenant) {
    return store_sqlite_count(db->db, "SELECT count(*) FROM tenant_status WHERE tenant = ? AND paused = 1", tenant) > 0;
}
