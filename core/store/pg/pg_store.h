/*
 * pg_store.h: the PostgreSQL side of store_db.h, shared by the files of core/store/pg/ only.
 *
 * Nothing outside core/store/ includes this header. The functions of store_db.h, outbox.h and the
 * journal writer's ops are here as pg_* (store_pg_backend gathers them); this header adds what those
 * files share: the connection, a statement runner that re-prepares after a reconnection, and the
 * mapping of PostgreSQL's SQLSTATE classes onto store_fault kinds.
 *
 * Invariants a changer keeps:
 * - Every parameter whose bytes matter (a body, a memory key) goes in binary format with its
 *   length: PostgreSQL's binary format of text is the bytes themselves, so nothing is escaped,
 *   re-encoded or cut at a NUL. Results come back in text format, which for text is the bytes too.
 * - A lost connection is an I/O fault (STORE_FAULT_IO: acknowledgements turn 503) and is reconnected
 *   at the next call outside a transaction; the statements are prepared again on the new session.
 * - Bodies are stored whole (SQLite's body_parts sharing is not used here), so every reader reads
 *   `body` as it is and what is sent is byte for byte what the mapping wrote.
 */
#ifndef RF_PG_STORE_H
#define RF_PG_STORE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "store_backend.h"
#include "store_db.h"

#define PG_MAX_STATEMENTS 192
#define PG_MAX_PARAMS 16

/* The advisory lock migrations run under: two nodes starting together do not race. ('rflw') */
#define PG_MIGRATE_LOCK 1919314039LL
/* The first key of a tenant's outbox lock (the second: hashtext of the tenant), see pg_outbox.c. */
#define PG_OUTBOX_LOCK 1919314040

typedef struct pg_db {
    const store_backend *backend; /* first, as every backend's connection (store_backend.h) */
    PGconn *conn;
    char *url;                    /* a secret: may hold a password; never logged */
    int flags;                    /* STORE_* of store_db_open */
    int in_tx;                    /* a transaction of the caller's is open */
    int tenant_locked;            /* this transaction holds its tenant's outbox lock (pg_outbox.c) */
    const char *prepared[PG_MAX_STATEMENTS];   /* the statements this session has prepared */
    int nprepared;
    long long *unsure;            /* requests whose mark_sending's commit may have happened unseen */
    int nunsure;
    store_fault fault;            /* the last failure's kind, until store_db_fault reads it */
    char err[512];
} pg_db;

static inline pg_db *pg_of(store_db *db) { return (pg_db *)db; }

/* A statement: its name on the server and its text. Static storage: the name is its identity. */
typedef struct pg_stmt { const char *name, *sql; } pg_stmt;

/* The parameters of one statement, built in order, then given to pg_run (or pg_do), which frees
 * what pg_text_clean copied. */
typedef struct pg_params {
    int n;
    const char *values[PG_MAX_PARAMS];
    int lengths[PG_MAX_PARAMS], formats[PG_MAX_PARAMS];
    char numbers[PG_MAX_PARAMS][24];
    char *owned[PG_MAX_PARAMS];   /* cleaned copies (pg_text_clean) */
} pg_params;

void pg_text(pg_params *p, const char *s);                    /* NULL: SQL NULL */
/* Free text (an error message, a reason, a file name) that may not be valid UTF-8 (cut inside a
 * character, a file name's bytes): PostgreSQL refuses such text, and a refused settle would stall
 * delivery for good. Each byte of an invalid sequence becomes '?'; valid text is bound as it is. */
void pg_text_clean(pg_params *p, const char *s);
void pg_text_or_null(pg_params *p, const char *s);            /* NULL or "": SQL NULL */
void pg_bytes(pg_params *p, const char *s, size_t len);       /* a text parameter, exact bytes */
void pg_int(pg_params *p, long long v);

/* Opens a connection to url with the STORE_* flags (STORE_CREATE migrates the schema). */
pg_db *pg_connect(const char *url, int flags, char *err, size_t errlen);

/* Runs a prepared statement; the result (COMMAND_OK or TUPLES_OK) to PQclear, or NULL with the
 * connection's error and fault set. Reconnects first when the connection is lost outside a
 * transaction. */
PGresult *pg_run(pg_db *p, const pg_stmt *st, pg_params *params);

/* Prepares st on this session unless it is (reconnecting first when the connection is lost). 0 or -1. */
int pg_prepare(pg_db *p, const pg_stmt *st);

/* Replaces the session (a new connection, configured): what a broken exchange left behind goes. */
void pg_drop(pg_db *p);

/* pg_run for a statement without a result: 0, or -1. */
int pg_do(pg_db *p, const pg_stmt *st, pg_params *params);

/* Runs SQL text without parameters (BEGIN, COMMIT, a schema): 0, or -1 with the error kept. */
int pg_exec(pg_db *p, const char *sql);

/* A number of a text-format result. */
long long pg_ll(const PGresult *r, int row, int col);

/* Records a failure (message and kind) from a result, or from the connection when r is NULL. */
void pg_fail(pg_db *p, const PGresult *r);

/* A failed mark_sending whose connection was lost may have committed unseen (its COMMIT reached the
 * server, the answer did not): those rows would stay REQUEST_SENDING, never sent. Kept here, they are
 * put back in the queue as soon as the connection is back (pg_conn.c). */
