/*
 * pg_operator.c: the operator's view of the PostgreSQL store (`returnflow status`, `returnflow dlq`)
 * and the batch jobs' records (jobs.c's), from any machine that reaches the database.
 *
 * The same statements as SQLite's dead_letters.c and jobs.c, in PostgreSQL's SQL; names sort
 * bytewise (COLLATE "C"), as SQLite's BINARY does, whatever the database's collation. SQLite's file
 * tools (store check, recover, backup) are not here: PostgreSQL has pg_dump, pg_basebackup and its own
 * recovery (pg_backend.c).
 */
#include "pg_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pg_tenants(store_db *db, void (*cb)(void *ud, const char *tenant), void *ud) {
    static const pg_stmt st = { "tenants", "SELECT tenant FROM (SELECT tenant FROM events UNION SELECT tenant FROM outbox) q "
                                           "ORDER BY tenant COLLATE \"C\"" };
    PGresult *r = pg_run(pg_of(db), &st, NULL);
    if (!r) pg_log_error("cannot list the tenants", db);
    for (int i = 0; r && i < PQntuples(r); i++) cb(ud, PQgetvalue(r, i, 0));
    PQclear(r);
}

/* A count of one tenant's rows ($1) in the states $2 and $3. */
static long long count(store_db *db, const pg_stmt *st, const char *tenant, int a, int b) {
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_int(&pp, a);
    pg_int(&pp, b);
    PGresult *r = pg_run(pg_of(db), st, &pp);
    if (!r) return -1;
    long long v = pg_ll(r, 0, 0);
    PQclear(r);
    return v;
}

