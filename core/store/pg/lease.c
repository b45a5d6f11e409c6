/*
 * lease.c: leases, heartbeats and fencing on PostgreSQL (pg_lease.h; the design: docs/scale-out.md).
 *
 * Tables (created here, beside the backend's schema, under a transaction-scoped advisory lock):
 *   nodes(name, started_at, seen_at)                 a heartbeat a node
 *   leases(tenant, node, epoch, expires_at, wanted_by) who maps and delivers a tenant; node NULL: free
 *                                                    since expires_at (released then)
 *   scripts_versions(tenant, version, published_at, node)  the version every owner must run
 * Every time is the store's clock (ms since the epoch), never a node's: nodes' clocks may disagree,
 * and the store is the one judge of whether a lease expired. A node's own bound on a lease is its
 * monotonic clock's (ownership.c), which stops it before the store frees the lease.
 *
 * Invariant (fencing): taking a lease bumps its epoch with an UPDATE of its row, and every write that
 * must come from the owner first reads that row FOR SHARE at the owner's epoch (pg_lease_fence) in
 * its own transaction. The taker's UPDATE waits until such a transaction ends, and a transaction that
 * starts after the take sees the new epoch and writes nothing. In the taker's transaction the
 * tenant's requests left in flight (SENDING) go back to queued, so the new owner sends them.
 */
#include "pg_lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

#define NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
#define SCHEMA_LOCK "7216550115"                  /* pg_advisory_xact_lock key: creating these tables */

static const char *schema_sql =
    "CREATE TABLE IF NOT EXISTS nodes (name text PRIMARY KEY, started_at bigint NOT NULL, seen_at bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS leases (tenant text PRIMARY KEY, node text, epoch bigint NOT NULL,"
    " expires_at bigint NOT NULL, wanted_by text);"
    "CREATE TABLE IF NOT EXISTS scripts_versions (tenant text PRIMARY KEY, version text NOT NULL,"
    " published_at bigint NOT NULL, node text NOT NULL);";

/* Runs sql with text parameters; the result when it has the status wanted, else NULL (cleared). */
static PGresult *run(PGconn *c, const char *sql, int n, const char *const *params, ExecStatusType want) {
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == want) return r;
    PQclear(r);
    return NULL;
}

static int command(PGconn *c, const char *sql, int n, const char *const *params) {
    PGresult *r = run(c, sql, n, params, PGRES_COMMAND_OK);
    PQclear(r);
    return r ? 0 : -1;
}

/* Ends a transaction: COMMIT when ok, else ROLLBACK; 0 when it committed. */
static int finish(PGconn *c, int ok) {
    if (ok && command(c, "COMMIT", 0, NULL) == 0) return 0;
    PQclear(PQexec(c, "ROLLBACK"));
    return -1;
}

static void text_of(char *out, size_t len, long long v) { snprintf(out, len, "%lld", v); }

/* A PostgreSQL array literal of texts ("{\"a\",\"b\"}"); tenant ids have no quote or backslash, but
 * they are escaped anyway. */
static void text_array(strbuf *out, const char *const *v, int n) {
    strbuf_addc(out, '{');
    for (int i = 0; i < n; i++) {
        if (i) strbuf_addc(out, ',');
        strbuf_addc(out, '"');
        for (const char *s = v[i]; *s; s++) {
            if (*s == '"' || *s == '\\') strbuf_addc(out, '\\');
            strbuf_addc(out, *s);
        }
        strbuf_addc(out, '"');
    }
    strbuf_addc(out, '}');
    strbuf_addc(out, 0);
}

static void bigint_array(strbuf *out, const long long *v, int n) {
    char one[32];
    strbuf_addc(out, '{');
    for (int i = 0; i < n; i++) {
        snprintf(one, sizeof one, i ? ",%lld" : "%lld", v[i]);
        strbuf_adds(out, one);
    }
    strbuf_addc(out, '}');
    strbuf_addc(out, 0);
}

