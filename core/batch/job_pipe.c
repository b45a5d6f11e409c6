/*
 * job_pipe.c: a batch job's mapping thread, so that mapping and storing overlap.
 *
 * Why: a job's thread used to map a chunk (a round trip to its worker process), then store it, then
 * map the next: the worker idle while the store was written, the store idle while it mapped, each
 * about half the time of an event. Here the thread that owns the worker maps chunk k+1 while the
 * job's thread stores chunk k.
 *
 * Invariant: what is stored is what mapping in order on one worker gives. The one thing chunk k+1
 * could see differently is memory: its events recall keys through a connection of this thread's,
 * which sees what the job has committed, and chunk k is being stored meanwhile (the job commits
 * after every chunk, so nothing older is missing). The worker forgets its cache before each batch
 * (MW_BATCH_FORGET), so every key an event reads from outside its own chunk comes through here and
 * is noted with the event; before storing chunk k+1, the job checks those keys against what chunk
 * k wrote (pipe_first_stale), and from the first event that read one, maps the rest again once
 * chunk k is committed (job.c), as serve's mapping threads do with their chunks (worker_batch.c).
 * A key written earlier in the same chunk is the worker's own cache's, and right; one that
 * reached the store anyway (a chunk the worker took in two batches) counts as stale too.
 */
#include "job_pipe.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_db.h"

struct pipe_read { size_t key, len; int ev; };

struct job_pipe {
    mapworker *m;
    store_db *db;                     /* this thread's: the recalls */
    char *tenant;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pipe_chunk *in, *out;             /* handed over, and given back mapped */
    int stop;
    pipe_chunk *mapping;              /* the chunk in hand, and where its current batch starts */
    int base;
};

#define GROW(arr, n, cap) do { if ((n) == (cap)) { (cap) = (cap) ? (cap) * 2 : 64; \
    (arr) = realloc((arr), (size_t)(cap) * sizeof *(arr)); if (!(arr)) abort(); } } while (0)

/* out:recall's way to the store: noted with the event that asked. */
static int recall(void *ud, const char *key, size_t klen, strbuf *out) {
    job_pipe *p = ud;
    pipe_chunk *c = p->mapping;
    GROW(c->reads, c->nreads, c->cap_reads);
    c->reads[c->nreads++] = (pipe_read){ c->read_keys.len, klen, p->base + mapworker_event_in_hand(p->m) };
    strbuf_add(&c->read_keys, key, klen);
    return store_memory_recall(p->db, p->tenant, key, klen, out);
}

/* Maps every event of c, as job.c's flush did on its own thread: a worker that cannot start now is
 * waited for (its restart backs off), up to a minute, then the rest fail with the reason. */
static void map_chunk(job_pipe *p, pipe_chunk *c) {
    map_results_cut(&c->rs, 0);
    c->read_keys.len = 0;
    c->nreads = 0;
    p->mapping = c;
    int done = 0, waits = 0;
    while (done < c->n) {
        p->base = done;
        int k = mapworker_map_batch(p->m, c->ev + done, c->n - done, 0);
        if (k < 0) {
            if (++waits > 600) {
                for (; done < c->n; done++)
                    map_results_add(&c->rs, done, &(map_result){ .status = MAP_FAILED,
                                                                 .reason = "no mapping worker would start" });
                break;
            }
            struct timespec pause = { 0, 100000000 };
            nanosleep(&pause, NULL);
            continue;
        }
        for (int i = 0; i < k; i++) map_results_add(&c->rs, done + i, mapworker_result(p->m, i));
        done += k;
    }
    p->mapping = NULL;
}

static void *thread_main(void *arg) {
    job_pipe *p = arg;
    pthread_setname_np(pthread_self(), "rf-job-map");
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->in && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
        if (!p->in) break;
        pipe_chunk *c = p->in;
        p->in = NULL;
        pthread_mutex_unlock(&p->mu);
        map_chunk(p, c);
        pthread_mutex_lock(&p->mu);
        p->out = c;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

job_pipe *job_pipe_start(mapworker *m, const char *location, const char *tenant, char *err, size_t errlen) {
    job_pipe *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->m = m;
    if (!(p->tenant = strdup(tenant))) abort();
    if (!(p->db = store_db_open(location, STORE_READ_ONLY, err, errlen))) goto fail_db;
    if (pthread_mutex_init(&p->mu, NULL) != 0) goto fail_mutex;
    if (pthread_cond_init(&p->cv, NULL) != 0) goto fail_cond;
    mapworker_set_recall(m, recall, p);
    mapworker_set_shared(m, 1);
    if (pthread_create(&p->thread, NULL, thread_main, p) != 0) {
        snprintf(err, errlen, "cannot start the mapping thread");
        goto fail_thread;
    }
    return p;

fail_thread:
    mapworker_set_shared(m, 0);
    pthread_cond_destroy(&p->cv);
fail_cond:
    pthread_mutex_destroy(&p->mu);
fail_mutex:
    store_db_close(p->db);
fail_db:
    free(p->tenant);
    free(p);
    return NULL;
}

void job_pipe_submit(job_pipe *p, pipe_chunk *c) {
    pthread_mutex_lock(&p->mu);
    p->in = c;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

pipe_chunk *job_pipe_wait(job_pipe *p) {
    pthread_mutex_lock(&p->mu);
    while (!p->out) pthread_cond_wait(&p->cv, &p->mu);
    pipe_chunk *c = p->out;
    p->out = NULL;
    pthread_mutex_unlock(&p->mu);
    return c;
}

void job_pipe_stop(job_pipe *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    mapworker_set_shared(p->m, 0);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    store_db_close(p->db);
    free(p->tenant);
    free(p);
}

/* Memory key k of event e of rs. */
static const char *written(const map_results *rs, int e, int k) { return rs->arena.data + rs->memk[rs->ev[e].mem0 + k]; }

int pipe_first_stale(const pipe_chunk *c, const strmap *before) {
    int first = c->n;
    strmap *earlier = NULL;            /* key -> the first event of c that wrote it */
    for (int r = 0; r < c->nreads; r++) {
        const pipe_read *rd = &c->reads[r];
        const char *key = c->read_keys.data + rd->key;
        size_t len;
        if (rd->ev >= first) continue;
        if (before && strmap_get(before, key, rd->len, &len)) { first = rd->ev; continue; }
        if (!earlier) {
            earlier = strmap_new();
            for (int i = c->rs.nev - 1; i >= 0; i--)
                for (int k = 0; k < c->rs.ev[i].nmem; k++) {
                    char at[16];
                    int n = snprintf(at, sizeof at, "%d", i);
                    strmap_put(earlier, written(&c->rs, i, k), strlen(written(&c->rs, i, k)), at, (size_t)n);
                }
        }
        const char *w = strmap_get(earlier, key, rd->len, &len);
        if (w && atoi(w) < rd->ev) first = rd->ev;
    }
    strmap_free(earlier);
    return first;
}

void pipe_add_writes(const pipe_chunk *c, int upto, strmap *m) {
    for (int i = 0; i < upto; i++)
        for (int k = 0; k < c->rs.ev[i].nmem; k++) strmap_put(m, written(&c->rs, i, k), strlen(written(&c->rs, i, k)), "1", 1);
}

void pipe_chunk_free(pipe_chunk *c) {
    map_results_free(&c->rs);
    strbuf_free(&c->read_keys);
    free(c->reads);
    memset(c, 0, sizeof *c);
}
