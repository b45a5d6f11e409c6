/*
 * mapworker.h: a tenant's mapper, run in a supervised worker process (mapworker_child.c).
 *
 * The same seam as mapper.h: load a scripts folder, map events, read structured results. The
 * scripts run in a child process that holds no secret and cannot open a socket or write a file;
 * this side keeps a wall-clock watchdog on every load and event, kills and replaces a worker that
 * overruns or dies, and validates everything the worker sends back.
 *
 * A mapworker is used by one thread at a time. The worker process dies with the thread that
 * started it (PR_SET_PDEATHSIG): start it on a thread that outlives its use (serve: the main
 * thread, libuv's pool, or the mapping thread that owns it).
 */
#ifndef RF_MAPWORKER_H
#define RF_MAPWORKER_H

#include "mapper.h"
#include "strbuf.h"

typedef struct mapworker mapworker;

/* Extra wall-clock time over a tenant's CPU cap before its worker is killed: the cap again plus
 * one second (0.5 s cap: killed at 2 s). Loading a folder is watched the same way, in total. */
#define MAPWORKER_MARGIN_MS 1000
#define MAPWORKER_LOAD_MS 10000
/* An event that took down a worker this many times is failed without being tried again. */
#define MAPWORKER_STRIKES 2

/* Starts a worker and loads cfg's scripts in it. Returns NULL with every problem appended to
 * problems ("file:line: message" lines, or "worker killed: ..." for a load that hung or crashed). */
mapworker *mapworker_new(const mapper_config *cfg, strbuf *problems);
void mapworker_free(mapworker *w);

/* Where out:recall looks when the worker's own cache misses (the parent's store). */
void mapworker_set_recall(mapworker *w, int (*fallback)(void *ud, const char *key, size_t klen, strbuf *out), void *ud);

/* Asked after each result of a batch: nonzero stops the batch there (mapworker_map_batch returns the
 * results so far, k < n, the last of them a good one) and ends the worker, whose channel still holds
 * the rest; a new one maps them on the next call. A reload takes over within one event so. */
void mapworker_set_interrupt(mapworker *w, int (*interrupt)(void *ud), void *ud);

/* The caller may map a batch before the one before it is stored (serve's mapping threads, a batch
 * job's mapping thread): the worker's recall cache is dropped before each batch, so each value a
 * batch reads from outside its own events is asked of the recall callback, and a caller sees every
 * one. Unshared, the cache lasts from batch to batch (dropped past a bound): each batch must be
 * stored before the next is mapped. */
void mapworker_set_shared(mapworker *w, int shared);

/* From a recall callback: the index in the batch of the event being mapped. */
int mapworker_event_in_hand(const mapworker *w);

typedef struct mapworker_event {
    long long id;                      /* the journal's id (0: none), for the strike count */
    const char *text;
    size_t len;
    const char *label;
} mapworker_event;

/* Maps events[0..n) in order, in as few round trips as fit. Returns k, the events with a result
 * (results 0..k-1, valid until the next call): k < n when a worker died or was killed on event
 * k-1 (its result says why: "worker killed: 500 ms cap exceeded"), or the interrupt stopped the
 * batch after event k-1, and the rest were not mapped;
 * map them in another call once what came before is stored. Returns -1 if no worker runs (its
 * restart waits out a back-off, or the scripts no longer load): try again later. With want_doc,
 * mapworker_doc gives each event's document as mapper_map writes it. */
int mapworker_map_batch(mapworker *w, const mapworker_event *events, int n, int want_doc);
const map_result *mapworker_result(const mapworker *w, int i);
const char *mapworker_doc(const mapworker *w, int i, size_t *len);

/* One event, as mapper_map: appends its document to doc (if not NULL) and returns its status.
 * Never fails as a whole; a worker that cannot run fails the event with the reason. */
map_status mapworker_map(mapworker *w, const char *text, size_t len, const char *label, strbuf *doc);
const map_result *mapworker_last(const mapworker *w);

void mapworker_counts(const mapworker *w, int *files, int *handlers);

/* Process-wide, by tenant: worker restarts by cause (timeout, crash, protocol, exit, load) and
 * the last one's reason. Health appends ,"workers":{...} when any tenant had one; metrics the
 * returnflow_worker_restarts_total counter. status_dir set: each death is also written to
 * DIR/TENANT/worker.json for `returnflow status`. */
void mapworker_health(strbuf *json);
void mapworker_metrics(strbuf *out);
void mapworker_set_status_dir(const char *dir);

#endif
