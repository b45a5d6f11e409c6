/*
 * trace.h: one return followed end to end, read from the store: every webhook received for it, what
 * each mapping did (scripts version, state, reason), every Klaviyo request it produced (attempts,
 * Klaviyo's last answer, delivered or dead), its schedules (pending, cancelled, fired) and the memory
 * keys that name it. `returnflow trace` prints it; the console shows it.
 *
 * Why here and not in the store: a return is a Loop notion (the id of a return, a label, a restock;
 * the customer's email), read from the raw webhooks; the store only finds candidate rows
 * (store_db.h, "trace"), on any backend.
 */
#ifndef RF_TRACE_H
#define RF_TRACE_H

#include <stdio.h>

#include "store_db.h"
#include "strbuf.h"

typedef enum trace_kind {
    TRACE_GUESS,                  /* an email if it has '@', an event if "event:N", else a return id */
    TRACE_RETURN,
    TRACE_EVENT,                  /* a journal id (the 202's "id") */
    TRACE_EMAIL,
} trace_kind;

typedef struct trace trace;

/* Reads the trace of value (of kind) among one tenant's events (tenant NULL: every tenant). NULL with
 * err filled when the store cannot be read; a trace with no events when nothing matched. */
trace *trace_read(store_db *db, const char *tenant, trace_kind kind, const char *value, char *err, size_t errlen);
void trace_free(trace *t);

/* How many webhooks it found. */
int trace_events(const trace *t);

/* The trace as one JSON object: {query, returns, emails, events: [{..., requests, schedules}],
 * memory}; docs/trace.md describes every field. */
void trace_json(const trace *t, strbuf *out);

/* The trace as a timeline for people, one line an event or request. */
void trace_print(const trace *t, FILE *f);

#endif
