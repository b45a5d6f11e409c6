/*
 * event_counts.h: events mapped by this process, by tenant and outcome, for /metrics
 * (returnflow_events_total{tenant,outcome}) and the console's rates, and how long a webhook waited
 * from its journaling to its mapping's commit (returnflow_mapping_seconds{tenant}).
 *
 * Why apart from the threads: a reload replaces the mapping threads (and may drop or add tenants),
 * never the counts: a Prometheus counter only goes up until the process restarts.
 */
#ifndef RF_EVENT_COUNTS_H
#define RF_EVENT_COUNTS_H

#include "mapper.h"
#include "strbuf.h"

/* Counts n events of a tenant with this outcome (any thread). */
void event_counts_add(const char *tenant, map_status outcome, unsigned long long n);

/* Counts n mapping latencies (seconds from journaled to committed) of a tenant (any thread). */
void event_counts_observe(const char *tenant, const double *seconds, int n);

/* Appends the returnflow_events_total and returnflow_mapping_seconds families (HELP, TYPE and one sample per tenant and outcome). */
void event_counts_metrics(strbuf *out);

#endif
