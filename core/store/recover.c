/*
 * recover.c: the operator's way back from a damaged store: a copy while serving (store_backup) and
 * a new store from what can still be read of a damaged one (store_recover).
 *
 * Recovery reads the old store read-only (it never changes the evidence) and copies table by table,
 * the journal first (it holds the acknowledged webhooks; everything else can be made again from
 * it). Rows are read in id order in chunks; when a read fails on a damaged page, the rows past it are
 * looked up one id at a time (a lookup touches only its own path through the tree), so only the
 * rows of the damaged pages are lost, and each lost journal row is named by id. The new store gets
 * the schema of this version; rows keep their ids and states, so a serve on the new folder goes on
 * where the old one was (what was in flight goes again: at least once).
 */
#include "store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sqlite_backup(store_db *db, const char *path, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) == 0) { snprintf(err, errlen, "%s exists: give a new file", path); return -1; }
    sqlite3 *to = NULL;
    if (sqlite3_open_v2(path, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot create %s: %s", path, to ? sqlite3_errmsg(to) : "out of memory");
        sqlite3_close(to);
        return -1;
    }
    sqlite3_backup *b = sqlite3_backup_init(to, "main", db->db, "main");
    int rc = b ? SQLITE_OK : sqlite3_errcode(to);
    /* Every page in one step, in one read transaction: in WAL mode serve's writers go on meanwhile,
     * and the copy is the store as of the step's start. Steps of a few pages would let go of the
     * snapshot in between, and any write by serve (another connection) restarts the copy from page
     * one: a large store under steady webhooks would never finish. */
    while (b && ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED)) sqlite3_sleep(20);
    if (b) sqlite3_backup_finish(b);
    if (rc == SQLITE_DONE) rc = sqlite3_exec(to, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);   /* one file */
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot copy the store to %s: %s", path, sqlite3_errmsg(to));
        sqlite3_close(to);
        unlink(path);
        return -1;
    }
    sqlite3_close(to);
    return 0;
}

typedef struct copier {
    sqlite3 *from, *to;
    const char *table;
    sqlite3_stmt *chunk, *one, *insert;
    int ncols;
    long long copied, lost;
    void (*lost_cb)(void *ud, long long id);
    void *ud;
} copier;

/* The INSERT for the columns the old table has (a store of an older version may lack some). */
static int prepare(copier *c) {
    char sql[400];
    snprintf(sql, sizeof sql, "SELECT rowid, * FROM %s WHERE rowid > ? ORDER BY rowid LIMIT 256", c->table);
    if (sqlite3_prepare_v2(c->from, sql, -1, &c->chunk, NULL) != SQLITE_OK) return -1;
    snprintf(sql, sizeof sql, "SELECT rowid, * FROM %s WHERE rowid = ?", c->table);
    if (sqlite3_prepare_v2(c->from, sql, -1, &c->one, NULL) != SQLITE_OK) return -1;
    c->ncols = sqlite3_column_count(c->chunk) - 1;
    strbuf ins = {0};
    strbuf_adds(&ins, "INSERT OR IGNORE INTO ");
    strbuf_adds(&ins, c->table);
    strbuf_adds(&ins, "(rowid");
    for (int i = 0; i < c->ncols; i++) {
        strbuf_adds(&ins, ",\"");
        strbuf_adds(&ins, sqlite3_column_name(c->chunk, i + 1));
        strbuf_adds(&ins, "\"");
    }
    strbuf_adds(&ins, ") VALUES (?");
    for (int i = 0; i < c->ncols; i++) strbuf_adds(&ins, ",?");
    strbuf_adds(&ins, ")");
    strbuf_addc(&ins, 0);
    int rc = sqlite3_prepare_v2(c->to, ins.data, -1, &c->insert, NULL);
    strbuf_free(&ins);
    return rc == SQLITE_OK ? 0 : -1;
}

static void copy_row(copier *c, sqlite3_stmt *row) {
    for (int i = 0; i <= c->ncols; i++) sqlite3_bind_value(c->insert, i + 1, sqlite3_column_value(row, i));
    if (sqlite3_step(c->insert) == SQLITE_DONE) c->copied++;
    sqlite3_reset(c->insert);
    sqlite3_clear_bindings(c->insert);
}

