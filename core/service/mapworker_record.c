/*
 * mapworker_record.c: which tenants' mapping workers died, how often, why, and when.
 *
 * A worker dies with its reason in mapworker.c, on a mapping thread; /healthz and /metrics read
 * the record on the loop's thread, `returnflow status` from DATA/scripts/TENANT/worker.json in
 * another process. The record lives as long as the process, across reloads (a reload replaces
 * the workers, not their history). Invariant: every access holds record_mu.
 */
#include "mapworker.h"
#include "mapworker_record.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "log.h"

static const char *const cause_names[NCAUSES] = { "timeout", "crash", "protocol", "exit", "load" };

typedef struct record {
    char tenant[128];
    unsigned long long restarts[NCAUSES];
    char last[256];
    long long at;                      /* seconds since the epoch */
} record;

static pthread_mutex_t record_mu = PTHREAD_MUTEX_INITIALIZER;
static record *records;
static int nrecords;
static char *status_dir;

void mapworker_set_status_dir(const char *dir) {
    pthread_mutex_lock(&record_mu);
    free(status_dir);
    status_dir = dir ? strdup(dir) : NULL;
    pthread_mutex_unlock(&record_mu);
}

static void iso(long long t, char out[32]) {
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void record_json(const record *r, strbuf *b) {
    char at[32], n[32];
    unsigned long long total = 0;
    for (int c = 0; c < NCAUSES; c++) total += r->restarts[c];
    snprintf(n, sizeof n, "%llu", total);
    strbuf_adds(b, "{\"restarts\":");
    strbuf_adds(b, n);
    strbuf_adds(b, ",\"last\":");
    json_append_string(b, r->last, strlen(r->last));
    iso(r->at, at);
    strbuf_adds(b, ",\"at\":\"");
    strbuf_adds(b, at);
    strbuf_adds(b, "\"}");
}

void mapworker_record_death(const char *tenant, int cause, const char *reason) {
    pthread_mutex_lock(&record_mu);
    record *r = NULL;
    for (int i = 0; i < nrecords && !r; i++)
        if (strcmp(records[i].tenant, tenant) == 0) r = &records[i];
    if (!r) {
        record *more = realloc(records, (size_t)(nrecords + 1) * sizeof *records);
        if (!more) abort();
        records = more;
        r = &records[nrecords++];
        memset(r, 0, sizeof *r);
        snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
    }
    r->restarts[cause]++;
    snprintf(r->last, sizeof r->last, "%s", reason);
    r->at = (long long)time(NULL);
    if (status_dir) {                  /* DIR/TENANT/worker.json, replaced whole */
        char path[1024], tmp[1040];
        snprintf(path, sizeof path, "%s/%s/worker.json", status_dir, tenant);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        strbuf b = {0};
        record_json(r, &b);
        strbuf_addc(&b, '\n');
        FILE *f = fopen(tmp, "wb");
        if (f) {
            int ok = fwrite(b.data, 1, b.len, f) == b.len;
            ok = fclose(f) == 0 && ok;
            if (ok) rename(tmp, path);
        }
        strbuf_free(&b);
    }
    pthread_mutex_unlock(&record_mu);
    strbuf f = {0};
    strbuf_adds(&f, "\"tenant\":");
    json_append_string(&f, tenant, strlen(tenant));
    strbuf_adds(&f, ",\"cause\":\"");
    strbuf_adds(&f, cause_names[cause]);
    strbuf_adds(&f, "\",\"reason\":");
    json_append_string(&f, reason, strlen(reason));
    strbuf_addc(&f, 0);
    log_line("warn", "mapping worker replaced", f.data);
    strbuf_free(&f);
}

void mapworker_health(strbuf *json) {
    pthread_mutex_lock(&record_mu);
    if (nrecords) {
        strbuf_adds(json, ",\"workers\":{");
        for (int i = 0; i < nrecords; i++) {
            if (i) strbuf_addc(json, ',');
            json_append_string(json, records[i].tenant, strlen(records[i].tenant));
            strbuf_addc(json, ':');
            record_json(&records[i], json);
        }
        strbuf_addc(json, '}');
    }
    pthread_mutex_unlock(&record_mu);
}

void mapworker_metrics(strbuf *out) {
    strbuf_adds(out, "# HELP returnflow_worker_restarts_total Mapping workers replaced, by tenant and cause.\n"
                     "# TYPE returnflow_worker_restarts_total counter\n");
    pthread_mutex_lock(&record_mu);
    for (int i = 0; i < nrecords; i++)
        for (int c = 0; c < NCAUSES; c++) {
            char line[256];
            snprintf(line, sizeof line, "returnflow_worker_restarts_total{tenant=\"%s\",cause=\"%s\"} %llu\n",
                     records[i].tenant, cause_names[c], records[i].restarts[c]);
            strbuf_adds(out, line);
        }
    pthread_mutex_unlock(&record_mu);
}

