/*
 * test_deliver.c: delivery's pure parts, without a network: the answer classifier shared by single
 * requests and bulk jobs (answer.c), the backoff, what a 429 asks, the reason a dead letter gets,
 * the pointers that blame a bulk job's items, and the rate windows (rate.c) on a clock of the test's.
 *
 * Why these tests: a misread answer either burns a tenant's queue (a refused key retried or
 * dead-lettered) or loses events (a retryable answer dead-lettered); a rate window that lets one
 * too many through earns a 429 for every tenant's live webhooks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "rate.h"

static void answers_are_classified_the_same_for_singles_and_bulk_jobs(void **state) {
    (void)state;
    assert_int_equal(answer_classify(1, 202, "application/vnd.api+json"), ANSWER_DELIVERED);
    assert_int_equal(answer_classify(1, 204, ""), ANSWER_DELIVERED);
    assert_int_equal(answer_classify(1, 401, "application/json"), ANSWER_KEY_REFUSED);
    assert_int_equal(answer_classify(1, 403, "application/vnd.api+json"), ANSWER_KEY_REFUSED);
    assert_int_equal(answer_classify(1, 403, "text/html; charset=UTF-8"), ANSWER_RETRY);   /* a challenge */
    assert_int_equal(answer_classify(1, 408, ""), ANSWER_RETRY);
    assert_int_equal(answer_classify(1, 429, ""), ANSWER_RETRY);
    assert_int_equal(answer_classify(1, 500, ""), ANSWER_RETRY);
    assert_int_equal(answer_classify(1, 503, ""), ANSWER_RETRY);
    assert_int_equal(answer_classify(0, 0, ""), ANSWER_RETRY);                           /* no answer */
    assert_int_equal(answer_classify(0, 200, ""), ANSWER_RETRY);                         /* cut short */
    assert_int_equal(answer_classify(1, 400, ""), ANSWER_REFUSED);
    assert_int_equal(answer_classify(1, 404, ""), ANSWER_REFUSED);
    assert_int_equal(answer_classify(1, 409, ""), ANSWER_REFUSED);
}

static void backoff_is_full_jitter_doubling_up_to_five_minutes(void **state) {
    (void)state;
    assert_true(answer_backoff_s(0, 0.0, 300) == 0.2);                 /* never less than 0.2 s */
    assert_true(answer_backoff_s(0, 1.0, 300) == 1.0);
    assert_true(answer_backoff_s(3, 1.0, 300) == 8.0);
    assert_true(answer_backoff_s(3, 0.5, 300) == 4.0);
    assert_true(answer_backoff_s(20, 1.0, 300) == 300.0);              /* capped */
    assert_true(answer_backoff_s(1000, 0.5, 300) == 150.0);
    assert_true(answer_backoff_s(20, 1.0, 2) == 2.0);            /* a configured cap */
    assert_true(answer_backoff_s(0, 0.0, 0.1) == 0.1);           /* a cap under the floor is the floor */
}

static void a_429_waits_what_it_asks(void **state) {
    (void)state;
    assert_true(answer_wait_asked("7", NULL) == 7.0);
    assert_true(answer_wait_asked("", "{\"errors\":[{\"detail\":\"Request was throttled. Expected available in 3 "
                                      "seconds.\"}]}") == 3.0);
    assert_true(answer_wait_asked("2", "Expected available in 9 seconds") == 2.0);   /* the header first */
    assert_true(answer_wait_asked(NULL, "{}") == 0.0);
}

static void a_dead_letters_reason_starts_with_klaviyos_detail_and_pointer(void **state) {
    (void)state;
    char out[300];
    answer_klaviyo_said("{\"errors\": [{\"detail\" : \"metric name is \\\"too\\\" long\", \"source\": "
                        "{\"pointer\": \"/data/attributes/metric\"}}]}", out, sizeof out);
    assert_string_equal(out, "metric name is \"too\" long (at /data/attributes/metric)");
    answer_klaviyo_said("{\"errors\":[{\"detail\":\"bad\"}]}", out, sizeof out);
    assert_string_equal(out, "bad");
    answer_klaviyo_said("<html>gateway</html>", out, sizeof out);
    assert_string_equal(out, "<html>gateway</html>");
    answer_klaviyo_said(NULL, out, sizeof out);
    assert_string_equal(out, "");
}

