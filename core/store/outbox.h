/*
 * outbox.h: what a mapped event leaves in the store (serve's mapping threads and the batch jobs).
 */
#ifndef RF_OUTBOX_H
#define RF_OUTBOX_H

#include "mapper.h"
#include "store_db.h"
#include "strbuf.h"

typedef struct outbox_writer outbox_writer;

typedef struct outbox_target {
    const char *tenant;
    const char *version;          /* the scripts version that mapped it */
    const char *job;              /* a batch job's id (its rows, its held schedules), or NULL */
    int record_outcome;           /* update the event's row with the outcome (not for a replay) */
} outbox_target;

/* Prepared statements on db (one writer per connection); NULL (logged) if they cannot be. */
outbox_writer *outbox_writer_new(store_db *db);
void outbox_writer_free(outbox_writer *w);

/* Writes one result (inside the caller's transaction): requests, schedules, cancels, memory, and
 * the event's outcome. Returns 0, or -1 (roll back). */
int outbox_write(outbox_writer *w, const outbox_target *t, long long event_id, const map_result *r);

/* "profile\x1fmetric\x1funique_id" of an event request: Klaviyo keeps one event per such key, so a
 * row with it already delivered (or queued) from this data folder need not go again. -1: not an event. */
#define OUTBOX_DEDUP_MAX 1024
int outbox_dedup_key(const char *profile, const char *body, size_t len, char *out, size_t outlen);

#endif
