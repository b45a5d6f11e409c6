/*
 * test_pg_lease.c: the lease SQL (core/store/pg/lease.c) against a real PostgreSQL, never a mock.
 *
 * Needs RETURNFLOW_TEST_PG, a libpq connection string to an empty database (spec/lua/lease_spec.lua
 * starts a private cluster and runs this with it); without it every test is skipped. Why these tests:
 * the cluster's promises rest on these statements: one holder a tenant, a take only when free and at
 * the published version, a take waits for the owner's fenced transaction and puts its requests in
 * flight back in the queue, and a node that lost its lease writes nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_lease.h"

static PGconn *a, *b;                             /* two nodes' connections */

static void must(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

static long long one_number(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PGRES_TUPLES_OK, PQresultStatus(r));
    long long v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static int setup(void **state) {
    (void)state;
    const char *url = getenv("RETURNFLOW_TEST_PG");
    if (!url) return 0;
    a = PQconnectdb(url);
    b = PQconnectdb(url);
    if (PQstatus(a) != CONNECTION_OK || PQstatus(b) != CONNECTION_OK) return -1;
    PQclear(PQexec(a, "SET client_min_messages = warning"));
    must(a, "DROP TABLE IF EXISTS leases, nodes, scripts_versions");
    /* The backend's tables these statements touch, as the schema has them (when it is not there). */
    must(a, "CREATE TABLE IF NOT EXISTS outbox (id bigserial PRIMARY KEY, tenant text NOT NULL, state integer NOT NULL, "
            "bulk_job bigint, bulk_size integer)");
    must(a, "CREATE TABLE IF NOT EXISTS tenant_status (tenant text PRIMARY KEY, reason text, at bigint)");
    must(a, "DELETE FROM outbox");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    PQfinish(a);
    PQfinish(b);
    return 0;
}

#define NEEDS_PG() do { if (!a) skip(); } while (0)

static void add_node(void *ud, const char *node) {
    char *out = ud;
    strcat(out, node);
    strcat(out, " ");
}

static void nodes_live(void **state) {
    (void)state;
    NEEDS_PG();
    assert_int_equal(0, pg_lease_prepare(a));
    assert_int_equal(0, pg_lease_prepare(b));       /* twice, and from another node: nothing changes */
    assert_int_equal(0, pg_lease_heartbeat(a, "node-a", 0));
    assert_int_equal(0, pg_lease_heartbeat(b, "node-b", 0));
    char live[256] = "";
    assert_int_equal(2, pg_lease_live_nodes(a, add_node, live));
    assert_string_equal("node-a node-b ", live);
    assert_int_equal(0, pg_lease_heartbeat(b, "node-b", 1));   /* b stops */
    live[0] = 0;
    assert_int_equal(1, pg_lease_live_nodes(a, add_node, live));
    assert_string_equal("node-a ", live);
    must(a, "UPDATE nodes SET seen_at = seen_at - 7000 WHERE name = 'node-a'");   /* a misses its heartbeats */
    live[0] = 0;
    assert_int_equal(0, pg_lease_live_nodes(a, add_node, live));
}

static void take_only_free_and_at_the_version(void **state) {
    (void)state;
    NEEDS_PG();
    assert_int_equal(0, pg_lease_take(a, "shop", "node-a", "v1"));   /* nothing published yet */
    assert_int_equal(0, pg_lease_publish(a, "shop", "v1", "node-a"));
    assert_int_equal(0, pg_lease_take(b, "shop", "node-b", "v0"));   /* another version */
    assert_int_equal(1, pg_lease_take(a, "shop", "node-a", "v1"));
    assert_int_equal(0, pg_lease_take(b, "shop", "node-b", "v1"));   /* held */
    assert_int_equal(1, pg_lease_fence(a, "shop", "node-a", 1));
    assert_int_equal(0, pg_lease_fence(b, "shop", "node-b", 1));
    assert_int_equal(0, pg_lease_fence(a, "shop", "node-a", 2));
}

static void take_after_expiry_requeues_in_flight(void **state) {
    (void)state;
    NEEDS_PG();
    must(a, "INSERT INTO outbox (tenant, state) VALUES ('shop', 3), ('shop', 3), ('shop', 1), ('other', 3)");
    must(a, "INSERT INTO tenant_status (tenant, reason, at) VALUES ('shop', 'key refused', 1)");
    must(a, "UPDATE leases SET expires_at = 0 WHERE tenant = 'shop'");    /* a stopped renewing */
    assert_int_equal(2, pg_lease_take(b, "shop", "node-b", "v1"));
    assert_int_equal(2, one_number(a, "SELECT count(*) FROM outbox WHERE tenant = 'shop' AND state = 0"));
    assert_int_equal(1, one_number(a, "SELECT count(*) FROM outbox WHERE tenant = 'shop' AND state = 1"));
    assert_int_equal(1, one_number(a, "SELECT count(*) FROM outbox WHERE tenant = 'other' AND state = 3"));
    assert_int_equal(0, one_number(a, "SELECT count(*) FROM tenant_status"));
    assert_int_equal(0, pg_lease_fence(a, "shop", "node-a", 1));         /* a is fenced out */
    const char *ts[] = { "shop" };
    long long old[] = { 1 }, cur[] = { 2 };
    int kept[1] = { 1 };
    assert_int_equal(0, pg_lease_renew(a, "node-a", ts, old, 1, kept));
    assert_int_equal(0, kept[0]);                                         /* a learns it lost it */
    assert_int_equal(0, pg_lease_renew(b, "node-b", ts, cur, 1, kept));
    assert_int_equal(1, kept[0]);
}

static void a_take_waits_for_the_owners_fenced_transaction(void **state) {
    (void)state;
    NEEDS_PG();
    must(a, "UPDATE leases SET expires_at = 0 WHERE tenant = 'shop'");   /* b's lease ran out, and yet */
    must(b, "BEGIN");
    assert_int_equal(1, pg_lease_fence(b, "shop", "node-b", 2));          /* b's batch is being written */
    must(a, "SET lock_timeout = '300ms'");
    long long got = pg_lease_take(a, "shop", "node-a", "v1");
    assert_int_equal(-1, got);                                            /* it had to wait for b's commit */
    must(b, "COMMIT");
    assert_int_equal(3, pg_lease_take(a, "shop", "node-a", "v1"));
    must(a, "SET lock_timeout = 0");
}

static void a_lost_lease_marks_nothing(void **state) {
    (void)state;
    NEEDS_PG();
    must(a, "DELETE FROM outbox");
    must(a, "INSERT INTO outbox (id, tenant, state) VALUES (101, 'shop', 0), (102, 'shop', 0)");
    long long ids[] = { 101, 102 };
    assert_int_equal(1, pg_lease_mark_sending(b, "shop", "node-b", 2, ids, NULL, 2));   /* b lost it */
    assert_int_equal(0, one_number(a, "SELECT count(*) FROM outbox WHERE state = 3"));
    assert_int_equal(0, pg_lease_mark_sending(a, "shop", "node-a", 3, ids, NULL, 2));
    assert_int_equal(2, one_number(a, "SELECT count(*) FROM outbox WHERE state = 3"));
}

typedef struct seen { char node[64], wanted[64], version[16]; long long epoch, expires; int n; } seen;

static void see(void *ud, const store_lease *l) {
    seen *s = ud;
    if (strcmp(l->tenant, "shop") != 0) return;
    s->n++;
    snprintf(s->node, sizeof s->node, "%s", l->node ? l->node : "(none)");
    snprintf(s->wanted, sizeof s->wanted, "%s", l->wanted_by ? l->wanted_by : "(none)");
    snprintf(s->version, sizeof s->version, "%s", l->version ? l->version : "(none)");
    s->epoch = l->epoch;
    s->expires = l->expires_in_ms;
}

static void handover_and_restart(void **state) {
    (void)state;
    NEEDS_PG();
    seen s = {0};
    assert_int_equal(0, pg_lease_want(b, "shop", "node-b"));
    assert_true(pg_lease_all(a, see, &s) >= 1);
    assert_string_equal("node-a", s.node);
    assert_string_equal("node-b", s.wanted);
    assert_string_equal("v1", s.version);
    assert_int_equal(3, s.epoch);
    assert_true(s.expires > 5000 && s.expires <= STORE_LEASE_TTL_MS);
    assert_int_equal(0, pg_lease_release(a, "shop", "node-a", 3));
    memset(&s, 0, sizeof s);
    pg_lease_all(a, see, &s);
    assert_string_equal("(none)", s.node);
    assert_true(s.expires <= 0 && s.expires > -2000);     /* free since now: not an orphan yet */
    assert_int_equal(4, pg_lease_take(b, "shop", "node-b", "v1"));   /* free: taken at once */
    /* node-b is killed and starts again: its earlier run's lease is taken back without waiting. */
    assert_int_equal(5, pg_lease_take(b, "shop", "node-b", "v1"));
    assert_int_equal(0, pg_lease_take(a, "shop", "node-a", "v1"));
    /* A new version published: the holder's fence still holds (ownership.c releases it), no one
     * at the old version takes it. */
    assert_int_equal(0, pg_lease_publish(a, "shop", "v2", "node-a"));
    memset(&s, 0, sizeof s);
    pg_lease_all(a, see, &s);
    assert_string_equal("v2", s.version);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nodes_live),
        cmocka_unit_test(take_only_free_and_at_the_version),
        cmocka_unit_test(take_after_expiry_requeues_in_flight),
        cmocka_unit_test(a_take_waits_for_the_owners_fenced_transaction),
        cmocka_unit_test(a_lost_lease_marks_nothing),
        cmocka_unit_test(handover_and_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