typedef struct blamed { int n; char pointer[4][128], detail[4][128]; } blamed;

static void note(void *ud, const char *pointer, const char *detail) {
    blamed *b = ud;
    if (b->n < 4) {
        snprintf(b->pointer[b->n], sizeof b->pointer[b->n], "%s", pointer);
        snprintf(b->detail[b->n], sizeof b->detail[b->n], "%s", detail);
    }
    b->n++;
}

static void each_pointer_comes_with_the_detail_written_before_it(void **state) {
    (void)state;
    const char *body = "{\"errors\":[{\"id\":\"1\",\"detail\":\"first bad\",\"source\":{\"pointer\":"
                       "\"/data/attributes/events/data/3/attributes/properties\"}},{\"detail\":\"second bad\","
                       "\"source\":{\"pointer\":\"/data/attributes/events/data/7\"}}]}";
    blamed b = {0};
    assert_int_equal(answer_pointers(body, note, &b), 2);
    assert_string_equal(b.pointer[0], "/data/attributes/events/data/3/attributes/properties");
    assert_string_equal(b.detail[0], "first bad");
    assert_string_equal(b.pointer[1], "/data/attributes/events/data/7");
    assert_string_equal(b.detail[1], "second bad");
    blamed none = {0};
    assert_int_equal(answer_pointers("{\"errors\":[{\"detail\":\"no source\"}]}", note, &none), 0);
}

static void endpoints_fall_in_klaviyos_rate_classes(void **state) {
    (void)state;
    assert_int_equal(rate_class_of("/api/events"), CLASS_EVENTS);
    assert_int_equal(rate_class_of("/api/event-bulk-create-jobs"), CLASS_BULK);
    assert_int_equal(rate_class_of("/api/profile-bulk-import-jobs"), CLASS_BULK);
    assert_int_equal(rate_class_of("/api/profile-import"), CLASS_PROFILES);
    assert_int_equal(rate_class_of("/api/profile-subscription-bulk-create-jobs"), CLASS_PROFILES);
    assert_int_equal(rate_class_of("/client/subscriptions"), CLASS_PROFILES);
    assert_int_equal(rate_class_of("/api/lists"), CLASS_OTHER);
    assert_string_equal(rate_class_name(CLASS_BULK), "bulk");
}

static void a_window_lets_cap_through_per_span_and_no_more(void **state) {
    (void)state;
    rate_window w;
    rate_window_init(&w, 3, 1000, 100);
    long long t = 1000000;
    for (int i = 0; i < 3; i++) {
        assert_true(rate_window_room(&w, t + i));
        rate_window_take(&w, t + i);
        rate_window_answered(&w, i, t + i);                       /* answered at once */
    }
    assert_false(rate_window_room(&w, t + 3));
    assert_false(rate_window_room(&w, t + 1099));                 /* the window is 1 s plus the slack */
    assert_true(rate_window_room(&w, t + 1100));                  /* the oldest left a window ago */
    rate_window_take(&w, t + 1100);
    assert_false(rate_window_room(&w, t + 1100));                 /* the second oldest is still in */
    assert_true(rate_window_room(&w, t + 1101));
    free(w.sent);
}

/* Klaviyo counts a request somewhere between its send and its answer: until the answer, it holds
 * its place however old it is, and then it counts from the answer. */
static void a_request_counts_until_its_answer_then_from_it(void **state) {
    (void)state;
    rate_window w;
    rate_window_init(&w, 2, 1000, 100);
    long long t = 2000000;
    rate_window_take(&w, t);                                      /* take 0: slow, answered late */
    rate_window_take(&w, t + 10);                                 /* take 1 */
    rate_window_answered(&w, 1, t + 20);
    assert_false(rate_window_room(&w, t + 5000));                 /* take 0 may not have arrived yet */
    rate_window_answered(&w, 0, t + 5000);
    assert_false(rate_window_room(&w, t + 5000 + 1099));          /* it may have arrived at t + 5000 */
    assert_true(rate_window_room(&w, t + 5000 + 1100));
    free(w.sent);
}

