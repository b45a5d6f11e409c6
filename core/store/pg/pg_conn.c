/*
 * pg_conn.c: a connection to the PostgreSQL store, its transactions, its statements and what its
 * failures mean (store_fault).
 *
 * Why a connection reconnects by itself: PostgreSQL restarts, fails over or drops a connection, and
 * the service must then answer 503 and resume, never stop. A call that finds the connection lost
 * outside a transaction resets it (libpq's PQreset, bounded by connect_timeout) and prepares its
 * statements again; inside a transaction it fails (the transaction is gone with the session) and the
 * caller's rollback ends it. Failures map onto store_fault kinds by SQLSTATE class, so the service
 * decides from the kind, never from PostgreSQL's codes.
 *
 * Session settings: synchronous_commit on for every connection, STORE_RELAXED ones too. SQLite's
 * synchronous=NORMAL loses nothing to a crash of the process, only to a power cut; PostgreSQL's
 * synchronous_commit=off loses the last commits to a crash of the server, which a failover is: a
 * lost settle would leave its rows in flight for good (delivery believes them answered), a lost
 * mapping would send its requests twice. The pg_restart spec caught the first. lock_timeout 10 s is
 * SQLite's busy timeout.
 */
#include "pg_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "lazy_libs.h"
#include "log.h"
#include "strbuf.h"
#include "utf8.h"

void pg_text(pg_params *p, const char *s) {
    p->values[p->n] = s;
    p->lengths[p->n] = 0;
    p->formats[p->n++] = 0;
}

void pg_text_or_null(pg_params *p, const char *s) { pg_text(p, s && *s ? s : NULL); }

void pg_text_clean(pg_params *p, const char *s) {
    const unsigned char *u = (const unsigned char *)s, *end = u + (s ? strlen(s) : 0);
    const unsigned char *bad = u;
    while (bad < end) {
        int n = utf8_len(bad, end);
        if (!n) break;
        bad += n;
    }
    if (!s || bad == end) { pg_text(p, s); return; }
    char *copy = strdup(s);
    if (!copy) abort();
    for (unsigned char *c = (unsigned char *)copy + (bad - u), *e = (unsigned char *)copy + (end - u); c < e;) {
        int n = utf8_len(c, e);
        if (n) c += n;
        else *c++ = '?';
    }
    p->owned[p->n] = copy;
    pg_text(p, copy);
}

static void params_free(pg_params *p) {
    for (int i = 0; i < p->n; i++) {
        free(p->owned[i]);
        p->owned[i] = NULL;
    }
}

void pg_bytes(pg_params *p, const char *s, size_t len) {
    p->values[p->n] = s ? s : "";
    p->lengths[p->n] = (int)len;
    p->formats[p->n++] = 1;
}

void pg_int(pg_params *p, long long v) {
    snprintf(p->numbers[p->n], sizeof p->numbers[p->n], "%lld", v);
    pg_text(p, p->numbers[p->n]);
}

