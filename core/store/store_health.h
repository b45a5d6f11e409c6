/*
 * store_health.h: whether the store takes writes and reads, as the parts of the service that use it
 * last found it, for /healthz, /metrics, the log and `returnflow status`.
 *
 * Why one place: a full disk or a damaged file is one fact about the store, seen first by whichever
 * part touches it (the journal writer, a mapping thread, delivery); each part reports what its own
 * writes and reads did, and the service is degraded while any part's last try failed. A part that
 * fails keeps its work and tries again (the journal answers 503, mapping leaves its events journaled,
 * delivery keeps its answers in memory and sends nothing new), so its next success clears it:
 * the service is ready again by itself. Damage is different: it never clears while the process runs
 * (the file must be checked and recovered: docs/operations.md).
 *
 * The log says what failed once per change of a part's state, never per row. Process-wide and
 * thread-safe; nothing here touches the store itself.
 */
#ifndef RF_STORE_HEALTH_H
#define RF_STORE_HEALTH_H

#include <stddef.h>

#include "store_db.h"
#include "strbuf.h"

typedef enum store_part { STORE_PART_JOURNAL, STORE_PART_MAPPING, STORE_PART_DELIVERY, STORE_PARTS } store_part;

typedef enum store_health_state {
    STORE_READY = 0,
    STORE_DEGRADED,               /* a part's writes or reads were refused: it retries */
    STORE_DAMAGED,                /* the file is damaged: until a restart after recovery */
} store_health_state;

/* A part's try failed (fault: store_db_fault; why: the store's words), or succeeded. */
void store_health_failed(store_part part, store_fault fault, const char *why);
void store_health_ok(store_part part);

/* The service's state, and its reason ("" when ready): "delivery: the disk is full (database or
 * disk is full)". */
store_health_state store_health_get(char *why, size_t len);

/* "ready", "degraded", "damaged". */
const char *store_health_name(store_health_state s);

/* Prometheus text: returnflow_store_degraded and returnflow_store_damaged (gauges, 0 or 1), and
 * returnflow_store_failures_total{part} (a counter of state changes to failing). */
void store_health_metrics(strbuf *out);

/* Each change is also written to this file (the state's name, then the reason, a line each), for
 * `returnflow status`; NULL: none. Writes the state at once. */
void store_health_set_file(const char *path);

/* What the file says (returnflow status): 1 and the state's name and reason, 0 when there is none. */
int store_health_read_file(const char *path, char *state, size_t slen, char *reason, size_t rlen);

#endif
