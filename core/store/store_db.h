/*
 * store_db.h: the store's interface: one connection to the store, and the few operations the
 * service, delivery, the batch jobs and the operator's commands do on it, each named for what it does
 * (store.h, the journal writer's thread, is built on it).
 *
 * Why one interface: every SQL statement and every state number of the project is in core/store/,
 * so the rest of the code reads as the event's path, and each backend (SQLite in the data folder, the
 * default; PostgreSQL shared by several nodes) implements this header and nothing else
 * (store_backend.h). So it stays small and free of any backend's types: a connection is an opaque
 * handle, rows come back as plain structs (valid until the next row), states are the enums of
 * states.h.
 *
 * A store's location is a data folder (SQLite: FOLDER/returnflow.db) or a postgresql:// URL.
 *
 * Rules a changer keeps:
 * - A connection belongs to one thread.
 * - Functions run in the caller's transaction when one is open (store_begin), else each is its own
 *   short transaction; the ones documented as "one transaction" open their own and must be called
 *   outside of one.
 * - Nothing here logs a key: no row holds one.
 */
#ifndef RF_STORE_DB_H
#define RF_STORE_DB_H

#include <stddef.h>

#include "states.h"
#include "strbuf.h"

typedef struct store_db store_db;

/* ------------------------------- connection -------------------------------- */

enum {
    STORE_READ_ONLY = 1,          /* reads only (a dry batch job, replay's journal reader) */
    STORE_CREATE = 2,             /* create the data folder and the database, upgrade the schema */
    STORE_RELAXED = 4,            /* synchronous=NORMAL: what is lost to a power cut is done again */
    STORE_JOURNAL = 8,            /* the journal writer's: every commit durable, and a start of serve
                                     (paused tenants are cleared: a key may have been fixed) */
};

/* Opens the store at location (a lock is waited out for 10 s). NULL with err filled ("cannot open
 * PATH: why"; a URL is named without its password). */
store_db *store_db_open(const char *location, int flags, char *err, size_t errlen);
void store_db_close(store_db *db);

/* Whether the store exists (a dry job reads it only if it does). */
int store_db_exists(const char *location);

/* A location's form safe to log or show: a data folder as it is; a URL as SCHEME://HOST[:PORT]/DB,
 * without its user, password or options (it may hold a password: store.url is a secret). */
void store_location_safe(const char *location, char *out, size_t outlen);

/* The backend's name: "sqlite" or "postgresql". */
const char *store_db_backend(store_db *db);

/* The last error of this connection, for a message. */
const char *store_db_error(store_db *db);

/* Logs `what` with the connection's last error (log.h), at level error. */
void store_log_error(const char *what, store_db *db);

/* What kind of failure the connection's last error was, whatever the backend: what the service does
 * about it depends on the kind (store_health.h), never on a backend's error code. */
typedef enum store_fault {
    STORE_FAULT_NONE = 0,
    STORE_FAULT_BUSY,             /* the lock stayed taken past the busy timeout */
    STORE_FAULT_FULL,             /* the disk (or a quota) is full: writes are refused */
    STORE_FAULT_IO,               /* the system refused a read or a write (EIO, a read-only disk) */
    STORE_FAULT_DAMAGED,          /* the file is not what the store wrote: a damaged page or log */
    STORE_FAULT_OTHER,
} store_fault;
store_fault store_db_fault(store_db *db);

/* A write transaction (BEGIN IMMEDIATE: the write lock now, or after the busy timeout). 0 or -1. */
int store_begin(store_db *db);
int store_commit(store_db *db);
void store_rollback(store_db *db);

/* Inside a write transaction: whether another writer of this process waits for the store's write
 * lock (the journal first: its commit is what a webhook's 202 waits for). A writer with more to do
 * commits what it has when it does, and goes on in a new transaction; when nobody waits, a longer
 * transaction costs less (one commit, each page written once). 1 on a store whose writers do not
 * wait on each other that way (PostgreSQL: its writers keep their small transactions). */
int store_write_wanted(store_db *db);

/* Checkpoints automatically every `pages` WAL pages on this connection (a batch job writes a lot);
 * 0: never (serve's mapping threads: the journal's checkpointer thread does it, store.c). */
void store_checkpoint_every(store_db *db, int pages);

/* ---------------------- the journal writer (store.c) ----------------------- */

typedef struct store_journal_row {
    const char *tenant;
    const char *version;          /* the tenant's scripts version at arrival, NULL: none */
    const char *node;             /* the node that acknowledged it (config `node`), NULL: unknown */
    const char *body;
    size_t len;
    long long received_at;        /* ms since the epoch */
    long long id;                 /* set by store_journal_commit */
} store_journal_row;

