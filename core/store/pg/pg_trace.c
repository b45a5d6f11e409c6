/*
 * pg_trace.c: PostgreSQL's readers for `returnflow trace` and the console (store_db.h, "trace"), the
 * same rows as SQLite's trace.c: a substring search of the raw bodies (strpos), newest first and
 * bounded, given oldest first; an event's requests, their failed tries, its schedules (pending and
 * cancelled); the memory keys that name a return or a customer. Read-only.
 */
#include "pg_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *text_or_null(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

#define EVENT_COLUMNS "id, received_at, tenant, state, reason, script_version, attempts, body, node"

static int each_event(PGresult *r, int (*cb)(void *ud, const store_trace_event *e), void *ud) {
    if (!r) return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        store_trace_event e = {
            .id = pg_ll(r, i, 0), .received_at = pg_ll(r, i, 1), .tenant = PQgetvalue(r, i, 2),
            .state = (event_state)pg_ll(r, i, 3), .reason = text_or_null(r, i, 4),
            .script_version = text_or_null(r, i, 5), .attempts = (int)pg_ll(r, i, 6), .body = PQgetvalue(r, i, 7),
            .len = (size_t)PQgetlength(r, i, 7), .node = text_or_null(r, i, 8),
        };
        if (cb(ud, &e)) { n = i + 1; break; }
    }
    PQclear(r);
    return n;
}

/* trace opens the store read-only, so it does not migrate: a store no serve of this version started
 * yet lacks step 3's columns (node, bulk_job), and is named so instead of a missing column. */
static int schema_current(store_db *db) {
    int have = pg_schema_version(db);
    if (have < 0 || have >= pg_schema_latest()) return have < 0 ? -1 : 0;
    snprintf(pg_of(db)->err, sizeof pg_of(db)->err,
             "the store's schema is version %d, older than this returnflow's %d: run `returnflow store migrate` "
             "(or start serve) first", have, pg_schema_latest());
    return -1;
}

int pg_trace_events(store_db *db, const char *tenant, const char *needle, int limit,
                    int (*cb)(void *ud, const store_trace_event *e), void *ud) {
    if (schema_current(db) != 0) return -1;
    static const pg_stmt st = {
        "trace_events", "SELECT * FROM (SELECT " EVENT_COLUMNS " FROM events WHERE ($1::text IS NULL OR tenant = $1) "
                        "AND strpos(body, $2) > 0 ORDER BY id DESC LIMIT $3) q ORDER BY id" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_text_clean(&pp, needle);
    pg_int(&pp, limit);
    return each_event(pg_run(pg_of(db), &st, &pp), cb, ud);
}

int pg_trace_event_by_id(store_db *db, long long id, int (*cb)(void *ud, const store_trace_event *e), void *ud) {
    if (schema_current(db) != 0) return -1;
    static const pg_stmt st = { "trace_event", "SELECT " EVENT_COLUMNS " FROM events WHERE id = $1" };
    pg_params pp = { 0 };
    pg_int(&pp, id);
    return each_event(pg_run(pg_of(db), &st, &pp), cb, ud);
}

int pg_trace_requests(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_request *r), void *ud) {
    static const pg_stmt st = {
        "trace_requests", "SELECT id, event_id, created_at, next_at, state, attempts, coalesce(last_status, 0), profile, "
                          "method, path, last_error, job, schedule_key, body, coalesce(bulk_job, 0), coalesce(bulk_size, 0) "
                          "FROM outbox WHERE event_id = $1 ORDER BY id" };
    pg_params pp = { 0 };
    pg_int(&pp, event_id);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        store_trace_request q = {
            .id = pg_ll(r, i, 0), .event_id = pg_ll(r, i, 1), .created_at = pg_ll(r, i, 2), .next_at = pg_ll(r, i, 3),
            .state = (request_state)pg_ll(r, i, 4), .attempts = (int)pg_ll(r, i, 5), .last_status = (long)pg_ll(r, i, 6),
            .profile = PQgetvalue(r, i, 7), .method = PQgetvalue(r, i, 8), .path = PQgetvalue(r, i, 9),
            .last_error = text_or_null(r, i, 10), .job = text_or_null(r, i, 11), .schedule_key = text_or_null(r, i, 12),
            .body = PQgetvalue(r, i, 13), .body_len = (size_t)PQgetlength(r, i, 13),
            .bulk = { pg_ll(r, i, 14), (int)pg_ll(r, i, 15) },
        };
        if (cb(ud, &q)) { n = i + 1; break; }
    }
    PQclear(r);
    return n;
}

int pg_trace_attempts(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_attempt *a), void *ud) {
    static const pg_stmt st = {
        "trace_attempts", "SELECT a.request_id, a.at, coalesce(a.status, 0), a.error FROM request_attempts a "
                          "JOIN outbox o ON o.id = a.request_id WHERE o.event_id = $1 ORDER BY a.at, a.request_id" };
    pg_params pp = { 0 };
    pg_int(&pp, event_id);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        store_trace_attempt a = { pg_ll(r, i, 0), pg_ll(r, i, 1), (long)pg_ll(r, i, 2), text_or_null(r, i, 3) };
        if (cb(ud, &a)) { n = i + 1; break; }
    }
    PQclear(r);
    return n;
}

int pg_trace_schedules(store_db *db, const char *tenant, long long event_id,
                       int (*cb)(void *ud, const store_trace_schedule *s), void *ud) {
    static const pg_stmt st = {
        "trace_schedules", "SELECT key, method, path, event_id, due_at, 0 AS cancelled, 0::bigint, 0::bigint FROM schedules "
                           "WHERE tenant = $1 AND event_id = $2 UNION ALL "
                           "SELECT key, NULL, NULL, event_id, due_at, 1, by_event, at FROM schedule_cancels "
                           "WHERE tenant = $1 AND event_id = $2 ORDER BY 5, 1" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_int(&pp, event_id);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        store_trace_schedule s = {
            .key = PQgetvalue(r, i, 0), .method = text_or_null(r, i, 1), .path = text_or_null(r, i, 2),
            .event_id = pg_ll(r, i, 3), .due_at = pg_ll(r, i, 4), .cancelled = (int)pg_ll(r, i, 5),
            .cancelled_by = pg_ll(r, i, 6), .cancelled_at = pg_ll(r, i, 7),
        };
        if (cb(ud, &s)) { n = i + 1; break; }
    }
    PQclear(r);
    return n;
}

int pg_trace_memory(store_db *db, const char *tenant, const char *needle,
                    int (*cb)(void *ud, const char *key, const char *value), void *ud) {
    static const pg_stmt st = {
        "trace_memory", "SELECT key, value FROM memory WHERE tenant = $1 AND strpos(key, $2) > 0 "
                        "ORDER BY key COLLATE \"C\" LIMIT 1000" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_text_clean(&pp, needle);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++)
        if (cb(ud, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1))) { n = i + 1; break; }
    PQclear(r);
    return n;
}
