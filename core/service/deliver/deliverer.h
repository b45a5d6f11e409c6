/*
 * deliverer.h: the delivery thread's state, shared by the parts of core/service/deliver/ only
 * (deliver.c the lifecycle, scan.c what may start, finish.c what an answer does, curl_uv.c the
 * libcurl <-> libuv glue). Nothing outside this folder includes it.
 *
 * Invariant: everything here is touched by the delivery thread alone, except the counters and the
 * pause flags, which metrics read under `mu`.
 */
#ifndef RF_DELIVERER_H
#define RF_DELIVERER_H

#include <curl/curl.h>
#include <pthread.h>
#include <uv.h>

#include "bulk.h"
#include "config.h"
#include "deliver.h"
#include "ownership.h"
#include "strmap.h"
#include "rate.h"
#include "store_db.h"
#include "strbuf.h"

#define MAX_IN_FLIGHT 32              /* per tenant */
#define MAX_BULK_IN_FLIGHT 8          /* of those, bulk jobs: each holds up to 5 MB until answered */
#define SCAN_LIMIT 2000               /* queued rows looked at per tenant per tick */
#define BULK_THRESHOLD 100            /* queued requests that turn a tenant's events to bulk */
#define BULK_OFF_MS 60000             /* after a bulk refusal that blames no item: singles for a while */
#define LATENCY_BUCKETS 8

typedef struct tenant_state {
    const tenant_config *tc;
    rate_limits rate;
    int in_flight;
    long long epoch;                  /* the lease's, as of this tick's scan (ownership.h) */
    int paused;
    char paused_reason[160];
    unsigned long long delivered, retried, dead;
    long long queued;                 /* queued or in flight: the store's count (queue_counts) */
    long long bulk_off_until;         /* monotonic ms, as every timer of this process */
    unsigned long long bulk_jobs;
    int bulk_in_flight;
    int idle;                         /* the last scan could send nothing (scan.c's still_idle) */
    long long idle_queued, idle_until; /* ... with this many queued, until this row's retry time (ms) */
    long long idle_last_id;           /* ... the last row it read, of idle_read rows: SCAN_LIMIT when */
    int idle_read;                    /*     the backlog went past what a scan reads */
    unsigned long long idle_freed;    /* ... and d->freed then */
    struct { int cls; long status; unsigned long long n; } answers[32];   /* by endpoint and status */
    int nanswers;
    unsigned long long latency[LATENCY_BUCKETS + 1];   /* delivered requests, by seconds queued */
    unsigned long long latency_sum_ms;                 /* their time queued, summed (the histogram's _sum) */
} tenant_state;

/* One request in flight: a single row, or a bulk job of many. */
typedef struct sending {
    struct sending *prev, *next;      /* the deliverer's list of requests in flight */
    CURL *easy;
    struct deliverer *d;
    tenant_state *ts;
    long long id, created_at;
    int attempts;
    rate_class cls;
    long long seq[2];                 /* its take numbers in the class's windows (rate_answered) */
    char *profile;
    char *body;
    size_t body_len;
    bulk_job *bulk;                   /* a bulk job: its events' ids, profiles and pointers */
    char **profiles;                  /* a bulk job's profiles, busy until it is answered */
    long long *created;               /* a bulk job's rows' queue times */
    int *row_attempts;                /* a bulk job's rows' attempts so far (each row's own backoff) */
    int nprofiles;
    struct curl_slist *headers;
    strbuf response;
    char content_type[64];
    char retry_after[32];
    char error[CURL_ERROR_SIZE];
} sending;

struct deliverer {
    const config *cfg;
    ownership *own;                   /* which tenants this node delivers (NULL: all) */
    pthread_t tid;
    uv_loop_t loop;
    uv_timer_t curl_timer, tick;
    uv_async_t stop_async;
    CURLM *multi;
    store_db *db;
    tenant_state *tenants;
    int ntenants;
    unsigned long long freed;         /* requests answered or given back: a profile or a slot is free */
    const tenant_config **dry;        /* tenants without a key: their requests go to a file (dry.c) */
    int ndry;
    strmap *busy_profiles;            /* profiles with a request in flight */
    sending *in_flight;
    pthread_mutex_t mu;               /* guards the counters and pause flags for metrics */
    int stopping;
    long long stop_deadline;
    int lock_fd, locked;              /* DATA/delivery.lock, held while this one delivers */
    int said_waiting;
    bulk_job *packing;                /* the job being filled by a scan */
    bulk_parts *parts;                /* what packing read from bodies, kept for the next scans (bulk.h) */
    sending *starting;                /* chosen by a scan, not yet sent: sent once marked in flight */
    struct settle *settles;           /* answers not yet committed to the store (settle.c) */
    int nsettles, settles_cap;
    int store_down;                   /* the store refused a write (or a read): nothing new is sent */
    int down_on_read;                 /* ... and it was a read */
    int store_tries;
    long long store_retry_at;
    int rate_save_failed;             /* DATA/delivery.rate could not be written (logged once) */
};

/* The upper bounds (s) of the delivery latency histogram's buckets. */
extern const double deliver_latency_bounds[LATENCY_BUCKETS];

/* deliver.c: looks for more work at once (an answer freed a slot); reads the queue depths. */
void deliver_kick(deliverer *d);
void deliver_read_depths(deliverer *d);

/* scan.c: chooses what may start now for one tenant (d->starting; deliver_launch sends it). now is
 * the wall clock (rows' next_at), mono the monotonic one (rate windows). 0, or -1 when the store
 * could not be read. */
int deliver_scan(deliverer *d, tenant_state *ts, long long now, long long mono);

/* finish.c: what an answer (or its absence: rc) does to the rows and the counters. */
void deliver_finish(deliverer *d, sending *s, CURLcode rc, long status);

/* settle.c: delivery sends nothing it could not record, and forgets no answer it had. */
void deliver_settle(deliverer *d, long long id, const store_outcome *o);   /* kept until committed */
int deliver_flush(deliverer *d);                  /* commits what is kept: 0, or -1 (kept; the store is down) */
void deliver_launch(deliverer *d);                /* marks the chosen requests in flight, then sends them */
int deliver_store_may_try(deliverer *d, long long mono);  /* 0 while a down store's next try is not due */
void deliver_store_failed(deliverer *d, int on_read, const char *what);
void deliver_store_worked(deliverer *d, int wrote);
void deliver_settles_free(deliverer *d);          /* what is still kept, at the end */

/* rate_keep.c: the rate windows outlive the deliverer (SIGHUP's next one, the next process). */
void rate_keep_save(deliverer *d);                /* to DATA/delivery.rate, before requests leave */
void rate_keep_restore(deliverer *d);             /* on taking the lock: what the last deliverer spent */
void rate_keep_stop(deliverer *d);                /* at the end of the thread: on file, and in the process */

/* curl_uv.c: the glue. */
void deliver_glue_init(deliverer *d);                     /* the multi handle's socket and timer callbacks */
struct curl_slist *deliver_headers(const tenant_config *tc);   /* with the key, if any */
void deliver_prepare_request(deliverer *d, sending *s, const char *url);   /* built, not yet sent */
void deliver_start_request(deliverer *d, sending *s);     /* into the multi handle: on its way */
void deliver_release(deliverer *d, sending *s);           /* out of the multi handle, freed */
void deliver_free_sending(sending *s);                    /* one never sent, freed */
void deliver_poll_now(deliverer *d);                      /* curl's timeouts now, then the answers */

#endif