/* Appends rows as one transaction that is durable when this returns (fsync'd, or acknowledged by
 * the database server with synchronous commit). 0 with every id set, or -1: nothing of it was
 * kept (store_db_fault and store_db_error say why). */
int store_journal_commit(store_db *db, store_journal_row *rows, int n);

/* While the journal fails and no webhook comes: a one-row write, to learn whether the store takes
 * writes again. 0 or -1. */
int store_journal_probe(store_db *db);

/* Background upkeep, called about once a second on a connection of its own (SQLite copies its log
 * back into the database: a passive checkpoint). */
void store_maintain(store_db *db);

/* --------------------------- journal (events) ------------------------------ */

typedef struct store_event {
    long long id, received_at;
    const char *body;             /* the raw webhook, valid until the callback returns */
    size_t len;
} store_event;

/* Returns nonzero to stop. */
typedef int (*store_event_cb)(void *ud, const store_event *e);

/* Up to `limit` events of a tenant in one state, in journal order. Returns how many, or -1 (logged). */
int store_journal_each(store_db *db, const char *tenant, event_state state, int limit, store_event_cb cb, void *ud);

/* The journal's events of a tenant received in [since, until) ms, in order, those of one trigger
 * only unless trigger is NULL (replay). Returns how many were read, or -1. */
int store_journal_replay(store_db *db, const char *tenant, long long since, long long until, const char *trigger,
                         store_event_cb cb, void *ud);

/* Journals an event a batch job maps itself (EVENT_HELD); *id its row. 0 or -1. */
int store_journal_held(store_db *db, const char *tenant, long long received_at, const char *body, size_t len,
                       long long *id);

/* Deletes a tenant's delivered requests and its mapped or dropped events older than cutoff (ms);
 * an event stays while anything of it is queued or scheduled. Logs a failure. */
void store_purge(store_db *db, const char *tenant, long long cutoff);

/* ------------------------------ schedules ---------------------------------- */

/* Moves up to STORE_FIRE_CHUNK of a tenant's due schedules, other than those a batch job holds while
 * it reads, into its outbox (one transaction). Returns how many, or -1. A chunk holds the write lock
 * ~25 ms (SQLite, 1,000 reminders of the default scripts): a backfill's 200,000 reminders released at
 * once go a chunk at a time between delivery's own transactions, which at 10,000 a chunk waited
 * ~0.3 s each, two a bulk job. */
#define STORE_FIRE_CHUNK 1000
int store_fire_schedules(store_db *db, const char *tenant);

/* ------------------------------- memory ------------------------------------ */

/* out:recall from the store: the JSON text appended to out; 1 found, 0 not. */
int store_memory_recall(store_db *db, const char *tenant, const char *key, size_t klen, strbuf *out);

/* ------------------------ outbox, as delivery sees it ----------------------- */

typedef struct store_request {
    long long id, next_at, created_at;
    const char *profile, *method, *path;
    const char *body;             /* the exact bytes to send */
    size_t body_len;
    int attempts;
} store_request;

/* The queued requests of a tenant in id order, up to limit: store_scan_next fills r (valid until the
 * next call) and returns 1, then 0 at the end, or -1 if the store could not be read (store_db_fault
 * says why). NULL if the store cannot be read. End a scan before writing on the same connection. */
typedef struct store_scan store_scan;
store_scan *store_scan_queued(store_db *db, const char *tenant, int limit);
int store_scan_next(store_scan *s, store_request *r);
void store_scan_end(store_scan *s);

/* Whether a tenant has at least n requests queued. */
int store_queued_at_least(store_db *db, const char *tenant, int n);

/* The Klaviyo bulk job a request is sent in (`returnflow trace` shows it): the job's first row id
 * names it, size is its rows. size 0: the request goes alone. */
typedef struct store_bulk_mark { long long first; int size; } store_bulk_mark;

/* Marks requests in flight (REQUEST_SENDING), so scans look past them: one transaction, which waits
 * out a busy store. bulk[i] (bulk NULL: every one alone) is kept with row ids[i], in the same UPDATE.
 * 0, or -1 when the store refused it (then nothing of them may be sent). */
int store_mark_sending(store_db *db, const long long *ids, const store_bulk_mark *bulk, int n);

/* A start of delivery puts back in the queue what a crash left in flight. */
void store_requeue_sending(store_db *db);

