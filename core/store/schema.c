/*
 * schema.c: the store's tables, created or upgraded in place on any connection that may write
 * (serve's journal writer, a batch job's). docs/store.md describes every column; the states of the
 * rows are the enums of states.h.
 *
 * Invariant: an older store opens: a column added since the first version is added to it, and
 * nothing is ever dropped or renamed.
 */
#include "store_sqlite.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "log.h"

/* A new row's state is the column's default. */
_Static_assert(EVENT_JOURNALED == 0 && REQUEST_QUEUED == 0, "the schema's DEFAULT 0 is the first state");

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA wal_autocheckpoint=0;"           /* a mapping thread checkpoints, outside the acks' path */
    "CREATE TABLE IF NOT EXISTS events ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant TEXT NOT NULL,"
    "  received_at INTEGER NOT NULL,"
    "  body BLOB NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0,"        /* EVENT_JOURNALED (states.h) */
    "  reason TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  script_version TEXT"                   /* which frozen scripts mapped it (snapshot.c) */
    ");"
    "CREATE INDEX IF NOT EXISTS events_by_state ON events(tenant, state, id);"
    "CREATE TABLE IF NOT EXISTS outbox ("
    "  id INTEGER PRIMARY KEY,"
    "  event_id INTEGER NOT NULL,"
    "  tenant TEXT NOT NULL,"
    "  profile TEXT NOT NULL,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0,"        /* REQUEST_QUEUED (states.h) */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at INTEGER NOT NULL DEFAULT 0,"
    "  last_status INTEGER,"
    "  last_error TEXT,"
    "  job TEXT"                              /* a batch job's rows (send, replay, test-integration) */
    ");"
    "CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox(tenant, state, id);"
    "CREATE TABLE IF NOT EXISTS schedules ("
    "  tenant TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  due_at INTEGER NOT NULL,"
    "  event_id INTEGER NOT NULL,"
    "  profile TEXT NOT NULL,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  job TEXT,"                             /* held by a batch job until it has read all its input */
    "  PRIMARY KEY (tenant, key)"
    ");"
    "CREATE TABLE IF NOT EXISTS jobs ("      /* batch jobs: what they read, where they stopped */
    "  id TEXT PRIMARY KEY,"
    "  tenant TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  input TEXT NOT NULL,"
    "  next_input INTEGER NOT NULL DEFAULT 0," /* events read and stored, in input order */
    "  reading INTEGER NOT NULL DEFAULT 1,"   /* its schedules are held while it reads */
    "  started_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  finished_at INTEGER"
    ");"

    "CREATE TABLE IF NOT EXISTS memory ("
    "  tenant TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (tenant, key)"
    ");"
    "CREATE TABLE IF NOT EXISTS body_parts ("  /* what the requests of one event share (outbox.c) */
    "  id INTEGER PRIMARY KEY,"
    "  event_id INTEGER NOT NULL,"
    "  text BLOB NOT NULL"
    ");"
    "CREATE TABLE IF NOT EXISTS schedule_cancels ("   /* what out:cancel removed, for `returnflow trace` */
    "  tenant TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  event_id INTEGER NOT NULL,"            /* the event that scheduled it */
    "  due_at INTEGER NOT NULL,"
    "  by_event INTEGER NOT NULL,"            /* the event whose mapping cancelled it */
    "  at INTEGER NOT NULL"
    ");"
    "CREATE INDEX IF NOT EXISTS schedule_cancels_by_event ON schedule_cancels(event_id);"
    "CREATE TABLE IF NOT EXISTS tenant_status ("
    "  tenant TEXT PRIMARY KEY,"
    "  paused INTEGER NOT NULL DEFAULT 0,"
    "  reason TEXT,"
    "  at INTEGER NOT NULL"
    ");"
    "PRAGMA user_version = 1;";