void pg_unsure_sending(pg_db *p, const long long *ids, int n);

/* Creates or upgrades the schema, under PG_MIGRATE_LOCK. 0, or -1 with err filled. */
int pg_migrate(pg_db *p, char *err, size_t errlen);

/* ------------- the backend's functions (store_db.h, outbox.h, the journal ops) ------------- */


store_db *pg_db_open(const char *url, int flags, char *err, size_t errlen);
void pg_db_close(store_db *db);
int pg_db_exists(const char *url);
const char *pg_db_error(store_db *db);
void pg_log_error(const char *what, store_db *db);
store_fault pg_db_fault(store_db *db);
int pg_begin(store_db *db);
int pg_commit(store_db *db);
void pg_rollback(store_db *db);
void pg_checkpoint_every(store_db *db, int pages);
int pg_write_wanted(store_db *db);
int pg_schema_version(store_db *db);
int pg_schema_latest(void);

int pg_journal_commit(store_db *db, store_journal_row *rows, int n);
int pg_journal_probe(store_db *db);
void pg_maintain(store_db *db);
int pg_journal_each(store_db *db, const char *tenant, event_state state, int limit, store_event_cb cb, void *ud);
int pg_journal_replay(store_db *db, const char *tenant, long long since, long long until, const char *trigger,
                      store_event_cb cb, void *ud);
int pg_journal_held(store_db *db, const char *tenant, long long received_at, const char *body, size_t len,
                    long long *id);
void pg_purge(store_db *db, const char *tenant, long long cutoff);

int pg_fire_schedules(store_db *db, const char *tenant);

/* trace (pg_trace.c) */
int pg_trace_events(store_db *db, const char *tenant, const char *needle, int limit,
                    int (*cb)(void *ud, const store_trace_event *e), void *ud);
int pg_trace_event_by_id(store_db *db, long long id, int (*cb)(void *ud, const store_trace_event *e), void *ud);
int pg_trace_requests(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_request *r), void *ud);
int pg_trace_attempts(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_attempt *a), void *ud);
int pg_trace_schedules(store_db *db, const char *tenant, long long event_id,
                       int (*cb)(void *ud, const store_trace_schedule *s), void *ud);
int pg_trace_memory(store_db *db, const char *tenant, const char *needle,
                    int (*cb)(void *ud, const char *key, const char *value), void *ud);
int pg_memory_recall(store_db *db, const char *tenant, const char *key, size_t klen, strbuf *out);
outbox_writer *pg_outbox_writer_new(store_db *db);
void pg_outbox_writer_free(outbox_writer *w);
int pg_outbox_write(outbox_writer *w, const outbox_target *t, long long event_id, const map_result *r);
int pg_outbox_has(store_db *db, const char *tenant, const char *dedup);

store_scan *pg_scan_queued(store_db *db, const char *tenant, int limit);
int pg_scan_next(store_scan *s, store_request *r);
void pg_scan_end(store_scan *s);
int pg_queued_at_least(store_db *db, const char *tenant, int n);
int pg_mark_sending(store_db *db, const long long *ids, const store_bulk_mark *bulk, int n);
void pg_requeue_sending(store_db *db);
int pg_settle(store_db *db, const long long *ids, const store_outcome *outcomes, int n);
long long pg_queued_count(store_db *db, const char *tenant);
long long pg_queued_through(store_db *db, const char *tenant, long long last_id);
int pg_mark_delivered_upto(store_db *db, const char *tenant, long long last);
void pg_pause_tenant(store_db *db, const char *tenant, const char *reason, long long at);
int pg_tenant_paused(store_db *db, const char *tenant);
void pg_unpause_all(store_db *db);

int pg_job_find(store_db *db, const char *id, long long *next_input, int *finished);
int pg_job_start(store_db *db, const char *id, const char *tenant, const char *kind, const char *input,
                 long long next_input, long long now);
int pg_job_progress(store_db *db, const char *id, long long next_input, long long now);
void pg_job_read_all(store_db *db, const char *id, long long next_input);
void pg_job_finished(store_db *db, const char *id, long long now);
void pg_job_counts(store_db *db, const char *id, long long *queued, long long *delivered, long long *dead);
int pg_job_waiting(store_db *db, const char *id);
void pg_job_delivered(store_db *db, const char *id, void (*cb)(void *ud, const char *body, size_t len), void *ud);
void pg_job_dead_reasons(store_db *db, const char *id, int limit,
                         void (*cb)(void *ud, long long n, const char *reason), void *ud);

void pg_tenants(store_db *db, void (*cb)(void *ud, const char *tenant), void *ud);
void pg_tenant_counts_of(store_db *db, const char *tenant, store_tenant_counts *c);
void pg_dead_letters(store_db *db, const char *tenant,
                     void (*cb)(void *ud, const char *id, const char *tenant, const char *what, const char *why),
                     void *ud);
int pg_dead_letter(store_db *db, int is_event, long long id,
                   void (*cb)(void *ud, const char *tenant, const char *reason, const char *text), void *ud);
int pg_replay_dead_events(store_db *db, long long id, const char *tenant);
int pg_replay_dead_requests(store_db *db, long long id, const char *tenant);
int pg_purge_dead_events(store_db *db, long long id, const char *tenant);
int pg_purge_dead_requests(store_db *db, long long id, const char *tenant);


#endif