long long pg_ll(const PGresult *r, int row, int col) {
    if (PQgetisnull(r, row, col)) return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* The kind of failure a SQLSTATE is (PostgreSQL's appendix A), or of a lost connection. */
static store_fault fault_of(const char *state, int connection_lost) {
    if (connection_lost || !state) return STORE_FAULT_IO;
    if (strncmp(state, "08", 2) == 0) return STORE_FAULT_IO;              /* connection exception */
    if (strcmp(state, "53100") == 0) return STORE_FAULT_FULL;             /* disk_full */
    if (strncmp(state, "53", 2) == 0) return STORE_FAULT_IO;              /* out of memory, connections */
    if (strncmp(state, "57P", 3) == 0) return STORE_FAULT_IO;             /* shutting down, starting */
    if (strcmp(state, "58030") == 0) return STORE_FAULT_IO;               /* io_error */
    if (strcmp(state, "25006") == 0) return STORE_FAULT_IO;               /* read-only (a standby) */
    if (strncmp(state, "40", 2) == 0) return STORE_FAULT_BUSY;            /* serialization, deadlock */
    if (strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0) return STORE_FAULT_BUSY;   /* lock timeout */
    if (strncmp(state, "XX", 2) == 0) return STORE_FAULT_DAMAGED;         /* data or index corrupted */
    return STORE_FAULT_OTHER;
}

void pg_fail(pg_db *p, const PGresult *r) {
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !*msg) msg = PQerrorMessage(p->conn);
    if (!msg || !*msg) msg = "PostgreSQL refused the statement";
    snprintf(p->err, sizeof p->err, "%s", msg);
    size_t n = strlen(p->err);
    while (n && (p->err[n - 1] == '\n' || p->err[n - 1] == ' ')) p->err[--n] = 0;
    p->fault = fault_of(r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL, PQstatus(p->conn) != CONNECTION_OK);
}

/* The session's settings, on a new or reset connection. */
static int configure(pg_db *p) {
    char sql[256];
    snprintf(sql, sizeof sql, "SET synchronous_commit = on; SET lock_timeout = '10s'; SET client_encoding = 'UTF8';%s",
             (p->flags & STORE_READ_ONLY) ? " SET default_transaction_read_only = on;" : "");
    PGresult *r = PQexec(p->conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) pg_fail(p, r);
    PQclear(r);
    p->nprepared = 0;
    return ok ? 0 : -1;
}

void pg_unsure_sending(pg_db *p, const long long *ids, int n) {
    long long *more = realloc(p->unsure, (size_t)(p->nunsure + n) * sizeof *more);
    if (!more) abort();
    p->unsure = more;
    memcpy(p->unsure + p->nunsure, ids, (size_t)n * sizeof *ids);
    p->nunsure += n;
}

/* Puts back in the queue the rows a lost commit may have marked in flight (nothing of them was sent:
 * delivery sends nothing it could not mark). Kept for the next reconnection if this fails. */
static void requeue_unsure(pg_db *p) {
    strbuf ids = {0};
    strbuf_addc(&ids, '{');
    for (int i = 0; i < p->nunsure; i++) {
        char n[24];
        snprintf(n, sizeof n, "%s%lld", i ? "," : "", p->unsure[i]);
        strbuf_adds(&ids, n);
    }
    strbuf_adds(&ids, "}");
    strbuf_addc(&ids, 0);
    char queued[8], sending[8];
    snprintf(queued, sizeof queued, "%d", REQUEST_QUEUED);
    snprintf(sending, sizeof sending, "%d", REQUEST_SENDING);
    const char *values[] = { queued, ids.data, sending };
    PGresult *r = PQexecParams(p->conn, "UPDATE outbox SET state = $1 WHERE id = ANY($2::bigint[]) AND state = $3", 3,
                               NULL, values, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) p->nunsure = 0;
    PQclear(r);
    strbuf_free(&ids);
}

/* A lost connection outside a transaction is reset: 0 when the connection is usable. */
static int ready(pg_db *p) {
    if (PQstatus(p->conn) == CONNECTION_OK) {
        if (p->nunsure && !p->in_tx) requeue_unsure(p);
        return 0;
    }
    if (p->in_tx) {
        pg_fail(p, NULL);
        return -1;
    }
    PQreset(p->conn);
    if (PQstatus(p->conn) != CONNECTION_OK) {
        pg_fail(p, NULL);
        return -1;
    }
    if (configure(p) != 0) return -1;
    if (p->nunsure) requeue_unsure(p);
    return 0;
}

void pg_drop(pg_db *p) {
    PQreset(p->conn);                     /* a new session: out of any pipeline, statements gone */
    p->nprepared = 0;
    if (PQstatus(p->conn) == CONNECTION_OK) configure(p);
}

static int prepared(pg_db *p, const pg_stmt *st) {
    for (int i = 0; i < p->nprepared; i++)
        if (p->prepared[i] == st->name) return 1;
    return 0;
}

int pg_prepare(pg_db *p, const pg_stmt *st) {
    if (ready(p) != 0) return -1;
    if (prepared(p, st)) return 0;
    PGresult *r = PQprepare(p->conn, st->name, st->sql, 0, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) pg_fail(p, r);
    PQclear(r);
    if (!ok) return -1;
    if (p->nprepared == PG_MAX_STATEMENTS) abort();          /* a fixed set: grow PG_MAX_STATEMENTS */
    p->prepared[p->nprepared++] = st->name;
    return 0;
}

static PGresult *run(pg_db *p, const pg_stmt *st, const pg_params *params) {
    static const pg_params none;
    if (!params) params = &none;
    if (pg_prepare(p, st) != 0) return NULL;
    PGresult *r = PQexecPrepared(p->conn, st->name, params->n, params->values, params->lengths, params->formats, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) return r;
    pg_fail(p, r);
    PQclear(r);
    return NULL;
}

PGresult *pg_run(pg_db *p, const pg_stmt *st, pg_params *params) {
    PGresult *r = run(p, st, params);
    if (params) params_free(params);
    return r;
}

int pg_do(pg_db *p, const pg_stmt *st, pg_params *params) {
    PGresult *r = pg_run(p, st, params);
    PQclear(r);
    return r ? 0 : -1;
}

int pg_exec(pg_db *p, const char *sql) {
    if (ready(p) != 0) return -1;
    PGresult *r = PQexec(p->conn, sql);
    ExecStatusType s = PQresultStatus(r);
    int ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok) pg_fail(p, r);
    PQclear(r);
    return ok ? 0 : -1;
}

