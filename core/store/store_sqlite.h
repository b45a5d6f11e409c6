/*
 * store_sqlite.h: the SQLite side of store_db.h, shared by the files of core/store/ only.
 *
 * Nothing outside core/store/ includes this header: it is what a second backend replaces.
 */
#ifndef RF_STORE_SQLITE_H
#define RF_STORE_SQLITE_H

#include <sqlite3.h>

#include "store_backend.h"

/* The body of an outbox or schedules row aliased `o`, as the mapping wrote it: the row's own bytes,
 * with its event's shared part (body_parts, outbox.c) put back at part_at, in place of the null
 * there, when it has one. */
#define STORE_SQLITE_BODY                                                                              \
    "CASE WHEN o.part IS NULL THEN o.body ELSE substr(o.body, 1, o.part_at) || "                      \
    "(SELECT text FROM body_parts WHERE id = o.part) || substr(o.body, o.part_at + 5) END"

/* SQLite's connection. Its first member, as every backend's, is its table (store_backend.h). */
struct store_db {
    const store_backend *backend;
    sqlite3 *db;
    sqlite3_stmt *journal_held;   /* prepared on first use: a batch job runs them per event */
    sqlite3_stmt *outbox_has;
    sqlite3_stmt *memory_recall;
    sqlite3_stmt *journal_insert; /* the journal writer's append */
    sqlite3_stmt *due_check;      /* whether a tenant has a schedule due */  /* a mapping thread's out:recall that missed the mapper's cache */
    int holds_turn;               /* inside a write transaction begun by store_sqlite_write_begin */
    int journal;                  /* the journal writer's connection: first in line (sqlite_turn.c) */
    int kept_code;                /* a failure's error kept past its rollback (store_sqlite_keep_error) */
    char kept_msg[256];
};

/* A write transaction, when this process's earlier writers are done (sqlite_turn.c). begin: 0, or -1
 * with the error kept (no transaction). commit: 0, or -1 with the transaction still open (the caller
 * rolls back, which also ends the turn). */
int store_sqlite_write_begin(store_db *db);
/* The write turn without a write transaction (sqlite_turn.c), given back with store_sqlite_turn_end. */
void store_sqlite_turn_take(store_db *db);
void store_sqlite_turn_end(store_db *db);
/* How long (ms) since the journal's last commit ended (0 while it waits for its turn). */
long long store_sqlite_journal_quiet_ms(void);
/* Whether another writer of this process waits for its turn (store_write_wanted). */
int store_sqlite_write_wanted(store_db *db);
int store_sqlite_write_commit(store_db *db);
void store_sqlite_write_rollback(store_db *db);

/* Keeps a failure's code and message for store_db_fault and store_db_error, which a ROLLBACK after
 * it would otherwise replace with "not an error". */
void store_sqlite_keep_error(store_db *db, int code, const char *msg);

/* The kind of failure an SQLite result code is. */
store_fault store_sqlite_fault(int code);

/* Creates or upgrades the schema (schema.c). 0 or -1. */
int store_sqlite_schema(sqlite3 *db);

/* sqlite3_exec without results: 0 or -1. */
int store_sqlite_exec(sqlite3 *db, const char *sql);

/* Logs `what` with db's last error, or with an error message. */
void store_sqlite_log(const char *what, sqlite3 *db);
void store_sqlite_log_msg(const char *what, const char *error);

/* Binds text, or NULL when s is NULL or empty. */
void store_sqlite_text_or_null(sqlite3_stmt *st, int i, const char *s);

/* Steps a statement that returns no row, then resets it and clears its bindings: 1 done, 0 not. */
int store_sqlite_run(sqlite3_stmt *st);

/* The first column of a one-row query with one text parameter (NULL: none); -1 on error. */
long long store_sqlite_count(sqlite3 *db, const char *sql, const char *arg);

