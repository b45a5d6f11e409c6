/*
 * store_dispatch.c: the public operations of store_db.h and outbox.h, each forwarded to the backend
 * of the handle it is given (store_backend.h). Opening picks the backend from the location.
 */
#include "store_backend.h"

#include "json.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

/* The table of a connection, scan or writer: the first member of each. */
#define B(handle) (((const store_handle *)(handle))->backend)

static int is_url(const char *location) {
    return strncmp(location, "postgresql://", 13) == 0 || strncmp(location, "postgres://", 11) == 0;
}

const store_backend *store_backend_for(const char *location, char *err, size_t errlen) {
    if (!is_url(location)) return &store_sqlite_backend;
#ifdef RF_STORE_PG
    (void)err; (void)errlen;
    return &store_pg_backend;
#else
    snprintf(err, errlen, "this build has no PostgreSQL backend");
    return NULL;
#endif
}

store_db *store_db_open(const char *location, int flags, char *err, size_t errlen) {
    const store_backend *b = store_backend_for(location, err, errlen);
    return b ? b->db_open(location, flags, err, errlen) : NULL;
}

int store_db_exists(const char *location) {
    char err[128];
    const store_backend *b = store_backend_for(location, err, sizeof err);
    return b && b->db_exists(location);
}

void store_db_close(store_db *db) {
    if (db) B(db)->db_close(db);
}

const char *store_db_backend(store_db *db) { return B(db)->name; }

void store_log_error(const char *what, store_db *db) {
    const char *error = store_db_error(db);
    strbuf f = {0};
    strbuf_adds(&f, "\"error\":");
    json_append_string(&f, error, strlen(error));
    strbuf_addc(&f, 0);
    log_line("error", what, f.data);
    strbuf_free(&f);
}

/* ---------------------------- forwarded as they are ---------------------------- */

const char *store_db_error(store_db *db) { return B(db)->db_error(db); }
store_fault store_db_fault(store_db *db) { return B(db)->db_fault(db); }
int store_begin(store_db *db) { return B(db)->begin(db); }
int store_commit(store_db *db) { return B(db)->commit(db); }
void store_rollback(store_db *db) { B(db)->rollback(db); }
void store_checkpoint_every(store_db *db, int pages) { B(db)->checkpoint_every(db, pages); }
int store_write_wanted(store_db *db) { return B(db)->write_wanted(db); }
int store_journal_commit(store_db *db, store_journal_row *rows, int n) { return B(db)->journal_commit(db, rows, n); }
int store_journal_probe(store_db *db) { return B(db)->journal_probe(db); }
void store_maintain(store_db *db) { B(db)->maintain(db); }
int store_journal_each(store_db *db, const char *tenant, event_state state, int limit, store_event_cb cb, void *ud) {
    return B(db)->journal_each(db, tenant, state, limit, cb, ud);
}
int store_journal_replay(store_db *db, const char *tenant, long long since, long long until, const char *trigger, store_event_cb cb, void *ud) {
    return B(db)->journal_replay(db, tenant, since, until, trigger, cb, ud);
}
int store_journal_held(store_db *db, const char *tenant, long long received_at, const char *body, size_t len, long long *id) {
    return B(db)->journal_held(db, tenant, received_at, body, len, id);
}
void store_purge(store_db *db, const char *tenant, long long cutoff) { B(db)->purge(db, tenant, cutoff); }
int store_fire_schedules(store_db *db, const char *tenant) { return B(db)->fire_schedules(db, tenant); }
int store_memory_recall(store_db *db, const char *tenant, const char *key, size_t klen, strbuf *out) {
    return B(db)->memory_recall(db, tenant, key, klen, out);
}
outbox_writer *outbox_writer_new(store_db *db) { return B(db)->outbox_writer_new(db); }
store_scan *store_scan_queued(store_db *db, const char *tenant, int limit) {
    return B(db)->scan_queued(db, tenant, limit);
}
int store_queued_at_least(store_db *db, const char *tenant, int n) { return B(db)->queued_at_least(db, tenant, n); }
int store_mark_sending(store_db *db, const long long *ids, const store_bulk_mark *bulk, int n) {
    return B(db)->mark_sending(db, ids, bulk, n);
}
void store_requeue_sending(store_db *db) { B(db)->requeue_sending(db); }
int store_settle(store_db *db, const long long *ids, const store_outcome *outcomes, int n) {
    return B(db)->settle(db, ids, outcomes, n);
}
long long store_queued_count(store_db *db, const char *tenant) { return B(db)->queued_count(db, tenant); }
long long store_queued_through(store_db *db, const char *tenant, long long last_id) {
    return B(db)->queued_through(db, tenant, last_id);
}
int store_mark_delivered_upto(store_db *db, const char *tenant, long long last) {
    return B(db)->mark_delivered_upto(db, tenant, last);
}
void store_pause_tenant(store_db *db, const char *tenant, const char *reason, long long at) {
    B(db)->pause_tenant(db, tenant, reason, at);
}
int store_tenant_paused(store_db *db, const char *tenant) { return B(db)->tenant_paused(db, tenant); }
void store_unpause_all(store_db *db) { B(db)->unpause_all(db); }
int store_job_find(store_db *db, const char *id, long long *next_input, int *finished) {
    return B(db)->job_find(db, id, next_input, finished);
}
int store_job_start(store_db *db, const char *id, const char *tenant, const char *kind, const char *input, long long next_input, long long now) {
    return B(db)->job_start(db, id, tenant, kind, input, next_input, now);
}
int store_job_progress(store_db *db, const char *id, long long next_input, long long now) {
    return B(db)->job_progress(db, id, next_input, now);
}
void store_job_read_all(store_db *db, const char *id, long long next_input) {
    B(db)->job_read_all(db, id, next_input);
}
void store_job_finished(store_db *db, const char *id, long long now) { B(db)->job_finished(db, id, now); }
void store_job_counts(store_db *db, const char *id, long long *queued, long long *delivered, long long *dead) {
    B(db)->job_counts(db, id, queued, delivered, dead);
}
int store_job_waiting(store_db *db, const char *id) { return B(db)->job_waiting(db, id); }
int store_outbox_has(store_db *db, const char *tenant, const char *dedup) {
    return B(db)->outbox_has(db, tenant, dedup);
}
void store_job_delivered(store_db *db, const char *id, void (*cb)(void *ud, const char *body, size_t len), void *ud) {
    B(db)->job_delivered(db, id, cb, ud);
}
void store_job_dead_reasons(store_db *db, const char *id, int limit, void (*cb)(void *ud, long long n, const char *reason), void *ud) {
    B(db)->job_dead_reasons(db, id, limit, cb, ud);
}
void store_tenants(store_db *db, void (*cb)(void *ud, const char *tenant), void *ud) { B(db)->tenants(db, cb, ud); }
void store_tenant_counts_of(store_db *db, const char *tenant, store_tenant_counts *c) {
    B(db)->tenant_counts_of(db, tenant, c);
}
void store_dead_letters(store_db *db, const char *tenant, void (*cb)(void *ud, const char *id, const char *tenant, const char *what, const char *why), void *ud) {
    B(db)->dead_letters(db, tenant, cb, ud);
}
int store_dead_letter(store_db *db, int is_event, long long id, void (*cb)(void *ud, const char *tenant, const char *reason, const char *text), void *ud) {
    return B(db)->dead_letter(db, is_event, id, cb, ud);
}
int store_replay_dead_events(store_db *db, long long id, const char *tenant) {
    return B(db)->replay_dead_events(db, id, tenant);
}
int store_replay_dead_requests(store_db *db, long long id, const char *tenant) {
    return B(db)->replay_dead_requests(db, id, tenant);
}
int store_purge_dead_events(store_db *db, long long id, const char *tenant) {
    return B(db)->purge_dead_events(db, id, tenant);
}
int store_purge_dead_requests(store_db *db, long long id, const char *tenant) {
    return B(db)->purge_dead_requests(db, id, tenant);
}

