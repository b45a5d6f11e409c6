/*
 * deliver.c: the outbox to Klaviyo, on its own thread's libuv loop with libcurl's multi interface;
 * this file is the deliverer's lifecycle (start, tick, stop) and its metrics. The parts:
 *   scan.c      what may start now (per-profile order, bulk packing), on the rate limits of rate.c;
 *   rate_keep.c the rate windows carried to SIGHUP's next deliverer and to the next process;
 *   curl_uv.c   libcurl <-> libuv (curl's multi-uv.c example), and the request's headers (the key);
 *   finish.c    what an answer does (answer.c classifies it: delivered, key refused, retry, refused);
 *   dry.c       a tenant without a key: its requests go to DATA/dry/TENANT.ndjson instead.
 *
 * Rules it keeps (DESIGN §2):
 * - Per-profile order: only the oldest queued request of a profile may be in flight or retried; the
 *   rest of that profile waits behind it, and nothing else does.
 * - Klaviyo's rate limits per tenant and endpoint class, so a healthy run sees no 429.
 * - Retry what may pass later, with backoff, until max_age_hours; other 4xx are dead letters with
 *   Klaviyo's error body; a refused key pauses the tenant's delivery (its queue waits).
 * - A backlog goes in bulk jobs of up to 1,000 events on the bulk endpoint's own budget.
 *
 * Rows in flight are REQUEST_SENDING so a scan looks past them; a start puts any left by a crash
 * back in the queue. One process delivers a data folder at a time (DATA/delivery.lock): `returnflow
 * send` beside a running serve leaves delivery to it, and delivers itself when serve is not running.
 * Delivery is the only code that holds a key: it is added to the request headers only (curl_uv.c),
 * never to the store, the log or an error message. The store connection is this thread's own.
 *
 * Several nodes on one store: each tick delivers only the tenants this node holds (ownership.h), and
 * marks a tenant's requests in flight fenced by its lease (settle.c); a crash's rows in flight go back
 * to the queue when the next owner takes the lease, not at this deliverer's start, which would take
 * back the rows other nodes have in flight.
 */
#include "deliverer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "dry.h"
#include "json.h"
#include "lazy_libs.h"
#include "log.h"

/* One deliverer per data folder. The first tick that gets the lock puts back in the queue what a
 * crash left marked in flight. */
static int take_lock(deliverer *d) {
    if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (!d->said_waiting++) {
            log_line("info", "another process delivers this data folder (returnflow send or serve); waiting "
                             "for it to finish", NULL);
        }
        return 0;
    }
    d->locked = 1;
    rate_keep_restore(d);                         /* what the last deliverer spent still counts */
    if (!ownership_clustered(d->own)) {          /* on a shared store, taking a lease does these */
        store_requeue_sending(d->db);
        store_unpause_all(d->db);                 /* this deliverer starts with no tenant paused */
    }
    return 1;
}

/* The true queue depths, from the store's counts (one row a tenant), for /metrics: each tick (new
 * rows) and after each commit of answers (settle.c). */
void deliver_read_depths(deliverer *d) {
    for (int i = 0; i < d->ntenants; i++) {
        long long n = store_queued_count(d->db, d->tenants[i].tc->id);
        if (n < 0) continue;
        pthread_mutex_lock(&d->mu);
        d->tenants[i].queued = n;
        pthread_mutex_unlock(&d->mu);
    }
}

static void on_tick(uv_timer_t *t) {
    deliverer *d = t->data;
    long long now = clock_now_ms(), mono = clock_mono_ms();
    if (d->stopping) {
        int busy = 0;
        for (int i = 0; i < d->ntenants; i++) busy += d->tenants[i].in_flight;
        if (!busy || mono > d->stop_deadline) uv_stop(&d->loop);
        return;
    }
    if (!d->locked && !take_lock(d)) return;      /* another process delivers: wait for the lock */
    /* Nothing new goes while the store has not taken every answer we have (settle.c): a down store
     * is tried again on its backoff, and requests in flight still finish meanwhile. */
    if (!deliver_store_may_try(d, mono) || deliver_flush(d) != 0) { deliver_poll_now(d); return; }
    int read_ok = 1;
    for (int i = 0; i < d->ntenants && read_ok; i++) {
        tenant_state *ts = &d->tenants[i];
        ownership_in_flight(d->own, ts->tc->id, ts->in_flight);   /* a handover waits for them */
        if (!ownership_holds(d->own, ts->tc->id, &ts->epoch)) {       /* another node delivers it */
            ts->idle = 0;                         /* its queue is read again when this node has it back */
            continue;
        }
        if (!ts->paused && deliver_scan(d, ts, now, mono) != 0) read_ok = 0;
    }
    if (!read_ok) deliver_store_failed(d, 1, "cannot read the outbox");
    if (d->starting) rate_keep_save(d);           /* on file before they leave: a kill -9 forgets none */
    deliver_launch(d);                            /* what the scans chose, once marked in flight */
    if (read_ok) deliver_store_worked(d, 0);
    if (!d->store_down) {
        for (int i = 0; i < d->ndry; i++)
            if (ownership_holds(d->own, d->dry[i]->id, NULL)) dry_deliver(d->db, d->cfg->data_dir, d->dry[i]);
        deliver_read_depths(d);
    }
    deliver_poll_now(d);
}

