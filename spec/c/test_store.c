/*
 * test_store.c: the store's interface (core/store/store_db.h, store.h, outbox.h) against a
 * temporary database, no network, no serve.
 *
 * Why these tests: every stage hands off through the store, so its promises are the pipeline's:
 * a journaled webhook is read back byte for byte and in order; a mapping result lands whole (rows,
 * schedules, cancels, memory, the event's state); a queued request is claimed once (in flight rows
 * are skipped, and a restart puts them back); an answer leaves the row in the state it says; a job's
 * schedules wait while it reads; dead letters can be replayed and purged; old rows go.
 *
 * Both backends: a temporary data folder (SQLite), or, when RETURNFLOW_TEST_STORE_URL names a
 * PostgreSQL database, that database, emptied before each test (spec/lua/store_pg_spec.lua runs this
 * binary so against a private cluster).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <uv.h>

#include "checkpointer.h"
#include "clock.h"
#include "outbox.h"
#include "store.h"
#include "store_db.h"

static char dir[64];
static const char *url;           /* RETURNFLOW_TEST_STORE_URL: PostgreSQL; NULL: SQLite in dir */
static const char *location;      /* what the store is opened at */

/* An empty PostgreSQL database: what the last test left goes. */
static int empty_database(void) {
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQexec(c, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "cannot empty the database: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/rf-test-store-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    location = url ? url : dir;
    return url ? empty_database() : 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static store_db *open_db(void) {
    char err[1200];
    store_db *db = store_db_open(location, STORE_CREATE, err, sizeof err);
    if (!db) fail_msg("%s", err);
    return db;
}

/* An event request body as the mapper writes it (so it has a dedup key). */
static const char *event_body(char *buf, size_t len, const char *uid) {
    snprintf(buf, len,
             "{\"data\":{\"attributes\":{\"metric\":{\"data\":{\"attributes\":{\"name\":\"Return Created\"},"
             "\"type\":\"metric\"}},\"profile\":{\"data\":{\"attributes\":{\"email\":\"a@example.com\"},"
             "\"type\":\"profile\"}},\"properties\":{},\"unique_id\":\"%s\"},\"type\":\"event\"}}", uid);
    return buf;
}

typedef struct collected { int n; long long ids[8]; char bodies[8][64]; } collected;

static int collect(void *ud, const store_event *e) {
    collected *c = ud;
    c->ids[c->n] = e->id;
    snprintf(c->bodies[c->n], sizeof c->bodies[c->n], "%.*s", (int)e->len, e->body);
    c->n++;
    return 0;
}

/* ------------------------------- journal ----------------------------------- */

typedef struct acks { int n, failed; long long ids[4]; } acks;

static void on_ack(void *ud, int status, int64_t id) {
    acks *a = ud;
    if (status) a->failed++;
    a->ids[a->n++] = id;
}

static int event_node(void *ud, const store_trace_event *e) {
    snprintf(ud, 64, "%s", e->node ? e->node : "(null)");
    return 0;
}

/* The bulk job each request of an event was last sent in. */
typedef struct bulk_seen { long long id[4]; store_bulk_mark bulk[4]; int n; } bulk_seen;

static int request_bulk(void *ud, const store_trace_request *r) {
    bulk_seen *b = ud;
    if (b->n < 4) { b->id[b->n] = r->id; b->bulk[b->n++] = r->bulk; }
    return 0;
}

static void journal_append_acks_after_commit_and_reads_back_in_order(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[512];
    store *s = store_open(&loop, location, "node-a", err, sizeof err);
    assert_non_null(s);
    acks a = {0};
    store_journal_append(s, "shop", NULL, "{\"n\":1}", 7, on_ack, &a);
    store_journal_append(s, "other", NULL, "{\"n\":2}", 7, on_ack, &a);
    store_journal_append(s, "shop", NULL, "{\"n\":3}", 7, on_ack, &a);
    while (a.n < 3) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(a.failed, 0);
    assert_true(a.ids[0] < a.ids[1] && a.ids[1] < a.ids[2]);
    store_close(s, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);

    store_db *db = open_db();
    collected c = {0};
    assert_int_equal(store_journal_each(db, "shop", EVENT_JOURNALED, 10, collect, &c), 2);
    assert_int_equal(c.ids[0], a.ids[0]);
    assert_string_equal(c.bodies[0], "{\"n\":1}");
    assert_string_equal(c.bodies[1], "{\"n\":3}");
    collected none = {0};
    assert_int_equal(store_journal_each(db, "shop", EVENT_MAPPED, 10, collect, &none), 0);
    /* Each row names the node that acknowledged it (`returnflow trace`). */
    char node[64] = "";
    assert_int_equal(store_trace_event_by_id(db, a.ids[1], event_node, node), 1);
    assert_string_equal(node, "node-a");
    store_db_close(db);
}

static void a_batch_jobs_events_are_held_from_the_mapping_threads(void **state) {
    (void)state;
    store_db *db = open_db();
    long long id = 0;
    assert_int_equal(store_journal_held(db, "shop", clock_now_ms(), "{}", 2, &id), 0);
    assert_true(id > 0);
    collected c = {0};
    assert_int_equal(store_journal_each(db, "shop", EVENT_JOURNALED, 10, collect, &c), 0);
    assert_int_equal(store_journal_each(db, "shop", EVENT_HELD, 10, collect, &c), 1);
    assert_int_equal(c.ids[0], id);
    store_db_close(db);
}

/* ------------------------------- outbox ------------------------------------ */

static long long write_result(store_db *db, long long event_id, const map_result *r, const char *job) {
    outbox_writer *w = outbox_writer_new(db);
    assert_non_null(w);
    assert_int_equal(store_begin(db), 0);
    outbox_target t = { .tenant = "shop", .version = "v1", .job = job, .record_outcome = 1 };
    assert_int_equal(outbox_write(w, &t, event_id, r), 0);
    assert_int_equal(store_commit(db), 0);
    outbox_writer_free(w);
    return event_id;
}

static int scan_ids(store_db *db, long long *ids, int max) {
    store_scan *s = store_scan_queued(db, "shop", 100);
    assert_non_null(s);
    store_request r;
    int n = 0;
    while (store_scan_next(s, &r)) if (n < max) ids[n++] = r.id;
    store_scan_end(s);
    return n;
}

static void a_mapping_result_lands_whole_and_is_claimed_once(void **state) {
    (void)state;
    store_db *db = open_db();
    long long ev;
    assert_int_equal(store_journal_held(db, "shop", clock_now_ms(), "{}", 2, &ev), 0);
    char b1[600], b2[600];
    map_request reqs[] = {
        { .method = "POST", .path = "/api/events", .body = event_body(b1, sizeof b1, "u1"), .body_len = strlen(b1),
          .profile = "email:a@example.com" },
        { .method = "POST", .path = "/api/profile-import", .body = "{\"p\":1}", .body_len = 7,
          .profile = "email:a@example.com" },
    };
    const char *keys[] = { "return:1" }, *values[] = { "{\"seen\":true}" };
    map_result r = { .status = MAP_MAPPED, .reason = "", .requests = reqs, .nrequests = 2, .memory_keys = keys,
                     .memory_values = values, .nmemory = 1 };
    write_result(db, ev, &r, NULL);

    long long ids[4];
    assert_int_equal(scan_ids(db, ids, 4), 2);
    assert_true(ids[0] < ids[1]);                         /* in the order the script emitted them */
    /* A batch job would not queue the same event again (same profile, metric, unique_id). */
    char key[OUTBOX_DEDUP_MAX];
    assert_int_equal(outbox_dedup_key("email:a@example.com", b1, strlen(b1), key, sizeof key), 0);
    assert_true(store_outbox_has(db, "shop", key));
    event_body(b2, sizeof b2, "u2");
    assert_int_equal(outbox_dedup_key("email:a@example.com", b2, strlen(b2), key, sizeof key), 0);
    assert_false(store_outbox_has(db, "shop", key));
    assert_true(store_queued_at_least(db, "shop", 2));
    assert_false(store_queued_at_least(db, "shop", 3));
    strbuf got = {0};
    assert_int_equal(store_memory_recall(db, "shop", "return:1", 8, &got), 1);
    assert_memory_equal(got.data, "{\"seen\":true}", 13);
    assert_int_equal(store_memory_recall(db, "shop", "return:2", 8, &got), 0);
    strbuf_free(&got);

    /* Claimed: in flight rows are not seen by the next scan; a restart puts them back. */
    assert_int_equal(store_mark_sending(db, ids, NULL, 1), 0);
    assert_int_equal(store_queued_count(db, "shop"), 2);     /* in flight still counts as queued */
    /* ... but not among the rows a scan reads up to an id (delivery's idle check) */
    assert_int_equal(store_queued_through(db, "shop", ids[1]), 1);
    assert_int_equal(store_queued_through(db, "shop", ids[0]), 0);
    long long again[4];
    assert_int_equal(scan_ids(db, again, 4), 1);
    assert_int_equal(again[0], ids[1]);
    store_requeue_sending(db);
    assert_int_equal(scan_ids(db, again, 4), 2);
    assert_int_equal(store_queued_through(db, "shop", ids[1]), 2);
    assert_int_equal(store_queued_through(db, "shop", ids[0]), 1);
    assert_int_equal(store_queued_through(db, "shop", ids[0] - 1), 0);
    assert_int_equal(store_queued_through(db, "other", ids[1]), 0);
    /* Sent in one Klaviyo bulk job: each row keeps the job (its first row, its size) until it is sent
     * alone again; the fenced mark of a shared store keeps it too. */
    store_bulk_mark job[2] = { { ids[0], 2 }, { ids[0], 2 } };
    assert_int_equal(store_mark_sending(db, ids, job, 2), 0);
    bulk_seen seen = {0};
    assert_int_equal(store_trace_requests(db, ev, request_bulk, &seen), 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(seen.bulk[i].first, ids[0]);
        assert_int_equal(seen.bulk[i].size, 2);
    }
    store_requeue_sending(db);
    assert_int_equal(store_mark_sending(db, &ids[1], NULL, 1), 0);   /* ids[1] alone now */
    store_requeue_sending(db);
    assert_int_equal(store_cluster_prepare(db), 0);            /* a shared store: a lease to fence by */
    assert_int_equal(store_publish_version(db, "shop", "v1", "node-a"), 0);
    long long epoch = store_lease_take(db, "shop", "node-a", "v1");
    assert_true(epoch > 0);
    store_bulk_mark fenced[1] = { { ids[0], 7 } };
    assert_int_equal(store_mark_sending_fenced(db, "shop", "node-a", epoch, ids, fenced, 1), 0);
    store_requeue_sending(db);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(store_trace_requests(db, ev, request_bulk, &seen), 2);
    for (int i = 0; i < 2; i++) assert_int_equal(seen.bulk[i].size, seen.id[i] == ids[1] ? 0 : 7);
    if (store_clustered(db)) assert_int_equal(store_lease_release(db, "shop", "node-a", epoch), 0);
    assert_int_equal(scan_ids(db, again, 4), 2);

    /* Answers: delivered, retried later, dead. */
    assert_int_equal(store_settle(db, &ids[0], &(store_outcome){ REQUEST_DELIVERED, 202, clock_now_ms(), NULL, 1 }, 1), 0);
    assert_int_equal(store_settle(db, &ids[1], &(store_outcome){ REQUEST_DEAD, 400, clock_now_ms(), "HTTP 400: bad", 1 }, 1), 0);
    store_tenant_counts c;
    store_tenant_counts_of(db, "shop", &c);
    assert_int_equal(c.delivered, 1);
    assert_int_equal(c.dead, 1);
    assert_int_equal(c.queued, 0);
    assert_int_equal(store_queued_count(db, "shop"), 0);     /* the trigger-kept count agrees */
    assert_string_equal(c.last_error, "HTTP 400: bad");
    store_db_close(db);
}

/* The requests of one event share their properties, stored once (outbox.c); a scan gives each body
 * back byte for byte, the shared part put back where it was (requests.c does it in C). */
static void a_scan_gives_back_each_body_whole_with_its_shared_part(void **state) {
    (void)state;
    store_db *db = open_db();
    char props[400], bodies[3][900];
    snprintf(props, sizeof props, "{\"note\":\"%0300d\",\"name\":\"Mar\u00eda\",\"total\":12.5}", 7);
    const char *metrics[] = { "Return Created", "Reminder 1", "Reminder 2" };
    map_request reqs[3];
    for (int i = 0; i < 3; i++) {
        snprintf(bodies[i], sizeof bodies[i],
                 "{\"data\":{\"attributes\":{\"metric\":{\"data\":{\"attributes\":{\"name\":\"%s\"},"
                 "\"type\":\"metric\"}},\"profile\":{\"data\":{\"attributes\":{\"email\":\"a@example.com\"},"
                 "\"type\":\"profile\"}},\"properties\":%s,\"unique_id\":\"u%d\"},\"type\":\"event\"}}",
                 metrics[i], props, i);
        reqs[i] = (map_request){ .method = "POST", .path = "/api/events", .body = bodies[i],
                                 .body_len = strlen(bodies[i]), .profile = "email:a@example.com" };
    }
    map_result r = { .status = MAP_MAPPED, .reason = "", .requests = reqs, .nrequests = 3 };
    write_result(db, 1, &r, NULL);
    if (!url) {                                     /* stored once: the rows hold the rest alone */
        char path[600];
        snprintf(path, sizeof path, "%s/returnflow.db", dir);
        sqlite3 *raw;
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(raw, "SELECT count(*), sum(part IS NOT NULL) FROM body_parts, outbox",
                                            -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 3);     /* one part, three rows */
        assert_int_equal(sqlite3_column_int(st, 1), 3);     /* each row holds the rest of its body alone */
        sqlite3_finalize(st);
        sqlite3_close(raw);
    }
    store_scan *s = store_scan_queued(db, "shop", 10);
    assert_non_null(s);
    store_request row;
    int n = 0;
    while (store_scan_next(s, &row) > 0) {
        assert_true(n < 3);
        assert_int_equal(row.body_len, strlen(bodies[n]));
        assert_memory_equal(row.body, bodies[n], row.body_len);
        n++;
    }
    store_scan_end(s);
    assert_int_equal(n, 3);
    store_db_close(db);
}

static void a_retried_request_keeps_its_place_and_waits_for_next_at(void **state) {
    (void)state;
    store_db *db = open_db();
    map_request q = { .method = "POST", .path = "/api/profile-import", .body = "{}", .body_len = 2, .profile = "p" };
    map_result r = { .status = MAP_MAPPED, .reason = "", .requests = &q, .nrequests = 1 };
    write_result(db, 1, &r, NULL);
    long long ids[2];
    assert_int_equal(scan_ids(db, ids, 2), 1);
    long long later = clock_now_ms() + 60000;
    assert_int_equal(store_settle(db, ids, &(store_outcome){ REQUEST_QUEUED, 503, later, "HTTP 503", 1 }, 1), 0);
    store_scan *s = store_scan_queued(db, "shop", 10);
    store_request row;
    assert_true(store_scan_next(s, &row));
    assert_int_equal(row.next_at, later);
    assert_int_equal(row.attempts, 1);
    store_scan_end(s);
    store_tenant_counts c;
    store_tenant_counts_of(db, "shop", &c);
    assert_int_equal(c.retrying, 1);
    store_db_close(db);
}

/* Klaviyo's error, cut inside a character, is still recorded: a refused settle would stall delivery. */
static void an_error_cut_inside_a_character_is_recorded(void **state) {
    (void)state;
    store_db *db = open_db();
    map_request q = { .method = "POST", .path = "/api/events", .body = "{}", .body_len = 2, .profile = "p" };
    map_result r = { .status = MAP_MAPPED, .reason = "", .requests = &q, .nrequests = 1 };
    write_result(db, 1, &r, NULL);
    long long id;
    assert_int_equal(scan_ids(db, &id, 1), 1);
    assert_int_equal(store_settle(db, &id, &(store_outcome){ REQUEST_DEAD, 400, clock_now_ms(), "HTTP 400: caf\xc3", 1 }, 1), 0);
    store_tenant_counts c;
    store_tenant_counts_of(db, "shop", &c);
    assert_int_equal(c.dead, 1);
    assert_memory_equal(c.last_error, "HTTP 400: caf", 13);
    store_db_close(db);
}

/* ------------------------------- schedules --------------------------------- */

static void a_jobs_schedules_wait_until_it_has_read_all_its_input(void **state) {
    (void)state;
    store_db *db = open_db();
    assert_int_equal(store_job_start(db, "send-1", "shop", "send", "files", 0, clock_now_ms()), 0);
    map_request q[] = {
        { .method = "POST", .path = "/api/events", .body = "{\"a\":1}", .body_len = 7, .profile = "p",
          .schedule_key = "remind:1", .due = "2020-01-01T00:00:00Z" },
        { .method = "POST", .path = "/api/events", .body = "{\"a\":2}", .body_len = 7, .profile = "p",
          .schedule_key = "remind:2", .due = "2020-01-01T00:00:00Z" },
    };
    map_result r = { .status = MAP_MAPPED, .reason = "", .requests = q, .nrequests = 2 };
    write_result(db, 1, &r, "send-1");
    const char *cancel[] = { "remind:2" };
    map_result c = { .status = MAP_MAPPED, .reason = "", .cancels = cancel, .ncancels = 1 };
    write_result(db, 2, &c, "send-1");

    assert_int_equal(store_fire_schedules(db, "shop"), 0);        /* held: the job still reads */
    store_job_read_all(db, "send-1", 2);
    assert_int_equal(store_fire_schedules(db, "shop"), 1);        /* remind:2 was cancelled */
    assert_int_equal(store_fire_schedules(db, "shop"), 0);        /* once */
    long long queued, delivered, dead;
    store_job_counts(db, "send-1", &queued, &delivered, &dead);
    assert_int_equal(queued, 1);
    /* Waiting while its request is queued or in flight, not once it is delivered. */
    assert_int_equal(store_job_waiting(db, "send-1"), 1);
    assert_int_equal(store_job_waiting(db, "send-2"), 0);
    store_scan *scan = store_scan_queued(db, "shop", 10);
    store_request row;
    assert_int_equal(store_scan_next(scan, &row), 1);
    long long id = row.id;
    store_scan_end(scan);
    assert_int_equal(store_mark_sending(db, &id, NULL, 1), 0);
    assert_int_equal(store_job_waiting(db, "send-1"), 1);
    assert_int_equal(store_settle(db, &id, &(store_outcome){ REQUEST_DELIVERED, 202, clock_now_ms(), NULL, 1 }, 1), 0);
    assert_int_equal(store_job_waiting(db, "send-1"), 0);
    long long next;
    int finished;
    assert_int_equal(store_job_find(db, "send-1", &next, &finished), 1);
    assert_int_equal(next, 2);
    assert_int_equal(finished, 0);
    assert_int_equal(store_job_find(db, "send-2", &next, &finished), 0);
    store_db_close(db);
}

/* Due schedules move a chunk at a time, each chunk and all of them in due order (not in the order
 * they were written: here the reverse), each once. */
static void schedules_fire_a_chunk_at_a_time_in_due_order(void **state) {
    (void)state;
    store_db *db = open_db();
    enum { N = 2 * STORE_FIRE_CHUNK + 500 };
    map_request *q = calloc(N, sizeof *q);
    char (*keys)[32] = calloc(N, sizeof *keys), (*dues)[32] = calloc(N, sizeof *dues), (*bodies)[32] = calloc(N, sizeof *bodies);
    assert_non_null(q);
    for (int i = 0; i < N; i++) {
        time_t t = (time_t)1577836800 + (N - i);            /* 2020-01-01 on: the last written is due first */
        strftime(dues[i], sizeof dues[i], "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        snprintf(keys[i], sizeof keys[i], "remind:%d", i);
        snprintf(bodies[i], sizeof bodies[i], "{\"n\":%d}", i);
        q[i] = (map_request){ .method = "POST", .path = "/api/events", .body = bodies[i], .body_len = strlen(bodies[i]),
                              .profile = "p", .schedule_key = keys[i], .due = dues[i] };
    }
    map_result r = { .status = MAP_MAPPED, .reason = "", .requests = q, .nrequests = N };
    write_result(db, 1, &r, NULL);
    assert_int_equal(store_fire_schedules(db, "shop"), STORE_FIRE_CHUNK);
    assert_int_equal(store_fire_schedules(db, "shop"), STORE_FIRE_CHUNK);
    assert_int_equal(store_fire_schedules(db, "shop"), 500);
    assert_int_equal(store_fire_schedules(db, "shop"), 0);
    store_scan *s = store_scan_queued(db, "shop", N + 10);
    assert_non_null(s);
    store_request row;
    int n = 0;
    while (store_scan_next(s, &row) > 0) {
        char want[32];
        snprintf(want, sizeof want, "{\"n\":%d}", N - 1 - n);
        assert_int_equal(row.body_len, strlen(want));
        assert_memory_equal(row.body, want, row.body_len);
        n++;
    }
    store_scan_end(s);
    assert_int_equal(n, N);
    free(q);
    free(keys);
    free(dues);
    free(bodies);
    store_db_close(db);
}

/* ---------------------------- dead letters --------------------------------- */

typedef struct listed { int n; char first[32]; } listed;

static void list_cb(void *ud, const char *id, const char *tenant, const char *what, const char *why) {
    (void)tenant; (void)what; (void)why;
    listed *l = ud;
    if (!l->n++) snprintf(l->first, sizeof l->first, "%s", id);
}

static void dead_letters_are_listed_replayed_and_purged(void **state) {
    (void)state;
    store_db *db = open_db();
    map_request q = { .method = "POST", .path = "/api/events", .body = "{}", .body_len = 2, .profile = "p" };
    map_result r = { .status = MAP_MAPPED, .reason = "", .requests = &q, .nrequests = 1 };
    write_result(db, 1, &r, NULL);
    long long id;
    assert_int_equal(scan_ids(db, &id, 1), 1);
    assert_int_equal(store_settle(db, &id, &(store_outcome){ REQUEST_DEAD, 400, clock_now_ms(), "bad", 1 }, 1), 0);
    listed l = {0};
    store_dead_letters(db, NULL, list_cb, &l);
    assert_int_equal(l.n, 1);
    char want[32];
    snprintf(want, sizeof want, "request:%lld", id);
    assert_string_equal(l.first, want);
    assert_int_equal(store_replay_dead_requests(db, 0, "other"), 0);   /* another tenant's: none */
    assert_int_equal(store_replay_dead_requests(db, id, "shop"), 1);
    assert_int_equal(scan_ids(db, &id, 1), 1);                         /* queued again */
    assert_int_equal(store_settle(db, &id, &(store_outcome){ REQUEST_DEAD, 400, clock_now_ms(), "bad", 1 }, 1), 0);
    assert_int_equal(store_purge_dead_requests(db, 0, NULL), 1);
    listed none = {0};
    store_dead_letters(db, NULL, list_cb, &none);
    assert_int_equal(none.n, 0);
    store_db_close(db);
}

typedef struct shown { int n; char tenant[16], reason[64], text[64]; } shown;

static void show_cb(void *ud, const char *tenant, const char *reason, const char *text) {
    shown *s = ud;
    s->n++;
    snprintf(s->tenant, sizeof s->tenant, "%s", tenant);
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    snprintf(s->text, sizeof s->text, "%s", text);
}

static void tenant_cb(void *ud, const char *tenant) {
    listed *l = ud;
    if (!l->n++) snprintf(l->first, sizeof l->first, "%s", tenant);
}

/* A failed event: listed, shown whole, mapped again on replay, dropped with its reason on purge; a
 * replay's window reads the journal by trigger. */
static void failed_events_are_shown_replayed_and_purged_and_the_journal_replayed_by_trigger(void **state) {
    (void)state;
    store_db *db = open_db();
    long long ev, other;
    const char *body = "{\"trigger\":\"return.created\",\"id\":\"7\"}";
    assert_int_equal(store_journal_held(db, "shop", clock_now_ms() - 1000, body, strlen(body), &ev), 0);
    assert_int_equal(store_journal_held(db, "shop", clock_now_ms() - 1000, "{\"trigger\":\"label.created\"}", 27, &other), 0);
    map_result r = { .status = MAP_FAILED, .reason = "scripts/10.lua:3: boom" };
    write_result(db, ev, &r, NULL);

    listed tenants = {0};
    store_tenants(db, tenant_cb, &tenants);
    assert_int_equal(tenants.n, 1);
    assert_string_equal(tenants.first, "shop");
    shown s = {0};
    assert_int_equal(store_dead_letter(db, 1, ev, show_cb, &s), 1);
    assert_string_equal(s.reason, "scripts/10.lua:3: boom");
    assert_string_equal(s.text, body);
    assert_int_equal(store_dead_letter(db, 1, other, show_cb, &s), 0);       /* not a dead letter */

    assert_int_equal(store_replay_dead_events(db, 0, "shop"), 1);
    collected c = {0};
    assert_int_equal(store_journal_each(db, "shop", EVENT_JOURNALED, 10, collect, &c), 1);
    assert_int_equal(c.ids[0], ev);
    write_result(db, ev, &r, NULL);
    assert_int_equal(store_purge_dead_events(db, ev, NULL), 1);
    collected dropped = {0};
    assert_int_equal(store_journal_each(db, "shop", EVENT_DROPPED, 10, collect, &dropped), 1);

    collected window = {0};
    assert_int_equal(store_journal_replay(db, "shop", 0, clock_now_ms() + 1, "return.created", collect, &window), 1);
    assert_int_equal(window.ids[0], ev);
    collected all = {0};
    assert_int_equal(store_journal_replay(db, "shop", 0, clock_now_ms() + 1, NULL, collect, &all), 2);
    store_db_close(db);
}

/* ------------------------------- purge, pause ------------------------------ */

static void purge_drops_old_delivered_rows_and_keeps_queued_ones(void **state) {
    (void)state;
    store_db *db = open_db();
    map_request q[] = {
        { .method = "POST", .path = "/api/events", .body = "{}", .body_len = 2, .profile = "p" },
        { .method = "POST", .path = "/api/events", .body = "{}", .body_len = 2, .profile = "q" },
    };
    map_result r = { .status = MAP_MAPPED, .reason = "", .requests = q, .nrequests = 2 };
    write_result(db, 1, &r, NULL);
    long long ids[2];
    assert_int_equal(scan_ids(db, ids, 2), 2);
    assert_int_equal(store_settle(db, &ids[0], &(store_outcome){ REQUEST_DELIVERED, 202, clock_now_ms(), NULL, 1 }, 1), 0);
    store_purge(db, "shop", clock_now_ms() + 1000);
    store_tenant_counts c;
    store_tenant_counts_of(db, "shop", &c);
    assert_int_equal(c.delivered, 0);
    assert_int_equal(c.queued, 1);
    assert_false(store_tenant_paused(db, "shop"));
    store_pause_tenant(db, "shop", "Klaviyo answered 401", clock_now_ms());
    assert_true(store_tenant_paused(db, "shop"));
    store_db_close(db);
}

/* ------------------------------ write turns -------------------------------- */

typedef struct second_writer { store_db *db; int began, committed; } second_writer;

static void *write_once(void *arg) {
    second_writer *w = arg;
    w->began = store_begin(w->db) == 0;
    w->committed = w->began && store_commit(w->db) == 0;
    return NULL;
}

/* A mapping thread's batch is one transaction until another writer waits for the lock (worker.c):
 * the writer in a transaction is told when one does, and the other gets the lock once it commits.
 * On PostgreSQL, whose writers do not take turns in the process, it is always told so (32 events a
 * transaction, as before). */
static void a_writer_is_told_when_another_waits_for_the_lock(void **state) {
    (void)state;
    store_db *first = open_db();
    if (url) {
        assert_int_equal(store_begin(first), 0);
        assert_true(store_write_wanted(first));
        assert_int_equal(store_commit(first), 0);
        store_db_close(first);
        return;
    }
    second_writer second = { .db = open_db() };
    assert_int_equal(store_begin(first), 0);
    assert_false(store_write_wanted(first));
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, write_once, &second), 0);
    long long deadline = clock_mono_ms() + 5000;
    while (!store_write_wanted(first) && clock_mono_ms() < deadline) {
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    assert_true(store_write_wanted(first));
    assert_int_equal(store_commit(first), 0);
    pthread_join(tid, NULL);
    assert_true(second.began);
    assert_true(second.committed);
    assert_int_equal(store_begin(first), 0);  /* nobody waits any more */
    assert_false(store_write_wanted(first));
    assert_int_equal(store_commit(first), 0);
    store_db_close(second.db);
    store_db_close(first);
}

/* The checkpointer (checkpointer.c) copies what commits left in the WAL into the database file on
 * its own thread, while the writer's connection checkpoints nothing itself (SQLite only: a
 * PostgreSQL store has no such upkeep). */
static void the_checkpointer_moves_the_wal_into_the_database_on_its_own(void **state) {
    (void)state;
    if (url) skip();
    store_db *db = open_db();
    store_checkpoint_every(db, 0);
    static char body[8192];
    memset(body, 'x', sizeof body);
    body[0] = '"';
    body[sizeof body - 1] = '"';
    store_journal_row rows[64];
    for (int i = 0; i < 64; i++)
        rows[i] = (store_journal_row){ "shop", NULL, NULL, body, sizeof body, clock_now_ms(), 0 };
    for (int round = 0; round < 4; round++) assert_int_equal(store_journal_commit(db, rows, 64), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/returnflow.db", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    off_t before = st.st_size;                   /* 2 MiB of rows, all in the WAL yet */
    assert_true(before < 1 << 20);

    char err[512];
    checkpointer *c = checkpointer_start(location, err, sizeof err);
    assert_non_null(c);
    off_t after = before;
    for (int waited = 0; waited < 50 && after < before + (2 << 20); waited++) {
        struct timespec tick = { 0, 100 * 1000 * 1000 };
        nanosleep(&tick, NULL);
        assert_int_equal(stat(path, &st), 0);
        after = st.st_size;
    }
    checkpointer_stop(c);
    assert_true(after >= before + (2 << 20));     /* within 5 s: it runs once a second */
    checkpointer_stop(NULL);                      /* allowed, does nothing */
    store_db_close(db);
}

static void opening_a_missing_store_read_only_fails_with_its_path(void **state) {
    (void)state;
    if (url) skip();                      /* a file's matter: a server's database is there or refused */
    char err[1200], missing[128];
    snprintf(missing, sizeof missing, "%s/nothing", dir);
    assert_false(store_db_exists(missing));
    assert_null(store_db_open(missing, STORE_READ_ONLY, err, sizeof err));
    assert_non_null(strstr(err, "nothing/returnflow.db"));
}

/* A store's URL may carry a password: messages name it without user, password or options. */
static void a_url_is_named_without_its_password(void **state) {
    (void)state;
    char safe[256];
    store_location_safe("postgresql://rf:s3cr%40t-9f@db.internal:5433/returnflow?sslmode=require&password=x9",
                        safe, sizeof safe);
    assert_string_equal(safe, "postgresql://db.internal:5433/returnflow");
    store_location_safe("postgres:///returnflow?host=/run/pg&user=rf&password=p4ss", safe, sizeof safe);
    assert_string_equal(safe, "postgresql:///run/pg/returnflow");
    assert_null(strstr(safe, "p4ss"));
    store_location_safe("/var/lib/returnflow/data", safe, sizeof safe);
    assert_string_equal(safe, "/var/lib/returnflow/data");
}

int main(void) {
    url = getenv("RETURNFLOW_TEST_STORE_URL");
    if (url && !*url) url = NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(journal_append_acks_after_commit_and_reads_back_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(a_batch_jobs_events_are_held_from_the_mapping_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(a_mapping_result_lands_whole_and_is_claimed_once, setup, teardown),
        cmocka_unit_test_setup_teardown(a_scan_gives_back_each_body_whole_with_its_shared_part, setup, teardown),
        cmocka_unit_test_setup_teardown(a_retried_request_keeps_its_place_and_waits_for_next_at, setup, teardown),
        cmocka_unit_test_setup_teardown(an_error_cut_inside_a_character_is_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(a_jobs_schedules_wait_until_it_has_read_all_its_input, setup, teardown),
        cmocka_unit_test_setup_teardown(schedules_fire_a_chunk_at_a_time_in_due_order, setup, teardown),
        cmocka_unit_test_setup_teardown(dead_letters_are_listed_replayed_and_purged, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_events_are_shown_replayed_and_purged_and_the_journal_replayed_by_trigger,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(purge_drops_old_delivered_rows_and_keeps_queued_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(a_writer_is_told_when_another_waits_for_the_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(the_checkpointer_moves_the_wal_into_the_database_on_its_own, setup, teardown),
        cmocka_unit_test_setup_teardown(opening_a_missing_store_read_only_fails_with_its_path, setup, teardown),
        cmocka_unit_test(a_url_is_named_without_its_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