int store_scan_next(store_scan *s, store_request *r) { return B(s)->scan_next(s, r); }
void store_scan_end(store_scan *s) {
    if (s) B(s)->scan_end(s);
}

int outbox_write(outbox_writer *w, const outbox_target *t, long long event_id, const map_result *r) {
    return B(w)->outbox_write(w, t, event_id, r);
}
void outbox_writer_free(outbox_writer *w) {
    if (w) B(w)->outbox_writer_free(w);
}

/* ------------------- maintenance: the backends that have it ------------------- */

static int unsupported(const store_backend *b, const char *what, char *err, size_t errlen) {
    snprintf(err, errlen, "%s: not for a %s store (docs/scale-out.md: its own tools)", what, b->name);
    return -1;
}

int store_check(const char *location, double seconds, void (*problem)(void *ud, const char *what), void *ud) {
    char err[256];
    const store_backend *b = store_backend_for(location, err, sizeof err);
    if (b && b->check) return b->check(location, seconds, problem, ud);
    if (b) unsupported(b, "store check", err, sizeof err);
    problem(ud, err);
    return STORE_CHECK_DAMAGED;
}

int store_backup(store_db *db, const char *path, char *err, size_t errlen) {
    if (B(db)->backup) return B(db)->backup(db, path, err, errlen);
    return unsupported(B(db), "store backup", err, errlen);
}

int store_recover(const char *from, const char *to, store_recovered *got, void (*lost)(void *ud, long long event_id),
                  void *ud, char *err, size_t errlen) {
    const store_backend *b = store_backend_for(from, err, errlen);
    if (!b) return -1;
    if (b->recover) return b->recover(from, to, got, lost, ud, err, errlen);
    return unsupported(b, "store recover", err, errlen);
}

/* The trace readers: a backend that has none yet (a NULL entry) reads as an error. */
int store_trace_events(store_db *db, const char *tenant, const char *needle, int limit,
                       int (*cb)(void *ud, const store_trace_event *e), void *ud) {
    return B(db)->trace_events ? B(db)->trace_events(db, tenant, needle, limit, cb, ud) : -1;
}
int store_trace_event_by_id(store_db *db, long long id, int (*cb)(void *ud, const store_trace_event *e), void *ud) {
    return B(db)->trace_event_by_id ? B(db)->trace_event_by_id(db, id, cb, ud) : -1;
}
int store_trace_requests(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_request *r), void *ud) {
    return B(db)->trace_requests ? B(db)->trace_requests(db, event_id, cb, ud) : -1;
}
int store_trace_attempts(store_db *db, long long event_id, int (*cb)(void *ud, const store_trace_attempt *a), void *ud) {
    return B(db)->trace_attempts ? B(db)->trace_attempts(db, event_id, cb, ud) : -1;
}
int store_trace_schedules(store_db *db, const char *tenant, long long event_id,
                          int (*cb)(void *ud, const store_trace_schedule *s), void *ud) {
    return B(db)->trace_schedules ? B(db)->trace_schedules(db, tenant, event_id, cb, ud) : -1;
}
int store_trace_memory(store_db *db, const char *tenant, const char *needle,
                       int (*cb)(void *ud, const char *key, const char *value), void *ud) {
    return B(db)->trace_memory ? B(db)->trace_memory(db, tenant, needle, cb, ud) : -1;
}