void deliver_kick(deliverer *d) { uv_timer_start(&d->tick, on_tick, 1, 50); }

static void on_stop(uv_async_t *a) {
    deliverer *d = a->data;
    d->stopping = 1;
    d->stop_deadline = clock_mono_ms() + 5000;
}

static void close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, h->type == UV_POLL ? (uv_close_cb)free : NULL);
}

static void *thread_main(void *arg) {
    deliverer *d = arg;
    pthread_setname_np(pthread_self(), "rf-deliver");
    uv_timer_start(&d->tick, on_tick, 50, 50);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    /* What the mapping threads' last pass left for a dry tenant reaches its file before the stop. */
    if (d->locked)
        for (int i = 0; i < d->ndry; i++)
            while (ownership_holds(d->own, d->dry[i]->id, NULL) && dry_deliver(d->db, d->cfg->data_dir, d->dry[i]) > 0) {}
    /* The answers had: one more try to record them (else their rows are sent again after a restart).
     * Whatever is still in flight stays queued in the store and is sent after the restart. */
    if (d->nsettles) deliver_flush(d);
    while (d->in_flight) deliver_release(d, d->in_flight);
    rate_keep_stop(d);                            /* after the releases: what never answered counts from the next start */
    uv_walk(&d->loop, close_walk, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    json_thread_done();                          /* bulk.c read bodies on this thread */
    return NULL;
}

static void free_windows(deliverer *d) {
    for (int i = 0; i < d->ntenants; i++) rate_free(&d->tenants[i].rate);
}

/* A tenant's counters, kept by tenant id when its deliverer stops, so the next one (SIGHUP's) goes on
 * from them: a Prometheus counter only goes up until the process restarts. */
typedef struct kept_counts {
    char id[128];
    unsigned long long delivered, retried, dead, bulk_jobs, latency[LATENCY_BUCKETS + 1], latency_sum_ms;
    struct { int cls; long status; unsigned long long n; } answers[32];
    int nanswers;
} kept_counts;
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;
static kept_counts *kept;
static int nkept;

static kept_counts *kept_of(const char *id, int add) {
    for (int i = 0; i < nkept; i++) if (strcmp(kept[i].id, id) == 0) return &kept[i];
    if (!add) return NULL;
    kept = realloc(kept, (size_t)(nkept + 1) * sizeof *kept);
    if (!kept) abort();
    memset(&kept[nkept], 0, sizeof *kept);
    snprintf(kept[nkept].id, sizeof kept[nkept].id, "%s", id);
    return &kept[nkept++];
}

static void keep_counts(const tenant_state *ts) {
    pthread_mutex_lock(&kept_mu);
    kept_counts *k = kept_of(ts->tc->id, 1);
    k->delivered = ts->delivered, k->retried = ts->retried, k->dead = ts->dead, k->bulk_jobs = ts->bulk_jobs;
    memcpy(k->latency, ts->latency, sizeof k->latency);
    k->latency_sum_ms = ts->latency_sum_ms;
    memcpy(k->answers, ts->answers, sizeof k->answers);
    k->nanswers = ts->nanswers;
    pthread_mutex_unlock(&kept_mu);
}

static void restore_counts(tenant_state *ts) {
    pthread_mutex_lock(&kept_mu);
    const kept_counts *k = kept_of(ts->tc->id, 0);
    if (k) {
        ts->delivered = k->delivered, ts->retried = k->retried, ts->dead = k->dead, ts->bulk_jobs = k->bulk_jobs;
        memcpy(ts->latency, k->latency, sizeof ts->latency);
        ts->latency_sum_ms = k->latency_sum_ms;
        memcpy(ts->answers, k->answers, sizeof ts->answers);
        ts->nanswers = k->nanswers;
    }
    pthread_mutex_unlock(&kept_mu);
}

static void keep_all_counts(deliverer *d) {
    for (int i = 0; i < d->ntenants; i++) keep_counts(&d->tenants[i]);
}

/* Frees a deliverer whose thread has ended (or never ran) and whose loop's handles are closed. */
static void release_deliverer(deliverer *d) {
    curl_multi_cleanup(d->multi);
    uv_loop_close(&d->loop);
    store_db_close(d->db);
    if (d->lock_fd >= 0) close(d->lock_fd);       /* the lock goes with it */
    bulk_free(d->packing);
    bulk_parts_free(d->parts);
    deliver_settles_free(d);
    strmap_free(d->busy_profiles);
    pthread_mutex_destroy(&d->mu);
    free_windows(d);
    free(d->tenants);
    free(d->dry);
    free(d);
}

deliverer *deliver_start(const config *cfg, ownership *own, char *err, size_t errlen) {
    if (lazy_libs_curl(err, errlen) != 0) return NULL;      /* libcurl is opened on first use */
    deliverer *d = calloc(1, sizeof *d);
    if (!d) abort();
    d->cfg = cfg;
    d->own = own;
    d->tenants = calloc((size_t)(cfg->ntenants ? cfg->ntenants : 1), sizeof *d->tenants);
    d->dry = calloc((size_t)(cfg->ntenants ? cfg->ntenants : 1), sizeof *d->dry);
    if (!d->tenants || !d->dry) abort();
    for (int i = 0; i < cfg->ntenants; i++) {
        if (tenant_is_dry(&cfg->tenants[i])) { d->dry[d->ndry++] = &cfg->tenants[i]; continue; }
        tenant_state *ts = &d->tenants[d->ntenants++];
        ts->tc = &cfg->tenants[i];
        rate_init(&ts->rate, ts->tc->rate_scale);
        restore_counts(ts);
    }
    char path[1024], why[1200];
    if (!(d->db = store_db_open(config_store_location(cfg), STORE_RELAXED, why, sizeof why))) {
        snprintf(err, errlen, "delivery: %s", why);
        free_windows(d);
        free(d->tenants);
        free(d->dry);
        free(d);
        return NULL;
    }
    /* Delivery's writes are small; the WAL is copied back by serve's checkpointer (store.c) or by
     * the batch job's own connection, which writes the bulk of it (store_checkpoint_every). */
    store_checkpoint_every(d->db, 0);
    /* The data folder holds the lock (and delivery.rate, the dry files): a SQLite store made it, a
     * PostgreSQL one does not. Without it the lock could never be taken. */
    if (mkdir(cfg->data_dir, 0750) != 0 && errno != EEXIST)
        log_line("error", "delivery: cannot create the data folder: its lock cannot be taken", NULL);
    snprintf(path, sizeof path, "%s/delivery.lock", cfg->data_dir);
    d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    d->packing = bulk_new(0, 0);
    d->parts = bulk_parts_new();
    bulk_set_parts(d->packing, d->parts);
    d->busy_profiles = strmap_new();
    pthread_mutex_init(&d->mu, NULL);
    uv_loop_init(&d->loop);
    uv_timer_init(&d->loop, &d->curl_timer);
    uv_timer_init(&d->loop, &d->tick);
    uv_async_init(&d->loop, &d->stop_async, on_stop);
    d->curl_timer.data = d->tick.data = d->stop_async.data = d;
    deliver_glue_init(d);
    if (pthread_create(&d->tid, NULL, thread_main, d) != 0) {
        snprintf(err, errlen, "cannot start the delivery thread");
        uv_walk(&d->loop, close_walk, NULL);       /* its handles close on their loop first */
        uv_run(&d->loop, UV_RUN_DEFAULT);
        release_deliverer(d);
        return NULL;
    }
    return d;
}

void deliver_metrics(deliverer *d, strbuf *out) {
    char line[512];
    pthread_mutex_lock(&d->mu);
    strbuf_adds(out, "# HELP returnflow_requests_total Klaviyo requests, by tenant and outcome.\n"
                     "# TYPE returnflow_requests_total counter\n");
    for (int i = 0; i < d->ntenants; i++) {
        const tenant_state *ts = &d->tenants[i];
        snprintf(line, sizeof line,
                 "returnflow_requests_total{tenant=\"%s\",outcome=\"delivered\"} %llu\n"
                 "returnflow_requests_total{tenant=\"%s\",outcome=\"retried\"} %llu\n"
                 "returnflow_requests_total{tenant=\"%s\",outcome=\"dead\"} %llu\n",
                 ts->tc->id, ts->delivered, ts->tc->id, ts->retried, ts->tc->id, ts->dead);
        strbuf_adds(out, line);
    }
    strbuf_adds(out, "# HELP returnflow_bulk_jobs_total Bulk jobs Klaviyo took, by tenant.\n"
                     "# TYPE returnflow_bulk_jobs_total counter\n");
    for (int i = 0; i < d->ntenants; i++) {
        snprintf(line, sizeof line, "returnflow_bulk_jobs_total{tenant=\"%s\"} %llu\n", d->tenants[i].tc->id,
                 d->tenants[i].bulk_jobs);
        strbuf_adds(out, line);
    }
    strbuf_adds(out, "# HELP returnflow_klaviyo_answers_total Klaviyo's answers by endpoint and status (0: none).\n"
                     "# TYPE returnflow_klaviyo_answers_total counter\n");
    for (int i = 0; i < d->ntenants; i++)
        for (int a = 0; a < d->tenants[i].nanswers; a++) {
            snprintf(line, sizeof line, "returnflow_klaviyo_answers_total{tenant=\"%s\",endpoint=\"%s\",status=\"%ld\"} %llu\n",
                     d->tenants[i].tc->id, rate_class_name(d->tenants[i].answers[a].cls), d->tenants[i].answers[a].status,
                     d->tenants[i].answers[a].n);
            strbuf_adds(out, line);
        }
    strbuf_adds(out, "# HELP returnflow_queue_depth Requests queued or in flight, by tenant (the store's count).\n"
                     "# TYPE returnflow_queue_depth gauge\n");
    for (int i = 0; i < d->ntenants; i++) {
        snprintf(line, sizeof line, "returnflow_queue_depth{tenant=\"%s\"} %lld\n", d->tenants[i].tc->id, d->tenants[i].queued);
        strbuf_adds(out, line);
    }
    strbuf_adds(out, "# HELP returnflow_tenant_paused 1 while Klaviyo refuses the tenant's key.\n"
                     "# TYPE returnflow_tenant_paused gauge\n");
    for (int i = 0; i < d->ntenants; i++) {
        snprintf(line, sizeof line, "returnflow_tenant_paused{tenant=\"%s\"} %d\n", d->tenants[i].tc->id, d->tenants[i].paused);
        strbuf_adds(out, line);
    }
    strbuf_adds(out, "# HELP returnflow_delivery_seconds Time from queued to delivered.\n"
                     "# TYPE returnflow_delivery_seconds histogram\n");
    for (int i = 0; i < d->ntenants; i++) {
        unsigned long long cum = 0;
        for (int b = 0; b < LATENCY_BUCKETS + 1; b++) {
            cum += d->tenants[i].latency[b];
            if (b < LATENCY_BUCKETS) snprintf(line, sizeof line, "returnflow_delivery_seconds_bucket{tenant=\"%s\",le=\"%g\"} %llu\n",
                                d->tenants[i].tc->id, deliver_latency_bounds[b], cum);
            else snprintf(line, sizeof line, "returnflow_delivery_seconds_bucket{tenant=\"%s\",le=\"+Inf\"} %llu\n"
                                             "returnflow_delivery_seconds_sum{tenant=\"%s\"} %.3f\n"
                                             "returnflow_delivery_seconds_count{tenant=\"%s\"} %llu\n",
                          d->tenants[i].tc->id, cum, d->tenants[i].tc->id, (double)d->tenants[i].latency_sum_ms / 1000.0,
                          d->tenants[i].tc->id, cum);
            strbuf_adds(out, line);
        }
    }
    pthread_mutex_unlock(&d->mu);
}

char *deliver_paused(deliverer *d) {
    strbuf out = {0};
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->ntenants; i++)
        if (d->tenants[i].paused) {
            if (out.len) strbuf_addc(&out, ',');
            strbuf_adds(&out, d->tenants[i].tc->id);
        }
    pthread_mutex_unlock(&d->mu);
    strbuf_addc(&out, 0);
    return out.data;
}

void deliver_stop(deliverer *d) {
    uv_async_send(&d->stop_async);
    pthread_join(d->tid, NULL);
    keep_all_counts(d);
    release_deliverer(d);
}
