/*
 * journal.c: reading the journal (events) and what leaves it: the mapping threads' batches, a
 * replay's window, a batch job's own events, and the purge of what is done and old.
 *
 * Appending a webhook is the journal writer's alone (store.c): its durability is the ack's promise.
 * Invariant here: events are read in id order, which is arrival order, so a tenant's events are
 * mapped (and its profiles' requests queued) in the order their webhooks arrived.
 */
#include "store_sqlite.h"

#include <stdio.h>

static int each_row(sqlite3_stmt *st, store_event_cb cb, void *ud, int with_received) {
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        store_event e = { .id = sqlite3_column_int64(st, 0), .body = sqlite3_column_blob(st, 1),
                          .len = (size_t)sqlite3_column_bytes(st, 1),
                          .received_at = with_received ? sqlite3_column_int64(st, 2) : 0 };
        if (!e.body) e.body = "";
        n++;
        if (cb(ud, &e)) break;
    }
    sqlite3_finalize(st);
    return n;
}

int sqlite_journal_each(store_db *db, const char *tenant, event_state state, int limit, store_event_cb cb, void *ud) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT id, body, received_at FROM events WHERE tenant = ? AND state = ? "
                                   "ORDER BY id LIMIT ?", -1, &st, NULL) != SQLITE_OK) {
        store_sqlite_log("cannot read the journal", db->db);
        return -1;
    }
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int)state);
    sqlite3_bind_int(st, 3, limit);
    return each_row(st, cb, ud, 1);
}

int sqlite_journal_replay(store_db *db, const char *tenant, long long since, long long until, const char *trigger,
                         store_event_cb cb, void *ud) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT id, body FROM events WHERE tenant = ?1 AND received_at >= ?2 AND "
                                   "received_at < ?3 AND (?4 IS NULL OR json_extract(body, '$.trigger') = ?4) "
                                   "ORDER BY id", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, since);
    sqlite3_bind_int64(st, 3, until);
    if (trigger) sqlite3_bind_text(st, 4, trigger, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 4);
    return each_row(st, cb, ud, 0);
}

int sqlite_journal_held(store_db *db, const char *tenant, long long received_at, const char *body, size_t len,
                       long long *id) {
    if (!db->journal_held &&
        sqlite3_prepare_v2(db->db, "INSERT INTO events(tenant, received_at, body, state) VALUES (?, ?, ?, ?)", -1,
                           &db->journal_held, NULL) != SQLITE_OK)
        return -1;
    sqlite3_stmt *st = db->journal_held;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, received_at);
    sqlite3_bind_blob(st, 3, body, (int)len, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, EVENT_HELD);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_reset(st);
    if (!ok) return -1;
    *id = sqlite3_last_insert_rowid(db->db);
    return 0;
}

/* Raw events and delivered requests older than the retention window go; dead letters stay until
 * purged, and an event stays while anything of it is queued or scheduled. */
void sqlite_purge(store_db *db, const char *tenant, long long cutoff) {
    static const char *const sql[] = {
        "DELETE FROM outbox WHERE tenant = ?1 AND state = ?3 AND created_at < ?2",
        ("DELETE FROM events WHERE tenant = ?1 AND state IN (?4, ?5) AND received_at < ?2 "
         "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = events.id) "
         "AND NOT EXISTS (SELECT 1 FROM schedules s WHERE s.event_id = events.id)"),
        "DELETE FROM schedule_cancels WHERE tenant = ?1 AND at < ?2",
        /* the failed tries of requests gone (delivered and purged, or purged dead letters) */
        ("DELETE FROM request_attempts WHERE ?1 IS NOT NULL "
         "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = request_attempts.request_id)"),
        /* an event's shared body parts go with it (nothing else refers to them) */
        "DELETE FROM body_parts WHERE ?1 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = body_parts.event_id)",
    };
    for (size_t i = 0; i < sizeof sql / sizeof *sql; i++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db->db, sql[i], -1, &st, NULL) != SQLITE_OK) {
            store_sqlite_log("cannot purge", db->db);
            return;
        }
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, cutoff);
        sqlite3_bind_int(st, 3, REQUEST_DELIVERED);
        sqlite3_bind_int(st, 4, EVENT_MAPPED);
        sqlite3_bind_int(st, 5, EVENT_DROPPED);
        if (sqlite3_step(st) != SQLITE_DONE) store_sqlite_log("cannot purge", db->db);
        sqlite3_finalize(st);
    }
}
