/*
 * test_mapworker.c: what the parent side of a mapping worker (core/service/mapworker.c) does with a
 * worker that is no longer ours.
 *
 * Why these tests: the hostile suite reaches the parent only through scripts, and a script that the
 * sandbox contains never makes the worker lie. Here the worker is this test binary itself: the
 * parent starts /proc/self/exe __mapworker TENANT, and main() below plays a compromised worker whose
 * behaviour the tenant's name picks (a path toward another host, a NUL in a key, a 4 GiB frame, a
 * hang, a crash, a closed channel, a recall). Every lie must fail its event with the reason and
 * cost a worker, never reach a result, and never hold the parent past its deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mapworker.h"
#include "mapworker_proto.h"

/* ------------------------------ the fake worker ---------------------------- */

static void put(strbuf *b) {
    size_t off = 0;
    while (off < b->len) {
        ssize_t k = write(MW_FD, b->data + off, b->len - off);
        if (k <= 0) _exit(0);
        off += (size_t)k;
    }
    b->len = 0;
}

static uint32_t get(strbuf *in) {
    uint32_t head[2];
    size_t got = 0;
    while (got < 8) { ssize_t k = read(MW_FD, (char *)head + got, 8 - got); if (k <= 0) _exit(0); got += (size_t)k; }
    in->len = 0;
    strbuf_reserve(in, head[1] + 1);
    for (got = 0; got < head[1];) { ssize_t k = read(MW_FD, in->data + got, head[1] - got); if (k <= 0) _exit(0); got += (size_t)k; }
    in->len = head[1];
    return head[0];
}

/* One result: status mapped, one request (method, path), a cancel key, a memory write. */
static void result(strbuf *out, const char *method, const char *path, const char *cancel, size_t cancel_len,
                   const char *mem_value) {
    size_t at = mw_begin_frame(out, MW_RESULT);
    mw_put_u32(out, 0);                             /* CPU time */
    mw_put_u32(out, 0);
    mw_put_cstr(out, "");
    mw_put_u32(out, 1);
    mw_put_cstr(out, method);
    mw_put_cstr(out, path);
    mw_put_cstr(out, "{\"data\":{}}");
    mw_put_cstr(out, "email:a@example.com");
    mw_put_u32(out, 0);
    mw_put_cstr(out, "");
    mw_put_cstr(out, "");
    mw_put_u32(out, cancel ? 1 : 0);
    if (cancel) mw_put_str(out, cancel, cancel_len);
    mw_put_u32(out, mem_value ? 1 : 0);
    if (mem_value) { mw_put_cstr(out, "k"); mw_put_cstr(out, mem_value); }
    mw_put_str(out, "", 0);
    mw_end_frame(out, at);
}

static int fake_worker(const char *how) {
    strbuf in = {0}, out = {0};
    if (get(&in) != MW_LOAD) _exit(0);
    if (strcmp(how, "load-crash") == 0) raise(SIGSEGV);
    size_t at = mw_begin_frame(&out, MW_LOADED);
    mw_put_u32(&out, 1); mw_put_u32(&out, 1); mw_put_u32(&out, 1);
    mw_put_str(&out, "", 0);
    mw_end_frame(&out, at);
    put(&out);
    if (strcmp(how, "gone") == 0) _exit(3);       /* between two batches: the parent's next write fails */
    for (;;) {
        if (get(&in) != MW_BATCH) _exit(0);
        mw_reader r = { in.data, in.data + in.len, 0 };
        uint32_t flags = mw_get_u32(&r);
        uint32_t n = mw_get_u32(&r);
        for (uint32_t i = 0; i < n; i++) {
            if (strcmp(how, "ok") == 0) result(&out, "POST", "/api/events", NULL, 0, NULL);
            else if (strcmp(how, "to-attacker") == 0) result(&out, "POST", "/api/events@attacker.example:8/x", NULL, 0, NULL);
            else if (strcmp(how, "nul-cancel") == 0) result(&out, "POST", "/api/events", "a\0b", 3, NULL);
            else if (strcmp(how, "huge-frame") == 0) { uint32_t h[2] = { MW_RESULT, 0xfffffff0u }; strbuf_add(&out, (char *)h, 8); }
            else if (strcmp(how, "hang") == 0) for (;;) pause();
            else if (strcmp(how, "spin") == 0) for (volatile unsigned long x = 0;; x++) {}
            else if (strcmp(how, "crash") == 0) raise(SIGSEGV);
            else if (strcmp(how, "close-live") == 0) { close(MW_FD); for (;;) pause(); }
            else if (strcmp(how, "flags") == 0) {     /* the batch's flags, as its memory value */
                char value[16];
                snprintf(value, sizeof value, "%u", flags);
                result(&out, "POST", "/api/events", NULL, 0, value);
            }
            else if (strcmp(how, "recall") == 0) {
                size_t f = mw_begin_frame(&out, MW_RECALL);
                mw_put_cstr(&out, "remembered");
                mw_end_frame(&out, f);
                put(&out);
                if (get(&in) != MW_RECALLED) _exit(0);
                mw_reader a = { in.data, in.data + in.len, 0 };
                uint32_t found = mw_get_u32(&a);
                size_t len;
                const char *v = mw_get_str(&a, &len);
                char value[64];
                snprintf(value, sizeof value, "%.*s", found ? (int)len : 4, found ? v : "none");
                result(&out, "POST", "/api/events", NULL, 0, value);
            }
            put(&out);
        }
    }
}

