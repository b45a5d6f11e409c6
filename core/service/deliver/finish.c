/*
 * finish.c: what Klaviyo's answer does, for a single request and a bulk job alike (answer.c
 * classifies both the same way):
 * - delivered: the rows are marked delivered, the latency counted;
 * - key refused (401, a 403 that is not a challenge): the tenant's delivery pauses and says so; its
 *   queue waits instead of burning;
 * - retry (408, 429, 5xx, no answer, a challenge): each row waits the one backoff (answer.h) of the
 *   attempts it has had, a bulk job's rows each their own; a 429 waits at least what it asks, and
 *   cools the endpoint class down as long; a single request older than max_age_hours gives up;
 * - refused (other 4xx): a single request is a dead letter with Klaviyo's answer; a bulk job's
 *   items that the errors point at are, and the rest go again (none blamed: singles for a minute).
 *
 * Invariant: every row of a finished request gets exactly one outcome, handed to settle.c (which
 * keeps it until the store has it), and its profiles are no longer busy, whatever the answer.
 * `retried` counts requests (a bulk job is one), as Klaviyo saw them.
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
    ts->latency_sum_ms += (unsigned long long)(latency_ms > 0 ? latency_ms : 0);
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

/* A 401, or a 403 that is not a challenge: the tenant's delivery waits, and says why. The rows just
 * queued again are stored first: whoever reads the pause (/healthz, /metrics, `returnflow status`)
 * finds the queue kept. (The pause showed first, and deliver_spec once read the row still in flight
 * between the two, under ASan in the full suite.) */
