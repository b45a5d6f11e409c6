/*
 * pg_outbox.c: what a mapped event leaves in the PostgreSQL store (outbox.h), the memory scripts read
 * back, and schedules firing into the outbox.
 *
 * As SQLite's outbox.c, in the caller's transaction: requests, schedules, cancels, memory writes and
 * the event's outcome. The dedup key is outbox_dedup_key's, the same bytes as SQLite's. Bodies are
 * stored whole (no body_parts): the rows' bytes are the mapping's bytes.
 *
 * Invariant: a schedule fires once: one statement deletes the due rows (FOR UPDATE SKIP LOCKED: a
 * row another transaction is firing is not read) and inserts what it deleted into the outbox.
 *
 * Invariant: a tenant's outbox ids are in commit order, as under SQLite's one write lock: delivery
 * scans in id order, so a row committed after a scan but with a lower id than rows it read would
 * leave its profile's order. Every transaction that adds a tenant's outbox rows first takes the
 * tenant's advisory lock (held to its commit), so writers of one tenant (serve's mapping thread, a
 * batch job beside it, a schedule firing) take their ids one transaction after the other.
 */
#include "outbox.h"

#include <stdlib.h>

#include "clock.h"
#include "pg_store.h"

#define PG_STR(x) #x
#define PG_LOCK_KEY PG_STR(1919314040)
_Static_assert(PG_OUTBOX_LOCK == 1919314040, "PG_LOCK_KEY spells PG_OUTBOX_LOCK");

/* The event's new state, by map_status. */
static const event_state state_of[] = { EVENT_MAPPED, EVENT_DROPPED, EVENT_FAILED, EVENT_DEFERRED };

typedef struct pg_writer {
    const store_backend *backend; /* first, as every backend's writer (store_backend.h) */
    pg_db *db;
} pg_writer;

static const pg_stmt schedule_stmt = {
    "outbox_schedule", "INSERT INTO schedules(tenant, key, due_at, event_id, profile, method, path, body, job, dedup) "
                       "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant, key) DO UPDATE SET "
                       "due_at = excluded.due_at, event_id = excluded.event_id, profile = excluded.profile, "
                       "method = excluded.method, path = excluded.path, body = excluded.body, job = excluded.job, "
                       "dedup = excluded.dedup" };
static const pg_stmt request_stmt = {
    "outbox_request", "INSERT INTO outbox(event_id, tenant, profile, method, path, body, created_at, job, dedup) "
                      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)" };
/* A cancel is recorded as it deletes (schedule_cancels, for `returnflow trace`): one statement. */
static const pg_stmt cancel_stmt = {
    "outbox_cancel", "WITH gone AS (DELETE FROM schedules WHERE tenant = $1 AND key = $2 RETURNING tenant, key, event_id, "
                     "due_at) INSERT INTO schedule_cancels(tenant, key, event_id, due_at, by_event, at) "
                     "SELECT tenant, key, event_id, due_at, $3, $4 FROM gone" };
static const pg_stmt remember_stmt = {
    "outbox_remember", "INSERT INTO memory(tenant, key, value) VALUES ($1, $2, $3) "
                       "ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value" };
static const pg_stmt outcome_stmt = {
    "outbox_outcome", "UPDATE events SET state = $1, reason = $2, attempts = attempts + 1, script_version = $3 WHERE id = $4" };

outbox_writer *pg_outbox_writer_new(store_db *db) {
    pg_writer *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->backend = &store_pg_backend;
    w->db = pg_of(db);
    return (outbox_writer *)w;
}

void pg_outbox_writer_free(outbox_writer *w) { free(w); }

static int write_request(pg_db *p, const outbox_target *t, long long event_id, const map_request *q, long long now) {
    char key[OUTBOX_DEDUP_MAX];
    int has_key = outbox_dedup_key(q->profile, q->body, q->body_len, key, sizeof key) == 0;
    pg_params pp = { 0 };
    if (q->schedule_key) {
        long long due = clock_iso_ms(q->due);
        pg_text(&pp, t->tenant);
        pg_text(&pp, q->schedule_key);
        pg_int(&pp, due < 0 ? now : due);
        pg_int(&pp, event_id);
        pg_text(&pp, q->profile);
        pg_text(&pp, q->method);
        pg_text(&pp, q->path);
        pg_bytes(&pp, q->body, q->body_len);
        pg_text_or_null(&pp, t->job);
        pg_text(&pp, has_key ? key : NULL);
        return pg_do(p, &schedule_stmt, &pp);
    }
    pg_int(&pp, event_id);
    pg_text(&pp, t->tenant);
    pg_text(&pp, q->profile);
    pg_text(&pp, q->method);
    pg_text(&pp, q->path);
    pg_bytes(&pp, q->body, q->body_len);
    pg_int(&pp, now);
    pg_text_or_null(&pp, t->job);
    pg_text(&pp, has_key ? key : NULL);
    return pg_do(p, &request_stmt, &pp);
}

