/*
 * mapper.h: one tenant's scripts folder, turning Loop events into Klaviyo requests.
 */
#ifndef RF_MAPPER_H
#define RF_MAPPER_H

#include "sandbox.h"
#include "strbuf.h"

#define MAPPER_BUILTIN_NAME "(the default scripts compiled into returnflow)"

typedef struct mapper_config {
    const char *scripts_dir;          /* ignored with builtin_defaults */
    int builtin_defaults;             /* map with the default scripts compiled into the binary
                                         (returnflow.defaults), no folder: `map` where none is */
    const char *display_dir;          /* named in messages instead of scripts_dir (serve: the folder
                                         the merchant edits, scripts_dir being its frozen copy) */
    const char *tenant;               /* part of every default unique_id */
    const char *key_kind;             /* "private" (default) or "public" */
    const char *site_id;              /* public key: the company_id, not a secret */
    const char *revision;             /* Klaviyo API revision, default KLAVIYO_REVISION (version.h) */
    const char *segments_property;    /* default "returnflow_segments" */
    int backfill;                     /* mark every event backfill: true */
    sandbox_caps caps;
} mapper_config;

typedef enum map_status { MAP_MAPPED, MAP_DROPPED, MAP_FAILED, MAP_DEFERRED } map_status;

extern const char *const map_status_names[];

typedef struct mapper mapper;

/* Loads the scripts folder. Every problem found is appended to problems as a
 * "file:line: message" line. Returns NULL if the mapper cannot run (a load
 * problem, a missing folder); `returnflow check` is this call. */
mapper *mapper_new(const mapper_config *cfg, strbuf *problems);
void mapper_free(mapper *m);

/* Maps one event (its raw JSON, text[len] readable) and appends one JSON
 * document to doc: input label, trigger, status, reason, the requests with
 * their exact bodies, scheduled events, cancelled keys. Never fails as a
 * whole: a bad event is a document with status "failed" and the reason. */
map_status mapper_map(mapper *m, const char *text, size_t len, const char *label, strbuf *doc);

/* The last event's result, structured, for the service: valid until the
 * next mapper_map. A failed, dropped or deferred event has no requests,
 * cancels or memory writes (nothing of it is kept). */
typedef struct map_request {
    const char *method, *path;
    const char *body;                 /* the exact bytes to send */
    size_t body_len;
    const char *profile;              /* "email:...": requests of one profile leave in order */
    const char *schedule_key, *due;   /* a scheduled request: its key and ISO due time; else NULL */
} map_request;

typedef struct map_result {
    map_status status;
    const char *reason;               /* "" if none */
    const map_request *requests;
    int nrequests;
    const char *const *cancels;       /* schedule keys to cancel */
    int ncancels;
    const char *const *memory_keys, *const *memory_values;   /* out:remember writes, values as JSON */
    int nmemory;
} map_result;

const map_result *mapper_result(const mapper *m);

/* Where out:recall looks when the mapper's own memory has no such key (the
 * service: its store). fallback appends the JSON text and returns 1, or 0. */
void mapper_set_recall(mapper *m, int (*fallback)(void *ud, const char *key, size_t klen, strbuf *out), void *ud);

/* The mapper's own memory: its size, a preloaded value, and dropping it (when it is only a cache
 * of a store that holds every write). */
size_t mapper_memory_count(const mapper *m);
void mapper_remember(mapper *m, const char *key, size_t klen, const char *json, size_t len);  /* preload (tests) */
void mapper_forget_memory(mapper *m);

/* The reason given with the last event's status ("" if none). */
const char *mapper_reason(const mapper *m);

/* Number of script files and handlers loaded (for `check`). */
void mapper_counts(const mapper *m, int *files, int *handlers);

#endif
