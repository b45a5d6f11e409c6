/*
 * job.h: a batch job (send, replay, test-integration): events mapped with a tenant's scripts into
 * the store, tagged with the job's id, then seen delivered.
 */
#ifndef RF_JOB_H
#define RF_JOB_H

#include <signal.h>
#include <stddef.h>

#include "config.h"

typedef struct job_options {
    const config *cfg;
    const tenant_config *tenant;
    const char *kind;             /* "send", "replay", "test-integration": the command, in messages */
    const char *identity;         /* what the job reads: a rerun with the same identity is the same job */
    int live;                     /* flows fire: no backfill flag */
    int dry;                      /* print the requests, store and send nothing */
    int resume;                   /* skip what an interrupted run of this job already stored */
    int quiet;                    /* no progress, only the summary */
    int journal;                  /* store the raw events (send); a replay's are there already */
    int schedules_now;            /* scheduled events go out at once, cancels are ignored (test-integration) */
    int list_metrics;             /* the summary lists the metrics delivered (test-integration) */
    volatile sig_atomic_t *interrupted;
} job_options;

typedef struct job job;

/* Opens the store and the tenant's scripts; NULL with err filled. */
job *job_open(const job_options *o, char *err, size_t errlen);

/* One input event (event_id: its row in the journal for a replay, else 0). Returns 0 to go on,
 * -1 when the job was interrupted. */
int job_event(job *j, long long event_id, const char *text, size_t len, const char *label);

/* An input event that is not JSON: counted as failed, with the reason. */
void job_invalid(job *j, const char *label, const char *reason);

/* Stores what is left, waits until the job's requests are delivered (or dead), prints the
 * summary, frees the job. Returns the exit status: 0 all delivered, 1 some failed or dead, 130
 * interrupted. */
int job_finish(job *j);

#endif
