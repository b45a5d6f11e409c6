/*
 * store_backend.h: what a backend of the store provides: one function per operation of store_db.h and
 * outbox.h, gathered in a table.
 *
 * Why a table: one binary serves an embedded single-node install (SQLite, the default) and a cluster
 * on a shared PostgreSQL, chosen by the config at run time. Every connection, scan and outbox writer a
 * backend hands out begins with a pointer to its table, so store_dispatch.c forwards each public call
 * in one line and the rest of the code never knows which backend it talks to.
 *
 * Only core/store/ includes this header. A backend's functions have the same meaning as the public
 * ones of the same name (store_db.h documents them); each backend keeps its SQL to itself.
 */
#ifndef RF_STORE_BACKEND_H
#define RF_STORE_BACKEND_H

#include "outbox.h"
#include "store_db.h"

typedef struct store_backend store_backend;

/* The first member of every backend's connection, scan and outbox writer. */
typedef struct store_handle {
    const store_backend *backend;
} store_handle;

struct store_backend {
    const char *name;             /* "sqlite", "postgresql" */

    /* connection */
    store_db *(*db_open)(const char *location, int flags, char *err, size_t errlen);
    int (*db_exists)(const char *location);
    void (*db_close)(store_db *db);
    const char *(*db_error)(store_db *db);
    store_fault (*db_fault)(store_db *db);
    int (*begin)(store_db *db);
    int (*commit)(store_db *db);
    void (*rollback)(store_db *db);
    void (*checkpoint_every)(store_db *db, int pages);
    int (*write_wanted)(store_db *db);

    /* journal writer */
    int (*journal_commit)(store_db *db, store_journal_row *rows, int n);
    int (*journal_probe)(store_db *db);
    void (*maintain)(store_db *db);

    /* journal */
    int (*journal_each)(store_db *db, const char *tenant, event_state state, int limit, store_event_cb cb, void *ud);
    int (*journal_replay)(store_db *db, const char *tenant, long long since, long long until, const char *trigger,
                          store_event_cb cb, void *ud);
    int (*journal_held)(store_db *db, const char *tenant, long long received_at, const char *body, size_t len,
                        long long *id);
    void (*purge)(store_db *db, const char *tenant, long long cutoff);

    /* schedules, memory */
    int (*fire_schedules)(store_db *db, const char *tenant);
    int (*memory_recall)(store_db *db, const char *tenant, const char *key, size_t klen, strbuf *out);

    /* the mapping's results */
    outbox_writer *(*outbox_writer_new)(store_db *db);
    void (*outbox_writer_free)(outbox_writer *w);
    int (*outbox_write)(outbox_writer *w, const outbox_target *t, long long event_id, const map_result *r);

    /* delivery */
    store_scan *(*scan_queued)(store_db *db, const char *tenant, int limit);
    int (*scan_next)(store_scan *s, store_request *r);
    void (*scan_end)(store_scan *s);
    int (*queued_at_least)(store_db *db, const char *tenant, int n);
    int (*mark_sending)(store_db *db, const long long *ids, const store_bulk_mark *bulk, int n);
    void (*requeue_sending)(store_db *db);
    int (*settle)(store_db *db, const long long *ids, const store_outcome *outcomes, int n);
    long long (*queued_count)(store_db *db, const char *tenant);
    long long (*queued_through)(store_db *db, const char *tenant, long long last_id);
    int (*mark_delivered_upto)(store_db *db, const char *tenant, long long last);
    void (*pause_tenant)(store_db *db, const char *tenant, const char *reason, long long at);
    int (*tenant_paused)(store_db *db, const char *tenant);
    void (*unpause_all)(store_db *db);

    /* batch jobs */
    int (*job_find)(store_db *db, const char *id, long long *next_input, int *finished);
    int (*job_start)(store_db *db, const char *id, const char *tenant, const char *kind, const char *input,
                     long long next_input, long long now);
    int (*job_progress)(store_db *db, const char *id, long long next_input, long long now);
    void (*job_read_all)(store_db *db, const char *id, long long next_input);
    void (*job_finished)(store_db *db, const char *id, long long now);
    void (*job_counts)(store_db *db, const char *id, long long *queued, long long *delivered, long long *dead);
    int (*job_waiting)(store_db *db, const char *id);
    int (*outbox_has)(store_db *db, const char *tenant, const char *dedup);
    void (*job_delivered)(store_db *db, const char *id, void (*cb)(void *ud, const char *body, size_t len), void *ud);
    void (*job_dead_reasons)(store_db *db, const char *id, int limit,
                             void (*cb)(void *ud, long long n, const char *reason), void *ud);