pg_db *pg_connect(const char *url, int flags, char *err, size_t errlen) {
    if (lazy_libs_pq(err, errlen) != 0) return NULL;
    pg_db *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->backend = &store_pg_backend;
    p->flags = flags;
    p->url = strdup(url);
    if (!p->url) abort();
    /* Defaults first: what the URL says wins (expand_dbname: later keywords override). Keepalives
     * bound how long a cut network goes unnoticed on an idle connection. */
    const char *const keys[] = { "connect_timeout", "application_name", "keepalives_idle", "keepalives_interval",
                                 "keepalives_count", "dbname", NULL };
    const char *const values[] = { "5", "returnflow", "10", "3", "3", url, NULL };
    char safe[256];
    store_location_safe(url, safe, sizeof safe);
    p->conn = PQconnectdbParams(keys, values, 1);
    if (!p->conn || PQstatus(p->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to %s: %s", safe, p->conn ? PQerrorMessage(p->conn) : "out of memory");
        size_t n = strlen(err);
        while (n && err[n - 1] == '\n') err[--n] = 0;
        goto fail;
    }
    if (configure(p) != 0) goto fail_err;
    if ((flags & STORE_CREATE) && !(flags & STORE_READ_ONLY) && pg_migrate(p, err, errlen) != 0) goto fail;
    /* A start of serve unpauses: the key may have been fixed (as SQLite's journal writer's open). */
    if ((flags & STORE_JOURNAL) && pg_exec(p, "DELETE FROM tenant_status") != 0) goto fail_err;
    return p;
fail_err:
    snprintf(err, errlen, "cannot open %s: %s", safe, p->err);
fail:
    PQfinish(p->conn);
    free(p->url);
    free(p);
    return NULL;
}

/* ------------------------------ store_db.h -------------------------------- */

store_db *pg_db_open(const char *url, int flags, char *err, size_t errlen) {
    return (store_db *)pg_connect(url, flags, err, errlen);
}

void pg_db_close(store_db *db) {
    pg_db *p = pg_of(db);
    if (!p) return;
    PQfinish(p->conn);
    free(p->unsure);
    if (p->url) {
        memset(p->url, 0, strlen(p->url));      /* it may hold a password */
        free(p->url);
    }
    free(p);
}

/* A dry job reads the store only if it exists: a server's database always does. */
int pg_db_exists(const char *url) { (void)url; return 1; }

const char *pg_db_error(store_db *db) { return pg_of(db)->err[0] ? pg_of(db)->err : "not an error"; }

void pg_log_error(const char *what, store_db *db) {
    strbuf f = {0};
    const char *e = pg_db_error(db);
    strbuf_adds(&f, "\"error\":");
    json_append_string(&f, e, strlen(e));
    strbuf_addc(&f, 0);
    log_line("error", what, f.data);
    strbuf_free(&f);
}

/* The kept failure once, then none. */
store_fault pg_db_fault(store_db *db) {
    pg_db *p = pg_of(db);
    store_fault f = p->fault;
    p->fault = STORE_FAULT_NONE;
    return f;
}

int pg_begin(store_db *db) {
    pg_db *p = pg_of(db);
    if (pg_exec(p, "BEGIN") != 0) return -1;
    p->in_tx = 1;
    p->tenant_locked = 0;
    return 0;
}

/* The transaction is over whatever COMMIT answers; an aborted one answers "ROLLBACK", a failure. */
int pg_commit(store_db *db) {
    pg_db *p = pg_of(db);
    p->in_tx = 0;
    if (PQstatus(p->conn) != CONNECTION_OK) {
        pg_fail(p, NULL);
        return -1;
    }
    PGresult *r = PQexec(p->conn, "COMMIT");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
    if (!ok && PQresultStatus(r) != PGRES_COMMAND_OK) pg_fail(p, r);
    else if (!ok) {
        snprintf(p->err, sizeof p->err, "the transaction was rolled back: a statement of it failed");
        p->fault = STORE_FAULT_OTHER;
    }
    PQclear(r);
    return ok ? 0 : -1;
}

/* Keeps the failure that made the caller roll back: the ROLLBACK's own result is not an error. */
void pg_rollback(store_db *db) {
    pg_db *p = pg_of(db);
    p->in_tx = 0;
    if (PQstatus(p->conn) != CONNECTION_OK) return;
    PQclear(PQexec(p->conn, "ROLLBACK"));
}

/* PostgreSQL checkpoints by itself. */
void pg_checkpoint_every(store_db *db, int pages) { (void)db; (void)pages; }
int pg_write_wanted(store_db *db) { (void)db; return 1; }