static void pause_tenant(deliverer *d, tenant_state *ts, long status) {
    if (deliver_store_may_try(d, clock_mono_ms())) deliver_flush(d);
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

/* The wait of a retryable answer for a row that had `attempts` (unit: the request's one random
 * draw), at least what a 429 asked. */
static double retry_wait(const deliverer *d, int attempts, double unit, double asked) {
    double wait = answer_backoff_s(attempts, unit, d->cfg->backoff_max);
    return asked > wait ? asked : wait;
}

/* What a 429 asked (0: nothing, or not a 429); a 429 also cools the class down for the request's own wait. */
static double asked_wait(tenant_state *ts, sending *s, long status, double own_wait) {
    if (status != 429) return 0;
    double asked = answer_wait_asked(s->retry_after, s->response.data);
    rate_cool(&ts->rate, s->cls, clock_mono_ms() + (long long)((asked > own_wait ? asked : own_wait) * 1000));
    return asked;
}

static void why_retry(sending *s, CURLcode rc, long status, const char *body, char *why, size_t len) {
    if (rc != CURLE_OK) snprintf(why, len, "%s", s->error[0] ? s->error : curl_easy_strerror(rc));
    else snprintf(why, len, "HTTP %ld: %.200s", status, body ? body : "");
}

static void settle(deliverer *d, long long id, request_state state, long status, long long next_at, const char *error,
                   int attempt) {
    deliver_settle(d, id, &(store_outcome){ state, status, next_at, error, attempt });
}

static void finish_single(deliverer *d, sending *s, CURLcode rc, long status, answer_kind kind) {
    tenant_state *ts = s->ts;
    long long now = clock_now_ms();
    const char *body = s->response.data;
    record(d, ts, s->cls, rc == CURLE_OK ? status : 0, kind == ANSWER_DELIVERED ? now - s->created_at : -1);
    int young = now - s->created_at < (long long)(d->cfg->max_age_hours * 3600 * 1000);
    if (kind == ANSWER_DELIVERED) {
        settle(d, s->id, REQUEST_DELIVERED, status, now, NULL, 1);
        add(d, &ts->delivered, 1);
    } else if (kind == ANSWER_KEY_REFUSED) {
        settle(d, s->id, REQUEST_QUEUED, status, now, body, 0);
        pause_tenant(d, ts, status);
    } else if (kind == ANSWER_RETRY && young) {
        char why[CURL_ERROR_SIZE + 64];
        why_retry(s, rc, status, body, why, sizeof why);
        double unit = (double)rand() / RAND_MAX, own = answer_backoff_s(s->attempts, unit, d->cfg->backoff_max);
        double wait = retry_wait(d, s->attempts, unit, asked_wait(ts, s, status, own));
        settle(d, s->id, REQUEST_QUEUED, status, now + (long long)(wait * 1000), why, 1);
        add(d, &ts->retried, 1);
    } else {
        char why[2600], said[1200];
        answer_klaviyo_said(body, said, sizeof said);
        if (kind == ANSWER_RETRY)
            snprintf(why, sizeof why, "gave up after %d attempts over %.0f h: HTTP %ld: %s; Klaviyo's answer: %.1200s",
                     s->attempts + 1, d->cfg->max_age_hours, status, said, body ? body : "");
        else snprintf(why, sizeof why, "HTTP %ld: %s; Klaviyo's answer: %.1200s", status, said, body ? body : "");
        settle(d, s->id, REQUEST_DEAD, status, now, why, 1);
        add(d, &ts->dead, 1);
        char f[256];
        snprintf(f, sizeof f, "\"tenant\":\"%s\",\"outbox\":%lld,\"status\":%ld", ts->tc->id, s->id, status);
        log_line("warn", "request dead-lettered (see returnflow status)", f);
    }
    ts->in_flight--;
    d->freed++;
    strmap_del(d->busy_profiles, s->profile, strlen(s->profile));
}

/* Sets every row of a bulk job; `keep` (may be NULL) marks the rows to leave alone. */
static void set_rows(deliverer *d, sending *s, const char *keep, request_state state, long status, long long next_at,
                     const char *error, int bump) {
    int n = bulk_count(s->bulk);
    for (int i = 0; i < n; i++)
        if (!keep || !keep[i]) settle(d, bulk_id(s->bulk, i), state, status, next_at, error, bump);
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
        settle(b->d, bulk_id(b->s->bulk, idx[i]), REQUEST_DEAD, b->status, b->now, why, 1);
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
        set_rows(d, s, NULL, REQUEST_QUEUED, status, now, body, 0);
        pause_tenant(d, ts, status);
    } else if (kind == ANSWER_RETRY) {
        /* Each row waits the backoff of its own attempts (one draw for the job, so rows alike go
         * again together); too old rows are not kept forever: they are dead letters on their next
         * single try. */
        char why[CURL_ERROR_SIZE + 64];
        why_retry(s, rc, status, body, why, sizeof why);
        double unit = (double)rand() / RAND_MAX;
        double asked = asked_wait(ts, s, status, answer_backoff_s(s->attempts, unit, d->cfg->backoff_max));
        for (int i = 0; i < n; i++) {
            double wait = retry_wait(d, s->row_attempts[i], unit, asked);
            settle(d, bulk_id(s->bulk, i), REQUEST_QUEUED, status, now + (long long)(wait * 1000), why, 1);
        }
        add(d, &ts->retried, 1);
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
            ts->bulk_off_until = clock_mono_ms() + BULK_OFF_MS;
            set_rows(d, s, NULL, REQUEST_QUEUED, status, now, NULL, 0);
            char f[256];
            snprintf(f, sizeof f, "\"tenant\":\"%s\",\"status\":%ld", ts->tc->id, status);
            log_line("warn", "a bulk job was refused as a whole: sending one by one for a minute", f);
        }
        free(b.flag);
    }
    ts->in_flight--;
    ts->bulk_in_flight--;
    d->freed++;
    for (int i = 0; i < s->nprofiles; i++) strmap_del(d->busy_profiles, s->profiles[i], strlen(s->profiles[i]));
}

void deliver_finish(deliverer *d, sending *s, CURLcode rc, long status) {
    strbuf_addc(&s->response, 0);
    answer_kind kind = answer_classify(rc == CURLE_OK, status, s->content_type);
    if (s->bulk) finish_bulk(d, s, rc, status, kind);
    else finish_single(d, s, rc, status, kind);
}