/* Copies the table; past a damaged page, one id at a time up to the highest id seen by any read. */
static void copy_table(copier *c, long long max_hint) {
    long long last = 0;
    for (;;) {
        sqlite3_bind_int64(c->chunk, 1, last);
        int rc, n = 0;
        while ((rc = sqlite3_step(c->chunk)) == SQLITE_ROW) {
            last = sqlite3_column_int64(c->chunk, 0);
            copy_row(c, c->chunk);
            n++;
        }
        sqlite3_reset(c->chunk);
        if (rc == SQLITE_DONE && n == 0) return;
        if (rc == SQLITE_DONE) continue;
        /* A damaged page: look up the ids after `last` one by one, until a chunk reads again. */
        long long id = last, resumed = 0;
        while (!resumed && ++id <= max_hint) {
            sqlite3_bind_int64(c->one, 1, id);
            int r = sqlite3_step(c->one);
            if (r == SQLITE_ROW) {
                copy_row(c, c->one);
                last = id;
                resumed = 1;                          /* try whole chunks again from here */
            } else if (r != SQLITE_DONE) {
                c->lost++;
                if (c->lost_cb) c->lost_cb(c->ud, id);
            }
            sqlite3_reset(c->one);
        }
        if (!resumed) return;
    }
}

static long long max_id(sqlite3 *db, const char *sql) {
    long long v = store_sqlite_count(db, sql, NULL);
    return v > 0 ? v : 0;
}

int sqlite_recover(const char *from_dir, const char *to_dir, store_recovered *got,
                  void (*lost)(void *ud, long long event_id), void *ud, char *err, size_t errlen) {
    memset(got, 0, sizeof *got);
    char from_path[1100];
    snprintf(from_path, sizeof from_path, "%s/returnflow.db", from_dir);
    if (sqlite_db_exists(to_dir)) { snprintf(err, errlen, "%s/returnflow.db exists: give a new folder", to_dir); return -1; }
    sqlite3 *from = NULL;
    if (sqlite3_open_v2(from_path, &from, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", from_path, from ? sqlite3_errmsg(from) : "out of memory");
        sqlite3_close(from);
        return -1;
    }
    sqlite3_busy_timeout(from, 10000);
    store_db *to = sqlite_db_open(to_dir, STORE_CREATE, err, errlen);
    if (!to) { sqlite3_close(from); return -1; }
    /* Ids past a damaged page: the highest any readable table names (events by the outbox too). */
    long long max_event = max_id(from, "SELECT max(id) FROM events");
    long long by_outbox = max_id(from, "SELECT max(event_id) FROM outbox");
    if (by_outbox > max_event) max_event = by_outbox;
    static const struct { const char *table, *max_sql; } tables[] = {
        { "events", NULL }, { "body_parts", "SELECT max(rowid) FROM body_parts" },
        { "outbox", "SELECT max(rowid) FROM outbox" }, { "schedules", "SELECT max(rowid) FROM schedules" },
        { "memory", "SELECT max(rowid) FROM memory" }, { "jobs", "SELECT max(rowid) FROM jobs" },
    };
    long long parts = 0;
    long long *counts[] = { &got->events, &parts, &got->requests, &got->schedules, &got->memory, &got->jobs };
    store_sqlite_exec(to->db, "BEGIN");
    int ok = 1;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        if (t && store_sqlite_count(from, "SELECT count(*) FROM sqlite_master WHERE name = ?", tables[t].table) == 0)
            continue;                           /* a store older than the table */
        copier c = { .from = from, .to = to->db, .table = tables[t].table, .lost_cb = t == 0 ? lost : NULL, .ud = ud };
        if (prepare(&c) != 0) {
            if (t == 0) { snprintf(err, errlen, "%s: the journal cannot be read: %s", from_path, sqlite3_errmsg(from)); ok = 0; }
            else got->unreadable_rows++;
        } else {
            copy_table(&c, t == 0 ? max_event : max_id(from, tables[t].max_sql));
            *counts[t] = c.copied;
            if (t) got->unreadable_rows += c.lost;
        }
        sqlite3_finalize(c.chunk);
        sqlite3_finalize(c.one);
        sqlite3_finalize(c.insert);
        if (!ok) break;
    }
    if (ok && store_sqlite_exec(to->db, "COMMIT") != 0) {
        snprintf(err, errlen, "cannot write %s/returnflow.db: %s", to_dir, sqlite3_errmsg(to->db));
        ok = 0;
    }
    if (!ok) store_sqlite_exec(to->db, "ROLLBACK");
    sqlite_db_close(to);
    sqlite3_close(from);
    return ok ? 0 : -1;
}