/* What an answer does to a request's row. */
typedef struct store_outcome {
    request_state state;
    long status;                  /* Klaviyo's HTTP status, 0: none */
    long long next_at;            /* ms: when a queued row may go again */
    const char *error;            /* last_error, or NULL */
    int attempt;                  /* 1: it counts as an attempt */
} store_outcome;

/* Rows ids[i] get outcomes[i]: one transaction, which waits out a busy store. 0, or -1 when the store
 * refused it (nothing of it was written: the caller keeps the outcomes and tries again). */
int store_settle(store_db *db, const long long *ids, const store_outcome *outcomes, int n);

/* The true count of a tenant's queued (or in flight) requests, read from an index (cheap). -1 on error. */
long long store_queued_count(store_db *db, const char *tenant);

/* How many of a tenant's requests are queued (not in flight) with an id up to last_id: the rows a
 * scan that ended at last_id read, while none of them left the queue (an index range). -1 on error. */
long long store_queued_through(store_db *db, const char *tenant, long long last_id);

/* Marks a tenant's queued requests up to id `last` delivered (a dry tenant, after its file). 0 or -1. */
int store_mark_delivered_upto(store_db *db, const char *tenant, long long last);

/* A tenant whose key Klaviyo refused, so `returnflow status` can say so (a start clears them). */
void store_pause_tenant(store_db *db, const char *tenant, const char *reason, long long at);
int store_tenant_paused(store_db *db, const char *tenant);
/* No tenant paused: a deliverer that takes the data folder starts with none (a SIGHUP or a restart may
 * bring a fixed key), so the table `returnflow status` reads says what /healthz says. */
void store_unpause_all(store_db *db);

/* ------------------------------- batch jobs -------------------------------- */

/* A job's row before this run: 1 found (*next_input events stored, *finished), 0 not, -1 error. */
int store_job_find(store_db *db, const char *id, long long *next_input, int *finished);

/* Records a run of the job (reading its input from next_input on). 0 or -1. */
int store_job_start(store_db *db, const char *id, const char *tenant, const char *kind, const char *input,
                    long long next_input, long long now);

/* Progress, in the caller's transaction with the rows of those events. 0 or -1. */
int store_job_progress(store_db *db, const char *id, long long next_input, long long now);

/* All input read: the job's schedules may fire. */
void store_job_read_all(store_db *db, const char *id, long long next_input);

/* Every request of the job delivered or dead. */
void store_job_finished(store_db *db, const char *id, long long now);

/* The job's requests: queued (or in flight), delivered, dead. Counts every row of the job. */
void store_job_counts(store_db *db, const char *id, long long *queued, long long *delivered, long long *dead);

/* Whether a request of the job is queued or in flight (1), none is (0), or the store could not say
 * (-1): a look-up in the job's index, where store_job_counts reads all of it (300,000 rows: 34 ms). */
int store_job_waiting(store_db *db, const char *id);

/* Whether a request with this dedup key (outbox_dedup_key) is queued, in flight or delivered. */
int store_outbox_has(store_db *db, const char *tenant, const char *dedup);

/* The bodies of the job's delivered requests, in order. */
void store_job_delivered(store_db *db, const char *id, void (*cb)(void *ud, const char *body, size_t len), void *ud);

/* The job's most frequent dead-letter reasons (first 200 bytes), up to limit. */
void store_job_dead_reasons(store_db *db, const char *id, int limit,
                            void (*cb)(void *ud, long long n, const char *reason), void *ud);

/* ---------------------- status and dead letters (operator) ------------------ */

typedef struct store_tenant_counts {
    long long journaled, deferred, failed;          /* events */
    long long queued, retrying, delivered, dead;    /* requests (queued counts those in flight) */
    long long paused;
    char last_error[200];         /* the latest of a request's last error and a failed event's reason */
} store_tenant_counts;

/* Every tenant with events or requests, in name order. */
void store_tenants(store_db *db, void (*cb)(void *ud, const char *tenant), void *ud);
void store_tenant_counts_of(store_db *db, const char *tenant, store_tenant_counts *c);

/* Dead letters of one tenant (NULL: all): "event:ID" or "request:ID", tenant, what ("" or
 * "PATH STATUS"), why (may be NULL). */
void store_dead_letters(store_db *db, const char *tenant,
                        void (*cb)(void *ud, const char *id, const char *tenant, const char *what, const char *why),
                        void *ud);

/* One dead letter: its tenant, reason and text (an event's body, or a request's "METHOD PATH\nBODY").
 * 1 found, 0 not. */
int store_dead_letter(store_db *db, int is_event, long long id,
                      void (*cb)(void *ud, const char *tenant, const char *reason, const char *text), void *ud);

