/*
 * pg_journal.c: the journal (events) on PostgreSQL: the journal writer's group commit and probe,
 * the mapping threads' reads, a replay's window, a batch job's own events and the purge.
 *
 * Invariants, as SQLite's (journal.c, store.c): a batch of appends is one transaction, committed with
 * synchronous_commit on (every connection of this backend has it) before any of its
 * webhooks is acknowledged; events are read in id order, which is arrival order, because one writer
 * thread per node takes ids from the sequence in the order the webhooks arrived.
 */
#include "pg_store.h"

#include <string.h>

#include "json.h"

static const pg_stmt append_stmt = {
    "journal_append", "INSERT INTO events(tenant, received_at, body, script_version, node) VALUES ($1, $2, $3, $4, $5) RETURNING id" };

/* One query's result in a pipeline (NULL when the connection is gone), the NULL after it consumed. */
static PGresult *next_result(PGconn *c) {
    PGresult *r = PQgetResult(c);
    if (r) {
        PGresult *extra;
        while ((extra = PQgetResult(c)) != NULL) PQclear(extra);
    }
    return r;
}

/* The batch in one round trip (libpq's pipeline mode): BEGIN, an INSERT a row, COMMIT, then one sync.
 * Each INSERT takes its id from the sequence in row order, as one statement after the other would.
 * 0 with every id set, or -1 with the first failure kept and nothing of the batch committed. */
int pg_journal_commit(store_db *db, store_journal_row *rows, int n) {
    pg_db *p = pg_of(db);
    if (pg_prepare(p, &append_stmt) != 0) return -1;
    PGconn *c = p->conn;
    if (!PQenterPipelineMode(c)) {
        pg_fail(p, NULL);
        return -1;
    }
    int sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    for (int i = 0; sent && i < n; i++) {
        pg_params pp = { 0 };
        pg_text(&pp, rows[i].tenant);
        pg_int(&pp, rows[i].received_at);
        pg_bytes(&pp, rows[i].body, rows[i].len);
        pg_text_or_null(&pp, rows[i].version);
        pg_text_or_null(&pp, rows[i].node);
        sent = PQsendQueryPrepared(c, append_stmt.name, pp.n, pp.values, pp.lengths, pp.formats, 0);
    }
    sent = sent && PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) && PQpipelineSync(c);
    int ok = sent, failed = !sent;
    if (!sent) pg_fail(p, NULL);
    /* Read what was sent: BEGIN, the rows, COMMIT, the sync (a lost connection ends it early). */
    for (int q = 0; sent && q < n + 2 && PQstatus(c) == CONNECTION_OK; q++) {
        PGresult *r = next_result(c);
        ExecStatusType st = PQresultStatus(r);
        int good = q == 0 || q == n + 1 ? st == PGRES_COMMAND_OK : st == PGRES_TUPLES_OK;
        if (good && q > 0 && q <= n) rows[q - 1].id = pg_ll(r, 0, 0);
        if (good && q == n + 1 && strcmp(PQcmdStatus(r), "COMMIT") != 0) good = 0;   /* rolled back */
        if (!good) {
            ok = 0;
            if (!failed && st != PGRES_PIPELINE_ABORTED) { pg_fail(p, r); failed = 1; }
        }
        PQclear(r);
        if (!r) break;
    }
    if (sent && PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQgetResult(c);                     /* PGRES_PIPELINE_SYNC */
        PQclear(r);
    }
    if (ok && PQstatus(c) != CONNECTION_OK) ok = 0;
    if (!ok && !failed) pg_fail(p, NULL);
    /* Out of pipeline mode: what a broken exchange left unread goes first; a session that still will
     * not leave it is replaced (the next call reconnects). */
    for (int guard = 0; !PQexitPipelineMode(c) && guard < 2 * n + 8; guard++) PQclear(PQgetResult(c));
    if (PQpipelineStatus(c) != PQ_PIPELINE_OFF) pg_drop(p);
    else if (!ok && PQstatus(c) == CONNECTION_OK) PQclear(PQexec(c, "ROLLBACK"));   /* a failed BEGIN block ends */
    return ok ? 0 : -1;
}

/* A write that commits: the store takes writes again when it succeeds. */
int pg_journal_probe(store_db *db) {
    static const pg_stmt probe = { "journal_probe", "UPDATE schema_version SET version = version" };
    pg_db *p = pg_of(db);
    if (pg_begin(db) != 0) return -1;
    if (pg_do(p, &probe, NULL) != 0 || pg_commit(db) != 0) {
        pg_rollback(db);
        return -1;
    }
    return 0;
}

/* PostgreSQL checkpoints and vacuums by itself. */
void pg_maintain(store_db *db) { (void)db; }

/* Calls cb for each row (id, body[, received_at]); returns how many were given. */
static int each_row(PGresult *r, store_event_cb cb, void *ud, int with_received) {
    int n = 0, rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        store_event e = { .id = pg_ll(r, i, 0), .body = PQgetvalue(r, i, 1), .len = (size_t)PQgetlength(r, i, 1),
                          .received_at = with_received ? pg_ll(r, i, 2) : 0 };
        n++;
        if (cb(ud, &e)) break;
    }
    PQclear(r);
    return n;
}

