/*
 * event_counts.c: events mapped by tenant and outcome (event_counts.h), a small table behind one
 * mutex: the mapping threads add once per committed batch, /metrics reads it a few times a minute.
 *
 * Tenants are only ever added (one a tenant the config named while the process ran), so a tenant
 * dropped by a reload keeps its samples: its counters neither vanish nor restart at 0.
 */
#include "event_counts.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define OUTCOMES 4
#define BUCKETS 9

/* The upper bounds (s) of the mapping latency's buckets: a healthy service maps in milliseconds; a
 * backlog (a slow script, a store that refused writes) shows in the upper ones. */
static const double bounds[BUCKETS] = { 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300, 3600 };

typedef struct tenant_counts {
    char tenant[128];
    unsigned long long n[OUTCOMES];   /* by map_status */
    unsigned long long latency[BUCKETS + 1];
    double latency_sum;
} tenant_counts;

static pthread_mutex_t counts_mu = PTHREAD_MUTEX_INITIALIZER;
static tenant_counts *counts;
static int ncounts;

/* By map_status (mapper.h). */
static const char *const outcome_names[OUTCOMES] = { "mapped", "dropped", "failed", "deferred" };
_Static_assert(MAP_MAPPED == 0 && MAP_DROPPED == 1 && MAP_FAILED == 2 && MAP_DEFERRED == 3, "outcome_names order");

/* The tenant's counts, added on first use; the caller holds counts_mu. */
static tenant_counts *counts_of(const char *tenant) {
    int i = 0;
    while (i < ncounts && strcmp(counts[i].tenant, tenant) != 0) i++;
    if (i == ncounts) {
        tenant_counts *grown = realloc(counts, (size_t)(ncounts + 1) * sizeof *counts);
        if (!grown) { fputs("returnflow: out of memory\n", stderr); abort(); }
        counts = grown;
        memset(&counts[i], 0, sizeof counts[i]);
        snprintf(counts[i].tenant, sizeof counts[i].tenant, "%s", tenant);
        ncounts++;
    }
    return &counts[i];
}

void event_counts_add(const char *tenant, map_status outcome, unsigned long long n) {
    if ((int)outcome < 0 || outcome >= OUTCOMES || n == 0) return;
    pthread_mutex_lock(&counts_mu);
    counts_of(tenant)->n[outcome] += n;
    pthread_mutex_unlock(&counts_mu);
}

void event_counts_observe(const char *tenant, const double *seconds, int n) {
    if (n <= 0) return;
    pthread_mutex_lock(&counts_mu);
    tenant_counts *c = counts_of(tenant);
    for (int i = 0; i < n; i++) {
        double s = seconds[i] > 0 ? seconds[i] : 0;
        int b = 0;
        while (b < BUCKETS && s > bounds[b]) b++;
        c->latency[b]++;
        c->latency_sum += s;
    }
    pthread_mutex_unlock(&counts_mu);
}

void event_counts_metrics(strbuf *out) {
    strbuf_adds(out, "# HELP returnflow_events_total Events mapped, by tenant and outcome.\n"
                     "# TYPE returnflow_events_total counter\n");
    pthread_mutex_lock(&counts_mu);
    for (int i = 0; i < ncounts; i++)
        for (int o = 0; o < OUTCOMES; o++) {
            char line[256];
            snprintf(line, sizeof line, "returnflow_events_total{tenant=\"%s\",outcome=\"%s\"} %llu\n",
                     counts[i].tenant, outcome_names[o], counts[i].n[o]);
            strbuf_adds(out, line);
        }
    strbuf_adds(out, "# HELP returnflow_mapping_seconds Time from a webhook's journaling to its mapping's commit, by tenant.\n"
                     "# TYPE returnflow_mapping_seconds histogram\n");
    for (int i = 0; i < ncounts; i++) {
        char line[640];
        unsigned long long cum = 0;
        for (int b = 0; b < BUCKETS; b++) {
            cum += counts[i].latency[b];
            snprintf(line, sizeof line, "returnflow_mapping_seconds_bucket{tenant=\"%s\",le=\"%g\"} %llu\n",
                     counts[i].tenant, bounds[b], cum);
            strbuf_adds(out, line);
        }
        cum += counts[i].latency[BUCKETS];
        snprintf(line, sizeof line, "returnflow_mapping_seconds_bucket{tenant=\"%s\",le=\"+Inf\"} %llu\n"
                 "returnflow_mapping_seconds_sum{tenant=\"%s\"} %.3f\nreturnflow_mapping_seconds_count{tenant=\"%s\"} %llu\n",
                 counts[i].tenant, cum, counts[i].tenant, counts[i].latency_sum, counts[i].tenant, cum);
        strbuf_adds(out, line);
    }
    pthread_mutex_unlock(&counts_mu);
}