static void a_tenants_limits_hold_per_class_and_a_429_cools_the_class(void **state) {
    (void)state;
    rate_limits r;
    rate_init(&r, 0.1);                                           /* 35 events a second, 1 bulk job */
    long long t = 5000000;
    int sent = 0;
    while (rate_take(&r, CLASS_EVENTS, t)) {
        long long seq[2];
        rate_taken(&r, CLASS_EVENTS, seq);
        rate_answered(&r, CLASS_EVENTS, seq, t);                  /* each answered at once */
        sent++;
    }
    assert_int_equal(sent, 35);
    assert_true(rate_take(&r, CLASS_PROFILES, t));               /* another class has its own budget */
    assert_true(rate_bulk_room(&r, t));
    assert_true(rate_take(&r, CLASS_BULK, t));
    assert_false(rate_bulk_room(&r, t + 10));
    rate_cool(&r, CLASS_PROFILES, t + 5000);
    assert_false(rate_take(&r, CLASS_PROFILES, t + 4999));
    assert_true(rate_take(&r, CLASS_PROFILES, t + 5000));
    assert_true(rate_take(&r, CLASS_EVENTS, t + 1100));          /* a second (and the slack) later */
    rate_free(&r);
}

/* A new deliverer counts what the old one sent (rate_keep.c): its history replayed, no room until a
 * window after the old answers; an unanswered one counts from the replay. */
static void a_replayed_history_keeps_the_old_windows_full(void **state) {
    (void)state;
    rate_limits old, next;
    rate_init(&old, 0.1);                                         /* 35 events a second */
    long long t = 7000000, seq[2];
    for (int i = 0; i < 35; i++) {
        assert_true(rate_take(&old, CLASS_EVENTS, t));
        rate_taken(&old, CLASS_EVENTS, seq);
        if (i < 34) rate_answered(&old, CLASS_EVENTS, seq, t);    /* the last one never answered */
    }
    long long times[400];
    int n = rate_history(&old, CLASS_EVENTS, t + 500, times);
    assert_int_equal(n, 35);
    assert_int_equal(times[34], RATE_PENDING);
    rate_init(&next, 0.1);
    rate_replay(&next, CLASS_EVENTS, times, n, t + 500);
    assert_false(rate_take(&next, CLASS_EVENTS, t + 500));
    int again = 0;
    while (rate_take(&next, CLASS_EVENTS, t + 1100)) again++;    /* the 34 answered a window ago */
    assert_int_equal(again, 34);
    assert_false(rate_take(&next, CLASS_EVENTS, t + 1599));      /* the unanswered one counts from the replay */
    assert_true(rate_take(&next, CLASS_EVENTS, t + 1600));
    assert_int_equal(rate_history(&old, CLASS_EVENTS, t + 60100, times), 1);   /* past the minute: only it */
    rate_free(&old);
    rate_free(&next);
}

static void bulk_jobs_leave_evenly_spaced(void **state) {
    (void)state;
    rate_limits r;
    rate_init(&r, 1);                                             /* 10 bulk jobs a second */
    long long t = 9000000;
    assert_true(rate_take(&r, CLASS_BULK, t));
    assert_false(rate_take(&r, CLASS_BULK, t + 50));              /* 10 a second: not ten at once */
    assert_true(rate_take(&r, CLASS_BULK, t + 125));              /* (1000 + 250 slack) / 10 */
    rate_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(answers_are_classified_the_same_for_singles_and_bulk_jobs),
        cmocka_unit_test(backoff_is_full_jitter_doubling_up_to_five_minutes),
        cmocka_unit_test(a_429_waits_what_it_asks),
        cmocka_unit_test(a_dead_letters_reason_starts_with_klaviyos_detail_and_pointer),
        cmocka_unit_test(each_pointer_comes_with_the_detail_written_before_it),
        cmocka_unit_test(endpoints_fall_in_klaviyos_rate_classes),
        cmocka_unit_test(a_window_lets_cap_through_per_span_and_no_more),
        cmocka_unit_test(a_request_counts_until_its_answer_then_from_it),
        cmocka_unit_test(a_tenants_limits_hold_per_class_and_a_429_cools_the_class),
        cmocka_unit_test(a_replayed_history_keeps_the_old_windows_full),
        cmocka_unit_test(bulk_jobs_leave_evenly_spaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
