/*
 * job_pipe.h: a batch job's mapping thread (job_pipe.c): a chunk of events is mapped there while the
 * job's own thread stores the chunk before it.
 */
#ifndef RF_JOB_PIPE_H
#define RF_JOB_PIPE_H

#include "map_results.h"
#include "mapper.h"
#include "mapworker.h"
#include "strbuf.h"
#include "strmap.h"

#define PIPE_CHUNK 128                /* events a chunk: one round trip to the worker, one commit */

typedef struct pipe_read pipe_read;

/* A chunk: the events to map (ev, n: their text is the caller's, kept until the chunk is taken
 * back), then, once the thread is done with it, an outcome for each (rs, event i at index i) and the
 * memory keys the events read from the store. */
typedef struct pipe_chunk {
    mapworker_event ev[PIPE_CHUNK];
    int n;
    map_results rs;                   /* filled by the mapping thread, valid until it maps c again */
    strbuf read_keys;
    pipe_read *reads;
    int nreads, cap_reads;
} pipe_chunk;

typedef struct job_pipe job_pipe;

/* Starts the thread for m (which it uses alone until job_pipe_stop): recalls read the store at
 * location on a connection of its own, which sees what the job committed. NULL with err filled. */
job_pipe *job_pipe_start(mapworker *m, const char *location, const char *tenant, char *err, size_t errlen);

/* Hands c to the thread (at most one chunk is there at a time); job_pipe_wait gives it back mapped. */
void job_pipe_submit(job_pipe *p, pipe_chunk *c);
pipe_chunk *job_pipe_wait(job_pipe *p);

/* Ends the thread, once every chunk is taken back; m is the caller's again (not shared). A worker
 * process the thread started dies with it: stop it only when m is no longer used. */
void job_pipe_stop(job_pipe *p);

/* The first event of c whose result may differ from mapping in order on one worker: one that read a
 * key from the store that `before` (the keys written by what was stored while c was mapped) holds,
 * or that an earlier event of c wrote (its worker had to ask the store: not yet there); c->n if
 * none. */
int pipe_first_stale(const pipe_chunk *c, const strmap *before);

/* Adds the memory keys the results [0, upto) of c write to m. */
void pipe_add_writes(const pipe_chunk *c, int upto, strmap *m);

void pipe_chunk_free(pipe_chunk *c);

#endif
