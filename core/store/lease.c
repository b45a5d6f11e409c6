/*
 * lease.c: the cluster section of store_db.h on a single-node store (SQLite): this node owns every
 * tenant, always, at epoch 1.
 *
 * Why trivial: an SQLite data folder is one machine's, and DATA/delivery.lock already keeps a second
 * process of that machine from delivering it. So nothing here touches the database, and the service
 * on SQLite behaves exactly as it did before leases existed (ownership.c does not even start a
 * thread for it). The PostgreSQL side is core/store/pg/lease.c.
 */
#include "store_db.h"

int store_clustered(store_db *db) { (void)db; return 0; }

int store_cluster_prepare(store_db *db) { (void)db; return 0; }

int store_node_heartbeat(store_db *db, const char *node, int gone) {
    (void)db, (void)node, (void)gone;
    return 0;
}

int store_live_nodes(store_db *db, void (*cb)(void *ud, const char *node), void *ud) {
    (void)db, (void)cb, (void)ud;
    return 0;
}

int store_leases_of(store_db *db, void (*cb)(void *ud, const store_lease *l), void *ud) {
    (void)db, (void)cb, (void)ud;
    return 0;
}

long long store_lease_take(store_db *db, const char *tenant, const char *node, const char *version) {
    (void)db, (void)tenant, (void)node, (void)version;
    return 1;
}

int store_lease_renew(store_db *db, const char *node, const char *const *tenants, const long long *epochs, int n,
                      int *kept) {
    (void)db, (void)node, (void)tenants, (void)epochs;
    for (int i = 0; i < n; i++) kept[i] = 1;
    return 0;
}

int store_lease_release(store_db *db, const char *tenant, const char *node, long long epoch) {
    (void)db, (void)tenant, (void)node, (void)epoch;
    return 0;
}

int store_lease_want(store_db *db, const char *tenant, const char *node) {
    (void)db, (void)tenant, (void)node;
    return 0;
}

int store_publish_version(store_db *db, const char *tenant, const char *version, const char *node) {
    (void)db, (void)tenant, (void)version, (void)node;
    return 0;
}

int store_fence(store_db *db, const char *tenant, const char *node, long long epoch) {
    (void)db, (void)tenant, (void)node, (void)epoch;
    return 1;
}

int store_mark_sending_fenced(store_db *db, const char *tenant, const char *node, long long epoch,
                              const long long *ids, int n) {
    (void)tenant, (void)node, (void)epoch;
    return store_mark_sending(db, ids, n) == 0 ? 0 : -1;
}
