/*
 * bulk.h: EventCreateQueryV2 bodies packed into one events-bulk-create job (POST /api/event-bulk-create-jobs),
 * or one profile's into one POST /client/event-bulk-create (EventsBulkCreateQuery).
 */
#ifndef RF_BULK_H
#define RF_BULK_H

#include <stddef.h>

#define BULK_MAX_EVENTS 1000                  /* Klaviyo's limit per request */
#define BULK_MAX_BYTES (5u * 1000 * 1000)     /* Klaviyo's 5 MB, counted as it counts */

enum {
    BULK_ADDED = 0,
    BULK_FULL,                /* the job is full: send it, then start another */
    BULK_PROFILE_CHANGED,     /* the profile's entry has other attributes: this event waits */
    BULK_DUPLICATE,           /* its profile already has this metric and unique_id here: it waits */
    BULK_NOT_EVENT = -1,      /* not a single-event body: send it alone */
};

#define BULK_LINGER_MS 2000                   /* a job short of full waits at most this long for more */
#define BULK_QUIET_MS 500                     /* ... and only while events came in the last this long */

typedef struct bulk_job bulk_job;

/* What jobs read from event bodies, kept by outbox row id (each checked against its body) for the
 * next job that packs the same rows: a backlog's job is packed again at each scan while it waits to
 * fill. One per deliverer; at most a few thousand bodies. */
typedef struct bulk_parts bulk_parts;
bulk_parts *bulk_parts_new(void);
void bulk_parts_free(bulk_parts *c);

/* May a job short of full wait for more events? Its oldest event was queued at `oldest`, the newest
 * event queued of all at `newest`, it is `now` (ms, one clock): yes while events keep coming and its
 * oldest is younger than BULK_LINGER_MS; an age outside [0, bound) never waits. */
int bulk_may_wait(long long oldest, long long newest, long long now);

/* A job of at most max_events (0: 1000) and max_bytes (0: 5 MB). */
bulk_job *bulk_new(int max_events, size_t max_bytes);

/* One profile's events for POST /client/event-bulk-create (a public key): a second profile is
 * BULK_PROFILE_CHANGED; the body is {"data": one entry}; pointers are read from /data. */
bulk_job *bulk_new_client(void);
void bulk_reset(bulk_job *b);
void bulk_free(bulk_job *b);

/* Packing reads bodies through c (kept by the caller, it outlives the job; NULL: none). */
void bulk_set_parts(bulk_job *b, bulk_parts *c);

/* Adds one event body (its outbox id and profile key); see the codes above. */
int bulk_add(bulk_job *b, long long id, const char *profile_key, const char *body, size_t len);

/* The events added, in the order they appear in the body. */
int bulk_count(const bulk_job *b);
long long bulk_id(const bulk_job *b, int i);
const char *bulk_profile(const bulk_job *b, int i);     /* the profile key it was added with */

/* The request body; valid until the next call that changes the job. */
const char *bulk_body(bulk_job *b, size_t *len);

/* After bulk_body: the body, now the caller's to free; the job keeps only its ids, profiles and
 * shape (what bulk_blamed and bulk_profile need), so a job in flight holds one copy of its events. */
char *bulk_take_body(bulk_job *b);

/* The events (indexes, 0 .. bulk_count) an error's source.pointer blames: one event, or all of one
 * profile's entry; 0 when it points nowhere in particular. */
int bulk_blamed(const bulk_job *b, const char *pointer, int *events, int max);

/* "metric\x1funique_id" of an event body, the pair Klaviyo keeps once per profile; -1 if not an event. */
int bulk_event_key(const char *body, size_t len, char *out, size_t outlen);

#endif
