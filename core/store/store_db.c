/*
 * store_db.c: a connection to the store (store_db.h) and its transactions.
 *
 * Every connection waits out a lock for 10 s (the journal writer, a mapping thread, delivery and a
 * batch job share one database in WAL mode); only the journal writer (store.c) commits with a full
 * fsync, the others may be relaxed, since what they lose to a power cut is done again.
 */
#include "store_sqlite.h"

#include "store_faults.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void db_path(const char *data_dir, char *out, size_t len) { snprintf(out, len, "%s/returnflow.db", data_dir); }

int store_db_exists(const char *data_dir) {
    char path[1100];
    struct stat st;
    db_path(data_dir, path, sizeof path);
    return stat(path, &st) == 0;
}

store_db *store_db_open(const char *data_dir, int flags, char *err, size_t errlen) {
    char path[1100];
    db_path(data_dir, path, sizeof path);
    if ((flags & STORE_CREATE) && mkdir(data_dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the data directory %s: %s", data_dir, strerror(errno));
        return NULL;
    }
    store_faults_init();
    store_db *s = calloc(1, sizeof *s);
    if (!s) abort();
    int mode = (flags & STORE_READ_ONLY) ? SQLITE_OPEN_READONLY
                                         : SQLITE_OPEN_READWRITE | ((flags & STORE_CREATE) ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &s->db, mode | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(s->db, 10000) != SQLITE_OK ||
        ((flags & STORE_CREATE) && !(flags & STORE_READ_ONLY) && store_sqlite_schema(s->db) != 0)) {
        snprintf(err, errlen, "cannot open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sqlite3_close(s->db);
        free(s);
        return NULL;
    }
    /* NORMAL: a mapping or a delivery lost to a power cut leaves its rows as they were, and it is
     * done again (delivery is at least once; Klaviyo counts each unique_id once). */
    if (flags & STORE_RELAXED) store_sqlite_exec(s->db, "PRAGMA synchronous=NORMAL");
    return s;
}

void store_db_close(store_db *s) {
    if (!s) return;
    sqlite3_finalize(s->journal_held);
    sqlite3_finalize(s->outbox_has);
    sqlite3_finalize(s->memory_recall);
    sqlite3_close(s->db);
    free(s);
}

const char *store_db_error(store_db *s) { return s->kept_code ? s->kept_msg : sqlite3_errmsg(s->db); }

void store_sqlite_keep_error(store_db *s, int code, const char *msg) {
    s->kept_code = code ? code : SQLITE_ERROR;
    snprintf(s->kept_msg, sizeof s->kept_msg, "%s", msg);
}

store_fault store_sqlite_fault(int code) {
    switch (code & 0xff) {
    case SQLITE_OK: case SQLITE_ROW: case SQLITE_DONE: return STORE_FAULT_NONE;
    case SQLITE_BUSY: case SQLITE_LOCKED: return STORE_FAULT_BUSY;
    case SQLITE_FULL: return STORE_FAULT_FULL;
    case SQLITE_IOERR: case SQLITE_READONLY: case SQLITE_CANTOPEN: case SQLITE_PROTOCOL: return STORE_FAULT_IO;
    case SQLITE_CORRUPT: case SQLITE_NOTADB: return STORE_FAULT_DAMAGED;
    default: return STORE_FAULT_OTHER;
    }
}

/* The kept failure once (then the connection's own last error again). */
store_fault store_db_fault(store_db *s) {
    int code = s->kept_code ? s->kept_code : sqlite3_extended_errcode(s->db);
    s->kept_code = 0;
    return store_sqlite_fault(code);
}

void store_log_error(const char *what, store_db *s) {
    store_sqlite_log_msg(what, store_db_error(s));
}

int store_begin(store_db *s) { return store_sqlite_exec(s->db, "BEGIN IMMEDIATE"); }
int store_commit(store_db *s) { return store_sqlite_exec(s->db, "COMMIT"); }
void store_rollback(store_db *s) { store_sqlite_exec(s->db, "ROLLBACK"); }


void store_checkpoint_every(store_db *s, int pages) {
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint=%d", pages);
    store_sqlite_exec(s->db, sql);
}
