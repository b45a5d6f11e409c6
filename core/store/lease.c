/*
 * lease.c: the cluster section of store_db.h, forwarded to the backend's table (store_backend.h);
 * a backend without it (SQLite) is a single-node store, answered here: this node owns every tenant,
 * always, at epoch 1.
 *
 * Why trivial on SQLite: its data folder is one machine's, and DATA/delivery.lock already keeps a
 * second process of that machine from delivering it. So nothing here touches its database, and the
 * service on SQLite behaves exactly as it did before leases existed (ownership.c starts no thread for
 * it). The PostgreSQL side: core/store/pg/lease.c.
 */
#include "store_backend.h"

#define B(db) (((const store_handle *)(db))->backend)

int store_clustered(store_db *db) { return B(db)->lease_take != NULL; }

int store_cluster_prepare(store_db *db) { return B(db)->cluster_prepare ? B(db)->cluster_prepare(db) : 0; }

int store_node_heartbeat(store_db *db, const char *node, int gone) {
    return B(db)->node_heartbeat ? B(db)->node_heartbeat(db, node, gone) : 0;
}

int store_live_nodes(store_db *db, void (*cb)(void *ud, const char *node), void *ud) {
    return B(db)->live_nodes ? B(db)->live_nodes(db, cb, ud) : 0;
}

int store_leases_of(store_db *db, void (*cb)(void *ud, const store_lease *l), void *ud) {
    return B(db)->leases_of ? B(db)->leases_of(db, cb, ud) : 0;
}

long long store_lease_take(store_db *db, const char *tenant, const char *node, const char *version) {
    return B(db)->lease_take ? B(db)->lease_take(db, tenant, node, version) : 1;
}

int store_lease_renew(store_db *db, const char *node, const char *const *tenants, const long long *epochs, int n,
                      int *kept) {
    if (B(db)->lease_renew) return B(db)->lease_renew(db, node, tenants, epochs, n, kept);
    for (int i = 0; i < n; i++) kept[i] = 1;
    return 0;
}

int store_lease_release(store_db *db, const char *tenant, const char *node, long long epoch) {
    return B(db)->lease_release ? B(db)->lease_release(db, tenant, node, epoch) : 0;
}

int store_lease_want(store_db *db, const char *tenant, const char *node) {
    return B(db)->lease_want ? B(db)->lease_want(db, tenant, node) : 0;
}

int store_publish_version(store_db *db, const char *tenant, const char *version, const char *node) {
    return B(db)->publish_version ? B(db)->publish_version(db, tenant, version, node) : 0;
}

int store_fence(store_db *db, const char *tenant, const char *node, long long epoch) {
    return B(db)->fence ? B(db)->fence(db, tenant, node, epoch) : 1;
}

int store_mark_sending_fenced(store_db *db, const char *tenant, const char *node, long long epoch,
                              const long long *ids, const store_bulk_mark *bulk, int n) {
    if (B(db)->mark_sending_fenced) return B(db)->mark_sending_fenced(db, tenant, node, epoch, ids, bulk, n);
    return store_mark_sending(db, ids, bulk, n) == 0 ? 0 : -1;
}
