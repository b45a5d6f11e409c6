/*
 * worker.h: mapping threads: journaled webhooks -> the tenant's scripts -> the outbox.
 */
#ifndef RF_WORKER_H
#define RF_WORKER_H

#include "config.h"
#include "ownership.h"

typedef struct workers workers;

/* Starts cfg->workers threads (0: one per core), each the home of the tenants
 * whose id hashes to it (and helping with the others' batches when it has nothing
 * to do), with its own database connection and mapping workers.
 * Everything journaled and not yet mapped is picked up at once, so a restart
 * resumes where the last run stopped. Only the tenants `own` says this node holds are mapped (NULL:
 * every tenant). Returns NULL with err filled. */
workers *workers_start(const config *cfg, ownership *own, char *err, size_t errlen);

/* New events were committed: wake the threads (safe from any thread). */
void workers_wake(workers *w);

/* Stops and joins every thread after one more pass over the tenants, so what was journaled
 * before the call is mapped (shutdown). */
void workers_stop(workers *w);

/* Stops and joins every thread as soon as each finishes the event in hand (a reload): the rest of
 * its batch stays journaled for the next threads. */
void workers_halt(workers *w);

#endif
