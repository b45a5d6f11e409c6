/*
 * process_metrics.h: the process_* families every Prometheus client library exports (CPU seconds,
 * resident and virtual memory, open and maximum file descriptors, start time) and
 * returnflow_build_info, so the usual dashboards and alerts work on returnflow unchanged.
 */
#ifndef RF_PROCESS_METRICS_H
#define RF_PROCESS_METRICS_H

#include "strbuf.h"

/* Appends the families, read from /proc/self at this call (Linux). A family whose file cannot be read
 * is left out rather than given a made-up value. */
void process_metrics(strbuf *out);

#endif
