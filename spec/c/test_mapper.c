/*
 * test_mapper.c: the mapper keeps an event's buffers (its requests, scheduled requests, cancels,
 * reason, ...) for the next event, emptied; these tests pin down that nothing of one event shows in
 * the next: a small event after a large one, and after a failed one, maps byte for byte as it does
 * in a mapper that never saw them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mapper.h"

/* A handler that tracks one event with a list of ev.n names and schedules and cancels one by its
 * id; ev.fail makes it fail after all that. */
static const char script[] =
    "return { ['return.created'] = function(ev, out)\n"
    "  local names = {}\n"
    "  for i = 1, ev.n do names[i] = 'item ' .. i .. ' of return ' .. ev.id end\n"
    "  out:identify { email = ev.customer }\n"
    "  out:track('Loop Return Created', { names = names }, { time = ev.created_at })\n"
    "  out:schedule('expiring:' .. ev.id, 86400, 'Loop Return Expiring', { n = ev.n })\n"
    "  out:cancel('old:' .. ev.id)\n"
    "  if ev.fail then error('failed on purpose after ' .. ev.n .. ' names') end\n"
    "end }\n";

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rf-test-mapper-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/10-test.lua", f->dir);
    FILE *out = fopen(path, "w");
    if (!out) return -1;
    fputs(script, out);
    fclose(out);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/10-test.lua", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static mapper *new_mapper(const fixture *f) {
    mapper_config cfg = { .scripts_dir = f->dir, .tenant = "t", .caps = { .memory_bytes = 32u << 20, .seconds = 5 } };
    strbuf problems = {0};
    mapper *m = mapper_new(&cfg, &problems);
    if (!m) fail_msg("mapper_new: %s", problems.data ? problems.data : "?");
    strbuf_free(&problems);
    return m;
}

/* The event text: id, n names, and a fail flag. */
static void event(char *buf, size_t size, int id, int n, int fail) {
    snprintf(buf, size,
             "{\"trigger\":\"return.created\",\"topic\":\"return\",\"id\":%d,\"n\":%d,\"fail\":%s,"
             "\"customer\":\"c%d@example.com\",\"created_at\":\"2026-10-02T14:21:07+00:00\"}",
             id, n, fail ? "true" : "false", id);
}

/* Maps the event in m; returns the document (the caller frees it). */
static char *map(mapper *m, int id, int n, int fail, map_status want) {
    char text[512];
    event(text, sizeof text, id, n, fail);
    strbuf doc = {0};
    assert_int_equal(mapper_map(m, text, strlen(text), "e", &doc), want);
    strbuf_addc(&doc, 0);
    return doc.data;
}

static void a_small_event_after_a_large_and_a_failed_one_maps_as_in_a_new_mapper(void **state) {
    fixture *f = *state;
    mapper *fresh = new_mapper(f);
    char *want = map(fresh, 7, 2, 0, MAP_MAPPED);
    mapper_free(fresh);

    mapper *m = new_mapper(f);
    free(map(m, 1, 3000, 0, MAP_MAPPED));                 /* large: its buffers grow */
    char *failed = map(m, 2, 500, 1, MAP_FAILED);        /* fails after tracking: nothing of it is kept */
    assert_non_null(strstr(failed, "failed on purpose after 500 names"));
    assert_null(strstr(failed, "item 1 of return 2"));
    assert_null(strstr(failed, "expiring:2"));
    free(failed);
    char *got = map(m, 7, 2, 0, MAP_MAPPED);
    assert_string_equal(got, want);
    free(got);
    mapper_free(m);
    free(want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_small_event_after_a_large_and_a_failed_one_maps_as_in_a_new_mapper,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
