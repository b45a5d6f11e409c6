/*
 * outbox.c: what a mapped event leaves in the store, for serve's mapping
 * threads and for the batch jobs (send, replay, test-integration) alike.
 *
 * One mapping result becomes, in the caller's transaction: its requests in
 * the outbox, its scheduled events in schedules, its cancels, its memory
 * writes and the event's outcome. Doing it in one place is what makes a
 * backfilled event and a live one indistinguishable downstream: delivery,
 * dead letters, replay and status see the same rows.
 *
 * A job's rows carry its id. Its schedules are held (schedules.job) until the
 * job has read all its input: a backfill replays months in seconds, and a
 * day-21 reminder whose due time is long past must not fire before the
 * label event that cancels it has been read.
 */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bulk.h"
#include "json.h"
#include "log.h"

enum { EV_MAPPED = 1, EV_FAILED = 2, EV_DROPPED = 3, EV_DEFERRED = 4 };
static const int state_of[] = { EV_MAPPED, EV_DROPPED, EV_FAILED, EV_DEFERRED };

struct outbox_writer {
    sqlite3 *db;
    sqlite3_stmt *schedule, *request, *cancel, *remember, *outcome;
};

long long outbox_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long outbox_iso_ms(const char *s) {
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3) return -1;
    const char *p = s + n;
    if (*p == 'T' || *p == ' ') {
        if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3) return -1;
        p += 1 + n;
        if (*p == '.') while (*++p >= '0' && *p <= '9') {}
    }
    long offset = 0;
    if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 && sscanf(p + 1, "%2d%2d", &oh, &om) != 2) return -1;
        offset = (oh * 60L + om) * 60L * (*p == '-' ? -1 : 1);
    }
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec };
    return ((long long)timegm(&tm) - offset) * 1000;
}

void outbox_log_error(const char *what, sqlite3 *db) {
    strbuf f = {0};
    strbuf_adds(&f, "\"error\":");
    json_append_string(&f, sqlite3_errmsg(db), strlen(sqlite3_errmsg(db)));
    strbuf_addc(&f, 0);
    log_line("error", what, f.data);
    strbuf_free(&f);
}

outbox_writer *outbox_writer_new(sqlite3 *db) {
    outbox_writer *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->db = db;
    int ok =
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO schedules(tenant, key, due_at, event_id, profile, method, path, "
                               "body, job, dedup) VALUES (?,?,?,?,?,?,?,?,?,?)", -1, &w->schedule, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "INSERT INTO outbox(event_id, tenant, profile, method, path, body, created_at, job, dedup) "
                               "VALUES (?,?,?,?,?,?,?,?,?)", -1, &w->request, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "DELETE FROM schedules WHERE tenant = ? AND key = ?", -1, &w->cancel, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO memory(tenant, key, value) VALUES (?,?,?)", -1, &w->remember,
                           NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "UPDATE events SET state = ?, reason = ?, attempts = attempts + 1, script_version = ? "
                               "WHERE id = ?", -1, &w->outcome, NULL) == SQLITE_OK;
    if (!ok) {
        outbox_log_error("cannot prepare the outbox statements", db);
        outbox_writer_free(w);
        return NULL;
    }
    return w;
}

void outbox_writer_free(outbox_writer *w) {
    if (!w) return;
    sqlite3_finalize(w->schedule);
    sqlite3_finalize(w->request);
    sqlite3_finalize(w->cancel);
    sqlite3_finalize(w->remember);
    sqlite3_finalize(w->outcome);
    free(w);
}

