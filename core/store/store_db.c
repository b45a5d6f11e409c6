/*
 * store_db.c: SQLite's connection to the store (store_db.h), its transactions and the journal
 * writer's appends.
 *
 * Every connection waits out a lock for 10 s (the journal writer, a mapping thread, delivery and a
 * batch job share one database in WAL mode; the journal writer 5 s, so a webhook's answer is never
 * later than that); only the journal writer (store.c) commits with a full fsync, the others may be
 * relaxed, since what they lose to a power cut is done again.
 */
#include "store_sqlite.h"

#include "store_faults.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void db_path(const char *data_dir, char *out, size_t len) { snprintf(out, len, "%s/returnflow.db", data_dir); }

int sqlite_db_exists(const char *data_dir) {
    char path[1100];
    struct stat st;
    db_path(data_dir, path, sizeof path);
    return stat(path, &st) == 0;
}

/* SQLite counts the bytes it allocates behind one process-wide mutex, taken on every allocation of
 * every connection: the threads of one process that share a database (the job's, its mapping
 * thread's, delivery's, the checkpointer's) queued on it for a count nothing reads (5% of the
 * delivery thread's samples in a backfill). Off before the library starts; if something started
 * it first, the call is refused and the count stays, with no other effect. */
static pthread_once_t configured = PTHREAD_ONCE_INIT;

static void configure_sqlite(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

store_db *sqlite_db_open(const char *data_dir, int flags, char *err, size_t errlen) {
    char path[1100];
    pthread_once(&configured, configure_sqlite);
    db_path(data_dir, path, sizeof path);
    if ((flags & STORE_CREATE) && mkdir(data_dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the data directory %s: %s", data_dir, strerror(errno));
        return NULL;
    }
    store_faults_init();
    store_db *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->backend = &store_sqlite_backend;
    s->journal = (flags & STORE_JOURNAL) != 0;
    int mode = (flags & STORE_READ_ONLY) ? SQLITE_OPEN_READONLY
                                         : SQLITE_OPEN_READWRITE | ((flags & STORE_CREATE) ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &s->db, mode | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(s->db, (flags & STORE_JOURNAL) ? 5000 : 10000) != SQLITE_OK ||
        ((flags & STORE_CREATE) && !(flags & STORE_READ_ONLY) && store_sqlite_schema(s->db) != 0) ||
        ((flags & STORE_JOURNAL) && store_sqlite_exec(s->db, "DELETE FROM tenant_status") != 0)) {
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

void sqlite_db_close(store_db *s) {
    if (!s) return;
    if (s->holds_turn) store_sqlite_write_rollback(s);   /* closed inside a transaction: nothing of it kept */
    sqlite3_finalize(s->journal_held);
    sqlite3_finalize(s->outbox_has);
    sqlite3_finalize(s->memory_recall);
    sqlite3_finalize(s->journal_insert);
    sqlite3_finalize(s->due_check);
    sqlite3_close(s->db);
    free(s);
}

const char *sqlite_db_error(store_db *s) { return s->kept_code ? s->kept_msg : sqlite3_errmsg(s->db); }

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
store_fault sqlite_db_fault(store_db *s) {
    int code = s->kept_code ? s->kept_code : sqlite3_extended_errcode(s->db);
    s->kept_code = 0;
    return store_sqlite_fault(code);
}


int sqlite_begin(store_db *s) { return store_sqlite_write_begin(s); }
int sqlite_commit(store_db *s) { return store_sqlite_write_commit(s); }
void sqlite_rollback(store_db *s) { store_sqlite_write_rollback(s); }


void sqlite_checkpoint_every(store_db *s, int pages) {
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint=%d", pages);
    store_sqlite_exec(s->db, sql);
}

int sqlite_journal_commit(store_db *s, store_journal_row *rows, int n) {
    if (!s->journal_insert &&
        sqlite3_prepare_v2(s->db, "INSERT INTO events(tenant, received_at, body, script_version, node) VALUES (?, ?, ?, ?, ?)",
                           -1, &s->journal_insert, NULL) != SQLITE_OK)
        return -1;
    int ok = store_sqlite_write_begin(s) == 0;
    for (int i = 0; i < n && ok; i++) {
        store_journal_row *r = &rows[i];
        sqlite3_bind_text(s->journal_insert, 1, r->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->journal_insert, 2, r->received_at);
        sqlite3_bind_blob(s->journal_insert, 3, r->body, (int)r->len, SQLITE_STATIC);
        store_sqlite_text_or_null(s->journal_insert, 4, r->version);
        store_sqlite_text_or_null(s->journal_insert, 5, r->node);
        ok = sqlite3_step(s->journal_insert) == SQLITE_DONE;
        r->id = sqlite3_last_insert_rowid(s->db);
        sqlite3_reset(s->journal_insert);
    }
    if (ok) ok = store_sqlite_write_commit(s) == 0;
    if (ok) return 0;
    if (s->holds_turn) store_sqlite_keep_error(s, sqlite3_extended_errcode(s->db), sqlite3_errmsg(s->db));
    store_sqlite_write_rollback(s);
    return -1;
}

/* One page written and committed (the schema's version, set to what it is). */
int sqlite_journal_probe(store_db *s) {
    int ok = store_sqlite_write_begin(s) == 0 && store_sqlite_exec(s->db, "PRAGMA user_version = 1") == 0 &&
             store_sqlite_write_commit(s) == 0;
    if (!ok) store_sqlite_write_rollback(s);
    return ok ? 0 : -1;
}

/* Past this many frames in the WAL (16 MiB of 4 KiB pages), a checkpoint that lets it start again,
 * when the journal has been quiet for JOURNAL_QUIET_MS (it holds the write turn for 2-60 ms: never
 * under a burst of webhooks, whose acknowledgements would wait for it); past WAL_MAX_FRAMES (4 GiB)
 * whatever the journal does, so the file's size stays bounded. */
#define WAL_RESTART_FRAMES 4096
#define WAL_MAX_FRAMES 1048576
#define JOURNAL_QUIET_MS 500
/* How long that checkpoint waits for readers still on older frames (they are short); then it is
 * tried again a second later. */
#define WAL_RESTART_WAIT_MS 20

/* Copies the WAL back into the database, passively (never waiting on a writer). The first call opens
 * the WAL on this connection: a checkpoint needs it.
 *
 * SQLite writes the WAL from its beginning again only once a checkpoint copied all of it and no
 * reader is left on its frames. While this process's writers never pause (a backlog being mapped
 * and delivered), that moment never came: the WAL grew by everything written, 140 MB for 10,000
 * events mapped, and stays that size on disk. So past WAL_RESTART_FRAMES the rest is copied with
 * SQLite's RESTART checkpoint (it waits for the readers, up to WAL_RESTART_WAIT_MS) holding the
 * process's write turn, taken as the mapping takes it (sqlite_turn.c: behind the journal); short, as
 * two passive passes just copied the bulk; the next write starts the WAL again. 40,000 events
 * mapped: a WAL of 712 MB before, 100 MB with it. */
void sqlite_maintain(store_db *s) {
    store_sqlite_exec(s->db, "SELECT 1 FROM sqlite_master LIMIT 1");
    int frames = 0;
    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, NULL);
    if (frames <= WAL_RESTART_FRAMES || (frames <= WAL_MAX_FRAMES && store_sqlite_journal_quiet_ms() < JOURNAL_QUIET_MS))
        return;
    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);  /* what came meanwhile */
    store_sqlite_turn_take(s);
    sqlite3_busy_timeout(s->db, WAL_RESTART_WAIT_MS);
    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
    store_sqlite_turn_end(s);
}