    /* status and dead letters */
    void (*tenants)(store_db *db, void (*cb)(void *ud, const char *tenant), void *ud);
    void (*tenant_counts_of)(store_db *db, const char *tenant, store_tenant_counts *c);
    void (*dead_letters)(store_db *db, const char *tenant,
                         void (*cb)(void *ud, const char *id, const char *tenant, const char *what, const char *why),
                         void *ud);
    int (*dead_letter)(store_db *db, int is_event, long long id,
                       void (*cb)(void *ud, const char *tenant, const char *reason, const char *text), void *ud);
    int (*replay_dead_events)(store_db *db, long long id, const char *tenant);
    int (*replay_dead_requests)(store_db *db, long long id, const char *tenant);
    int (*purge_dead_events)(store_db *db, long long id, const char *tenant);
    int (*purge_dead_requests)(store_db *db, long long id, const char *tenant);

    /* cluster (store_db.h): a single-node backend (SQLite's) leaves them NULL: its one node owns
     * every tenant (lease.c answers for it) */
    int (*cluster_prepare)(store_db *db);
    int (*node_heartbeat)(store_db *db, const char *node, int gone);
    int (*live_nodes)(store_db *db, void (*cb)(void *ud, const char *node), void *ud);
    int (*leases_of)(store_db *db, void (*cb)(void *ud, const store_lease *l), void *ud);
    long long (*lease_take)(store_db *db, const char *tenant, const char *node, const char *version);
    int (*lease_renew)(store_db *db, const char *node, const char *const *tenants, const long long *epochs, int n,
                       int *kept);
    int (*lease_release)(store_db *db, const char *tenant, const char *node, long long epoch);
    int (*lease_want)(store_db *db, const char *tenant, const char *node);
    int (*publish_version)(store_db *db, const char *tenant, const char *version, const char *node);
    int (*fence)(store_db *db, const char *tenant, const char *node, long long epoch);
    int (*mark_sending_fenced)(store_db *db, const char *tenant, const char *node, long long epoch,
                               const long long *ids, const store_bulk_mark *bulk, int n);
    /* trace */
    int (*trace_events)(store_db *db, const char *tenant, const char *needle, int limit,
                        int (*cb)(void *ud, const store_trace_event *e), void *ud);
    int (*trace_event_by_id)(store_db *db, long long id, int (*cb)(void *ud, const store_trace_event *e), void *ud);
    int (*trace_requests)(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_request *r), void *ud);
    int (*trace_attempts)(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_attempt *a), void *ud);
    int (*trace_schedules)(store_db *db, const char *tenant, long long event_id,
                           int (*cb)(void *ud, const store_trace_schedule *s), void *ud);
    int (*trace_memory)(store_db *db, const char *tenant, const char *needle,
                        int (*cb)(void *ud, const char *key, const char *value), void *ud);

    /* maintenance: a backend whose operator tools do these (PostgreSQL's) leaves them NULL */
    int (*check)(const char *location, double seconds, void (*problem)(void *ud, const char *what), void *ud);
    int (*backup)(store_db *db, const char *path, char *err, size_t errlen);
    int (*recover)(const char *from, const char *to, store_recovered *got, void (*lost)(void *ud, long long event_id),
                   void *ud, char *err, size_t errlen);
};

extern const store_backend store_sqlite_backend;

/* PostgreSQL (core/store/pg/): libpq is a dependency of every build (tools/deps.sh). */
#define RF_STORE_PG 1
extern const store_backend store_pg_backend;

/* The backend a location names: a postgresql:// or postgres:// URL, else a data folder (SQLite).
 * NULL, with err filled, when this build has no backend for it. */
const store_backend *store_backend_for(const char *location, char *err, size_t errlen);

#endif
