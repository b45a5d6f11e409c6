/*
 * event_counts.h: events mapped by this process, by tenant and outcome, for /metrics
 * (returnflow_events_total{tenant,outcome}) and the console's rates.
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

/* Appends the returnflow_events_total family (HELP, TYPE and one sample per tenant and outcome). */
void event_counts_metrics(strbuf *out);

#endif