/* Replays (maps or sends again) or purges dead letters: id 0 every one, tenant NULL every tenant.
 * Returns the rows changed, or -1. */
int store_replay_dead_events(store_db *db, long long id, const char *tenant);
int store_replay_dead_requests(store_db *db, long long id, const char *tenant);
int store_purge_dead_events(store_db *db, long long id, const char *tenant);
int store_purge_dead_requests(store_db *db, long long id, const char *tenant);

/* -------------------------------- cluster ----------------------------------- */

/* Several nodes on one store (PostgreSQL) share the tenants' mapping and delivery through leases
 * (docs/scale-out.md, core/service/ownership.c); ingest needs none. A lease is a row (tenant, node,
 * epoch, expiry on the store's clock) renewed by its holder; whoever takes it bumps the epoch, and
 * every write that must come from the owner runs store_fence first, in its transaction, so a node
 * that lost a lease cannot write as its owner (its transaction sees another epoch and rolls back).
 * On a single-node store (SQLite) this node owns every tenant: these are no-ops that say so. */

#define STORE_LEASE_TTL_MS 10000          /* a lease not renewed for this long is free */
#define STORE_NODE_LIVE_MS 6000           /* a node not seen for this long is not counted live */

/* Whether several nodes may share this store (1: leases matter), 0 for a single-node store. */
int store_clustered(store_db *db);

/* Creates the cluster's tables if missing (under a lock: nodes starting together do not race). 0 or -1. */
int store_cluster_prepare(store_db *db);

/* This node is alive (seen now); gone = 1 says it stops: others need not wait for it. 0 or -1. */
int store_node_heartbeat(store_db *db, const char *node, int gone);

/* The nodes seen within STORE_NODE_LIVE_MS, in name order. Returns how many, or -1. */
int store_live_nodes(store_db *db, void (*cb)(void *ud, const char *node), void *ud);

/* One tenant as the cluster sees it: its lease (node NULL: nobody holds it), the node that asked
 * for it (wanted_by, NULL: none), and the scripts version published for it (version NULL: none). */
typedef struct store_lease {
    const char *tenant, *node, *wanted_by, *version;
    long long epoch;
    long long expires_in_ms;      /* by the store's clock; <= 0: free for that long (expired, released,
                                     or published and never held) */
} store_lease;

/* Every tenant with a lease or a published version. Returns how many, or -1. */
int store_leases_of(store_db *db, void (*cb)(void *ud, const store_lease *l), void *ud);

/* Takes a tenant's lease for node when it is free, expired, or left by an earlier run of the same
 * node, and only if version is the one published for it; in the same transaction the tenant's
 * requests left in flight go back to queued. Returns the new epoch (> 0), 0 when not taken, -1. */
long long store_lease_take(store_db *db, const char *tenant, const char *node, const char *version);

/* Renews the leases node holds: epochs[i] of tenants[i]; kept[i] = 1 when still held. 0 or -1
 * (then nothing is known of them). */
int store_lease_renew(store_db *db, const char *node, const char *const *tenants, const long long *epochs, int n,
                      int *kept);

/* Gives a held lease up (free at once). 0 or -1. */
int store_lease_release(store_db *db, const char *tenant, const char *node, long long epoch);

/* Asks the holder of a tenant's lease to hand it to node (rendezvous says it is node's). 0 or -1. */
int store_lease_want(store_db *db, const char *tenant, const char *node);

/* Publishes node's scripts version of a tenant (the latest publication wins). 0 or -1. */
int store_publish_version(store_db *db, const char *tenant, const char *version, const char *node);

/* In the caller's transaction: whether node still holds the tenant's lease at epoch (1), not (0), or
 * -1; holding it keeps a taker waiting until the transaction ends. */
int store_fence(store_db *db, const char *tenant, const char *node, long long epoch);

/* store_mark_sending for one tenant's requests, fenced (one transaction): 0; 1 when the lease is
 * lost (nothing marked, nothing may be sent); -1 when the store refused it. */
int store_mark_sending_fenced(store_db *db, const char *tenant, const char *node, long long epoch,
                              const long long *ids, const store_bulk_mark *bulk, int n);
/* ------------------------------ trace (operator) ---------------------------- */

/* What `returnflow trace` and the console read to follow one return from its webhooks to Klaviyo's
 * answers (core/cli/trace.c puts them together). Each reader calls cb once a row, in time order;
 * the row is valid until cb returns; cb returns nonzero to stop. Each returns the rows given, or -1. */

