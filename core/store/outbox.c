/*
 * outbox.c: what a mapped event leaves in the store, for serve's mapping
 * threads and for the batch jobs (send, replay, test-integration) alike;
 * and the memory scripts read back (out:recall).
 *
 * One mapping result becomes, in the caller's transaction: its requests in
 * the outbox, its scheduled events in schedules, its cancels, its memory
 * writes and the event's outcome. Doing it in one place is what makes a
 * backfilled event and a live one indistinguishable downstream: delivery,
 * dead letters, replay and status see the same rows.
 *
 * Bodies are stored once: the requests of one event (its track, its scheduled reminders) carry the
 * same event properties, most of each body. The first properties two requests share go to
 * body_parts once, and each row keeps the rest of its body, with null in the part's place, and where
 * the part goes back in (part, part_at); every reader puts it back in SQL (STORE_SQLITE_BODY), so what is sent, shown and
 * deduplicated is byte for byte the body the mapping wrote.
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

#include "clock.h"
#include "json.h"
#include "store_sqlite.h"

/* Properties shorter than this stay in their rows: a part costs a row of its own. */
#define PART_MIN 256

/* The event's new state, by map_status. */
static const event_state state_of[] = { EVENT_MAPPED, EVENT_DROPPED, EVENT_FAILED, EVENT_DEFERRED };

struct outbox_writer {
    const store_backend *backend;
    sqlite3 *db;
    sqlite3_stmt *schedule, *request, *cancel, *cancelled, *remember, *outcome, *part;
    strbuf rest;                  /* a body without its shared part */
};

outbox_writer *sqlite_outbox_writer_new(store_db *conn) {
    sqlite3 *db = conn->db;
    outbox_writer *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->backend = &store_sqlite_backend;
    w->db = db;
    int ok =
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO schedules(tenant, key, due_at, event_id, profile, method, path, "
                               "body, job, dedup, part, part_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", -1, &w->schedule, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "INSERT INTO outbox(event_id, tenant, profile, method, path, body, created_at, job, dedup, "
                               "part, part_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", -1, &w->request, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "DELETE FROM schedules WHERE tenant = ? AND key = ?", -1, &w->cancel, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "INSERT INTO schedule_cancels(tenant, key, event_id, due_at, by_event, at) SELECT tenant, "
                               "key, event_id, due_at, ?3, ?4 FROM schedules WHERE tenant = ?1 AND key = ?2", -1,
                           &w->cancelled, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO memory(tenant, key, value) VALUES (?,?,?)", -1, &w->remember,
                           NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "UPDATE events SET state = ?, reason = ?, attempts = attempts + 1, script_version = ? "
                               "WHERE id = ?", -1, &w->outcome, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "INSERT INTO body_parts(event_id, text) VALUES (?, ?)", -1, &w->part, NULL) == SQLITE_OK;
    if (!ok) {
        store_sqlite_log("cannot prepare the outbox statements", db);
        sqlite_outbox_writer_free(w);
        return NULL;
    }
    return w;
}

void sqlite_outbox_writer_free(outbox_writer *w) {
    if (!w) return;
    sqlite3_finalize(w->schedule);
    sqlite3_finalize(w->request);
    sqlite3_finalize(w->cancel);
    sqlite3_finalize(w->cancelled);
    sqlite3_finalize(w->remember);
    sqlite3_finalize(w->outcome);
    sqlite3_finalize(w->part);
    strbuf_free(&w->rest);
    free(w);
}


typedef struct span { const char *p; size_t n; } span;

/* What outbox_write reads of an event body, in one walk over data.attributes (a body is read once,
 * not once a member): the properties (what its event's requests may share), the metric's name and
 * the unique_id (with the profile, its dedup key). Spans are raw JSON text; empty when absent. */
typedef struct body_facts { span props, metric, uid; } body_facts;

static int attribute(void *ud, const char *k, size_t kl, const char *v, size_t vl) {
    body_facts *f = ud;                         /* the first of a name counts, as json_member's */
    if (kl == 10 && !f->props.p && memcmp(k, "properties", 10) == 0) f->props = (span){ v, vl };
    else if (kl == 9 && !f->uid.p && memcmp(k, "unique_id", 9) == 0) f->uid = (span){ v, vl };
    else if (kl == 6 && !f->metric.p && memcmp(k, "metric", 6) == 0) {
        span data = { 0 }, attrs = { 0 }, name = { 0 };
        if (json_member(v, vl, "data", &data.p, &data.n) == 0 &&
            json_member(data.p, data.n, "attributes", &attrs.p, &attrs.n) == 0 &&
            json_member(attrs.p, attrs.n, "name", &name.p, &name.n) == 0)
            f->metric = name;
    }
    return 0;
}