int pg_lease_prepare(PGconn *c) {
    if (command(c, "BEGIN", 0, NULL) != 0) return -1;
    command(c, "SET LOCAL client_min_messages = warning", 0, NULL);   /* no "already exists" notices */
    PGresult *r = run(c, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK ")", 0, NULL, PGRES_TUPLES_OK);
    int ok = r != NULL;
    PQclear(r);
    if (ok) {
        r = PQexec(c, schema_sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    return finish(c, ok);
}

int pg_lease_heartbeat(PGconn *c, const char *node, int gone) {
    const char *p[] = { node };
    if (gone) return command(c, "UPDATE nodes SET seen_at = 0 WHERE name = $1", 1, p);
    return command(c,
                   "INSERT INTO nodes (name, started_at, seen_at) VALUES ($1, " NOW_MS ", " NOW_MS ") "
                   "ON CONFLICT (name) DO UPDATE SET seen_at = EXCLUDED.seen_at",
                   1, p);
}

int pg_lease_live_nodes(PGconn *c, void (*cb)(void *ud, const char *node), void *ud) {
    char live[32];
    text_of(live, sizeof live, STORE_NODE_LIVE_MS);
    const char *p[] = { live };
    PGresult *r = run(c, "SELECT name FROM nodes WHERE seen_at > " NOW_MS " - $1::bigint ORDER BY name", 1, p,
                      PGRES_TUPLES_OK);
    if (!r) return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) cb(ud, PQgetvalue(r, i, 0));
    PQclear(r);
    return n;
}

static const char *or_null(PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

int pg_lease_all(PGconn *c, void (*cb)(void *ud, const store_lease *l), void *ud) {
    PGresult *r = run(c,
                      "SELECT coalesce(l.tenant, v.tenant), l.node, coalesce(l.epoch, 0), "
                      "coalesce(l.expires_at, v.published_at) - " NOW_MS ", l.wanted_by, v.version "
                      "FROM leases l FULL JOIN scripts_versions v ON v.tenant = l.tenant ORDER BY 1",
                      0, NULL, PGRES_TUPLES_OK);
    if (!r) return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        store_lease l = { .tenant = PQgetvalue(r, i, 0), .node = or_null(r, i, 1), .wanted_by = or_null(r, i, 4),
                          .version = or_null(r, i, 5), .epoch = atoll(PQgetvalue(r, i, 2)),
                          .expires_in_ms = atoll(PQgetvalue(r, i, 3)) };
        cb(ud, &l);
    }
    PQclear(r);
    return n;
}

long long pg_lease_take(PGconn *c, const char *tenant, const char *node, const char *version) {
    char ttl[32], queued[8], sending[8];
    text_of(ttl, sizeof ttl, STORE_LEASE_TTL_MS);
    text_of(queued, sizeof queued, REQUEST_QUEUED);
    text_of(sending, sizeof sending, REQUEST_SENDING);
    if (command(c, "BEGIN", 0, NULL) != 0) return -1;
    const char *p[] = { tenant, node, version, ttl };
    /* Free (no row, node NULL), expired, or an earlier run of this node's; and only at the version
     * the cluster runs. The UPDATE waits for the owner's fenced transactions to end. */
    PGresult *r = run(c,
                      "INSERT INTO leases (tenant, node, epoch, expires_at, wanted_by) "
                      "SELECT $1, $2, 1, " NOW_MS " + $4::bigint, NULL "
                      "WHERE EXISTS (SELECT 1 FROM scripts_versions WHERE tenant = $1 AND version = $3) "
                      "ON CONFLICT (tenant) DO UPDATE SET node = EXCLUDED.node, epoch = leases.epoch + 1, "
                      "expires_at = EXCLUDED.expires_at, wanted_by = NULL "
                      "WHERE leases.node IS NULL OR leases.expires_at <= " NOW_MS " OR leases.node = EXCLUDED.node "
                      "RETURNING epoch",
                      4, p, PGRES_TUPLES_OK);
    long long epoch = r && PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : 0;
    int ok = r != NULL;
    PQclear(r);
    if (ok && epoch > 0) {
        const char *q[] = { tenant, queued, sending };
        ok = command(c, "UPDATE outbox SET state = $2::int WHERE tenant = $1 AND state = $3::int", 3, q) == 0 &&
             command(c, "DELETE FROM tenant_status WHERE tenant = $1", 1, q) == 0;   /* its pause was the last owner's */
    }
    if (finish(c, ok) != 0) return -1;
    return epoch;
}

int pg_lease_renew(PGconn *c, const char *node, const char *const *tenants, const long long *epochs, int n,
                   int *kept) {
    for (int i = 0; i < n; i++) kept[i] = 0;
    if (n <= 0) return 0;
    strbuf ts = {0}, es = {0};
    text_array(&ts, tenants, n);
    bigint_array(&es, epochs, n);
    char ttl[32];
    text_of(ttl, sizeof ttl, STORE_LEASE_TTL_MS);
    const char *p[] = { node, ts.data, es.data, ttl };
    PGresult *r = run(c,
                      "UPDATE leases SET expires_at = " NOW_MS " + $4::bigint "
                      "FROM unnest($2::text[], $3::bigint[]) AS h(tenant, epoch) "
                      "WHERE leases.tenant = h.tenant AND leases.epoch = h.epoch AND leases.node = $1 "
                      "RETURNING leases.tenant",
                      4, p, PGRES_TUPLES_OK);
    strbuf_free(&ts);
    strbuf_free(&es);
    if (!r) return -1;
    for (int k = 0; k < PQntuples(r); k++)
        for (int i = 0; i < n; i++)
            if (strcmp(PQgetvalue(r, k, 0), tenants[i]) == 0) kept[i] = 1;
    PQclear(r);
    return 0;
}

int pg_lease_release(PGconn *c, const char *tenant, const char *node, long long epoch) {
    char e[32];
    text_of(e, sizeof e, epoch);
    const char *p[] = { tenant, node, e };
    return command(c,
                   "UPDATE leases SET node = NULL, expires_at = " NOW_MS ", wanted_by = NULL "
                   "WHERE tenant = $1 AND node = $2 AND epoch = $3::bigint",
                   3, p);
}

int pg_lease_want(PGconn *c, const char *tenant, const char *node) {
    const char *p[] = { tenant, node };
    return command(c,
                   "UPDATE leases SET wanted_by = $2 WHERE tenant = $1 AND node IS DISTINCT FROM $2 "
                   "AND wanted_by IS DISTINCT FROM $2",
                   2, p);
}

int pg_lease_publish(PGconn *c, const char *tenant, const char *version, const char *node) {
    const char *p[] = { tenant, version, node };
    return command(c,
                   "INSERT INTO scripts_versions (tenant, version, published_at, node) VALUES ($1, $2, " NOW_MS ", $3) "
                   "ON CONFLICT (tenant) DO UPDATE SET version = EXCLUDED.version, "
                   "published_at = EXCLUDED.published_at, node = EXCLUDED.node "
                   "WHERE scripts_versions.version <> EXCLUDED.version",
                   3, p);
}

int pg_lease_fence(PGconn *c, const char *tenant, const char *node, long long epoch) {
    char e[32];
    text_of(e, sizeof e, epoch);
    const char *p[] = { tenant, node, e };
    PGresult *r = run(c, "SELECT 1 FROM leases WHERE tenant = $1 AND node = $2 AND epoch = $3::bigint FOR SHARE", 3,
                      p, PGRES_TUPLES_OK);
    if (!r) return -1;
    int held = PQntuples(r) == 1;
    PQclear(r);
    return held;
}

/* The bulk job of each row, as two arrays beside the ids' (0: alone). */
static void bulk_arrays(strbuf *firsts, strbuf *sizes, const store_bulk_mark *bulk, int n) {
    long long *f = calloc((size_t)n, sizeof *f), *z = calloc((size_t)n, sizeof *z);
    if (!f || !z) abort();
    for (int i = 0; bulk && i < n; i++) {
        f[i] = bulk[i].size > 0 ? bulk[i].first : 0;
        z[i] = bulk[i].size > 0 ? bulk[i].size : 0;
    }
    bigint_array(firsts, f, n);
    bigint_array(sizes, z, n);
    free(f);
    free(z);
}

int pg_lease_mark_sending(PGconn *c, const char *tenant, const char *node, long long epoch, const long long *ids,
                          const store_bulk_mark *bulk, int n) {
    if (n <= 0) return 0;
    if (command(c, "BEGIN", 0, NULL) != 0) return -1;
    int held = pg_lease_fence(c, tenant, node, epoch);
    int ok = held > 0;
    if (ok) {
        strbuf is = {0}, firsts = {0}, sizes = {0};
        bigint_array(&is, ids, n);
        bulk_arrays(&firsts, &sizes, bulk, n);
        char sending[8];
        text_of(sending, sizeof sending, REQUEST_SENDING);
        const char *p[] = { tenant, is.data, sending, firsts.data, sizes.data };
        ok = command(c, "UPDATE outbox o SET state = $3::int, bulk_job = nullif(m.first, 0), "
                        "bulk_size = nullif(m.size, 0)::int FROM unnest($2::bigint[], $4::bigint[], $5::bigint[]) "
                        "AS m(id, first, size) WHERE o.tenant = $1 AND o.id = m.id", 5, p) == 0;
        strbuf_free(&is);
        strbuf_free(&firsts);
        strbuf_free(&sizes);
    }
    if (held == 0) {                               /* lost: nothing marked, nothing to send */
        finish(c, 0);
        return 1;
    }
    return finish(c, ok) == 0 ? 0 : -1;
}
