/*
 * trace.c: SQLite's readers for `returnflow trace` and the console (store_db.h, "trace"): one
 * return's webhooks, the requests each produced, its schedules and its memory keys.
 *
 * Read-only and beside a running service (WAL). The search by a return id or an email is a substring
 * search of the raw bodies (instr), newest first and bounded by a limit: the caller reads each body
 * and keeps the true matches, so no JSON function of one database is relied on, and the same
 * contract holds on PostgreSQL (position(needle IN body)).
 */
#include "store_sqlite.h"

#include <stdio.h>

/* The columns an event's row gives; node is NULL in a store no writer has upgraded yet (trace opens
 * it read-only, so the columns schema.c adds since may be missing: see column_or_null). */
#define EVENT_COLUMNS "id, received_at, tenant, state, reason, script_version, attempts, body, %s"

static const char *text_or_null(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL : (const char *)sqlite3_column_text(st, i);
}

/* `column`, or NULL when the table has no such column yet (an older store, read before a writer
 * upgraded it). */
static const char *column_or_null(store_db *db, const char *table, const char *column) {
    sqlite3_stmt *st;
    int there = 0;
    if (sqlite3_prepare_v2(db->db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
        there = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
    }
    return there ? column : "NULL";
}

static int each_event(sqlite3_stmt *st, int (*cb)(void *ud, const store_trace_event *e), void *ud) {
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_trace_event e = {
            .id = sqlite3_column_int64(st, 0),
            .received_at = sqlite3_column_int64(st, 1),
            .tenant = (const char *)sqlite3_column_text(st, 2),
            .state = (event_state)sqlite3_column_int(st, 3),
            .reason = text_or_null(st, 4),
            .script_version = text_or_null(st, 5),
            .attempts = sqlite3_column_int(st, 6),
            .body = (const char *)sqlite3_column_blob(st, 7),
            .node = text_or_null(st, 8),
        };
        e.len = (size_t)sqlite3_column_bytes(st, 7);
        if (!e.body) e.body = "";
        n++;
        if (cb(ud, &e)) { rc = SQLITE_DONE; break; }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : -1;
}

int sqlite_trace_events(store_db *db, const char *tenant, const char *needle, int limit,
                        int (*cb)(void *ud, const store_trace_event *e), void *ud) {
    sqlite3_stmt *st;
    char sql[400];
    /* Newest first for the limit, given oldest first (the timeline's order). */
    snprintf(sql, sizeof sql, "SELECT * FROM (SELECT " EVENT_COLUMNS " FROM events WHERE (?1 IS NULL OR tenant = ?1) "
             "AND instr(body, ?2) > 0 ORDER BY id DESC LIMIT ?3) ORDER BY id", column_or_null(db, "events", "node"));
    if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    store_sqlite_text_or_null(st, 1, tenant);
    sqlite3_bind_blob(st, 2, needle, (int)strlen(needle), SQLITE_STATIC);   /* a blob: instr on the raw bytes */
    sqlite3_bind_int(st, 3, limit);
    return each_event(st, cb, ud);
}

int sqlite_trace_event_by_id(store_db *db, long long id, int (*cb)(void *ud, const store_trace_event *e), void *ud) {
    sqlite3_stmt *st;
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT " EVENT_COLUMNS " FROM events WHERE id = ?", column_or_null(db, "events", "node"));
    if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, id);
    return each_event(st, cb, ud);
}

int sqlite_trace_requests(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_request *r), void *ud) {
    sqlite3_stmt *st;
    char sql[2000];
    snprintf(sql, sizeof sql, "SELECT o.id, o.event_id, o.created_at, o.next_at, o.state, o.attempts, o.last_status, "
             "o.profile, o.method, o.path, o.last_error, o.job, o.schedule_key, " STORE_SQLITE_BODY ", %s, %s"
             " FROM outbox o WHERE o.event_id = ? ORDER BY o.id", column_or_null(db, "outbox", "bulk_job"),
             column_or_null(db, "outbox", "bulk_size"));
    if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, event_id);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_trace_request r = {
            .id = sqlite3_column_int64(st, 0),
            .event_id = sqlite3_column_int64(st, 1),
            .created_at = sqlite3_column_int64(st, 2),
            .next_at = sqlite3_column_int64(st, 3),
            .state = (request_state)sqlite3_column_int(st, 4),
            .attempts = sqlite3_column_int(st, 5),
            .last_status = (long)sqlite3_column_int64(st, 6),
            .profile = (const char *)sqlite3_column_text(st, 7),
            .method = (const char *)sqlite3_column_text(st, 8),
            .path = (const char *)sqlite3_column_text(st, 9),
            .last_error = text_or_null(st, 10),
            .job = text_or_null(st, 11),
            .schedule_key = text_or_null(st, 12),
            .body = (const char *)sqlite3_column_blob(st, 13),
            .bulk = { sqlite3_column_int64(st, 14), sqlite3_column_int(st, 15) },
        };
        r.body_len = (size_t)sqlite3_column_bytes(st, 13);
        if (!r.body) r.body = "";
        n++;
        if (cb(ud, &r)) { rc = SQLITE_DONE; break; }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : -1;
}

int sqlite_trace_attempts(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_attempt *a), void *ud) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT a.request_id, a.at, a.status, a.error FROM request_attempts a "
                                   "JOIN outbox o ON o.id = a.request_id WHERE o.event_id = ? ORDER BY a.at, a.rowid",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, event_id);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_trace_attempt a = { sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                                  (long)sqlite3_column_int64(st, 2), text_or_null(st, 3) };
        n++;
        if (cb(ud, &a)) { rc = SQLITE_DONE; break; }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : -1;
}

int sqlite_trace_schedules(store_db *db, const char *tenant, long long event_id,
                           int (*cb)(void *ud, const store_trace_schedule *s), void *ud) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT key, method, path, event_id, due_at, 0, 0, 0 FROM schedules "
                                   "WHERE tenant = ?1 AND event_id = ?2 UNION ALL "
                                   "SELECT key, NULL, NULL, event_id, due_at, 1, by_event, at FROM schedule_cancels "
                                   "WHERE tenant = ?1 AND event_id = ?2 ORDER BY 5, 1", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, event_id);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_trace_schedule s = {
            .key = (const char *)sqlite3_column_text(st, 0),
            .method = text_or_null(st, 1),
            .path = text_or_null(st, 2),
            .event_id = sqlite3_column_int64(st, 3),
            .due_at = sqlite3_column_int64(st, 4),
            .cancelled = sqlite3_column_int(st, 5),
            .cancelled_by = sqlite3_column_int64(st, 6),
            .cancelled_at = sqlite3_column_int64(st, 7),
        };
        n++;
        if (cb(ud, &s)) { rc = SQLITE_DONE; break; }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : -1;
}

int sqlite_trace_memory(store_db *db, const char *tenant, const char *needle,
                        int (*cb)(void *ud, const char *key, const char *value), void *ud) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT key, value FROM memory WHERE tenant = ? AND instr(key, ?) > 0 ORDER BY key LIMIT 1000",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, needle, -1, SQLITE_STATIC);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        n++;
        if (cb(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1))) { rc = SQLITE_DONE; break; }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : -1;
}