static const char *blank(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* The members of the object at p (its text runs to end or before: the walk stops at its '}'):
 * attribute() for each. A value whose bytes begin with `known`, a complete JSON value read before,
 * is that value: its end is not looked for again (the requests of one event repeat their
 * properties, most of each body; an object or an array: no longer value begins with one). */
static void members(const char *p, const char *end, span known, body_facts *f, span *props) {
    p = blank(p, end);
    if (p == end || *p != '{') return;
    p = blank(p + 1, end);
    while (p < end && *p == '"') {
        size_t klen, vlen;
        char err[64];
        if (json_value_end(p, (size_t)(end - p), &klen, err, sizeof err) != 0) return;
        const char *key = p + 1;
        klen -= 2;
        p = blank(p + klen + 2, end);
        if (p == end || *p != ':') return;
        p = blank(p + 1, end);
        if (known.p && (size_t)(end - p) >= known.n && memcmp(p, known.p, known.n) == 0) vlen = known.n;
        else if (json_value_end(p, (size_t)(end - p), &vlen, err, sizeof err) != 0) return;
        if (klen == 10 && !props->p && memcmp(key, "properties", 10) == 0) *props = (span){ p, vlen };
        attribute(f, key, klen, p, vlen);
        p = blank(p + vlen, end);
        if (p == end || *p != ',') return;
        p = blank(p + 1, end);
    }
}

/* One body's facts, in one walk: to data.attributes without finding where data ends, then its
 * members. *props: its properties, whatever their length (the next body's `known`). */
static body_facts facts_of(const char *body, size_t len, span known, span *props) {
    body_facts f = { { 0 }, { 0 }, { 0 } };
    const char *end = body + len, *data, *attrs;
    *props = (span){ 0 };
    if (json_member_start(body, len, "data", &data) == 0 &&
        json_member_start(data, (size_t)(end - data), "attributes", &attrs) == 0)
        members(attrs, end, known, &f, props);
    if (f.props.n < PART_MIN) f.props = (span){ 0 };
    return f;
}

/* outbox_dedup_key from the facts already read: the same bytes. */
static int dedup_key(const char *profile, const body_facts *f, char *out, size_t outlen) {
    if (!f->metric.p) return -1;
    int n = snprintf(out, outlen, "%s\x1f%.*s\x1f%.*s", profile, (int)f->metric.n, f->metric.p, (int)f->uid.n,
                     f->uid.p ? f->uid.p : "");
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static int same(span a, span b) { return a.p && b.p && a.n == b.n && memcmp(a.p, b.p, a.n) == 0; }

/* The part the requests of one result share: the first properties another request repeats. */
static span shared_part(const map_result *r, const body_facts *facts, span *props) {
    for (int i = 0; i < r->nrequests; i++) props[i] = facts[i].props;
    for (int i = 0; i < r->nrequests; i++)
        for (int j = i + 1; j < r->nrequests; j++)
            if (same(props[i], props[j])) return props[i];
    return (span){ 0 };
}

/* Binds a request's body at parameter `at`, and part, part_at at `part_at`, `part_at` + 1: the whole
 * body (part NULL), or the rest of it when it holds the shared part. */
static void bind_body(outbox_writer *w, sqlite3_stmt *st, int at, int part_at, const map_request *q, span props,
                      span part, long long part_id) {
    if (!part_id || !same(props, part)) {
        sqlite3_bind_blob(st, at, q->body, (int)q->body_len, SQLITE_STATIC);
        return;
    }
    size_t before = (size_t)(props.p - q->body);
    w->rest.len = 0;
    strbuf_add(&w->rest, q->body, before);
    strbuf_adds(&w->rest, "null");              /* the rest stays JSON: its unique_id, metric, ... read as before */
    strbuf_add(&w->rest, props.p + props.n, q->body_len - before - props.n);
    sqlite3_bind_blob(st, at, w->rest.data, (int)w->rest.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, part_at, part_id);
    sqlite3_bind_int64(st, part_at + 1, (long long)before);
}

int sqlite_outbox_write(outbox_writer *w, const outbox_target *t, long long event_id, const map_result *r) {
    int ok = 1;
    long long now = clock_now_ms();
    body_facts facts[r->nrequests ? r->nrequests : 1];
    span props[r->nrequests ? r->nrequests : 1];
    span known = { 0 };
    for (int i = 0; i < r->nrequests; i++) {
        span seen;
        facts[i] = facts_of(r->requests[i].body, r->requests[i].body_len, known, &seen);
        if (seen.p && seen.n && (*seen.p == '{' || *seen.p == '[')) known = seen;   /* no other text of it begins
                                                                                      with a whole one */
    }
    span part = shared_part(r, facts, props);
    long long part_id = 0;
    if (part.p) {
        sqlite3_bind_int64(w->part, 1, event_id);
        sqlite3_bind_blob(w->part, 2, part.p, (int)part.n, SQLITE_STATIC);
        ok = store_sqlite_run(w->part);
        part_id = sqlite3_last_insert_rowid(w->db);
    }
    for (int i = 0; ok && i < r->nrequests; i++) {
        const map_request *q = &r->requests[i];
        sqlite3_stmt *st;
        char key[OUTBOX_DEDUP_MAX];
        int has_key = dedup_key(q->profile, &facts[i], key, sizeof key) == 0;
        if (q->schedule_key) {
            long long due = clock_iso_ms(q->due);
            st = w->schedule;
            sqlite3_bind_text(st, 1, t->tenant, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, q->schedule_key, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, due < 0 ? now : due);
            sqlite3_bind_int64(st, 4, event_id);
            sqlite3_bind_text(st, 5, q->profile, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 6, q->method, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 7, q->path, -1, SQLITE_STATIC);
            store_sqlite_text_or_null(st, 9, t->job);
            if (has_key) sqlite3_bind_text(st, 10, key, -1, SQLITE_STATIC);
            bind_body(w, st, 8, 11, q, props[i], part, part_id);
        } else {
            st = w->request;
            sqlite3_bind_int64(st, 1, event_id);
            sqlite3_bind_text(st, 2, t->tenant, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, q->profile, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, q->method, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 5, q->path, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 7, now);
            store_sqlite_text_or_null(st, 8, t->job);
            if (has_key) sqlite3_bind_text(st, 9, key, -1, SQLITE_STATIC);
            bind_body(w, st, 6, 10, q, props[i], part, part_id);
        }
        ok = store_sqlite_run(st);
    }
    for (int i = 0; ok && i < r->ncancels; i++) {
        sqlite3_bind_text(w->cancelled, 1, t->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->cancelled, 2, r->cancels[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(w->cancelled, 3, event_id);
        sqlite3_bind_int64(w->cancelled, 4, now);
        ok = store_sqlite_run(w->cancelled);
        if (!ok) break;
        sqlite3_bind_text(w->cancel, 1, t->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->cancel, 2, r->cancels[i], -1, SQLITE_STATIC);
        ok = store_sqlite_run(w->cancel);
    }
    for (int i = 0; ok && i < r->nmemory; i++) {
        sqlite3_bind_text(w->remember, 1, t->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->remember, 2, r->memory_keys[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(w->remember, 3, r->memory_values[i], -1, SQLITE_STATIC);
        ok = store_sqlite_run(w->remember);
    }
    if (ok && t->record_outcome) {
        sqlite3_bind_int(w->outcome, 1, (int)state_of[r->status]);
        store_sqlite_text_or_null(w->outcome, 2, r->reason);
        store_sqlite_text_or_null(w->outcome, 3, t->version);
        sqlite3_bind_int64(w->outcome, 4, event_id);
        ok = store_sqlite_run(w->outcome);
    }
    return ok ? 0 : -1;
}

/* The key outbox_write stores, found the same way: one walk to data.attributes and over its members
 * (a walk of each member in turn scanned the body's properties, most of it, three times). */
int outbox_dedup_key(const char *profile, const char *body, size_t len, char *out, size_t outlen) {
    span props;
    body_facts f = facts_of(body, len, (span){ 0 }, &props);
    return dedup_key(profile, &f, out, outlen);
}

int sqlite_outbox_has(store_db *db, const char *tenant, const char *dedup) {
    if (!db->outbox_has &&
        sqlite3_prepare_v2(db->db, "SELECT 1 FROM outbox WHERE tenant = ? AND dedup = ? AND state IN (?, ?, ?) LIMIT 1",
                           -1, &db->outbox_has, NULL) != SQLITE_OK)
        return 0;
    sqlite3_stmt *st = db->outbox_has;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, dedup, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, REQUEST_QUEUED);
    sqlite3_bind_int(st, 4, REQUEST_DELIVERED);
    sqlite3_bind_int(st, 5, REQUEST_SENDING);
    int present = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return present;
}

int sqlite_memory_recall(store_db *conn, const char *tenant, const char *key, size_t klen, strbuf *out) {
    int found = 0;
    if (!conn->memory_recall &&
        sqlite3_prepare_v2(conn->db, "SELECT value FROM memory WHERE tenant = ? AND key = ?", -1, &conn->memory_recall,
                           NULL) != SQLITE_OK)
        return 0;
    sqlite3_stmt *st = conn->memory_recall;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, (int)klen, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        strbuf_add(out, (const char *)sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        found = 1;
    }
    sqlite3_reset(st);
    return found;
}
