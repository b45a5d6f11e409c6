/*
 * dry.c: see dry.h. A line of the file is what deliver.c would send: method, path, the headers (the
 * key as "***"; a public-key tenant sends none) and the body, byte for byte.
 *
 * Invariant: a request reaches the file before its row is marked delivered, and the file is fsynced
 * first: a crash in between writes it twice, never loses it.
 */
#include "dry.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "log.h"

/* One line of the file per queued request; the id of the last, -1 if none, -2 if unreadable. */
static long long render(store_db *db, const tenant_config *tc, strbuf *out, int *n) {
    store_scan *scan = store_scan_queued(db, tc->id, DRY_CHUNK);
    if (!scan) return -2;
    store_request r;
    long long last = -1;
    int more;
    while ((more = store_scan_next(scan, &r)) > 0) {
        last = r.id;
        (*n)++;
        strbuf_adds(out, "{\"method\":");
        json_append_string(out, r.method, strlen(r.method));
        strbuf_adds(out, ",\"path\":");
        json_append_string(out, r.path, strlen(r.path));
        strbuf_adds(out, ",\"headers\":{\"Accept\":\"application/vnd.api+json\"");
        if (strcmp(tc->key_kind, "public") != 0) strbuf_adds(out, ",\"Authorization\":\"Klaviyo-API-Key ***\"");
        strbuf_adds(out, ",\"Content-Type\":\"application/vnd.api+json\",\"revision\":");
        json_append_string(out, tc->revision, strlen(tc->revision));
        strbuf_adds(out, "},\"body\":");
        strbuf_add(out, r.body, r.body_len);
        strbuf_adds(out, "}\n");
    }
    store_scan_end(scan);
    return more < 0 ? -2 : last;          /* a read that failed half-way writes nothing */
}

static int write_dry(store_db *db, const char *data_dir, const tenant_config *tc) {
    strbuf out = {0};
    int n = 0;
    long long last = render(db, tc, &out, &n);
    if (last < 0) { strbuf_free(&out); return last == -1 ? 0 : -1; }
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
    return store_mark_delivered_upto(db, tc->id, last) == 0 ? n : -1;
}

int dry_deliver(store_db *db, const char *data_dir, const tenant_config *tc) {
    if (store_begin(db) != 0) return -1;
    int n = write_dry(db, data_dir, tc);
    if (n < 0) {
        store_rollback(db);
        return -1;
    }
    if (store_commit(db) != 0) {
        store_log_error("cannot mark dry requests delivered", db);
        store_rollback(db);
        return -1;
    }
    return n;
}