void pg_tenant_counts_of(store_db *db, const char *t, store_tenant_counts *c) {
    static const pg_stmt events = { "count_events", "SELECT count(*) FROM events WHERE tenant = $1 AND state IN ($2, $3)" };
    static const pg_stmt outbox = { "count_outbox", "SELECT count(*) FROM outbox WHERE tenant = $1 AND state IN ($2, $3)" };
    static const pg_stmt retrying = { "count_retrying", "SELECT count(*) FROM outbox WHERE tenant = $1 AND state IN ($2, $3) "
                                                        "AND attempts > 0" };
    static const pg_stmt paused = { "count_paused", "SELECT count(*) FROM tenant_status WHERE tenant = $1 AND paused = 1 "
                                                    "AND $2::int = $3::int" };
    static const pg_stmt last = {
        "last_error", "SELECT e FROM (SELECT last_error AS e, next_at AS at FROM outbox WHERE tenant = $1 "
                      "AND last_error IS NOT NULL UNION ALL SELECT reason, received_at FROM events WHERE "
                      "tenant = $1 AND state = $2) q ORDER BY at DESC LIMIT 1" };
    c->journaled = count(db, &events, t, EVENT_JOURNALED, EVENT_JOURNALED);
    c->deferred = count(db, &events, t, EVENT_DEFERRED, EVENT_DEFERRED);
    c->failed = count(db, &events, t, EVENT_FAILED, EVENT_FAILED);
    c->queued = count(db, &outbox, t, REQUEST_QUEUED, REQUEST_SENDING);
    c->retrying = count(db, &retrying, t, REQUEST_QUEUED, REQUEST_SENDING);
    c->delivered = count(db, &outbox, t, REQUEST_DELIVERED, REQUEST_DELIVERED);
    c->dead = count(db, &outbox, t, REQUEST_DEAD, REQUEST_DEAD);
    c->paused = count(db, &paused, t, 0, 0);
    c->last_error[0] = 0;
    pg_params pp = { 0 };
    pg_text(&pp, t);
    pg_int(&pp, EVENT_FAILED);
    PGresult *r = pg_run(pg_of(db), &last, &pp);
    if (r && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        snprintf(c->last_error, sizeof c->last_error, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

void pg_dead_letters(store_db *db, const char *tenant,
                     void (*cb)(void *ud, const char *id, const char *tenant, const char *what, const char *why),
                     void *ud) {
    static const pg_stmt st = {
        "dead_letters", "SELECT * FROM (SELECT 'event:' || id AS k, tenant, '' AS what, reason FROM events WHERE state = $2 AND "
                        "($1::text IS NULL OR tenant = $1) UNION ALL SELECT 'request:' || id, tenant, path || ' ' "
                        "|| coalesce(last_status::text, ''), last_error FROM outbox WHERE state = $3 AND "
                        "($1::text IS NULL OR tenant = $1)) q ORDER BY tenant COLLATE \"C\", k COLLATE \"C\"" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_int(&pp, EVENT_FAILED);
    pg_int(&pp, REQUEST_DEAD);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) pg_log_error("cannot list the dead letters", db);
    for (int i = 0; r && i < PQntuples(r); i++)
        cb(ud, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
           PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3));
    PQclear(r);
}

int pg_dead_letter(store_db *db, int is_event, long long id,
                   void (*cb)(void *ud, const char *tenant, const char *reason, const char *text), void *ud) {
    static const pg_stmt event = { "dead_event", "SELECT tenant, coalesce(reason, ''), body FROM events WHERE id = $1 AND state = $2" };
    static const pg_stmt request = {
        "dead_request", "SELECT tenant, coalesce(last_status::text, '') || ' ' || coalesce(last_error, ''), "
                        "method || ' ' || path || chr(10) || body FROM outbox WHERE id = $1 AND state = $2" };
    pg_params pp = { 0 };
    pg_int(&pp, id);
    pg_int(&pp, is_event ? (int)EVENT_FAILED : (int)REQUEST_DEAD);
    PGresult *r = pg_run(pg_of(db), is_event ? &event : &request, &pp);
    int found = r && PQntuples(r) > 0;
    if (found) cb(ud, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
    PQclear(r);
    return found;
}

/* $1 the id (0: every one), $2 the tenant (NULL: every one), $3 the dead state, $4 the new one.
 * Returns the rows changed, or -1. */
static int change(store_db *db, const pg_stmt *st, long long id, const char *tenant, int dead, int to) {
    pg_params pp = { 0 };
    pg_int(&pp, id);
    pg_text(&pp, tenant);
    pg_int(&pp, dead);
    pg_int(&pp, to);
    PGresult *r = pg_run(pg_of(db), st, &pp);
    if (!r) return -1;
    int n = atoi(PQcmdTuples(r));
    PQclear(r);
    return n;
}

#define WHICH "($1 = 0 OR id = $1) AND ($2::text IS NULL OR tenant = $2)"

int pg_replay_dead_events(store_db *db, long long id, const char *tenant) {
    static const pg_stmt st = { "replay_dead_events", "UPDATE events SET state = $4, reason = NULL WHERE state = $3 AND " WHICH };
    return change(db, &st, id, tenant, EVENT_FAILED, EVENT_JOURNALED);
}

int pg_purge_dead_events(store_db *db, long long id, const char *tenant) {
    static const pg_stmt st = { "purge_dead_events", "UPDATE events SET state = $4, reason = 'purged from the dead letters: ' "
                                                     "|| coalesce(reason, '') WHERE state = $3 AND " WHICH };
    return change(db, &st, id, tenant, EVENT_FAILED, EVENT_DROPPED);
}

int pg_replay_dead_requests(store_db *db, long long id, const char *tenant) {
    static const pg_stmt st = { "replay_dead_requests", "UPDATE outbox SET state = $4, attempts = 0, next_at = 0, created_at = "
                                                        "floor(extract(epoch FROM now()))::bigint * 1000 WHERE state = $3 AND " WHICH };
    return change(db, &st, id, tenant, REQUEST_DEAD, REQUEST_QUEUED);
}

int pg_purge_dead_requests(store_db *db, long long id, const char *tenant) {
    static const pg_stmt st = { "purge_dead_requests", "DELETE FROM outbox WHERE state = $3 AND $4::int = $3::int AND " WHICH };
    return change(db, &st, id, tenant, REQUEST_DEAD, REQUEST_DEAD);
}

/* ---------------------------------- jobs ----------------------------------- */

int pg_job_find(store_db *db, const char *id, long long *next_input, int *finished) {
    static const pg_stmt st = { "job_find", "SELECT next_input, finished_at IS NOT NULL FROM jobs WHERE id = $1" };
    pg_params pp = { 0 };
    pg_text(&pp, id);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) return -1;
    int existed = PQntuples(r) > 0;
    *next_input = existed ? pg_ll(r, 0, 0) : 0;
    *finished = existed && strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    PQclear(r);
    return existed;
}

int pg_job_start(store_db *db, const char *id, const char *tenant, const char *kind, const char *input,
                 long long next_input, long long now) {
    static const pg_stmt st = {
        "job_start", "INSERT INTO jobs(id, tenant, kind, input, next_input, reading, started_at, updated_at) "
                     "VALUES ($1, $2, $3, $4, $5, 1, $6, $6) ON CONFLICT (id) DO UPDATE SET "
                     "next_input = $5, reading = 1, updated_at = $6, finished_at = NULL" };
    pg_params pp = { 0 };
    pg_text(&pp, id);
    pg_text(&pp, tenant);
    pg_text(&pp, kind);
    pg_text_clean(&pp, input);
    pg_int(&pp, next_input);
    pg_int(&pp, now);
    return pg_do(pg_of(db), &st, &pp);
}

/* UPDATE jobs SET ... WHERE id = $3 with two integers; 0 or -1. */
static int update(store_db *db, const pg_stmt *st, long long a, long long b, const char *id) {
    pg_params pp = { 0 };
    pg_int(&pp, a);
    pg_int(&pp, b);
    pg_text(&pp, id);
    return pg_do(pg_of(db), st, &pp);
}

int pg_job_progress(store_db *db, const char *id, long long next_input, long long now) {
    static const pg_stmt st = { "job_progress", "UPDATE jobs SET next_input = $1, updated_at = $2 WHERE id = $3" };
    return update(db, &st, next_input, now, id);
}

void pg_job_read_all(store_db *db, const char *id, long long next_input) {
    static const pg_stmt st = { "job_read_all", "UPDATE jobs SET reading = 0, next_input = $1 WHERE id = $3 AND $2::bigint = 0" };
    update(db, &st, next_input, 0, id);
}

void pg_job_finished(store_db *db, const char *id, long long now) {
    static const pg_stmt st = { "job_finished", "UPDATE jobs SET finished_at = $1 WHERE id = $3 AND $2::bigint = 0" };
    update(db, &st, now, 0, id);
}

void pg_job_counts(store_db *db, const char *id, long long *queued, long long *delivered, long long *dead) {
    static const pg_stmt st = { "job_counts", "SELECT state, count(*) FROM outbox WHERE job = $1 GROUP BY state" };
    *queued = *delivered = *dead = 0;
    pg_params pp = { 0 };
    pg_text(&pp, id);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    for (int i = 0; r && i < PQntuples(r); i++) {
        long long state = pg_ll(r, i, 0), n = pg_ll(r, i, 1);
        if (state == REQUEST_DELIVERED) *delivered += n;
        else if (state == REQUEST_DEAD) *dead += n;
        else *queued += n;
    }
    PQclear(r);
}

int pg_job_waiting(store_db *db, const char *id) {
    static const pg_stmt st = { "job_waiting",
                                "SELECT EXISTS (SELECT 1 FROM outbox WHERE job = $1 AND state IN ($2, $3))::int" };
    pg_params pp = { 0 };
    pg_text(&pp, id);
    pg_int(&pp, REQUEST_QUEUED);
    pg_int(&pp, REQUEST_SENDING);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) return -1;
    int waiting = (int)pg_ll(r, 0, 0);
    PQclear(r);
    return waiting;
}

void pg_job_delivered(store_db *db, const char *id, void (*cb)(void *ud, const char *body, size_t len), void *ud) {
    static const pg_stmt st = { "job_delivered", "SELECT body FROM outbox WHERE job = $1 AND state = $2 ORDER BY id" };
    pg_params pp = { 0 };
    pg_text(&pp, id);
    pg_int(&pp, REQUEST_DELIVERED);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    for (int i = 0; r && i < PQntuples(r); i++) cb(ud, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0));
    PQclear(r);
}

void pg_job_dead_reasons(store_db *db, const char *id, int limit,
                         void (*cb)(void *ud, long long n, const char *reason), void *ud) {
    static const pg_stmt st = { "job_dead_reasons", "SELECT count(*), substr(last_error, 1, 200) FROM outbox WHERE job = $1 "
                                                    "AND state = $2 GROUP BY 2 ORDER BY 1 DESC LIMIT $3" };
    pg_params pp = { 0 };
    pg_text(&pp, id);
    pg_int(&pp, REQUEST_DEAD);
    pg_int(&pp, limit);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    for (int i = 0; r && i < PQntuples(r); i++)
        cb(ud, pg_ll(r, i, 0), PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1));
    PQclear(r);
}
