/*
 * check.c: is the store file what the store wrote? (store_check, store_db.h)
 *
 * Two checks, both read-only, so a check never changes what it looks at:
 * - the log (DATA/returnflow.db-wal) is walked frame by frame with SQLite's own checksums (the WAL
 *   format: sqlite.org/fileformat2.html#walformat). SQLite itself stops reading the log at the first
 *   frame whose checksum fails and silently drops every commit after it (garbage in the log put 425
 *   mapped events back to "journaled" before): frames of the same generation after a bad one mean
 *   committed work would vanish, so that is damage. A torn last frame (a crash mid-write) is not:
 *   nothing after it was committed.
 * - PRAGMA quick_check over every page (b-tree structure, record formats; not the indexes'
 *   agreement with their tables, which integrity_check adds at many times the cost), cut short
 *   after `seconds` so a start is bounded on a large store.
 */
#include "store_sqlite.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* SQLite's WAL checksum over n bytes (a multiple of 8), continuing s[2]; words big- or little-endian
 * as the header's magic says. */
static void wal_sum(int big, const unsigned char *p, size_t n, uint32_t s[2]) {
    for (size_t i = 0; i < n; i += 8) {
        uint32_t x0, x1;
        if (big) { x0 = be32(p + i); x1 = be32(p + i + 4); }
        else {
            x0 = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24;
            x1 = (uint32_t)p[i + 4] | (uint32_t)p[i + 5] << 8 | (uint32_t)p[i + 6] << 16 | (uint32_t)p[i + 7] << 24;
        }
        s[0] += x0 + s[1];
        s[1] += x1 + s[0];
    }
}

/* The log's damage, if any: 1 with `what` filled, 0 sound (or no log), -1 unreadable. */
static int check_wal(const char *path, char *what, size_t len) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char hdr[32];
    int rc = 0;
    if (fread(hdr, 1, 32, f) != 32) { fclose(f); return 0; }          /* empty or new: nothing committed */
    uint32_t magic = be32(hdr), page = be32(hdr + 8);
    if ((magic & 0xFFFFFFFE) != 0x377f0682 || page < 512 || page > 65536 || (page & (page - 1))) {
        fclose(f);
        return 0;                                  /* not a log SQLite would read: it ignores it as a whole */
    }
    int big = magic & 1;
    uint32_t s[2] = { 0, 0 };
    wal_sum(big, hdr, 24, s);
    if (s[0] != be32(hdr + 24) || s[1] != be32(hdr + 28)) { fclose(f); return 0; }   /* ignored whole too */
    unsigned char *frame = malloc(24 + page);
    if (!frame) abort();
    long long n = 0, bad = -1, after = 0, commits_after = 0;
    while (fread(frame, 1, 24 + page, f) == 24 + page) {
        n++;
        int same = memcmp(frame + 8, hdr + 16, 8) == 0;   /* this generation's salts */
        if (bad >= 0) {
            if (same) { after++; if (be32(frame + 4)) commits_after++; }
            continue;
        }
        wal_sum(big, frame, 8, s);
        wal_sum(big, frame + 24, page, s);
        if (!same || s[0] != be32(frame + 16) || s[1] != be32(frame + 20)) bad = n;
    }
    if (bad >= 0 && commits_after > 0) {
        snprintf(what, len, "%s: frame %lld of %lld does not match its checksum, and %lld later frames (%lld commits) "
                 "would be dropped with it", path, bad, n, after, commits_after);
        rc = 1;
    }
    free(frame);
    fclose(f);
    return rc;
}

static int past_deadline(void *ud) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + now.tv_nsec / 1e9 > *(double *)ud;
}

int sqlite_check(const char *data_dir, double seconds, void (*problem)(void *ud, const char *what), void *ud) {
    char db_path[1100], wal[1200], what[1600];
    snprintf(db_path, sizeof db_path, "%s/returnflow.db", data_dir);
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    struct stat st;
    if (stat(db_path, &st) != 0) return STORE_CHECK_SOUND;             /* no store yet: a new one is made */
    int damaged = 0;
    if (check_wal(wal, what, sizeof what) == 1) { problem(ud, what); damaged = 1; }
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(what, sizeof what, "%s: cannot open: %s", db_path, db ? sqlite3_errmsg(db) : "out of memory");
        problem(ud, what);
        sqlite3_close(db);
        return STORE_CHECK_DAMAGED;
    }
    sqlite3_busy_timeout(db, 10000);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double deadline = (double)now.tv_sec + now.tv_nsec / 1e9 + seconds;
    if (seconds > 0) sqlite3_progress_handler(db, 10000, past_deadline, &deadline);
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(100)", -1, &q, NULL);
    int cut = 0;
    if (rc == SQLITE_OK) {
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
            const char *line = (const char *)sqlite3_column_text(q, 0);
            if (line && strcmp(line, "ok") != 0) {
                snprintf(what, sizeof what, "%s: %s", db_path, line);
                problem(ud, what);
                damaged = 1;
            }
        }
        sqlite3_finalize(q);
    }
    if (rc == SQLITE_INTERRUPT) cut = 1;
    else if (rc != SQLITE_DONE) {
        snprintf(what, sizeof what, "%s: %s", db_path, sqlite3_errmsg(db));
        problem(ud, what);
        damaged = 1;
    }
    sqlite3_close(db);
    return damaged ? STORE_CHECK_DAMAGED : cut ? STORE_CHECK_CUT_SHORT : STORE_CHECK_SOUND;
}