int store_sqlite_exec(sqlite3 *db, const char *sql) {
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* A column added after a store was created (a store of an older version is upgraded in place). */
static int add_column(sqlite3 *db, const char *table, const char *column) {
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s", table, column);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK) return 0;
    return strstr(sqlite3_errmsg(db), "duplicate column") ? 0 : -1;
}

/* queue_counts: each tenant's requests queued or in flight, kept by triggers in the transactions that
 * change them, so /metrics reads the true depth in one row instead of counting a backlog. A store made
 * before it gets it filled from the outbox, once, in the transaction that adds it. */
static int queue_counts(sqlite3 *db) {
    if (store_sqlite_count(db, "SELECT count(*) FROM sqlite_master WHERE name = 'outbox_count_delete'", NULL) == 1)
        return 0;
    char sql[2400];
    const char *in_queue = "IN (%d, %d)";
    char q[32];
    snprintf(q, sizeof q, in_queue, REQUEST_QUEUED, REQUEST_SENDING);
    snprintf(sql, sizeof sql,
             "BEGIN IMMEDIATE;"
             "CREATE TABLE IF NOT EXISTS queue_counts (tenant TEXT PRIMARY KEY, n INTEGER NOT NULL);"
             "DELETE FROM queue_counts;"
             "INSERT INTO queue_counts(tenant, n) SELECT tenant, count(*) FROM outbox WHERE state %s GROUP BY tenant;"
             "CREATE TRIGGER IF NOT EXISTS outbox_count_insert AFTER INSERT ON outbox WHEN NEW.state %s BEGIN "
             "  INSERT INTO queue_counts(tenant, n) VALUES (NEW.tenant, 1) ON CONFLICT(tenant) DO UPDATE SET n = n + 1; END;"
             "CREATE TRIGGER IF NOT EXISTS outbox_count_update AFTER UPDATE OF state ON outbox "
             "  WHEN (OLD.state %s) <> (NEW.state %s) BEGIN "
             "  INSERT INTO queue_counts(tenant, n) VALUES (NEW.tenant, CASE WHEN NEW.state %s THEN 1 ELSE -1 END) "
             "  ON CONFLICT(tenant) DO UPDATE SET n = n + excluded.n; END;"
             "CREATE TRIGGER IF NOT EXISTS outbox_count_delete AFTER DELETE ON outbox WHEN OLD.state %s BEGIN "
             "  UPDATE queue_counts SET n = n - 1 WHERE tenant = OLD.tenant; END;"
             "COMMIT;", q, q, q, q, q, q);
    if (store_sqlite_exec(db, sql) == 0) return 0;
    store_sqlite_exec(db, "ROLLBACK");
    return -1;
}

/* request_attempts: each try Klaviyo did not take (retried or dead), with its time and answer, for
 * `returnflow trace`. A trigger on the answer's UPDATE writes it, in the same transaction; a delivered
 * try is the row itself (state, last_status), so the happy path writes nothing more. The retention
 * purge removes those whose request is gone (journal.c). */
static int attempts_log(sqlite3 *db) {
    char sql[1400];
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS request_attempts (request_id INTEGER NOT NULL, at INTEGER NOT NULL, "
             "status INTEGER, error TEXT);"
             "CREATE INDEX IF NOT EXISTS request_attempts_by_request ON request_attempts(request_id);"
             "CREATE TRIGGER IF NOT EXISTS outbox_attempt AFTER UPDATE OF attempts ON outbox "
             "  WHEN NEW.attempts > OLD.attempts AND NEW.state <> %d BEGIN "
             "  INSERT INTO request_attempts(request_id, at, status, error) VALUES (NEW.id, "
             "  CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), NEW.last_status, NEW.last_error); END;",
             REQUEST_DELIVERED);
    return store_sqlite_exec(db, sql);
}

/* Every request's body as it is sent, for an operator's (or a spec's) SQL: rows keep only what their
 * event does not share (outbox.c). */
static const char bodies_view[] =
    "CREATE VIEW IF NOT EXISTS outbox_bodies(id, body) AS SELECT o.id, " STORE_SQLITE_BODY " FROM outbox o";

int store_sqlite_schema(sqlite3 *db) {
    return store_sqlite_exec(db, schema) != 0 || queue_counts(db) != 0 || attempts_log(db) != 0 || add_column(db, "events", "script_version TEXT") != 0 ||
           add_column(db, "outbox", "job TEXT") != 0 || add_column(db, "schedules", "job TEXT") != 0 ||
           add_column(db, "outbox", "dedup TEXT") != 0 || add_column(db, "schedules", "dedup TEXT") != 0 ||
           add_column(db, "outbox", "part INTEGER") != 0 || add_column(db, "outbox", "part_at INTEGER") != 0 ||
           add_column(db, "schedules", "part INTEGER") != 0 || add_column(db, "outbox", "schedule_key TEXT") != 0 || add_column(db, "schedules", "part_at INTEGER") != 0 ||
           /* for `returnflow trace`: the node that acked a webhook; the Klaviyo bulk job a request went in
            * (its first row id and its rows). NULL in rows written before. */
           add_column(db, "events", "node TEXT") != 0 || add_column(db, "outbox", "bulk_job INTEGER") != 0 ||
           add_column(db, "outbox", "bulk_size INTEGER") != 0 ||
           store_sqlite_exec(db, "CREATE INDEX IF NOT EXISTS outbox_by_job ON outbox(job, state) WHERE job IS NOT NULL") != 0 ||
           store_sqlite_exec(db, "CREATE INDEX IF NOT EXISTS outbox_by_event ON outbox(event_id)") != 0 ||
           store_sqlite_exec(db, "CREATE INDEX IF NOT EXISTS outbox_by_dedup ON outbox(tenant, dedup) WHERE dedup IS NOT NULL") != 0 ||
           /* every mapping pass asks whether a tenant has a schedule due: without it, a scan of all its
            * schedules (45 ms a pass with 100,000 reminders pending) */
           store_sqlite_exec(db, "CREATE INDEX IF NOT EXISTS schedules_by_due ON schedules(tenant, due_at)") != 0 ||
           store_sqlite_exec(db, bodies_view) != 0
               ? -1 : 0;
}

void store_sqlite_log(const char *what, sqlite3 *db) { store_sqlite_log_msg(what, sqlite3_errmsg(db)); }

void store_sqlite_log_msg(const char *what, const char *error) {
    strbuf f = {0};
    strbuf_adds(&f, "\"error\":");
    json_append_string(&f, error, strlen(error));
    strbuf_addc(&f, 0);
    log_line("error", what, f.data);
    strbuf_free(&f);
}

void store_sqlite_text_or_null(sqlite3_stmt *st, int i, const char *s) {
    if (s && *s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

int store_sqlite_run(sqlite3_stmt *st) {
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ok;
}

long long store_sqlite_count(sqlite3 *db, const char *sql, const char *arg) {
    sqlite3_stmt *st;
    long long v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}
