/*
 * test_bulk.c: what core/service/deliver/bulk.c promises delivery when it packs single-event bodies into a bulk job.
 *
 * Why these tests: a packing mistake costs a whole request (Klaviyo fails a bulk job for one bad
 * item) or, worse, quietly changes what an event says. So: every event's attributes arrive
 * unchanged, grouped by profile in queue order; meta moves beside the profile's attributes; a
 * repeated unique_id or a changed profile waits for the next job; the limits hold; an error's
 * pointer blames exactly the events it names; and parts kept from an earlier packing (bulk_parts)
 * change nothing a job says.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "outbox.h"

/* An event body as the mapper writes it (sorted keys). */
static const char *body(char *buf, size_t len, const char *email, const char *metric, const char *uid,
                        const char *meta) {
    snprintf(buf, len,
             "{\"data\":{\"attributes\":{\"metric\":{\"data\":{\"attributes\":{\"name\":\"%s\"},\"type\":\"metric\"}},"
             "\"profile\":{\"data\":{\"attributes\":{\"email\":\"%s\"%s%s},\"type\":\"profile\"}},"
             "\"properties\":{\"n\":1},\"time\":\"2026-10-02T14:21:07+00:00\",\"unique_id\":\"%s\"},\"type\":\"event\"}}",
             metric, email, meta ? ",\"meta\":" : "", meta ? meta : "", uid);
    return buf;
}

static int add(bulk_job *b, long long id, const char *email, const char *metric, const char *uid, const char *meta) {
    char buf[2048], key[300];
    body(buf, sizeof buf, email, metric, uid, meta);
    snprintf(key, sizeof key, "email:%s", email);
    return bulk_add(b, id, key, buf, strlen(buf));
}

static void groups_events_by_profile_in_order_with_attributes_unchanged(void **state) {
    (void)state;
    bulk_job *b = bulk_new(0, 0);
    assert_int_equal(add(b, 1, "a@x.com", "M", "u1", NULL), BULK_ADDED);
    assert_int_equal(add(b, 2, "a@x.com", "N", "u2", NULL), BULK_ADDED);
    assert_int_equal(add(b, 3, "b@x.com", "M", "u1", NULL), BULK_ADDED);
    size_t len;
    const char *out = bulk_body(b, &len);
    assert_int_equal(strlen(out), len);
    assert_string_equal(out,
        "{\"data\":{\"type\":\"event-bulk-create-job\",\"attributes\":{\"events-bulk-create\":{\"data\":["
        "{\"type\":\"event-bulk-create\",\"attributes\":{\"profile\":{\"data\":{\"type\":\"profile\",\"attributes\":"
        "{\"email\":\"a@x.com\"}}},\"events\":{\"data\":["
        "{\"type\":\"event\",\"attributes\":{\"metric\":{\"data\":{\"attributes\":{\"name\":\"M\"},\"type\":\"metric\"}},"
        "\"properties\":{\"n\":1},\"time\":\"2026-10-02T14:21:07+00:00\",\"unique_id\":\"u1\"}},"
        "{\"type\":\"event\",\"attributes\":{\"metric\":{\"data\":{\"attributes\":{\"name\":\"N\"},\"type\":\"metric\"}},"
        "\"properties\":{\"n\":1},\"time\":\"2026-10-02T14:21:07+00:00\",\"unique_id\":\"u2\"}}]}}},"
        "{\"type\":\"event-bulk-create\",\"attributes\":{\"profile\":{\"data\":{\"type\":\"profile\",\"attributes\":"
        "{\"email\":\"b@x.com\"}}},\"events\":{\"data\":["
        "{\"type\":\"event\",\"attributes\":{\"metric\":{\"data\":{\"attributes\":{\"name\":\"M\"},\"type\":\"metric\"}},"
        "\"properties\":{\"n\":1},\"time\":\"2026-10-02T14:21:07+00:00\",\"unique_id\":\"u1\"}}]}}}]}}}}");
    assert_int_equal(bulk_count(b), 3);
    assert_true(bulk_id(b, 0) == 1 && bulk_id(b, 1) == 2 && bulk_id(b, 2) == 3);
    bulk_free(b);
}

static void moves_meta_beside_the_profile_attributes(void **state) {
    (void)state;
    bulk_job *b = bulk_new(0, 0);
    const char *meta = "{\"patch_properties\":{\"append\":{\"returnflow_segments\":\"vip\"}}}";
    assert_int_equal(add(b, 1, "a@x.com", "M", "u1", meta), BULK_ADDED);
    size_t len;
    const char *out = bulk_body(b, &len);
    assert_non_null(strstr(out, "\"attributes\":{\"email\":\"a@x.com\"},\"meta\":{\"patch_properties\":"
                                "{\"append\":{\"returnflow_segments\":\"vip\"}}}}},\"events\""));
    bulk_free(b);
}

