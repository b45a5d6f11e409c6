/*
 * schedules.c: scheduled events (out:schedule) moving to the outbox when due.
 *
 * Invariant: a schedule moves in one transaction (its outbox row in, its schedule out), so it fires
 * once; out:cancel deletes it before then (outbox.c). A batch job's schedules are held while the job
 * reads its input (jobs.reading): a backfill replays months in seconds, and a day-21 reminder long
 * due must not fire before the label event that cancels it has been read.
 */
#include "store_sqlite.h"

#include "clock.h"

/* A job's schedules are held while it reads its input (jobs.reading). */
#define NOT_HELD "(job IS NULL OR job NOT IN (SELECT id FROM jobs WHERE reading = 1))"

int sqlite_fire_schedules(store_db *conn, const char *tenant) {
    sqlite3 *db = conn->db;
    sqlite3_stmt *st;
    long long now = clock_now_ms();
    /* Most passes find nothing due: a read says so without taking the write lock. */
    if (!conn->due_check &&
        sqlite3_prepare_v2(db, "SELECT 1 FROM schedules WHERE tenant = ? AND due_at <= ? LIMIT 1", -1, &conn->due_check,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(conn->due_check, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(conn->due_check, 2, now);
    int due = sqlite3_step(conn->due_check);
    sqlite3_reset(conn->due_check);
    if (due == SQLITE_DONE) return 0;
    if (due != SQLITE_ROW) return -1;
    if (store_sqlite_write_begin(conn) != 0) return -1;
    /* A chunk at a time: a backfill can release 100,000s at once, and the write lock is shared. */
    int ok = sqlite3_exec(db, "CREATE TEMP TABLE IF NOT EXISTS firing(key TEXT PRIMARY KEY); DELETE FROM firing",
                          NULL, NULL, NULL) == SQLITE_OK;
    if (ok && (ok = sqlite3_prepare_v2(db, "INSERT INTO firing SELECT key FROM schedules WHERE tenant = ? AND due_at <= ? "
                                           "AND " NOT_HELD " ORDER BY due_at LIMIT ?", -1, &st, NULL) == SQLITE_OK)) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int(st, 3, STORE_FIRE_CHUNK);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    /* In the chunk's order (firing's rows went in by due_at): driven from firing, a lookup each. (ORDER BY
     * due_at walked the whole due index for each chunk: a backfill's 200,000 reminders took 53 s in
     * chunks of 1,000.) */
    ok = ok && sqlite3_prepare_v2(db, "INSERT INTO outbox(event_id, tenant, profile, method, path, body, created_at, job, "
                                      "dedup, part, part_at, schedule_key) SELECT s.event_id, s.tenant, s.profile, s.method, "
                                      "s.path, s.body, ?, s.job, s.dedup, s.part, s.part_at, s.key FROM firing f "
                                      "CROSS JOIN schedules s WHERE s.tenant = ? AND s.key = f.key ORDER BY f.rowid",
                                  -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    int fired = sqlite3_changes(db);
    if (ok && (ok = sqlite3_prepare_v2(db, "DELETE FROM schedules WHERE tenant = ? AND key IN (SELECT key FROM firing)",
                                       -1, &st, NULL) == SQLITE_OK)) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    if (!ok || store_sqlite_write_commit(conn) != 0) {
        store_sqlite_log("cannot fire schedules", db);
        store_sqlite_write_rollback(conn);
        return -1;
    }
    return fired;
}