/* ------------------------------- the parent ------------------------------- */

static mapworker *start(const char *how, double cap) {
    mapper_config cfg = { .scripts_dir = ".", .tenant = how, .caps = { .memory_bytes = 32u << 20, .seconds = cap } };
    strbuf problems = {0};
    mapworker *w = mapworker_new(&cfg, &problems);
    strbuf_free(&problems);
    return w;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Maps one event; returns its result (valid until the next call). */
static const map_result *map_one(mapworker *w, long long id, int *k) {
    mapworker_event e = { id, "{}", 2, "t#1" };
    *k = mapworker_map_batch(w, &e, 1, 0);
    return *k > 0 ? mapworker_result(w, 0) : NULL;
}

static void accepts_a_well_formed_result(void **state) {
    (void)state;
    mapworker *w = start("ok", 0.5);
    assert_non_null(w);
    mapworker_event e[3] = { { 1, "{}", 2, "a" }, { 2, "{}", 2, "b" }, { 3, "{}", 2, "c" } };
    assert_int_equal(3, mapworker_map_batch(w, e, 3, 0));
    for (int i = 0; i < 3; i++) {
        const map_result *r = mapworker_result(w, i);
        assert_int_equal(MAP_MAPPED, r->status);
        assert_int_equal(1, r->nrequests);
        assert_string_equal("/api/events", r->requests[0].path);
    }
    mapworker_free(w);
}

static void expect_failed(const char *how, const char *reason, double cap, double within) {
    mapworker *w = start(how, cap);
    assert_non_null(w);
    double t0 = now_s();
    int k;
    const map_result *r = map_one(w, 0, &k);
    assert_int_equal(1, k);
    assert_int_equal(MAP_FAILED, r->status);
    assert_int_equal(0, r->nrequests);
    if (!strstr(r->reason, reason)) fail_msg("reason '%s' lacks '%s'", r->reason, reason);
    assert_true(now_s() - t0 < within);
    mapworker_free(w);
}

static void refuses_a_path_toward_another_host(void **state) {
    (void)state;
    expect_failed("to-attacker", "worker killed: its result was refused: request 1: not one of the Klaviyo endpoints", 0.5, 3);
}

static void refuses_a_nul_in_a_cancel_key(void **state) {
    (void)state;
    expect_failed("nul-cancel", "cancel 1: a malformed key", 0.5, 3);
}

static void refuses_a_frame_over_the_limit_without_reading_it(void **state) {
    (void)state;
    expect_failed("huge-frame", "worker killed: sent a frame over the 64 MiB limit", 0.5, 3);
}

/* 100 ms cap: the deadline is 1.2 s; a worker that spent over cap + 250 ms of CPU on the event by
 * then is killed at once, one that did not (blocked, or starved) at four times the deadline. */
static void kills_a_running_worker_past_its_deadline(void **state) {
    (void)state;
    expect_failed("spin", "worker killed: 100 ms cap exceeded", 0.1, 4 * 1.2 + 1.0);
}

static void kills_a_blocked_worker_at_the_hard_bound(void **state) {
    (void)state;
    expect_failed("hang", "worker killed: 100 ms cap exceeded", 0.1, 4 * 1.2 + 1.0);
}

static void reports_a_crash_with_its_signal(void **state) {
    (void)state;
    expect_failed("crash", "worker crashed: signal 11", 0.5, 3);
}

static void kills_a_worker_that_closed_its_channel_and_lived_on(void **state) {
    (void)state;
    expect_failed("close-live", "closed its channel and lived on", 0.5, 4);
}

static void survives_a_worker_gone_before_the_batch(void **state) {
    (void)state;
    signal(SIGPIPE, SIG_DFL);                        /* as serve runs: a SIGPIPE would end this test */
    expect_failed("gone", "worker exited: status 3", 0.5, 3);
}

static void never_sends_an_event_that_took_down_two_workers(void **state) {
    (void)state;
    mapworker *w = start("crash", 0.5);
    assert_non_null(w);
    int k;
    for (int attempt = 0; attempt < 2; attempt++) {
        double t0 = now_s();
        const map_result *r = NULL;
        while (!r && now_s() - t0 < 5) r = map_one(w, 42, &k);   /* -1 while the restart backs off */
        assert_non_null(r);
        assert_non_null(strstr(r->reason, "worker crashed: signal 11"));
    }
    const map_result *r = map_one(w, 42, &k);
    assert_int_equal(1, k);
    assert_non_null(strstr(r->reason, "not tried again"));
    mapworker_free(w);
}

static int recall_fallback(void *ud, const char *key, size_t klen, strbuf *out) {
    (void)ud;
    if (klen != 10 || memcmp(key, "remembered", 10) != 0) return 0;
    strbuf_adds(out, "\"from the store\"");
    return 1;
}

static void answers_recalls_from_the_store(void **state) {
    (void)state;
    mapworker *w = start("recall", 0.5);
    assert_non_null(w);
    mapworker_set_recall(w, recall_fallback, NULL);
    int k;
    const map_result *r = map_one(w, 0, &k);
    assert_int_equal(MAP_MAPPED, r->status);
    assert_int_equal(1, r->nmemory);
    assert_string_equal("\"from the store\"", r->memory_values[0]);
    mapworker_free(w);
}

/* One tenant on every mapping thread (worker_batch.c): a shared worker is told to forget its cache
 * before each batch, and a recall callback learns which event of the batch asked. */
static int in_hand[8], nin_hand;
static mapworker *recalling;

static int note_event(void *ud, const char *key, size_t klen, strbuf *out) {
    if (nin_hand < 8) in_hand[nin_hand++] = mapworker_event_in_hand(recalling);
    return recall_fallback(ud, key, klen, out);
}

static void a_shared_worker_forgets_its_cache_and_names_the_event_of_each_recall(void **state) {
    (void)state;
    mapworker *w = start("flags", 0.5);
    assert_non_null(w);
    int k;
    assert_string_equal("0", map_one(w, 0, &k)->memory_values[0]);
    mapworker_set_shared(w, 1);
    char forget[16];
    snprintf(forget, sizeof forget, "%u", MW_BATCH_FORGET);
    assert_string_equal(forget, map_one(w, 0, &k)->memory_values[0]);
    mapworker_free(w);

    recalling = w = start("recall", 0.5);
    assert_non_null(w);
    mapworker_set_recall(w, note_event, NULL);
    mapworker_event events[3] = { { 0, "{}", 2, "t#1" }, { 0, "{}", 2, "t#2" }, { 0, "{}", 2, "t#3" } };
    assert_int_equal(3, mapworker_map_batch(w, events, 3, 0));
    assert_int_equal(3, nin_hand);
    for (int i = 0; i < 3; i++) assert_int_equal(i, in_hand[i]);
    mapworker_free(w);
}

static void refuses_the_scripts_when_the_load_crashes(void **state) {
    (void)state;
    mapper_config cfg = { .scripts_dir = ".", .tenant = "load-crash", .caps = { .seconds = 0.5 } };
    strbuf problems = {0};
    assert_null(mapworker_new(&cfg, &problems));
    strbuf_addc(&problems, 0);
    if (!strstr(problems.data, "worker crashed: signal 11 while loading")) fail_msg("%s", problems.data);
    strbuf_free(&problems);
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "__mapworker") == 0) return fake_worker(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_a_well_formed_result),
        cmocka_unit_test(refuses_a_path_toward_another_host),
        cmocka_unit_test(refuses_a_nul_in_a_cancel_key),
        cmocka_unit_test(refuses_a_frame_over_the_limit_without_reading_it),
        cmocka_unit_test(kills_a_running_worker_past_its_deadline),
        cmocka_unit_test(kills_a_blocked_worker_at_the_hard_bound),
        cmocka_unit_test(reports_a_crash_with_its_signal),
        cmocka_unit_test(kills_a_worker_that_closed_its_channel_and_lived_on),
        cmocka_unit_test(survives_a_worker_gone_before_the_batch),
        cmocka_unit_test(never_sends_an_event_that_took_down_two_workers),
        cmocka_unit_test(answers_recalls_from_the_store),
        cmocka_unit_test(a_shared_worker_forgets_its_cache_and_names_the_event_of_each_recall),
        cmocka_unit_test(refuses_the_scripts_when_the_load_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