static void refuses_a_repeated_unique_id_and_a_changed_profile_until_the_next_job(void **state) {
    (void)state;
    bulk_job *b = bulk_new(0, 0);
    assert_int_equal(add(b, 1, "a@x.com", "M", "u1", NULL), BULK_ADDED);
    assert_int_equal(add(b, 2, "a@x.com", "M", "u1", NULL), BULK_DUPLICATE);
    assert_int_equal(add(b, 3, "a@x.com", "N", "u1", NULL), BULK_ADDED);          /* another metric: fine */
    assert_int_equal(add(b, 4, "a@x.com", "M", "u9", "{\"x\":1}"), BULK_PROFILE_CHANGED);
    assert_int_equal(add(b, 5, "b@x.com", "M", "u1", NULL), BULK_ADDED);
    assert_int_equal(add(b, 6, "a@x.com", "O", "u7", NULL), BULK_PROFILE_CHANGED);  /* a's entry is closed */
    assert_int_equal(bulk_count(b), 3);
    bulk_reset(b);
    assert_int_equal(add(b, 2, "a@x.com", "M", "u1", NULL), BULK_ADDED);
    bulk_free(b);
}

/* A backfill's job: 1,000 profiles, one entry each (the entries' index grows as they come); a later
 * event of any of them but the last waits, the last's joins its entry; a reset forgets them all. */
static void finds_each_of_a_thousand_profiles_entries(void **state) {
    (void)state;
    bulk_job *b = bulk_new(0, 0);
    char email[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(email, sizeof email, "p%d@x.com", i);
        assert_int_equal(add(b, i + 1, email, "M", "u1", NULL), BULK_ADDED);
    }
    for (int i = 0; i < 999; i += 37) {
        snprintf(email, sizeof email, "p%d@x.com", i);
        assert_int_equal(add(b, 5000 + i, email, "N", "u2", NULL), BULK_PROFILE_CHANGED);
    }
    assert_int_equal(bulk_count(b), 1000);
    bulk_free(b);
    b = bulk_new(0, 0);
    for (int i = 0; i < 600; i++) {
        snprintf(email, sizeof email, "p%d@x.com", i);
        assert_int_equal(add(b, i + 1, email, "M", "u1", NULL), BULK_ADDED);
    }
    assert_int_equal(add(b, 700, "p599@x.com", "M", "u1", NULL), BULK_DUPLICATE);
    assert_int_equal(add(b, 701, "p599@x.com", "N", "u1", NULL), BULK_ADDED);
    assert_string_equal(bulk_profile(b, 600), "email:p599@x.com");
    bulk_reset(b);
    assert_int_equal(add(b, 1, "p3@x.com", "M", "u1", NULL), BULK_ADDED);
    assert_int_equal(add(b, 2, "p4@x.com", "M", "u1", NULL), BULK_ADDED);
    assert_int_equal(add(b, 3, "p3@x.com", "N", "u1", NULL), BULK_PROFILE_CHANGED);
    assert_int_equal(bulk_count(b), 2);
    bulk_free(b);
}

static void stops_at_the_event_and_byte_limits(void **state) {
    (void)state;
    bulk_job *b = bulk_new(3, 0);
    for (int i = 0; i < 3; i++) {
        char uid[16];
        snprintf(uid, sizeof uid, "u%d", i);
        assert_int_equal(add(b, i, "a@x.com", "M", uid, NULL), BULK_ADDED);
    }
    assert_int_equal(add(b, 9, "a@x.com", "M", "u9", NULL), BULK_FULL);
    bulk_free(b);
    b = bulk_new(0, 800);
    assert_int_equal(add(b, 1, "a@x.com", "M", "u1", NULL), BULK_ADDED);
    assert_int_equal(add(b, 2, "b@x.com", "M", "u1", NULL), BULK_ADDED);
    assert_int_equal(add(b, 3, "c@x.com", "M", "u1", NULL), BULK_FULL);
    size_t len;
    bulk_body(b, &len);
    assert_true(len <= 800);
    bulk_free(b);
}

