/*
 * bench_transform.c: returnflow's transform path on one core, no I/O, measured
 * the way the anchors in bench/anchors measure theirs.
 *
 *     build/bench_transform [N [FIXTURE [SCRIPTS]]]
 *
 * Loads the scripts folder (default "scripts") with the default caps, reads
 * one Loop webhook (default fixtures/loop/return.created.json: run it from the
 * repository root), maps it a few hundred times to warm up, then maps
 * it N times and prints one line in the anchors' shape:
 *
 *     N events, X us/event, Y events/s/core (in A B, out B B)
 *
 * Time is CPU time of this process (CLOCK_PROCESS_CPUTIME_ID), like the Lua
 * anchor's os.clock. "out" is the bytes of the Klaviyo request bodies one event
 * produces (what the anchors' out counts: encoded bodies), summed over its
 * requests and scheduled requests; a second line, on stderr, says how many
 * bodies of each that is and how large the whole result document is.
 *
 * Every mapping must come back "mapped": a benchmark of events that failed or
 * were dropped would measure the wrong work, so any other status aborts the run
 * with the result document.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "mapper.h"

#define WARMUP 500

static double cpu_seconds(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) {
        perror("bench_transform: clock_gettime");
        exit(2);
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    strbuf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) strbuf_add(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) { strbuf_free(&b); return NULL; }
    strbuf_addc(&b, 0);                 /* mapper_map reads text[len] */
    *len = b.len - 1;
    return b.data;
}

/* Sums the sizes of the "body" values of the requests in doc[from, to) (each
 * request is {"method":..,"path":..,"headers":{..},"body":{..}}) and counts
 * them in *bodies. Skips over each body, so a "body" key inside one is not
 * counted again. */
static size_t body_bytes(const strbuf *doc, size_t from, size_t to, int *bodies) {
    static const char key[] = "\"body\":";
    size_t total = 0, at = from;
    *bodies = 0;
    while (at < to) {
        const char *p = memmem(doc->data + at, to - at, key, sizeof key - 1);
        if (!p) break;
        size_t start = (size_t)(p - doc->data) + sizeof key - 1, end;
        char err[128];
        if (json_value_end(doc->data + start, to - start, &end, err, sizeof err)) break;
        total += end;
        (*bodies)++;
        at = start + end;
    }
    return total;
}

/* The extent of the array after the top-level `key` of a result document
 * ({"input":..,"trigger":..,"status":..,"requests":[..],"scheduled":[..],..}),
 * searched from offset at: the first occurrence past the previous member is the
 * top-level one, since every value before "requests" is a string whose quotes
 * are escaped. Returns 0 and sets [*from, *to), or -1. */
static int doc_array(const strbuf *doc, size_t at, const char *key, size_t *from, size_t *to) {
    const char *p = at < doc->len ? memmem(doc->data + at, doc->len - at, key, strlen(key)) : NULL;
    if (!p) return -1;
    size_t start = (size_t)(p - doc->data) + strlen(key), end;
    char err[128];
    if (json_value_end(doc->data + start, doc->len - start, &end, err, sizeof err)) return -1;
    *from = start;
    *to = start + end;
    return 0;
}

static void check_mapped(map_status st, const strbuf *doc, long i) {
    if (st == MAP_MAPPED) return;
    fprintf(stderr, "bench_transform: event %ld was %s, not mapped; nothing measured:\n%.*s\n", i,
            map_status_names[st], (int)doc->len, doc->data);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc > 4 || (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))) {
        fprintf(stderr, "usage: %s [N [FIXTURE [SCRIPTS]]]\n", argv[0]);
        return 2;
    }
    char *end;
    long n = argc > 1 ? strtol(argv[1], &end, 10) : 100000;
    if (argc > 1 && (*end || n < 1)) {
        fprintf(stderr, "bench_transform: N must be a positive count, got '%s'\n", argv[1]);
        return 2;
    }
    const char *fixture = argc > 2 ? argv[2] : "fixtures/loop/return.created.json";

    mapper_config cfg = {0};
    cfg.scripts_dir = argc > 3 ? argv[3] : "scripts";
    cfg.caps.memory_bytes = SANDBOX_DEFAULT_MEMORY;
    cfg.caps.seconds = SANDBOX_DEFAULT_SECONDS;

    size_t len;
    char *text = read_file(fixture, &len);
    if (!text) {
        fprintf(stderr, "bench_transform: cannot read %s\n", fixture);
        return 2;
    }
    strbuf problems = {0};
    mapper *m = mapper_new(&cfg, &problems);
    if (!m) {
        fwrite(problems.data, 1, problems.len, stderr);
        fprintf(stderr, "bench_transform: the scripts in %s do not load\n", cfg.scripts_dir);
        return 2;
    }

    strbuf doc = {0};
    for (long i = 0; i < WARMUP; i++) {
        doc.len = 0;
        check_mapped(mapper_map(m, text, len, fixture, &doc), &doc, i);
    }
    int requests = 0, scheduled = 0;
    size_t out = 0, doc_len = doc.len, from = 0, to = 0;
    if (doc_array(&doc, 0, "\"requests\":", &from, &to) == 0) out += body_bytes(&doc, from, to, &requests);
    if (doc_array(&doc, to, "\"scheduled\":", &from, &to) == 0) out += body_bytes(&doc, from, to, &scheduled);

    size_t doc_total = 0;
    double t0 = cpu_seconds();
    for (long i = 0; i < n; i++) {
        doc.len = 0;
        map_status st = mapper_map(m, text, len, fixture, &doc);
        if (st != MAP_MAPPED) check_mapped(st, &doc, i);
        doc_total += doc.len;
    }
    double dt = cpu_seconds() - t0;
    if (doc_total != doc_len * (size_t)n)
        fprintf(stderr, "bench_transform: note: the result document's size varied between events\n");

    printf("%ld events, %.2f us/event, %.0f events/s/core (in %zu B, out %zu B)\n", n, dt / (double)n * 1e6,
           (double)n / dt, len, out);
    fprintf(stderr, "bench_transform: out is %d Klaviyo bodies per event (%d request%s, %d scheduled), %zu B; "
            "the whole result document (bodies, paths, headers, schedule keys) is %zu B\n", requests + scheduled,
            requests, requests == 1 ? "" : "s", scheduled, out, doc_len);
    mapper_free(m);
    strbuf_free(&doc);
    strbuf_free(&problems);
    free(text);
    return 0;
}
