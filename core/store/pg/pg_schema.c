/*
 * pg_schema.c: the PostgreSQL store's tables, created or upgraded by `returnflow store migrate` and
 * by serve at start.
 *
 * The same tables, columns and states as SQLite's (schema.c, docs/store.md), in PostgreSQL's types:
 * bigserial ids, bigint times (ms), text bodies (the exact bytes: valid UTF-8 JSON, as ingest and
 * the mapping check; never jsonb, which would re-encode them). No body_parts sharing: bodies are
 * stored whole (the table exists, empty, so an operator's SQL reads the same names), and
 * outbox_bodies is the outbox's own body.
 *
 * Invariants: migrations run under an advisory lock (PG_MIGRATE_LOCK), so two nodes starting
 * together do not race; an older schema opens: a step is only ever added, never changed, and
 * schema_version says which steps ran.
 */
#include "pg_store.h"

#include <stdio.h>
#include <string.h>

/* A new row's state is the column's default. */
_Static_assert(EVENT_JOURNALED == 0 && REQUEST_QUEUED == 0, "the schema's DEFAULT 0 is the first state");
_Static_assert(REQUEST_QUEUED == 0 && REQUEST_SENDING == 3, "queue_counts' trigger counts states 0 and 3");

/* Version 1: every table of SQLite's schema, and queue_counts kept by a trigger (requests queued or
 * in flight, REQUEST_QUEUED and REQUEST_SENDING, by tenant: /metrics reads one row). */