static void refuses_what_is_not_an_event_body(void **state) {
    (void)state;
    bulk_job *b = bulk_new(0, 0);
    const char *profile_import = "{\"data\":{\"attributes\":{\"email\":\"a@x.com\"},\"type\":\"profile\"}}";
    assert_int_equal(bulk_add(b, 1, "email:a@x.com", profile_import, strlen(profile_import)), BULK_NOT_EVENT);
    assert_int_equal(bulk_add(b, 2, "email:a@x.com", "[1,2", 4), BULK_NOT_EVENT);
    assert_int_equal(bulk_count(b), 0);
    bulk_free(b);
}

/* The body of a job of events 1..n (every third one a profile import, every fifth a meta, some uids
 * repeated), packed through parts (or none), with row ids id0 + i and uid prefix `tag`. */
static char *packed(bulk_parts *parts, long long id0, int n, const char *tag, int *added) {
    bulk_job *b = bulk_new(0, 0);
    bulk_set_parts(b, parts);
    *added = 0;
    for (int i = 1; i <= n; i++) {
        char buf[2048], key[64], email[32], uid[32];
        snprintf(email, sizeof email, "p%d@x.com", i / 4);
        snprintf(uid, sizeof uid, "%s%d", tag, i % 7);
        snprintf(key, sizeof key, "email:%s", email);
        if (i % 3 == 0) snprintf(buf, sizeof buf, "{\"data\":{\"attributes\":{\"email\":\"%s\"},\"type\":\"profile\"}}", email);
        else body(buf, sizeof buf, email, "M", uid, i % 5 == 0 ? "{\"patch_properties\":{\"k\":1}}" : NULL);
        *added += bulk_add(b, id0 + i, key, buf, strlen(buf)) == BULK_ADDED;
    }
    size_t len;
    char *out = strdup(bulk_body(b, &len));
    bulk_free(b);
    return out;
}

static void parts_kept_from_earlier_packings_change_nothing(void **state) {
    (void)state;
    bulk_parts *parts = bulk_parts_new();
    int a0, a1, a2;
    char *alone = packed(NULL, 100, 300, "u", &a0);
    char *first = packed(parts, 100, 300, "u", &a1);     /* read and kept */
    char *again = packed(parts, 100, 300, "u", &a2);     /* from what was kept */
    assert_true(a0 > 100);
    assert_int_equal(a1, a0);
    assert_int_equal(a2, a0);
    assert_string_equal(first, alone);
    assert_string_equal(again, alone);
    /* The same row ids with other bodies (SQLite gives an id again once the newest row went): the
     * bodies read now, not what was kept for the ids. */
    char *other_alone = packed(NULL, 100, 300, "w", &a0);
    char *other = packed(parts, 100, 300, "w", &a1);
    assert_string_not_equal(other_alone, alone);
    assert_string_equal(other, other_alone);
    /* More bodies than are kept (all dropped at once, then kept again): still the same. */
    char *many_alone = packed(NULL, 1000, 2500, "v", &a0);
    char *many = packed(parts, 1000, 2500, "v", &a1);
    char *many_again = packed(parts, 1000, 2500, "v", &a2);
    assert_string_equal(many, many_alone);
    assert_string_equal(many_again, many_alone);
    free(alone); free(first); free(again); free(other_alone); free(other);
    free(many_alone); free(many); free(many_again);
    bulk_parts_free(parts);
}

static void blames_the_events_an_error_pointer_names(void **state) {
    (void)state;
    bulk_job *b = bulk_new(0, 0);
    add(b, 10, "a@x.com", "M", "u1", NULL);
    add(b, 11, "a@x.com", "N", "u2", NULL);
    add(b, 12, "b@x.com", "M", "u1", NULL);
    int blamed[8];
    assert_int_equal(bulk_blamed(b, "/data/attributes/events-bulk-create/data/0/attributes/events/data/1/attributes/time",
                                 blamed, 8), 1);
    assert_int_equal(blamed[0], 1);
    assert_int_equal(bulk_blamed(b, "/data/attributes/events-bulk-create/data/1/attributes/events/data/0/attributes/unique_id",
                                 blamed, 8), 1);
    assert_int_equal(blamed[0], 2);
    assert_int_equal(bulk_blamed(b, "/data/attributes/events-bulk-create/data/0/attributes/profile/data/attributes",
                                 blamed, 8), 2);                                   /* the whole entry */
    assert_true(blamed[0] == 0 && blamed[1] == 1);
    assert_int_equal(bulk_blamed(b, "/data/attributes/events-bulk-create/data/7/attributes", blamed, 8), 0);
    assert_int_equal(bulk_blamed(b, "/data/type", blamed, 8), 0);
    bulk_free(b);
}

