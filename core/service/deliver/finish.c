/*
 * finish.c: what Klaviyo's answer does, for a single request and a bulk job alike (answer.c
 * classifies both the same way):
 * - delivered: the rows are marked delivered, the latency counted;
 * - key refused (401, a 403 that is not a challenge): the tenant's delivery pauses and says so; its
 *   queue waits instead of burning;
 * - retry (408, 429, 5xx, no answer, a challenge): full-jitter backoff, or what a 429 asks (which
 *   also cools the endpoint class down); a single request older than max_age_hours gives up;
 * - refused (other 4xx): a single request is a dead letter with Klaviyo's answer; a bulk job's
 *   items that the errors point at are, and the rest go again (none blamed: singles for a minute).
 *
 * Invariant: every row of a finished request leaves REQUEST_SENDING, and its profiles are no longer
 * busy, whatever the answer.
 */
#include "deliverer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "clock.h"
#include "log.h"

const double deliver_latency_bounds[LATENCY_BUCKETS] = { 0.1, 0.5, 1, 5, 30, 300, 3600, 86400 };

static void count_latency(tenant_state *ts, long long latency_ms) {
    int b = 0;
    while (b < LATENCY_BUCKETS && (double)latency_ms / 1000.0 > deliver_latency_bounds[b]) b++;
    ts->latency[b]++;
}

/* Counts one answer by endpoint class and status (0: no answer), and a delivery's latency. */
static void record(deliverer *d, tenant_state *ts, int cls, long status, long long latency_ms) {
    pthread_mutex_lock(&d->mu);
    int i = 0;
    while (i < ts->nanswers && !(ts->answers[i].cls == cls && ts->answers[i].status == status)) i++;
    if (i == ts->nanswers && i < 32) { ts->answers[i].cls = cls; ts->answers[i].status = status; ts->answers[i].n = 0; ts->nanswers++; }
    if (i < 32) ts->answers[i].n++;
    if (latency_ms >= 0) count_latency(ts, latency_ms);
    pthread_mutex_unlock(&d->mu);
}

static void add(deliverer *d, unsigned long long *counter, unsigned long long n) {
    pthread_mutex_lock(&d->mu);
    *counter += n;
    pthread_mutex_unlock(&d->mu);
}

/* A 401, or a 403 that is not a challenge: the tenant's delivery waits, and says why. */
static void pause_tenant(deliverer *d, tenant_state *ts, long status) {
    pthread_mutex_lock(&d->mu);
    ts->paused = 1;
    snprintf(ts->paused_reason, sizeof ts->paused_reason, "Klaviyo answered %ld: the key is refused", status);
    pthread_mutex_unlock(&d->mu);
    char f[256];
    snprintf(f, sizeof f, "\"tenant\":\"%s\",\"status\":%ld", ts->tc->id, status);
    log_line("error", "Klaviyo refused this tenant's key: its delivery is paused, its queue kept "
                      "(fix the key, then restart)", f);
    store_pause_tenant(d->db, ts->tc->id, ts->paused_reason, clock_now_ms());   /* `returnflow status` says it too */
}

/* How long a retryable answer waits (a 429 also cools its endpoint class down), and why, for the row. */
static double retry_wait(tenant_state *ts, sending *s, long long now, CURLcode rc, long status, const char *body,
                         char *why, size_t len) {
    double wait = answer_backoff_s(s->attempts, (double)rand() / RAND_MAX);
    if (status == 429) {
        double asked = answer_wait_asked(s->retry_after, s->response.data);
        if (asked > 0) wait = asked;
        rate_cool(&ts->rate, s->cls, now + (long long)(wait * 1000));
    }
    if (rc != CURLE_OK) snprintf(why, len, "%s", s->error[0] ? s->error : curl_easy_strerror(rc));
    else snprintf(why, len, "HTTP %ld: %.200s", status, body ? body : "");
    return wait;
}

static void finish_single(deliverer *d, sending *s, CURLcode rc, long status, answer_kind kind) {
    tenant_state *ts = s->ts;
    long long now = clock_now_ms();
    const char *body = s->response.data;
    record(d, ts, s->cls, rc == CURLE_OK ? status : 0, kind == ANSWER_DELIVERED ? now - s->created_at : -1);
    int young = now - s->created_at < (long long)(d->cfg->max_age_hours * 3600 * 1000);
    if (kind == ANSWER_DELIVERED) {
        store_settle(d->db, s->id, &(store_outcome){ REQUEST_DELIVERED, status, now, NULL, 1 });
        add(d, &ts->delivered, 1);
    } else if (kind == ANSWER_KEY_REFUSED) {
        pause_tenant(d, ts, status);
        store_settle(d->db, s->id, &(store_outcome){ REQUEST_QUEUED, status, now, body, 0 });
    } else if (kind == ANSWER_RETRY && young) {
        char why[CURL_ERROR_SIZE + 64];
        double wait = retry_wait(ts, s, now, rc, status, body, why, sizeof why);
        store_settle(d->db, s->id, &(store_outcome){ REQUEST_QUEUED, status, now + (long long)(wait * 1000), why, 1 });
        add(d, &ts->retried, 1);
    } else {
        char why[2600], said[1200];
        answer_klaviyo_said(body, said, sizeof said);
        if (kind == ANSWER_RETRY)
            snprintf(why, sizeof why, "gave up after %d attempts over %.0f h: HTTP %ld: %s; Klaviyo's answer: %.1200s",
                     s->attempts + 1, d->cfg->max_age_hours, status, said, body ? body : "");
        else snprintf(why, sizeof why, "HTTP %ld: %s; Klaviyo's answer: %.1200s", status, said, body ? body : "");
        store_settle(d->db, s->id, &(store_outcome){ REQUEST_DEAD, status, now, why, 1 });
        add(d, &ts->dead, 1);
        char f[256];
        snprintf(f, sizeof f, "\"tenant\":\"%s\",\"outbox\":%lld,\"status\":%ld", ts->tc->id, s->id, status);
        log_line("warn", "request dead-lettered (see returnflow status)", f);
    }
    ts->in_flight--;
    strmap_del(d->busy_profiles, s->profile, strlen(s->profile));
}

