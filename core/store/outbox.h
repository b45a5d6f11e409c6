/*
 * outbox.h: what a mapped event leaves in the store (serve's mapping threads and the batch jobs).
 */
#ifndef RF_OUTBOX_H
#define RF_OUTBOX_H

#include <sqlite3.h>

#include "config.h"
#include "mapper.h"
#include "strbuf.h"

typedef struct outbox_writer outbox_writer;

typedef struct outbox_target {
    const char *tenant;
    const char *version;          /* the scripts version that mapped it */
    const char *job;              /* a batch job's id (its rows, its held schedules), or NULL */
    int record_outcome;           /* update the event's row with the outcome (not for a replay) */
} outbox_target;

/* Prepared statements on db (one writer per connection). */
outbox_writer *outbox_writer_new(sqlite3 *db);
void outbox_writer_free(outbox_writer *w);

/* Writes one result (inside the caller's transaction): requests, schedules, cancels, memory, and
 * the event's outcome. Returns 0, or -1 (roll back). */
int outbox_write(outbox_writer *w, const outbox_target *t, long long event_id, const map_result *r);

/* Moves up to OUTBOX_FIRE_CHUNK of a tenant's due schedules, other than those a job holds, into its
 * outbox (its own transaction). Returns how many, or -1. */
#define OUTBOX_FIRE_CHUNK 10000
int outbox_fire_schedules(sqlite3 *db, const char *tenant);

/* A dry tenant: up to 1000 queued requests appended to DATA/dry/TENANT.ndjson, then delivered.
 * Returns how many, or -1. */
int outbox_write_dry(sqlite3 *db, const char *data_dir, const tenant_config *tc);

/* out:recall from the store: the JSON text appended to out; 1 found, 0 not. */
int outbox_recall(sqlite3 *db, const char *tenant, const char *key, size_t klen, strbuf *out);

/* "profile\x1fmetric\x1funique_id" of an event request: Klaviyo keeps one event per such key, so a
 * row with it already delivered (or queued) from this data folder need not go again. -1: not an event. */
#define OUTBOX_DEDUP_MAX 1024
int outbox_dedup_key(const char *profile, const char *body, size_t len, char *out, size_t outlen);

long long outbox_now_ms(void);
long long outbox_iso_ms(const char *iso);          /* -1 if it is not an ISO 8601 time */
void outbox_log_error(const char *what, sqlite3 *db);

#endif