static void keys_an_event_by_metric_and_unique_id(void **state) {
    (void)state;
    char buf[2048], key[128];
    body(buf, sizeof buf, "a@x.com", "Loop Return Created", "t:1:return.created:open:Loop Return Created", NULL);
    assert_int_equal(bulk_event_key(buf, strlen(buf), key, sizeof key), 0);
    assert_string_equal(key, "\"Loop Return Created\"\x1f\"t:1:return.created:open:Loop Return Created\"");
    assert_int_equal(bulk_event_key("{}", 2, key, sizeof key), -1);
}

/* The store's dedup key (outbox_dedup_key, one walk of the body) is the profile and the key bulk.c
 * reads member by member: the same bytes for any layout, or refused by both. A difference would let
 * a rerun of `send` queue again what it already delivered. */
static void the_dedup_key_is_the_profile_and_the_bulk_key(void **state) {
    (void)state;
    char sorted[2048];
    const char *bodies[] = {
        body(sorted, sizeof sorted, "a@x.com", "Loop Return Created", "t:1:return.created", NULL),
        "{ \"data\" : { \"type\": \"event\", \"attributes\" : {\n  \"unique_id\" : \"u 2\" ,\n"
        "  \"properties\": {\"metric\": {\"data\": {\"attributes\": {\"name\": \"decoy\"}}}, \"unique_id\": \"decoy\"},\n"
        "  \"metric\": {\"data\": {\"type\": \"metric\", \"attributes\": {\"name\": \"Esc\\\"aped \\u00e9\"}}}\n} } }",
        "{\"data\":{\"attributes\":{\"metric\":{\"data\":{\"attributes\":{\"name\":\"No Id\"}}},\"properties\":[1,{\"a\":\"}\"}]}}}",
        "{\"data\":{\"attributes\":{\"properties\":{}}}}",
        "{\"data\":{\"type\":\"profile\",\"attributes\":{\"email\":\"a@x.com\"}}}",
        "{}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        char bulk_key[512], expected[600], got[OUTBOX_DEDUP_MAX];
        int bulk_rc = bulk_event_key(bodies[i], strlen(bodies[i]), bulk_key, sizeof bulk_key);
        int rc = outbox_dedup_key("email:a@x.com", bodies[i], strlen(bodies[i]), got, sizeof got);
        assert_int_equal(rc, bulk_rc);
        if (rc != 0) continue;
        snprintf(expected, sizeof expected, "email:a@x.com\x1f%s", bulk_key);
        assert_string_equal(got, expected);
    }
}

/* A job short of full waits only while events keep coming and its oldest is young; no clock, set
 * back or another node's, holds it longer. */
static void waits_for_more_events_only_while_they_come_and_briefly(void **state) {
    (void)state;
    long long now = 1000000;
    assert_true(bulk_may_wait(now - 100, now - 10, now));                       /* young, growing */
    assert_true(bulk_may_wait(now - BULK_LINGER_MS + 1, now, now));
    assert_false(bulk_may_wait(now - BULK_LINGER_MS, now, now));                /* waited enough */
    assert_false(bulk_may_wait(now - 100, now - BULK_QUIET_MS, now));           /* nothing new came */
    assert_true(bulk_may_wait(now + 5, now + 5, now));      /* stored after the tick read its clock: waited 0 */
    assert_true(bulk_may_wait(now - 100, now + 5, now));
    assert_false(bulk_may_wait(now + 5000, now, now));                          /* oldest in the future */
    assert_false(bulk_may_wait(now - 100, now + 5000, now));                    /* newest in the future */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(groups_events_by_profile_in_order_with_attributes_unchanged),
        cmocka_unit_test(moves_meta_beside_the_profile_attributes),
        cmocka_unit_test(refuses_a_repeated_unique_id_and_a_changed_profile_until_the_next_job),
        cmocka_unit_test(finds_each_of_a_thousand_profiles_entries),
        cmocka_unit_test(stops_at_the_event_and_byte_limits),
        cmocka_unit_test(refuses_what_is_not_an_event_body),
        cmocka_unit_test(parts_kept_from_earlier_packings_change_nothing),
        cmocka_unit_test(blames_the_events_an_error_pointer_names),
        cmocka_unit_test(keys_an_event_by_metric_and_unique_id),
        cmocka_unit_test(the_dedup_key_is_the_profile_and_the_bulk_key),
        cmocka_unit_test(waits_for_more_events_only_while_they_come_and_briefly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