static int run(sqlite3_stmt *st) {
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ok;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
    if (s && *s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

int outbox_write(outbox_writer *w, const outbox_target *t, long long event_id, const map_result *r) {
    int ok = 1;
    long long now = outbox_now_ms();
    for (int i = 0; ok && i < r->nrequests; i++) {
        const map_request *q = &r->requests[i];
        sqlite3_stmt *st;
        if (q->schedule_key) {
            long long due = outbox_iso_ms(q->due);
            st = w->schedule;
            sqlite3_bind_text(st, 1, t->tenant, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, q->schedule_key, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, due < 0 ? now : due);
            sqlite3_bind_int64(st, 4, event_id);
            sqlite3_bind_text(st, 5, q->profile, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 6, q->method, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 7, q->path, -1, SQLITE_STATIC);
            sqlite3_bind_blob(st, 8, q->body, (int)q->body_len, SQLITE_STATIC);
            bind_text_or_null(st, 9, t->job);
            char key[OUTBOX_DEDUP_MAX];
            if (outbox_dedup_key(q->profile, q->body, q->body_len, key, sizeof key) == 0)
                sqlite3_bind_text(st, 10, key, -1, SQLITE_TRANSIENT);
        } else {
            st = w->request;
            sqlite3_bind_int64(st, 1, event_id);
            sqlite3_bind_text(st, 2, t->tenant, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, q->profile, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, q->method, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 5, q->path, -1, SQLITE_STATIC);
            sqlite3_bind_blob(st, 6, q->body, (int)q->body_len, SQLITE_STATIC);
            sqlite3_bind_int64(st, 7, now);
            bind_text_or_null(st, 8, t->job);
            char key[OUTBOX_DEDUP_MAX];
            if (outbox_dedup_key(q->profile, q->body, q->body_len, key, sizeof key) == 0)
                sqlite3_bind_text(st, 9, key, -1, SQLITE_TRANSIENT);
        }
        ok = run(st);
    }
    for (int i = 0; ok && i < r->ncancels; i++) {
        sqlite3_bind_text(w->cancel, 1, t->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->cancel, 2, r->cancels[i], -1, SQLITE_STATIC);
        ok = run(w->cancel);
    }
    for (int i = 0; ok && i < r->nmemory; i++) {
        sqlite3_bind_text(w->remember, 1, t->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->remember, 2, r->memory_keys[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(w->remember, 3, r->memory_values[i], -1, SQLITE_STATIC);
        ok = run(w->remember);
    }
    if (ok && t->record_outcome) {
        sqlite3_bind_int(w->outcome, 1, state_of[r->status]);
        bind_text_or_null(w->outcome, 2, r->reason);
        bind_text_or_null(w->outcome, 3, t->version);
        sqlite3_bind_int64(w->outcome, 4, event_id);
        ok = run(w->outcome);
    }
    return ok ? 0 : -1;
}

int outbox_dedup_key(const char *profile, const char *body, size_t len, char *out, size_t outlen) {
    char key[OUTBOX_DEDUP_MAX];
    if (bulk_event_key(body, len, key, sizeof key) != 0) return -1;
    int n = snprintf(out, outlen, "%s\x1f%s", profile, key);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* A job's schedules are held while it reads its input (jobs.reading). */
#define NOT_HELD "(job IS NULL OR job NOT IN (SELECT id FROM jobs WHERE reading = 1))"

static int write_dry(sqlite3 *db, const char *data_dir, const tenant_config *tc);

int outbox_fire_schedules(sqlite3 *db, const char *tenant) {
    sqlite3_stmt *st;
    long long now = outbox_now_ms();
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return -1;
    /* A chunk at a time: a backfill can release 100,000s at once, and the write lock is shared. */
    int ok = sqlite3_exec(db, "CREATE TEMP TABLE IF NOT EXISTS firing(key TEXT PRIMARY KEY); DELETE FROM firing",
                          NULL, NULL, NULL) == SQLITE_OK;
    if (ok && (ok = sqlite3_prepare_v2(db, "INSERT INTO firing SELECT key FROM schedules WHERE tenant = ? AND due_at <= ? "
                                           "AND " NOT_HELD " ORDER BY due_at LIMIT ?", -1, &st, NULL) == SQLITE_OK)) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int(st, 3, OUTBOX_FIRE_CHUNK);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    ok = ok && sqlite3_prepare_v2(db, "INSERT INTO outbox(event_id, tenant, profile, method, path, body, created_at, job, "
                                      "dedup) SELECT event_id, tenant, profile, method, path, body, ?, job, dedup FROM "
                                      "schedules WHERE tenant = ? AND key IN (SELECT key FROM firing) ORDER BY due_at",
                                  -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    int fired = sqlite3_changes(db);
    if (ok && (ok = sqlite3_prepare_v2(db, "DELETE FROM schedules WHERE tenant = ? AND key IN (SELECT key FROM firing)",
                                       -1, &st, NULL) == SQLITE_OK)) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    if (!ok || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        outbox_log_error("cannot fire schedules", db);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return fired;
}

/* One writer at a time (serve's thread, or a batch job beside it): the rows read are the rows marked. */
int outbox_write_dry(sqlite3 *db, const char *data_dir, const tenant_config *tc) {
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return -1;
    int n = write_dry(db, data_dir, tc);
    if (sqlite3_exec(db, n >= 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK && n >= 0) {
        outbox_log_error("cannot mark dry requests delivered", db);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return n;
}

static int write_dry(sqlite3 *db, const char *data_dir, const tenant_config *tc) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT id, method, path, body FROM outbox WHERE tenant = ? AND state = 0 "
                               "ORDER BY id LIMIT 1000", -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, tc->id, -1, SQLITE_STATIC);
    strbuf out = {0};
    long long last = -1;
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        last = sqlite3_column_int64(st, 0);
        n++;
        strbuf_adds(&out, "{\"method\":");
        json_append_string(&out, (const char *)sqlite3_column_text(st, 1), (size_t)sqlite3_column_bytes(st, 1));
        strbuf_adds(&out, ",\"path\":");
        json_append_string(&out, (const char *)sqlite3_column_text(st, 2), (size_t)sqlite3_column_bytes(st, 2));
        strbuf_adds(&out, ",\"headers\":{\"Accept\":\"application/vnd.api+json\"");
        if (strcmp(tc->key_kind, "public") != 0) strbuf_adds(&out, ",\"Authorization\":\"Klaviyo-API-Key ***\"");
        strbuf_adds(&out, ",\"Content-Type\":\"application/vnd.api+json\",\"revision\":");
        json_append_string(&out, tc->revision, strlen(tc->revision));
        strbuf_adds(&out, "},\"body\":");
        strbuf_add(&out, sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3));
        strbuf_adds(&out, "}\n");
    }
    sqlite3_finalize(st);
    if (last < 0) { strbuf_free(&out); return 0; }
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/dry", data_dir);
    mkdir(dir, 0750);
    snprintf(path, sizeof path, "%s/%s.ndjson", dir, tc->id);
    FILE *f = fopen(path, "ab");
    int ok = f && fwrite(out.data, 1, out.len, f) == out.len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f) fclose(f);
    strbuf_free(&out);
    if (!ok) {
        char fields[1200];
        snprintf(fields, sizeof fields, "\"path\":\"%s\"", path);
        log_line("error", "cannot write the dry file; will try again", fields);
        return -1;
    }
    if (sqlite3_prepare_v2(db, "UPDATE outbox SET state = 1 WHERE tenant = ? AND state = 0 AND id <= ?", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, tc->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, last);
        int ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
        if (!ok) return -1;
    }
    return n;
}

int outbox_recall(sqlite3 *db, const char *tenant, const char *key, size_t klen, strbuf *out) {
    sqlite3_stmt *st;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM memory WHERE tenant = ? AND key = ?", -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, (int)klen, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        strbuf_add(out, (const char *)sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}
