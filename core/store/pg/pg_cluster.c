/*
 * pg_cluster.c: the cluster entries of the PostgreSQL backend's table (store_backend.h): each hands
 * the connection of store_db to its lease statement (lease.c).
 *
 * A lost connection is reset first, through the backend's own path (pg_run: it prepares its
 * statements again), when no transaction is open; a failure is recorded on the connection, so
 * store_db_error and store_db_fault say why, as for every other call.
 */
#include "pg_lease.h"
#include "pg_store.h"

static const pg_stmt ping = { "rf_cluster_ping", "SELECT 1" };

/* The connection, reset if it was lost outside a transaction; NULL when it cannot be had. */
static PGconn *conn_of(store_db *db) {
    pg_db *p = pg_of(db);
    if (PQstatus(p->conn) != CONNECTION_OK && !p->in_tx) {
        PGresult *r = pg_run(p, &ping, NULL);
        if (!r) return NULL;
        PQclear(r);
    }
    return p->conn;
}

/* rc as it is, with the connection's error kept when it is a failure (-1). */
static long long kept(store_db *db, long long rc) {
    if (rc < 0) pg_fail(pg_of(db), NULL);
    return rc;
}

int pg_cluster_prepare(store_db *db) {
    PGconn *c = conn_of(db);
    return c ? (int)kept(db, pg_lease_prepare(c)) : -1;
}

int pg_cluster_heartbeat(store_db *db, const char *node, int gone) {
    PGconn *c = conn_of(db);
    return c ? (int)kept(db, pg_lease_heartbeat(c, node, gone)) : -1;
}

int pg_cluster_live_nodes(store_db *db, void (*cb)(void *ud, const char *node), void *ud) {
    PGconn *c = conn_of(db);
    return c ? (int)kept(db, pg_lease_live_nodes(c, cb, ud)) : -1;
}

int pg_cluster_leases(store_db *db, void (*cb)(void *ud, const store_lease *l), void *ud) {
    PGconn *c = conn_of(db);
    return c ? (int)kept(db, pg_lease_all(c, cb, ud)) : -1;
}

long long pg_cluster_take(store_db *db, const char *tenant, const char *node, const char *version) {
    PGconn *c = conn_of(db);
    return c ? kept(db, pg_lease_take(c, tenant, node, version)) : -1;
}

int pg_cluster_renew(store_db *db, const char *node, const char *const *tenants, const long long *epochs, int n,
                     int *kept_out) {
    PGconn *c = conn_of(db);
    return c ? (int)kept(db, pg_lease_renew(c, node, tenants, epochs, n, kept_out)) : -1;
}

int pg_cluster_release(store_db *db, const char *tenant, const char *node, long long epoch) {
    PGconn *c = conn_of(db);
    return c ? (int)kept(db, pg_lease_release(c, tenant, node, epoch)) : -1;
}

int pg_cluster_want(store_db *db, const char *tenant, const char *node) {
    PGconn *c = conn_of(db);
    return c ? (int)kept(db, pg_lease_want(c, tenant, node)) : -1;
}

int pg_cluster_publish(store_db *db, const char *tenant, const char *version, const char *node) {
    PGconn *c = conn_of(db);
    return c ? (int)kept(db, pg_lease_publish(c, tenant, version, node)) : -1;
}

int pg_cluster_fence(store_db *db, const char *tenant, const char *node, long long epoch) {
    PGconn *c = conn_of(db);
    return c ? (int)kept(db, pg_lease_fence(c, tenant, node, epoch)) : -1;
}

/* A failure with the connection lost may hide a commit that happened: the rows are then put back in
 * the queue at the reconnection (pg_unsure_sending), as for pg_mark_sending; nothing of them was sent. */
int pg_cluster_mark_sending(store_db *db, const char *tenant, const char *node, long long epoch, const long long *ids,
                            const store_bulk_mark *bulk, int n) {
    PGconn *c = conn_of(db);
    int rc = c ? (int)kept(db, pg_lease_mark_sending(c, tenant, node, epoch, ids, bulk, n)) : -1;
    if (rc < 0 && PQstatus(pg_of(db)->conn) != CONNECTION_OK) pg_unsure_sending(pg_of(db), ids, n);
    return rc;
}
