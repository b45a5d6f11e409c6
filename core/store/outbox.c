/*
 * outbox.c: what a mapped event leaves in the store, for serve's mapping
 * threads and for the batch jobs (send, replay, test-integration) alike;
 * and the memory scripts read back (out:recall).
 *
 * One mapping result becomes, in the caller's transaction: its requests in
 * the outbox, its scheduled events in schedules, its cancels, its memory
 * writes and the event's outcome. Doing it in one place is what makes a
 * backfilled event and a live one indistinguishable downstream: delivery,
 * dead letters, replay and status see the same rows.
 *
 * A job's rows carry its id. Its schedules are held (schedules.job) until the
 * job has read all its input: a backfill replays months in seconds, and a
 * day-21 reminder whose due time is long past must not fire before the
 * label event that cancels it has been read.
 */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "clock.h"
#include "store_sqlite.h"

/* The event's new state, by map_status. */
static const event_state state_of[] = { EVENT_MAPPED, EVENT_DROPPED, EVENT_FAILED, EVENT_DEFERRED };

struct outbox_writer {
    sqlite3 *db;
    sqlite3_stmt *schedule, *request, *cancel, *remember, *outcome;
};

outbox_writer *outbox_writer_new(store_db *conn) {
    sqlite3 *db = conn->db;
    outbox_writer *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->db = db;
    int ok =
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO schedules(tenant, key, due_at, event_id, profile, method, path, "
                               "body, job, dedup) VALUES (?,?,?,?,?,?,?,?,?,?)", -1, &w->schedule, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "INSERT INTO outbox(event_id, tenant, profile, method, path, body, created_at, job, dedup) "
                               "VALUES (?,?,?,?,?,?,?,?,?)", -1, &w->request, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "DELETE FROM schedules WHERE tenant = ? AND key = ?", -1, &w->cancel, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO memory(tenant, key, value) VALUES (?,?,?)", -1, &w->remember,
                           NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "UPDATE events SET state = ?, reason = ?, attempts = attempts + 1, script_version = ? "
                               "WHERE id = ?", -1, &w->outcome, NULL) == SQLITE_OK;
    if (!ok) {
        store_sqlite_log("cannot prepare the outbox statements", db);
        outbox_writer_free(w);
        return NULL;
    }
    return w;
}

void outbox_writer_free(outbox_writer *w) {
    if (!w) return;
    sqlite3_finalize(w->schedule);
    sqlite3_finalize(w->request);
    sqlite3_finalize(w->cancel);
    sqlite3_finalize(w->remember);
    sqlite3_finalize(w->outcome);
    free(w);
}


int outbox_write(outbox_writer *w, const outbox_target *t, long long event_id, const map_result *r) {
    int ok = 1;
    long long now = clock_now_ms();
    for (int i = 0; ok && i < r->nrequests; i++) {
        const map_request *q = &r->requests[i];
        sqlite3_stmt *st;
        if (q->schedule_key) {
            long long due = clock_iso_ms(q->due);
            st = w->schedule;
            sqlite3_bind_text(st, 1, t->tenant, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, q->schedule_key, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, due < 0 ? now : due);
            sqlite3_bind_int64(st, 4, event_id);
            sqlite3_bind_text(st, 5, q->profile, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 6, q->method, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 7, q->path, -1, SQLITE_STATIC);
            sqlite3_bind_blob(st, 8, q->body, (int)q->body_len, SQLITE_STATIC);
            store_sqlite_text_or_null(st, 9, t->job);
            char key[OUTBOX_DEDUP_MAX];
            if (outbox_dedup_key(q->profile, q->body, q->body_len, key, sizeof key) == 0)
                sqlite3_bind_text(st, 10, key, -1, SQLITE_TRANSIENT);
        } else {
            st = w->request;
            sqlite3_bind_int64(st, 1, event_id);
            sqlite3_bind_text(st, 2, t->tenant, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, q->profile, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, q->method, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 5, q->path, -1, SQLITE_STATIC);
            sqlite3_bind_blob(st, 6, q->body, (int)q->body_len, SQLITE_STATIC);
            sqlite3_bind_int64(st, 7, now);
            store_sqlite_text_or_null(st, 8, t->job);
            char key[OUTBOX_DEDUP_MAX];
            if (outbox_dedup_key(q->profile, q->body, q->body_len, key, sizeof key) == 0)
                sqlite3_bind_text(st, 9, key, -1, SQLITE_TRANSIENT);
        }
        ok = store_sqlite_run(st);
    }
    for (int i = 0; ok && i < r->ncancels; i++) {
        sqlite3_bind_text(w->cancel, 1, t->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->cancel, 2, r->cancels[i], -1, SQLITE_STATIC);
        ok = store_sqlite_run(w->cancel);
    }
    for (int i = 0; ok && i < r->nmemory; i++) {
        sqlite3_bind_text(w->remember, 1, t->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->remember, 2, r->memory_keys[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(w->remember, 3, r->memory_values[i], -1, SQLITE_STATIC);
        ok = store_sqlite_run(w->remember);
    }
    if (ok && t->record_outcome) {
        sqlite3_bind_int(w->outcome, 1, (int)state_of[r->status]);
        store_sqlite_text_or_null(w->outcome, 2, r->reason);
        store_sqlite_text_or_null(w->outcome, 3, t->version);
        sqlite3_bind_int64(w->outcome, 4, event_id);
        ok = store_sqlite_run(w->outcome);
    }
    return ok ? 0 : -1;
}

int outbox_dedup_key(const char *profile, const char *body, size_t len, char *out, size_t outlen) {
    char key[OUTBOX_DEDUP_MAX];
    if (bulk_event_key(body, len, key, sizeof key) != 0) return -1;
    int n = snprintf(out, outlen, "%s\x1f%s", profile, key);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

int store_outbox_has(store_db *db, const char *tenant, const char *dedup) {
    if (!db->outbox_has &&
        sqlite3_prepare_v2(db->db, "SELECT 1 FROM outbox WHERE tenant = ? AND dedup = ? AND state IN (?, ?, ?) LIMIT 1",
                           -1, &db->outbox_has, NULL) != SQLITE_OK)
        return 0;
    sqlite3_stmt *st = db->outbox_has;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, dedup, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, REQUEST_QUEUED);
    sqlite3_bind_int(st, 4, REQUEST_DELIVERED);
    sqlite3_bind_int(st, 5, REQUEST_SENDING);
    int present = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return present;
}

int store_memory_recall(store_db *conn, const char *tenant, const char *key, size_t klen, strbuf *out) {
    sqlite3_stmt *st;
    int found = 0;
    if (sqlite3_prepare_v2(conn->db, "SELECT value FROM memory WHERE tenant = ? AND key = ?", -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, (int)klen, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        strbuf_add(out, (const char *)sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}
