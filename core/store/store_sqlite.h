/*
 * store_sqlite.h: the SQLite side of store_db.h, shared by the files of core/store/ only.
 *
 * Nothing outside core/store/ includes this header: it is what a second backend replaces.
 */
#ifndef RF_STORE_SQLITE_H
#define RF_STORE_SQLITE_H

#include <sqlite3.h>

#include "store_db.h"

/* The body of an outbox or schedules row aliased `o`, as the mapping wrote it: the row's own bytes,
 * with its event's shared part (body_parts, outbox.c) put back at part_at, in place of the null
 * there, when it has one. */
#define STORE_SQLITE_BODY                                                                              \
    "CASE WHEN o.part IS NULL THEN o.body ELSE substr(o.body, 1, o.part_at) || "                      \
    "(SELECT text FROM body_parts WHERE id = o.part) || substr(o.body, o.part_at + 5) END"

struct store_db {
    sqlite3 *db;
    sqlite3_stmt *journal_held;   /* prepared on first use: a batch job runs them per event */
    sqlite3_stmt *outbox_has;
    sqlite3_stmt *memory_recall;  /* a mapping thread's out:recall that missed the mapper's cache */
    int kept_code;                /* a failure's error kept past its rollback (store_sqlite_keep_error) */
    char kept_msg[256];
};

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

#endif
