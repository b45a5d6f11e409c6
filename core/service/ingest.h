/*
 * ingest.h: the HTTP side of `serve`: Loop's webhooks in, 202 once durable.
 */
#ifndef RF_INGEST_H
#define RF_INGEST_H

#include <uv.h>
#include "config.h"
#include "store.h"
#include "strbuf.h"

typedef struct ingest ingest;

/* Binds cfg->listen and starts accepting. `health` writes the /healthz JSON
 * body and returns its status (200 ready, 503 not); `metrics` appends
 * Prometheus text for /metrics. Either may be NULL. On failure it returns NULL
 * with err filled; a handle it opened is closing, so the caller runs the loop
 * once more before closing it. */
ingest *ingest_start(uv_loop_t *loop, const config *cfg, store *st,
                     int (*health)(void *ud, strbuf *body), void (*metrics)(void *ud, strbuf *out), void *ud,
                     char *err, size_t errlen);

/* The address actually bound ("127.0.0.1:40123"; useful with port 0). */
const char *ingest_address(const ingest *in);

/* The returnflow_webhooks_total family (Prometheus text), safe from any thread (the console's). */
void ingest_counters(const ingest *in, strbuf *out);

/* Uses cfg from the next request on (call on the loop's thread; the listen
 * address stays as bound). */
void ingest_set_config(ingest *in, const config *cfg);

/* Serves one connection already open on fd, as if accepted (the fuzz target, spec/fuzz/fuzz_ingest.c,
 * feeds it a socketpair's end). Returns 0, or a libuv error with fd left to the caller. */
int ingest_adopt(ingest *in, uv_os_sock_t fd);

/* Stops accepting and closes every connection once its answer is written;
 * done runs when every handle is closed. */
void ingest_stop(ingest *in, void (*done)(void *ud), void *ud);

#endif
