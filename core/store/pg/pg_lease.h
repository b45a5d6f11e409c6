/*
 * pg_lease.h: the cluster section of store_db.h on PostgreSQL, as functions on a libpq connection
 * (lease.c), so the backend's connection struct only hands over its PGconn.
 *
 * Each returns as its store_db.h twin does; on -1 the connection's error (PQerrorMessage) says why.
 * None opens a transaction when its twin runs in the caller's (pg_lease_fence); the others are each
 * one transaction and must be called outside of one.
 */
#ifndef RF_PG_LEASE_H
#define RF_PG_LEASE_H

#include <libpq-fe.h>

#include "store_db.h"

int pg_lease_prepare(PGconn *c);
int pg_lease_heartbeat(PGconn *c, const char *node, int gone);
int pg_lease_live_nodes(PGconn *c, void (*cb)(void *ud, const char *node), void *ud);
int pg_lease_all(PGconn *c, void (*cb)(void *ud, const store_lease *l), void *ud);
long long pg_lease_take(PGconn *c, const char *tenant, const char *node, const char *version);
int pg_lease_renew(PGconn *c, const char *node, const char *const *tenants, const long long *epochs, int n, int *kept);
int pg_lease_release(PGconn *c, const char *tenant, const char *node, long long epoch);
int pg_lease_want(PGconn *c, const char *tenant, const char *node);
int pg_lease_publish(PGconn *c, const char *tenant, const char *version, const char *node);
int pg_lease_fence(PGconn *c, const char *tenant, const char *node, long long epoch);
int pg_lease_mark_sending(PGconn *c, const char *tenant, const char *node, long long epoch, const long long *ids,
                          const store_bulk_mark *bulk, int n);

/* The backend table's entries (pg_cluster.c): the same on a store_db of the PostgreSQL backend. */
int pg_cluster_prepare(store_db *db);
int pg_cluster_heartbeat(store_db *db, const char *node, int gone);
int pg_cluster_live_nodes(store_db *db, void (*cb)(void *ud, const char *node), void *ud);
int pg_cluster_leases(store_db *db, void (*cb)(void *ud, const store_lease *l), void *ud);
long long pg_cluster_take(store_db *db, const char *tenant, const char *node, const char *version);
int pg_cluster_renew(store_db *db, const char *node, const char *const *tenants, const long long *epochs, int n,
                     int *kept);
int pg_cluster_release(store_db *db, const char *tenant, const char *node, long long epoch);
int pg_cluster_want(store_db *db, const char *tenant, const char *node);
int pg_cluster_publish(store_db *db, const char *tenant, const char *version, const char *node);
int pg_cluster_fence(store_db *db, const char *tenant, const char *node, long long epoch);
int pg_cluster_mark_sending(store_db *db, const char *tenant, const char *node, long long epoch, const long long *ids,
                            const store_bulk_mark *bulk, int n);

#endif