static const char v1[] =
    "CREATE TABLE IF NOT EXISTS events ("
    "  id bigserial PRIMARY KEY,"
    "  tenant text NOT NULL,"
    "  received_at bigint NOT NULL,"
    "  body text NOT NULL,"
    "  state integer NOT NULL DEFAULT 0,"
    "  reason text,"
    "  attempts integer NOT NULL DEFAULT 0,"
    "  script_version text"
    ");"
    "CREATE INDEX IF NOT EXISTS events_by_state ON events(tenant, state, id);"
    "CREATE TABLE IF NOT EXISTS outbox ("
    "  id bigserial PRIMARY KEY,"
    "  event_id bigint NOT NULL,"
    "  tenant text NOT NULL,"
    "  profile text NOT NULL,"
    "  method text NOT NULL,"
    "  path text NOT NULL,"
    "  body text NOT NULL,"
    "  created_at bigint NOT NULL,"
    "  state integer NOT NULL DEFAULT 0,"
    "  attempts integer NOT NULL DEFAULT 0,"
    "  next_at bigint NOT NULL DEFAULT 0,"
    "  last_status integer,"
    "  last_error text,"
    "  job text,"
    "  dedup text"
    ");"
    "CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox(tenant, state, id);"
    "CREATE INDEX IF NOT EXISTS outbox_by_job ON outbox(job, state) WHERE job IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS outbox_by_dedup ON outbox(tenant, dedup) WHERE dedup IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS outbox_by_event ON outbox(event_id);"     /* the purge's NOT EXISTS */
    "CREATE TABLE IF NOT EXISTS schedules ("
    "  tenant text NOT NULL,"
    "  key text NOT NULL,"
    "  due_at bigint NOT NULL,"
    "  event_id bigint NOT NULL,"
    "  profile text NOT NULL,"
    "  method text NOT NULL,"
    "  path text NOT NULL,"
    "  body text NOT NULL,"
    "  job text,"
    "  dedup text,"
    "  PRIMARY KEY (tenant, key)"
    ");"
    "CREATE INDEX IF NOT EXISTS schedules_by_due ON schedules(tenant, due_at);"
    "CREATE INDEX IF NOT EXISTS schedules_by_event ON schedules(event_id);"
    "CREATE TABLE IF NOT EXISTS jobs ("
    "  id text PRIMARY KEY,"
    "  tenant text NOT NULL,"
    "  kind text NOT NULL,"
    "  input text NOT NULL,"
    "  next_input bigint NOT NULL DEFAULT 0,"
    "  reading integer NOT NULL DEFAULT 1,"
    "  started_at bigint NOT NULL,"
    "  updated_at bigint NOT NULL,"
    "  finished_at bigint"
    ");"
    "CREATE TABLE IF NOT EXISTS memory ("
    "  tenant text NOT NULL,"
    "  key text NOT NULL,"
    "  value text NOT NULL,"
    "  PRIMARY KEY (tenant, key)"
    ");"
    "CREATE TABLE IF NOT EXISTS body_parts ("
    "  id bigserial PRIMARY KEY,"
    "  event_id bigint NOT NULL,"
    "  text text NOT NULL"
    ");"
    "CREATE TABLE IF NOT EXISTS tenant_status ("
    "  tenant text PRIMARY KEY,"
    "  paused integer NOT NULL DEFAULT 0,"
    "  reason text,"
    "  at bigint NOT NULL"
    ");"
    "CREATE TABLE IF NOT EXISTS queue_counts (tenant text PRIMARY KEY, n bigint NOT NULL);"
    "CREATE OR REPLACE FUNCTION returnflow_queue_count() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN "
    "  IF TG_OP = 'INSERT' THEN "
    "    IF NEW.state IN (0, 3) THEN "
    "      INSERT INTO queue_counts(tenant, n) VALUES (NEW.tenant, 1) "
    "      ON CONFLICT (tenant) DO UPDATE SET n = queue_counts.n + 1; "
    "    END IF; "
    "  ELSIF TG_OP = 'UPDATE' THEN "
    "    IF (OLD.state IN (0, 3)) <> (NEW.state IN (0, 3)) THEN "
    "      INSERT INTO queue_counts(tenant, n) VALUES (NEW.tenant, CASE WHEN NEW.state IN (0, 3) THEN 1 ELSE -1 END) "
    "      ON CONFLICT (tenant) DO UPDATE SET n = queue_counts.n + excluded.n; "
    "    END IF; "
    "  ELSIF OLD.state IN (0, 3) THEN "
    "    UPDATE queue_counts SET n = n - 1 WHERE tenant = OLD.tenant; "
    "  END IF; "
    "  RETURN NULL; "
    "END $$;"
    "CREATE OR REPLACE TRIGGER outbox_count AFTER INSERT OR DELETE OR UPDATE OF state ON outbox "
    "  FOR EACH ROW EXECUTE FUNCTION returnflow_queue_count();"
    "CREATE OR REPLACE VIEW outbox_bodies(id, body) AS SELECT id, body FROM outbox;";

/* Version 2: what `returnflow trace` reads (SQLite's schema.c has the same): the schedule a request
 * fired from, the schedules out:cancel removed, and each try Klaviyo did not take (written by a trigger
 * on the answer's update, in its transaction; a delivered try writes nothing more). */
static const char v2[] =
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS schedule_key text;"
    "CREATE TABLE IF NOT EXISTS schedule_cancels ("
    "  tenant text NOT NULL,"
    "  key text NOT NULL,"
    "  event_id bigint NOT NULL,"
    "  due_at bigint NOT NULL,"
    "  by_event bigint NOT NULL,"
    "  at bigint NOT NULL"
    ");"
    "CREATE INDEX IF NOT EXISTS schedule_cancels_by_event ON schedule_cancels(event_id);"
    "CREATE TABLE IF NOT EXISTS request_attempts (request_id bigint NOT NULL, at bigint NOT NULL, status integer, error text);"
    "CREATE INDEX IF NOT EXISTS request_attempts_by_request ON request_attempts(request_id);"
    "CREATE OR REPLACE FUNCTION returnflow_request_attempt() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN "
    "  INSERT INTO request_attempts(request_id, at, status, error) "
    "  VALUES (NEW.id, (extract(epoch FROM clock_timestamp()) * 1000)::bigint, NEW.last_status, NEW.last_error); "
    "  RETURN NULL; "
    "END $$;"
    "CREATE OR REPLACE TRIGGER outbox_attempt AFTER UPDATE OF attempts ON outbox FOR EACH ROW "
    "  WHEN (NEW.attempts > OLD.attempts AND NEW.state <> 1) EXECUTE FUNCTION returnflow_request_attempt();";
