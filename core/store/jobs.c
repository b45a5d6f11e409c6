/*
 * jobs.c: the jobs table, a batch job's record (send, replay, test-integration): what it reads,
 * where it stopped, whether it still reads (its schedules are held meanwhile), when it finished;
 * and the counts of its rows in the outbox (the (job, state) index answers them).
 *
 * Invariant: next_input is written in the caller's transaction with the rows of those events, so
 * --resume skips exactly what is stored.
 */
#include "store_sqlite.h"

int sqlite_job_find(store_db *db, const char *id, long long *next_input, int *finished) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT next_input, finished_at IS NOT NULL FROM jobs WHERE id = ?", -1, &st,
                           NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int existed = sqlite3_step(st) == SQLITE_ROW;
    *next_input = existed ? sqlite3_column_int64(st, 0) : 0;
    *finished = existed && sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    return existed;
}

int sqlite_job_start(store_db *db, const char *id, const char *tenant, const char *kind, const char *input,
                    long long next_input, long long now) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "INSERT INTO jobs(id, tenant, kind, input, next_input, reading, started_at, "
                                   "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6) ON CONFLICT(id) DO UPDATE SET "
                                   "next_input = ?5, reading = 1, updated_at = ?6, finished_at = NULL", -1, &st, NULL)
        != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, input, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, next_input);
    sqlite3_bind_int64(st, 6, now);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

/* UPDATE jobs SET ... WHERE id = ?3 with two integers; 0 or -1. */
static int update(store_db *db, const char *sql, long long a, long long b, const char *id) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, a);
    sqlite3_bind_int64(st, 2, b);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

int sqlite_job_progress(store_db *db, const char *id, long long next_input, long long now) {
    return update(db, "UPDATE jobs SET next_input = ?1, updated_at = ?2 WHERE id = ?3", next_input, now, id);
}

void sqlite_job_read_all(store_db *db, const char *id, long long next_input) {
    update(db, "UPDATE jobs SET reading = 0, next_input = ?1 WHERE id = ?3", next_input, 0, id);
}

void sqlite_job_finished(store_db *db, const char *id, long long now) {
    update(db, "UPDATE jobs SET finished_at = ?1 WHERE id = ?3", now, 0, id);
}

void sqlite_job_counts(store_db *db, const char *id, long long *queued, long long *delivered, long long *dead) {
    *queued = *delivered = *dead = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT state, count(*) FROM outbox WHERE job = ? GROUP BY state", -1, &st, NULL)
        != SQLITE_OK) return;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        long long n = sqlite3_column_int64(st, 1);
        if (state == REQUEST_DELIVERED) *delivered += n;
        else if (state == REQUEST_DEAD) *dead += n;
        else *queued += n;
    }
    sqlite3_finalize(st);
}

int sqlite_job_waiting(store_db *db, const char *id) {
    sqlite3_stmt *st;
    int waiting = -1;
    if (sqlite3_prepare_v2(db->db, "SELECT EXISTS (SELECT 1 FROM outbox WHERE job = ? AND state IN (?, ?))", -1, &st,
                           NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, REQUEST_QUEUED);
    sqlite3_bind_int(st, 3, REQUEST_SENDING);
    if (sqlite3_step(st) == SQLITE_ROW) waiting = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return waiting;
}

void sqlite_job_delivered(store_db *db, const char *id, void (*cb)(void *ud, const char *body, size_t len), void *ud) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT " STORE_SQLITE_BODY " FROM outbox o WHERE job = ? AND state = ? ORDER BY id", -1, &st, NULL)
        != SQLITE_OK) return;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, REQUEST_DELIVERED);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *body = sqlite3_column_blob(st, 0);
        cb(ud, body ? body : "", (size_t)sqlite3_column_bytes(st, 0));
    }
    sqlite3_finalize(st);
}

void sqlite_job_dead_reasons(store_db *db, const char *id, int limit,
                            void (*cb)(void *ud, long long n, const char *reason), void *ud) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->db, "SELECT count(*), substr(last_error, 1, 200) FROM outbox WHERE job = ? AND "
                                   "state = ? GROUP BY 2 ORDER BY 1 DESC LIMIT ?", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, REQUEST_DEAD);
    sqlite3_bind_int(st, 3, limit);
    while (sqlite3_step(st) == SQLITE_ROW) cb(ud, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
}