/* A journaled webhook and what its mapping did. */
typedef struct store_trace_event {
    long long id, received_at;
    const char *tenant;
    event_state state;
    const char *reason;           /* why it failed, was dropped or deferred; NULL: none */
    const char *script_version;   /* the scripts version that mapped it; NULL: not mapped yet */
    const char *node;             /* the node that acknowledged it; NULL: journaled before nodes were kept */
    int attempts;                 /* mappings tried */
    const char *body;             /* the raw webhook */
    size_t len;
} store_trace_event;

/* Events whose body contains `needle` (a return id, an email: trace.c reads each body to keep only
 * the true matches), of one tenant (NULL: every tenant), the newest `limit`. */
int store_trace_events(store_db *db, const char *tenant, const char *needle, int limit,
                       int (*cb)(void *ud, const store_trace_event *e), void *ud);

/* One event by its journal id (0 or 1 rows). */
int store_trace_event_by_id(store_db *db, long long id, int (*cb)(void *ud, const store_trace_event *e), void *ud);

/* A request to Klaviyo an event produced, as it stands: the store keeps its attempts' count, the last
 * answer and when it goes again, not each attempt. */
typedef struct store_trace_request {
    long long id, event_id, created_at, next_at;
    request_state state;
    int attempts;
    long last_status;             /* Klaviyo's last HTTP status, 0: none yet */
    const char *profile, *method, *path;
    const char *last_error;       /* Klaviyo's last error (a dead letter's reason), NULL: none */
    const char *job;              /* the batch job that queued it (send, replay), NULL: serve */
    const char *schedule_key;     /* the schedule it fired from, NULL: sent at once */
    store_bulk_mark bulk;         /* the Klaviyo bulk job of its last send; size 0: sent alone (or not yet) */
    const char *body;
    size_t body_len;
} store_trace_request;

int store_trace_requests(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_request *r), void *ud);

/* The tries of an event's requests that Klaviyo did not take (retried, or the one that made it dead),
 * in time order: which request, when (ms), Klaviyo's status (0: no answer) and error. A delivered try
 * is the request's own state and last_status. */
typedef struct store_trace_attempt {
    long long request_id, at;
    long status;
    const char *error;
} store_trace_attempt;

int store_trace_attempts(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_attempt *a), void *ud);

/* A schedule an event made: pending (due_at ahead or not yet fired) or cancelled by a later event.
 * One that fired is a request with its schedule_key. */
typedef struct store_trace_schedule {
    const char *key, *method, *path;
    long long event_id, due_at;
    int cancelled;
    long long cancelled_by, cancelled_at;     /* the event whose mapping cancelled it, and when */
} store_trace_schedule;

int store_trace_schedules(store_db *db, const char *tenant, long long event_id,
                          int (*cb)(void *ud, const store_trace_schedule *s), void *ud);

/* The tenant's memory keys (out:remember) that contain `needle`, with their values. */
int store_trace_memory(store_db *db, const char *tenant, const char *needle,
                       int (*cb)(void *ud, const char *key, const char *value), void *ud);

/* ------------------------- maintenance (operator) --------------------------- */

/* The next three are the SQLite backend's (PostgreSQL has its own tools: docs/scale-out.md); on
 * another backend they fail with a message that says so. */

/* Checks DATA's store read-only, within `seconds` (0: no bound): its log (frames that would be
 * dropped) and every page (a quick check). Each problem goes to problem() ("FILE: what"). */
enum { STORE_CHECK_SOUND = 0, STORE_CHECK_DAMAGED = 1, STORE_CHECK_CUT_SHORT = 2 };
int store_check(const char *location, double seconds, void (*problem)(void *ud, const char *what), void *ud);

/* A consistent copy of the store written to path (which must not exist) while others keep using
 * it (the backend's online backup). 0, or -1 with err filled. */
int store_backup(store_db *db, const char *path, char *err, size_t errlen);

/* What store_recover copied and could not read. */
typedef struct store_recovered {
    long long events, requests, schedules, memory, jobs;     /* rows copied */
    long long unreadable_rows;                                /* rows of other tables lost to damage */
} store_recovered;

/* Copies what can be read of from_dir's store into a new store in to_dir (which must have none):
 * the journal first, then the outbox, schedules, memory and jobs. Each journaled webhook that
 * cannot be read is given to lost() by id. 0, or -1 with err filled (nothing could be read). */
int store_recover(const char *from_dir, const char *to_dir, store_recovered *got,
                  void (*lost)(void *ud, long long event_id), void *ud, char *err, size_t errlen);

#endif
