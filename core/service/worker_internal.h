/*
 * worker_internal.h: what the mapping threads (worker.c) and their batches (worker_batch.c) share.
 *
 * worker.c owns the threads, their store connections and their mapping workers; worker_batch.c
 * reads a tenant's batch, maps it (on every thread that is free, in chunks) and commits the chunks
 * in journal order. Nothing outside these two files includes this header.
 */
#ifndef RF_WORKER_INTERNAL_H
#define RF_WORKER_INTERNAL_H

#include <pthread.h>

#include "config.h"
#include "map_results.h"
#include "mapworker.h"
#include "outbox.h"
#include "ownership.h"
#include "store_db.h"

/* Events a tenant's pass reads from the journal. Between two batches the home thread reads the
 * next one and fires the tenant's due schedules while a helping thread has no chunk to take: with
 * 256, one tenant on two threads mapped 4,315 events/s against 4,991 with 1,024 (6 interleaved runs
 * each, 40,000 journaled events, workers = 2), and one thread alike. Its cost is memory held per
 * thread: the batch's bodies and results, ~10 MiB (peak RSS 38 -> 58 MiB, bench/serve.sh rss). */
#define BATCH 1024
enum { STOP_DRAIN = 1, STOP_NOW = 2 };  /* drain: one more pass; now: after the batch in hand */

struct thread;
struct chunk;
struct tenant_batch;

/* out:recall of one thread's worker for one tenant; log: the chunk being mapped, which notes each
 * key its events read from the store (NULL: nobody counts). */
typedef struct recall_ctx {
    struct thread *t;
    const char *tenant;
    mapworker *m;
    struct chunk *log;
    long long deadline;           /* monotonic ms: a helper's chunk stops after the event in hand (0: none) */
} recall_ctx;

typedef struct thread {
    struct workers *w;
    int index;
    pthread_t tid;
    store_db *db;
    outbox_writer *writer;        /* prepared statements on db */
    mapworker **mappers;          /* by tenant index: this thread's worker (NULL: none started yet) */
    char *home;                   /* by tenant index: this thread reads the tenant's journal */
    recall_ctx *recall;           /* by tenant index, for out:recall from the store */
    long long *epochs;            /* by tenant index: the lease's epoch of the last batch (0: none yet) */
    long long last_deferred_try;      /* these three: monotonic ms (a step of the wall clock */
    long long last_purge;             /* must not stop the chores for an hour) */
    long long last_pass;
    int failing;                  /* the store refused this thread's last write (1) or read (2) */
    map_results_view view;        /* room for one stored outcome at a time (worker_batch.c) */
} thread;

typedef struct workers {
    const config *cfg;
    ownership *own;               /* which tenants this node maps (NULL: all) */
    thread *threads;
    int n;
    pthread_mutex_t mu;
    pthread_cond_t cv;            /* wakes, stops, and every change of a batch's chunks */
    unsigned long long wakes;     /* bumped by workers_wake */
    int stopping;                 /* STOP_DRAIN or STOP_NOW once asked */
    struct tenant_batch *open;    /* batches with chunks no thread took yet (under mu) */
    int *eager;                   /* by tenant: batches left whose chunks are committed as soon as
                                     they are mapped (worker_batch.c; its home thread's alone) */
    long long *unsteady_until;    /* by tenant, monotonic ms: a worker of it died or stopped short;
                                     until then only its home thread maps it */
} workers;

/* This thread's mapping worker for the tenant, started on first use (on this thread: the worker
 * dies with the thread that started it). NULL if the scripts do not load. */
mapworker *worker_mapper(thread *t, int ti);

/* Maps a batch of the tenant's journaled events, in chunks that every free thread may take, and
 * commits the chunks in journal order; results equal those of mapping the batch in order on one
 * worker. Returns events whose state changed, BATCH when the rest of the batch waits (a worker died
 * or a reload stopped it), or -1. */
int worker_map_journaled(thread *t, int ti, long long epoch);

/* Maps the tenant's deferred events again, in order, on this thread alone. */
int worker_map_deferred(thread *t, int ti, long long epoch);

/* Under w->mu: whether a chunk waits for a thread to take it. */
int worker_chunk_waiting(workers *w);

/* Takes and maps one chunk of another thread's batch, if one waits. Returns 1 if it did. */
int worker_help(thread *t);

/* From the recall callback: event `at` of the chunk read `key` from the store. */
void worker_chunk_recalled(struct chunk *c, const char *key, size_t klen, int at);

#endif
