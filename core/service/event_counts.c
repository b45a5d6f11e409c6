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

typedef struct tenant_counts {
    char tenant[128];
    unsigned long long n[OUTCOMES];   /* by map_status */
} tenant_counts;

static pthread_mutex_t counts_mu = PTHREAD_MUTEX_INITIALIZER;
static tenant_counts *counts;
static int ncounts;

/* By map_status (mapper.h). */
static const char *const outcome_names[OUTCOMES] = { "mapped", "dropped", "failed", "deferred" };
_Static_assert(MAP_MAPPED == 0 && MAP_DROPPED == 1 && MAP_FAILED == 2 && MAP_DEFERRED == 3, "outcome_names order");

void event_counts_add(const char *tenant, map_status outcome, unsigned long long n) {
    if ((int)outcome < 0 || outcome >= OUTCOMES || n == 0) return;
    pthread_mutex_lock(&counts_mu);
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
    counts[i].n[outcome] += n;
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
    pthread_mutex_unlock(&counts_mu);
}