static const pg_stmt lock_stmt = { "outbox_lock", "SELECT pg_advisory_xact_lock(" PG_LOCK_KEY ", hashtext($1))" };

/* The tenant's outbox lock, once a transaction. */
static int lock_tenant(pg_db *p, const char *tenant) {
    if (p->tenant_locked) return 0;
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    if (pg_do(p, &lock_stmt, &pp) != 0) return -1;
    p->tenant_locked = 1;
    return 0;
}

int pg_outbox_write(outbox_writer *ow, const outbox_target *t, long long event_id, const map_result *r) {
    pg_db *p = ((pg_writer *)ow)->db;
    long long now = clock_now_ms();
    if (r->nrequests && lock_tenant(p, t->tenant) != 0) return -1;
    for (int i = 0; i < r->nrequests; i++)
        if (write_request(p, t, event_id, &r->requests[i], now) != 0) return -1;
    for (int i = 0; i < r->ncancels; i++) {
        pg_params pp = { 0 };
        pg_text(&pp, t->tenant);
        pg_text(&pp, r->cancels[i]);
        pg_int(&pp, event_id);
        pg_int(&pp, now);
        if (pg_do(p, &cancel_stmt, &pp) != 0) return -1;
    }
    for (int i = 0; i < r->nmemory; i++) {
        pg_params pp = { 0 };
        pg_text(&pp, t->tenant);
        pg_text(&pp, r->memory_keys[i]);
        pg_text(&pp, r->memory_values[i]);
        if (pg_do(p, &remember_stmt, &pp) != 0) return -1;
    }
    if (t->record_outcome) {
        pg_params pp = { 0 };
        pg_int(&pp, state_of[r->status]);
        pg_text_clean(&pp, r->reason && *r->reason ? r->reason : NULL);
        pg_text_or_null(&pp, t->version);
        pg_int(&pp, event_id);
        if (pg_do(p, &outcome_stmt, &pp) != 0) return -1;
    }
    return 0;
}

int pg_outbox_has(store_db *db, const char *tenant, const char *dedup) {
    static const pg_stmt st = { "outbox_has", "SELECT 1 FROM outbox WHERE tenant = $1 AND dedup = $2 AND state IN ($3, $4, $5) LIMIT 1" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_text(&pp, dedup);
    pg_int(&pp, REQUEST_QUEUED);
    pg_int(&pp, REQUEST_DELIVERED);
    pg_int(&pp, REQUEST_SENDING);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    int present = r && PQntuples(r) > 0;
    PQclear(r);
    return present;
}

int pg_memory_recall(store_db *db, const char *tenant, const char *key, size_t klen, strbuf *out) {
    static const pg_stmt st = { "memory_recall", "SELECT value FROM memory WHERE tenant = $1 AND key = $2" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_bytes(&pp, key, klen);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    int found = r && PQntuples(r) > 0;
    if (found) strbuf_add(out, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    PQclear(r);
    return found;
}

/* A job's schedules are held while it reads its input (jobs.reading). */
#define NOT_HELD "(job IS NULL OR job NOT IN (SELECT id FROM jobs WHERE reading = 1))"

int pg_fire_schedules(store_db *db, const char *tenant) {
    static const pg_stmt st = {
        "fire_schedules",
        "WITH due AS (SELECT key FROM schedules WHERE tenant = $1 AND due_at <= $2 AND " NOT_HELD
        " ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED), "
        "fired AS (DELETE FROM schedules s USING due WHERE s.tenant = $1 AND s.key = due.key RETURNING s.*) "
        "INSERT INTO outbox(event_id, tenant, profile, method, path, body, created_at, job, dedup, schedule_key) "
        "SELECT event_id, tenant, profile, method, path, body, $2, job, dedup, key FROM fired ORDER BY due_at, key" };
    pg_db *p = pg_of(db);
    if (pg_begin(db) != 0 || lock_tenant(p, tenant) != 0) goto fail;
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_int(&pp, clock_now_ms());
    pg_int(&pp, STORE_FIRE_CHUNK);
    PGresult *r = pg_run(p, &st, &pp);
    if (!r) goto fail;
    int fired = atoi(PQcmdTuples(r));
    PQclear(r);
    if (pg_commit(db) == 0) return fired;
fail:
    pg_log_error("cannot fire schedules", db);
    pg_rollback(db);
    return -1;
}