/* The backend's operations (store_backend.h documents them by their public names). */
store_db *sqlite_db_open(const char *location, int flags, char *err, size_t errlen);
int sqlite_db_exists(const char *location);
void sqlite_db_close(store_db *db);
const char *sqlite_db_error(store_db *db);
store_fault sqlite_db_fault(store_db *db);
int sqlite_begin(store_db *db);
int sqlite_commit(store_db *db);
void sqlite_rollback(store_db *db);
void sqlite_checkpoint_every(store_db *db, int pages);
int sqlite_journal_commit(store_db *db, store_journal_row *rows, int n);
int sqlite_journal_probe(store_db *db);
void sqlite_maintain(store_db *db);
int sqlite_journal_each(store_db *db, const char *tenant, event_state state, int limit, store_event_cb cb, void *ud);
int sqlite_journal_replay(store_db *db, const char *tenant, long long since, long long until, const char *trigger, store_event_cb cb, void *ud);
int sqlite_journal_held(store_db *db, const char *tenant, long long received_at, const char *body, size_t len, long long *id);
void sqlite_purge(store_db *db, const char *tenant, long long cutoff);
int sqlite_fire_schedules(store_db *db, const char *tenant);
int sqlite_memory_recall(store_db *db, const char *tenant, const char *key, size_t klen, strbuf *out);
outbox_writer *sqlite_outbox_writer_new(store_db *db);
void sqlite_outbox_writer_free(outbox_writer *w);
int sqlite_outbox_write(outbox_writer *w, const outbox_target *t, long long event_id, const map_result *r);
store_scan *sqlite_scan_queued(store_db *db, const char *tenant, int limit);
int sqlite_scan_next(store_scan *s, store_request *r);
void sqlite_scan_end(store_scan *s);
int sqlite_queued_at_least(store_db *db, const char *tenant, int n);
int sqlite_mark_sending(store_db *db, const long long *ids, const store_bulk_mark *bulk, int n);
void sqlite_requeue_sending(store_db *db);
int sqlite_settle(store_db *db, const long long *ids, const store_outcome *outcomes, int n);
long long sqlite_queued_count(store_db *db, const char *tenant);
long long sqlite_queued_through(store_db *db, const char *tenant, long long last_id);
int sqlite_mark_delivered_upto(store_db *db, const char *tenant, long long last);
void sqlite_pause_tenant(store_db *db, const char *tenant, const char *reason, long long at);
int sqlite_tenant_paused(store_db *db, const char *tenant);
void sqlite_unpause_all(store_db *db);
int sqlite_job_find(store_db *db, const char *id, long long *next_input, int *finished);
int sqlite_job_start(store_db *db, const char *id, const char *tenant, const char *kind, const char *input, long long next_input, long long now);
int sqlite_job_progress(store_db *db, const char *id, long long next_input, long long now);
void sqlite_job_read_all(store_db *db, const char *id, long long next_input);
void sqlite_job_finished(store_db *db, const char *id, long long now);
void sqlite_job_counts(store_db *db, const char *id, long long *queued, long long *delivered, long long *dead);
int sqlite_job_waiting(store_db *db, const char *id);
int sqlite_outbox_has(store_db *db, const char *tenant, const char *dedup);
void sqlite_job_delivered(store_db *db, const char *id, void (*cb)(void *ud, const char *body, size_t len), void *ud);
void sqlite_job_dead_reasons(store_db *db, const char *id, int limit, void (*cb)(void *ud, long long n, const char *reason), void *ud);
void sqlite_tenants(store_db *db, void (*cb)(void *ud, const char *tenant), void *ud);
void sqlite_tenant_counts_of(store_db *db, const char *tenant, store_tenant_counts *c);
void sqlite_dead_letters(store_db *db, const char *tenant, void (*cb)(void *ud, const char *id, const char *tenant, const char *what, const char *why), void *ud);
int sqlite_trace_events(store_db *db, const char *tenant, const char *needle, int limit,
                        int (*cb)(void *ud, const store_trace_event *e), void *ud);
int sqlite_trace_event_by_id(store_db *db, long long id, int (*cb)(void *ud, const store_trace_event *e), void *ud);
int sqlite_trace_requests(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_request *r), void *ud);
int sqlite_trace_attempts(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_attempt *a), void *ud);
int sqlite_trace_schedules(store_db *db, const char *tenant, long long event_id,
                           int (*cb)(void *ud, const store_trace_schedule *s), void *ud);
int sqlite_trace_memory(store_db *db, const char *tenant, const char *needle,
                        int (*cb)(void *ud, const char *key, const char *value), void *ud);
int sqlite_dead_letter(store_db *db, int is_event, long long id, void (*cb)(void *ud, const char *tenant, const char *reason, const char *text), void *ud);
int sqlite_replay_dead_events(store_db *db, long long id, const char *tenant);
int sqlite_replay_dead_requests(store_db *db, long long id, const char *tenant);
int sqlite_purge_dead_events(store_db *db, long long id, const char *tenant);
int sqlite_purge_dead_requests(store_db *db, long long id, const char *tenant);
int sqlite_check(const char *location, double seconds, void (*problem)(void *ud, const char *what), void *ud);
int sqlite_backup(store_db *db, const char *path, char *err, size_t errlen);
int sqlite_recover(const char *from, const char *to, store_recovered *got, void (*lost)(void *ud, long long event_id), void *ud, char *err, size_t errlen);

#endif
