/*
 * map_results.h: the outcomes of a batch of mapped events, copied out of the mapper.
 *
 * Why: a mapper's (or a mapping worker's) results last only until its next event or batch, but the
 * store takes them later, in order, while the next batch is already being mapped (worker_batch.c's
 * chunks, job.c's overlap). So they are copied, with every string in one arena by offset (it can
 * grow), and read back as a map_result an event at a time.
 */
#ifndef RF_MAP_RESULTS_H
#define RF_MAP_RESULTS_H

#include "mapper.h"
#include "strbuf.h"

typedef struct map_results_request { size_t method, path, body, body_len, profile, key, due; int scheduled; } map_results_request;

typedef struct map_results {
    strbuf arena;
    struct { long long id; int status; size_t reason; int req0, nreq, can0, ncan, mem0, nmem; } *ev;
    map_results_request *req;
    size_t *can, *memk, *memv;
    int nev, nreq, ncan, nmem, cap_ev, cap_req, cap_can, cap_mem;
} map_results;

/* Appends the outcome of event id (a copy of r, which may be gone after this call). */
void map_results_add(map_results *rs, long long id, const map_result *r);

/* Drops the outcomes of events [from, nev). */
void map_results_cut(map_results *rs, int from);

/* Room map_results_get points into: grown as needed, reused from one event to the next. */
typedef struct map_results_view {
    map_request *reqs;
    const char **cans, **mk, **mv;
    int cap_req, cap_can, cap_mem;
} map_results_view;

/* Event e's outcome as a map_result whose strings are rs's and whose arrays are v's: valid until rs
 * changes or v is used again. */
map_result map_results_get(const map_results *rs, int e, map_results_view *v);

void map_results_view_free(map_results_view *v);
void map_results_free(map_results *rs);

#endif