_Static_assert(REQUEST_DELIVERED == 1, "the attempts trigger skips state 1");

/* Version 3: for `returnflow trace` too (SQLite's schema.c adds the same columns): the node that
 * acknowledged a webhook, and the Klaviyo bulk job a request was last sent in (its first row id and
 * its rows). Rows written before keep NULL. */
static const char v3[] =
    "ALTER TABLE events ADD COLUMN IF NOT EXISTS node text;"
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS bulk_job bigint;"
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS bulk_size integer;";

/* The steps, in order: schema_version counts those that ran. Append only. */
static const char *const steps[] = { v1, v2, v3 };
#define NSTEPS ((int)(sizeof steps / sizeof *steps))

static int run_steps(pg_db *p, char *err, size_t errlen) {
    if (pg_exec(p, "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)") != 0) goto fail;
    PGresult *r = PQexec(p->conn, "SELECT coalesce(max(version), 0) FROM schema_version");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_fail(p, r);
        PQclear(r);
        goto fail;
    }
    int have = (int)pg_ll(r, 0, 0);
    PQclear(r);
    if (have > NSTEPS) {
        snprintf(err, errlen, "the store's schema is version %d, newer than this returnflow's %d: upgrade returnflow",
                 have, NSTEPS);
        return -1;
    }
    for (int v = have; v < NSTEPS; v++) {
        char mark[96];
        snprintf(mark, sizeof mark, "INSERT INTO schema_version(version) VALUES (%d)", v + 1);
        if (pg_exec(p, "BEGIN") != 0) goto fail;
        if (pg_exec(p, steps[v]) != 0 || pg_exec(p, "DELETE FROM schema_version") != 0 || pg_exec(p, mark) != 0 ||
            pg_exec(p, "COMMIT") != 0) {
            PQclear(PQexec(p->conn, "ROLLBACK"));
            goto fail;
        }
    }
    return 0;
fail:
    snprintf(err, errlen, "cannot migrate the store's schema: %s", p->err);
    return -1;
}

int pg_migrate(pg_db *p, char *err, size_t errlen) {
    char lock[96];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_lock(%lld)", PG_MIGRATE_LOCK);
    if (pg_exec(p, "SET client_min_messages = warning") != 0 || pg_exec(p, lock) != 0) {
        snprintf(err, errlen, "cannot take the migration lock: %s", p->err);
        return -1;
    }
    int rc = run_steps(p, err, errlen);
    snprintf(lock, sizeof lock, "SELECT pg_advisory_unlock(%lld)", PG_MIGRATE_LOCK);
    pg_exec(p, lock);
    pg_exec(p, "RESET client_min_messages");
    return rc;
}

/* The version the store's schema is at (0: none yet), or -1. */
int pg_schema_version(store_db *db) {
    pg_db *p = pg_of(db);
    static const pg_stmt exists = { "schema_exists", "SELECT to_regclass('schema_version') IS NOT NULL" };
    static const pg_stmt version = { "schema_version", "SELECT coalesce(max(version), 0) FROM schema_version" };
    PGresult *r = pg_run(p, &exists, NULL);
    if (!r) return -1;
    int there = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!there) return 0;
    if (!(r = pg_run(p, &version, NULL))) return -1;
    int v = (int)pg_ll(r, 0, 0);
    PQclear(r);
    return v;
}

/* The version this returnflow's schema is. */
int pg_schema_latest(void) { return NSTEPS; }