/* Sets every row of a bulk job; `keep` (may be NULL) marks the rows to leave alone. */
static void set_rows(deliverer *d, sending *s, const char *keep, request_state state, long status, long long next_at,
                     const char *error, int bump) {
    int n = bulk_count(s->bulk);
    long long *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids) abort();
    for (int i = 0; i < n; i++) ids[i] = bulk_id(s->bulk, i);
    store_settle_many(d->db, ids, keep, n, &(store_outcome){ state, status, next_at, error, bump });
    free(ids);
}

typedef struct blame { deliverer *d; sending *s; long status; long long now; char *flag; int n; } blame;

/* One pointer of a refused bulk job: the items it names are dead letters, each once. */
static void blame_items(void *ud, const char *pointer, const char *detail) {
    blame *b = ud;
    int idx[BULK_MAX_EVENTS];
    int k = bulk_blamed(b->s->bulk, pointer, idx, BULK_MAX_EVENTS);
    for (int i = 0; i < k; i++) {
        if (b->flag[idx[i]]) continue;
        b->flag[idx[i]] = 1;
        b->n++;
        char why[1700];
        snprintf(why, sizeof why, "HTTP %ld in a bulk job, for this item (%s): %s", b->status, pointer, detail);
        store_settle(b->d->db, bulk_id(b->s->bulk, idx[i]), &(store_outcome){ REQUEST_DEAD, b->status, b->now, why, 1 });
    }
}

static void finish_bulk(deliverer *d, sending *s, CURLcode rc, long status, answer_kind kind) {
    tenant_state *ts = s->ts;
    long long now = clock_now_ms();
    int n = bulk_count(s->bulk);
    const char *body = s->response.data ? s->response.data : "";
    record(d, ts, s->cls, rc == CURLE_OK ? status : 0, -1);
    if (kind == ANSWER_DELIVERED) {
        set_rows(d, s, NULL, REQUEST_DELIVERED, status, now, NULL, 1);
        pthread_mutex_lock(&d->mu);
        ts->delivered += (unsigned long long)n;
        ts->bulk_jobs++;
        for (int i = 0; i < n; i++) count_latency(ts, now - s->created[i]);
        pthread_mutex_unlock(&d->mu);
    } else if (kind == ANSWER_KEY_REFUSED) {
        pause_tenant(d, ts, status);
        set_rows(d, s, NULL, REQUEST_QUEUED, status, now, body, 0);
    } else if (kind == ANSWER_RETRY) {
        char why[CURL_ERROR_SIZE + 64];
        double wait = retry_wait(ts, s, now, rc, status, body, why, sizeof why);
        /* Too old rows are not kept forever: they go to the dead letters on their next single try. */
        set_rows(d, s, NULL, REQUEST_QUEUED, status, now + (long long)(wait * 1000), why, 1);
        add(d, &ts->retried, (unsigned long long)n);
    } else {
        /* Klaviyo refused the whole request for what some items say: those items are dead
         * letters with their error; the others go again in the next job. */
        blame b = { d, s, status, now, calloc((size_t)(n ? n : 1), 1), 0 };
        if (!b.flag) abort();
        answer_pointers(body, blame_items, &b);
        if (b.n) {
            set_rows(d, s, b.flag, REQUEST_QUEUED, status, now, NULL, 0);
            add(d, &ts->dead, (unsigned long long)b.n);
            char f[256];
            snprintf(f, sizeof f, "\"tenant\":\"%s\",\"dead\":%d,\"again\":%d,\"status\":%ld", ts->tc->id, b.n,
                     n - b.n, status);
            log_line("warn", "a bulk job was refused for some items: those are dead letters, the rest go again", f);
        } else {
            /* Nothing to blame: send these one by one for a while, where each answer is its own. */
            ts->bulk_off_until = now + BULK_OFF_MS;
            set_rows(d, s, NULL, REQUEST_QUEUED, status, now, NULL, 0);
            char f[256];
            snprintf(f, sizeof f, "\"tenant\":\"%s\",\"status\":%ld", ts->tc->id, status);
            log_line("warn", "a bulk job was refused as a whole: sending one by one for a minute", f);
        }
        free(b.flag);
    }
    ts->in_flight--;
    ts->bulk_in_flight--;
    for (int i = 0; i < s->nprofiles; i++) strmap_del(d->busy_profiles, s->profiles[i], strlen(s->profiles[i]));
}

void deliver_finish(deliverer *d, sending *s, CURLcode rc, long status) {
    strbuf_addc(&s->response, 0);
    answer_kind kind = answer_classify(rc == CURLE_OK, status, s->content_type);
    if (s->bulk) finish_bulk(d, s, rc, status, kind);
    else finish_single(d, s, rc, status, kind);
}
