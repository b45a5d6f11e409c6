/*
 * deliver.h: the outbox to Klaviyo, asynchronously, rate-limited, retried.
 */
#ifndef RF_DELIVER_H
#define RF_DELIVER_H

#include "config.h"
#include "ownership.h"
#include "strbuf.h"

typedef struct deliverer deliverer;

/* Starts the delivery thread: to Klaviyo for the tenants that have a key, to
 * DATA/dry/TENANT.ndjson for the others (dry.c); only the tenants `own` says this node holds (NULL:
 * every tenant). Returns NULL with err filled. */
deliverer *deliver_start(const config *cfg, ownership *own, char *err, size_t errlen);

/* Appends Prometheus text: requests delivered, retried, dead, by tenant and
 * status; paused tenants. Safe from any thread. */
void deliver_metrics(deliverer *d, strbuf *out);

/* Comma-separated ids of paused tenants ("" if none), for /healthz; the
 * caller frees it. */
char *deliver_paused(deliverer *d);

/* Lets requests in flight finish (up to a few seconds), then stops. */
void deliver_stop(deliverer *d);

#endif
