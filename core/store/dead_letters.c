/*
 * dead_letters.c: the operator's view of the store (`returnflow status`, `returnflow dlq`): counts by
 * tenant, and the dead letters: failed events ("event:ID", mapped again on replay) and dead requests
 * ("request:ID", sent again on replay).
 *
 * They run beside a running service: WAL lets them read while it writes, and every change here is
 * one statement the service then picks up (a replayed event is mapped again within a second, a
 * replayed request is sent again).
 */
#include "store_sqlite.h"

#include <stdio.h>

void sqlite_tenants(store_db *db, void (*cb)(void *ud, const char *tenant), void *ud) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT tenant FROM events UNION SELECT tenant FROM outbox ORDER BY 1", -1, &st,
                           NULL) != SQLITE_OK) return;
    while (sqlite3_step(st) == SQLITE_ROW) cb(ud, (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

/* A count of one tenant's rows (?1) in the states ?2 and ?3. */
static long long count(store_db *db, const char *sql, const char *tenant, int a, int b) {
    sqlite3_stmt *st;
    long long v = 0;
    if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, a);
    sqlite3_bind_int(st, 3, b);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

void sqlite_tenant_counts_of(store_db *db, const char *t, store_tenant_counts *c) {
    static const char events[] = "SELECT count(*) FROM events WHERE tenant = ?1 AND state = ?2";
    static const char outbox[] = "SELECT count(*) FROM outbox WHERE tenant = ?1 AND state IN (?2, ?3)";
    c->journaled = count(db, events, t, EVENT_JOURNALED, 0);
    c->deferred = count(db, events, t, EVENT_DEFERRED, 0);
    c->failed = count(db, events, t, EVENT_FAILED, 0);
    c->queued = count(db, outbox, t, REQUEST_QUEUED, REQUEST_SENDING);
    c->retrying = count(db, "SELECT count(*) FROM outbox WHERE tenant = ?1 AND state IN (?2, ?3) AND attempts > 0", t,
                        REQUEST_QUEUED, REQUEST_SENDING);
    c->delivered = count(db, outbox, t, REQUEST_DELIVERED, REQUEST_DELIVERED);
    c->dead = count(db, outbox, t, REQUEST_DEAD, REQUEST_DEAD);
    c->paused = store_sqlite_count(db->db, "SELECT count(*) FROM tenant_status WHERE tenant = ? AND paused = 1", t);
    c->last_error[0] = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT e FROM (SELECT last_error AS e, next_at AS at FROM outbox WHERE tenant = ?1 "
                                   "AND last_error IS NOT NULL UNION ALL SELECT reason, received_at FROM events WHERE "
                                   "tenant = ?1 AND state = ?2) ORDER BY at DESC LIMIT 1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, EVENT_FAILED);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(c->last_error, sizeof c->last_error, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
}

void sqlite_dead_letters(store_db *db, const char *tenant,
                        void (*cb)(void *ud, const char *id, const char *tenant, const char *what, const char *why),
                        void *ud) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT 'event:' || id, tenant, '', reason FROM events WHERE state = ?2 AND "
                                   "(?1 IS NULL OR tenant = ?1) UNION ALL SELECT 'request:' || id, tenant, path || ' ' "
                                   "|| coalesce(last_status, ''), last_error FROM outbox WHERE state = ?3 AND "
                                   "(?1 IS NULL OR tenant = ?1) ORDER BY 2, 1", -1, &st, NULL) != SQLITE_OK) return;
    if (tenant) sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, EVENT_FAILED);
    sqlite3_bind_int(st, 3, REQUEST_DEAD);
    while (sqlite3_step(st) == SQLITE_ROW)
        cb(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
           (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
}

int sqlite_dead_letter(store_db *db, int is_event, long long id,
                      void (*cb)(void *ud, const char *tenant, const char *reason, const char *text), void *ud) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, is_event ? "SELECT tenant, reason, body FROM events WHERE id = ?1 AND state = ?2"
                                            : "SELECT tenant, coalesce(last_status, '') || ' ' || coalesce(last_error, "
                                              "''), method || ' ' || path || char(10) || " STORE_SQLITE_BODY " FROM outbox o "
                                              "WHERE id = ?1 AND state = ?2", -1, &st, NULL) != SQLITE_OK) return 0;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, is_event ? (int)EVENT_FAILED : (int)REQUEST_DEAD);
    int found = sqlite3_step(st) == SQLITE_ROW;
    if (found)
        cb(ud, (const char *)sqlite3_column_text(st, 0),
           sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "",
           (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    return found;
}

/* ?1 the id (0: every one), ?2 the tenant (NULL: every one), ?3 the dead state, ?4 the new one
 * (a statement may leave ?4 out). */
static int change(store_db *db, const char *sql, long long id, const char *tenant, int dead, int to) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, id);
    if (tenant) sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, dead);
    sqlite3_bind_int(st, 4, to);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? sqlite3_changes(db->db) : -1;
}

int sqlite_replay_dead_events(store_db *db, long long id, const char *tenant) {
    return change(db, "UPDATE events SET state = ?4, reason = NULL WHERE state = ?3 AND (?1 = 0 OR id = ?1) AND "
                      "(?2 IS NULL OR tenant = ?2)", id, tenant, EVENT_FAILED, EVENT_JOURNALED);
}

int sqlite_purge_dead_events(store_db *db, long long id, const char *tenant) {
    return change(db, "UPDATE events SET state = ?4, reason = 'purged from the dead letters: ' || coalesce(reason, '') "
                      "WHERE state = ?3 AND (?1 = 0 OR id = ?1) AND (?2 IS NULL OR tenant = ?2)", id, tenant,
                  EVENT_FAILED, EVENT_DROPPED);
}

int sqlite_replay_dead_requests(store_db *db, long long id, const char *tenant) {
    return change(db, "UPDATE outbox SET state = ?4, attempts = 0, next_at = 0, created_at = "
                      "CAST(strftime('%s','now') AS INTEGER) * 1000 WHERE state = ?3 AND (?1 = 0 OR id = ?1) AND "
                      "(?2 IS NULL OR tenant = ?2)", id, tenant, REQUEST_DEAD, REQUEST_QUEUED);
}

int sqlite_purge_dead_requests(store_db *db, long long id, const char *tenant) {
    return change(db, "DELETE FROM outbox WHERE state = ?3 AND (?1 = 0 OR id = ?1) AND (?2 IS NULL OR tenant = ?2)", id, tenant, REQUEST_DEAD, REQUEST_DEAD);
}