int pg_journal_each(store_db *db, const char *tenant, event_state state, int limit, store_event_cb cb, void *ud) {
    static const pg_stmt st = { "journal_each", "SELECT id, body, received_at FROM events WHERE tenant = $1 AND "
                                                "state = $2 ORDER BY id LIMIT $3" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_int(&pp, state);
    pg_int(&pp, limit);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) {
        pg_log_error("cannot read the journal", db);
        return -1;
    }
    return each_row(r, cb, ud, 1);
}

/* Whether body's top-level "trigger" is the string `trigger` (SQLite's json_extract(body, '$.trigger')
 * compares the decoded string; a trigger name holds no escapes, so its JSON text is "NAME"). */
static int has_trigger(const char *body, size_t len, const char *trigger) {
    const char *v;
    size_t vl, tl = strlen(trigger);
    return json_member(body, len, "trigger", &v, &vl) == 0 && vl == tl + 2 && v[0] == '"' && memcmp(v + 1, trigger, tl) == 0;
}

/* A replay reads a window of months: a chunk at a time (by id), never the whole window in memory. */
int pg_journal_replay(store_db *db, const char *tenant, long long since, long long until, const char *trigger,
                      store_event_cb cb, void *ud) {
    static const pg_stmt st = { "journal_replay", "SELECT id, body FROM events WHERE tenant = $1 AND received_at >= $2 "
                                                  "AND received_at < $3 AND id > $4 ORDER BY id LIMIT 1000" };
    long long after = 0;
    int n = 0;
    for (;;) {
        pg_params pp = { 0 };
        pg_text(&pp, tenant);
        pg_int(&pp, since);
        pg_int(&pp, until);
        pg_int(&pp, after);
        PGresult *r = pg_run(pg_of(db), &st, &pp);
        if (!r) return -1;
        int rows = PQntuples(r), stop = 0;
        for (int i = 0; i < rows && !stop; i++) {
            store_event e = { .id = pg_ll(r, i, 0), .body = PQgetvalue(r, i, 1), .len = (size_t)PQgetlength(r, i, 1) };
            after = e.id;
            if (trigger && !has_trigger(e.body, e.len, trigger)) continue;
            n++;
            stop = cb(ud, &e);
        }
        PQclear(r);
        if (stop || rows < 1000) return n;
    }
}

int pg_journal_held(store_db *db, const char *tenant, long long received_at, const char *body, size_t len,
                    long long *id) {
    static const pg_stmt st = { "journal_held", "INSERT INTO events(tenant, received_at, body, state) VALUES ($1, $2, $3, $4) "
                                                "RETURNING id" };
    pg_params pp = { 0 };
    pg_text(&pp, tenant);
    pg_int(&pp, received_at);
    pg_bytes(&pp, body, len);
    pg_int(&pp, EVENT_HELD);
    PGresult *r = pg_run(pg_of(db), &st, &pp);
    if (!r) return -1;
    *id = pg_ll(r, 0, 0);
    PQclear(r);
    return 0;
}

/* Raw events and delivered requests older than the retention window go; dead letters stay until
 * purged, and an event stays while anything of it is queued or scheduled. */
void pg_purge(store_db *db, const char *tenant, long long cutoff) {
    static const pg_stmt requests = { "purge_requests", "DELETE FROM outbox WHERE tenant = $1 AND state = $3 AND created_at < $2" };
    static const pg_stmt events = {
        "purge_events", "DELETE FROM events WHERE tenant = $1 AND state IN ($3, $4) AND received_at < $2 "
                        "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = events.id) "
                        "AND NOT EXISTS (SELECT 1 FROM schedules s WHERE s.event_id = events.id)" };
    pg_params a = { 0 }, b = { 0 };
    pg_text(&a, tenant);
    pg_int(&a, cutoff);
    pg_int(&a, REQUEST_DELIVERED);
    pg_text(&b, tenant);
    pg_int(&b, cutoff);
    pg_int(&b, EVENT_MAPPED);
    pg_int(&b, EVENT_DROPPED);
    /* what `returnflow trace` keeps: cancels past the window, the failed tries of requests gone */
    static const pg_stmt cancels = { "purge_cancels", "DELETE FROM schedule_cancels WHERE tenant = $1 AND at < $2" };
    static const pg_stmt attempts = {
        "purge_attempts", "DELETE FROM request_attempts a WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = a.request_id)" };
    pg_params c = { 0 };
    pg_text(&c, tenant);
    pg_int(&c, cutoff);
    if (pg_do(pg_of(db), &requests, &a) != 0 || pg_do(pg_of(db), &events, &b) != 0 || pg_do(pg_of(db), &cancels, &c) != 0 ||
        pg_do(pg_of(db), &attempts, NULL) != 0)
        pg_log_error("cannot purge", db);
}
