/*
 * requests.c: the outbox as delivery sees it: the queue a scan reads, rows marked in flight, and
 * what each answer leaves in a row.
 *
 * Invariant: a row is REQUEST_SENDING only while one deliverer has it in flight; a deliverer's start
 * puts every such row back in the queue (one deliverer per data folder: DATA/delivery.lock). Every
 * change is one short statement or transaction, so a batch job writing beside delivery waits
 * milliseconds, never a request's round trip.
 */
#include "store_sqlite.h"

#include <stdlib.h>

#include "log.h"

struct store_scan { sqlite3_stmt *st; };

store_scan *store_scan_queued(store_db *db, const char *tenant, int limit) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT id, profile, method, path, body, attempts, next_at, created_at "
                                   "FROM outbox WHERE tenant = ? AND state = ? ORDER BY id LIMIT ?", -1, &st,
                           NULL) != SQLITE_OK) return NULL;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, REQUEST_QUEUED);
    sqlite3_bind_int(st, 3, limit);
    store_scan *s = malloc(sizeof *s);
    if (!s) abort();
    s->st = st;
    return s;
}

int store_scan_next(store_scan *s, store_request *r) {
    sqlite3_stmt *st = s->st;
    if (sqlite3_step(st) != SQLITE_ROW) return 0;
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

void store_scan_end(store_scan *s) {
    if (!s) return;
    sqlite3_finalize(s->st);
    free(s);
}

int store_queued_at_least(store_db *db, const char *tenant, int n) {
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

/* BEGIN IMMEDIATE, trying again while the store stays busy (each try waits out the busy timeout). */
static void begin(store_db *db) {
    for (int tries = 0; tries < 30; tries++)
        if (sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) return;
    log_line("error", "cannot update the outbox: the store stays busy", NULL);
}

void store_mark_sending(store_db *db, const long long *ids, int n) {
    sqlite3_stmt *st;
    begin(db);
    if (sqlite3_prepare_v2(db->db, "UPDATE outbox SET state = ? WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
        for (int i = 0; i < n; i++) {
            sqlite3_bind_int(st, 1, REQUEST_SENDING);
            sqlite3_bind_int64(st, 2, ids[i]);
            sqlite3_step(st);
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
    }
    sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
}

void store_requeue_sending(store_db *db) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "UPDATE outbox SET state = ? WHERE state = ?", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_int(st, 1, REQUEST_QUEUED);
    sqlite3_bind_int(st, 2, REQUEST_SENDING);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

static const char settle_sql[] = "UPDATE outbox SET state = ?, last_status = ?, next_at = ?, last_error = ?, "
                                 "attempts = attempts + ? WHERE id = ?";

static void bind_outcome(sqlite3_stmt *st, const store_outcome *o, long long id) {
    sqlite3_bind_int(st, 1, (int)o->state);
    sqlite3_bind_int(st, 2, (int)o->status);
    sqlite3_bind_int64(st, 3, o->next_at);
    if (o->error) sqlite3_bind_text(st, 4, o->error, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 4);
    sqlite3_bind_int(st, 5, o->attempt ? 1 : 0);
    sqlite3_bind_int64(st, 6, id);
}

void store_settle(store_db *db, long long id, const store_outcome *o) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, settle_sql, -1, &st, NULL) != SQLITE_OK) {
        log_line("error", "cannot update the outbox", NULL);
        return;
    }
    bind_outcome(st, o, id);
    /* A row left marked in flight would never be sent again before a restart: keep trying while the
     * store is busy (a batch job writing beside us), each try waiting out the busy timeout. */
    int rc, tries = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_BUSY && ++tries < 30) sqlite3_reset(st);
    if (rc != SQLITE_DONE) log_line("error", "cannot update the outbox", NULL);
    sqlite3_finalize(st);
}

void store_settle_many(store_db *db, const long long *ids, const char *skip, int n, const store_outcome *o) {
    sqlite3_stmt *st;
    begin(db);
    if (sqlite3_prepare_v2(db->db, settle_sql, -1, &st, NULL) == SQLITE_OK) {
        for (int i = 0; i < n; i++) {
            if (skip && skip[i]) continue;
            bind_outcome(st, o, ids[i]);
            sqlite3_step(st);
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
    }
    sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
}

int store_mark_delivered_upto(store_db *db, const char *tenant, long long last) {
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

void store_pause_tenant(store_db *db, const char *tenant, const char *reason, long long at) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "INSERT OR REPLACE INTO tenant_status(tenant, paused, reason, at) "
                                   "VALUES (?, 1, ?, ?)", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, at);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

void store_unpause_all(store_db *db) { sqlite3_exec(db->db, "DELETE FROM tenant_status", NULL, NULL, NULL); }

int store_tenant_paused(store_db *db, const char *tenant) {
    return store_sqlite_count(db->db, "SELECT count(*) FROM tenant_status WHERE tenant = ? AND paused = 1", tenant) > 0;
}
