/*
 * deliver.c: the outbox to Klaviyo, on its own thread's libuv loop with
 * libcurl's multi interface (the glue follows curl's multi-uv.c example).
 *
 * Rules it keeps (DESIGN §2, issue "serve"):
 * - Per-profile order: only the oldest queued request of a profile may be in
 *   flight or retried; the rest of that profile waits behind it, and nothing
 *   else does.
 * - Klaviyo's rate limits per tenant and endpoint class (burst per second and
 *   steady per minute, as sliding windows), so a healthy run sees no 429; a 429
 *   still cools that class down (Retry-After, else "Expected available in N
 *   seconds", else backoff).
 * - Retry 408, 429, 5xx, timeouts, connection errors and a text/html 403 (a
 *   Cloudflare challenge) with full-jitter exponential backoff, until the
 *   request is older than max_age_hours; other 4xx are dead letters with
 *   Klaviyo's error body. A 401, or a 403 that is not a challenge, pauses the
 *   tenant's delivery and says so: its queue waits instead of burning.
 *
 * - A backlog goes in bulk: once a private-key tenant has BULK_THRESHOLD
 *   requests queued, its single events are packed (bulk.c) into jobs of up to
 *   1,000, on the bulk endpoint's own budget. A job holds each profile's
 *   events in order and marks the profile busy until Klaviyo answers; an error
 *   that points at items dead-letters those and sends the rest again.
 *
 * Rows in flight are marked (state 3) so a scan looks past them; a start puts
 * any left by a crash back in the queue. One process delivers a data folder at
 * a time (DATA/delivery.lock): `returnflow send` beside a running serve leaves
 * delivery to it, and delivers itself when serve is not running.
 *
 * The key is added here, to the request headers only: it never reaches the
 * store, the log or an error message. The database connection is this
 * thread's own; every state change is one short transaction.
 */
#include "deliver.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bulk.h"
#include "clock.h"
#include "dry.h"
#include "json.h"
#include "log.h"
#include "memory.h"
#include "store_db.h"

#define MAX_IN_FLIGHT 32              /* per tenant */
#define MAX_BULK_IN_FLIGHT 8          /* of those, bulk jobs: each holds up to 5 MB until answered */
#define SCAN_LIMIT 2000               /* queued rows looked at per tenant per tick */
#define BACKOFF_CAP_S 300.0
#define BULK_THRESHOLD 100            /* queued requests that turn a tenant's events to bulk */
#define BULK_OFF_MS 60000             /* after a bulk refusal that blames no item: singles for a while */

enum { CLASS_EVENTS, CLASS_BULK, CLASS_PROFILES, CLASS_OTHER, CLASSES };
static const double burst_per_s[CLASSES] = { 350, 10, 75, 10 };
static const double steady_per_min[CLASSES] = { 3500, 150, 750, 150 };

/* Klaviyo counts requests in any window of a second (burst) and of a minute (steady), as the
 * stand-in does: a token bucket that refills continuously lets twice the burst through in a second.
 * So each limit is a window of the last `cap` send times: one more may go when the oldest of them
 * left over a window ago. The windows are a little longer than Klaviyo's (WINDOW_SLACK_MS): the
 * answer comes over a network whose delays vary. */
typedef struct window { long long *sent; int cap, head, count; long long span_ms; } window;
#define WINDOW_SLACK_MS 100
#define BULK_SLACK_MS 250             /* a 5 MB job arrives later, and its lateness varies more */

typedef struct tenant_state {
    const tenant_config *tc;
    window burst[CLASSES], steady[CLASSES];
    long long cooldown_until[CLASSES];
    int in_flight;
    int paused;
    char paused_reason[160];
    unsigned long long delivered, retried, dead;
    long long queued;                 /* queued rows seen by the last scan (SCAN_LIMIT at most) */
    long long bulk_off_until;
    unsigned long long bulk_jobs;
    int bulk_in_flight;
    struct { int cls; long status; unsigned long long n; } answers[32];   /* by endpoint and status */
    int nanswers;
    unsigned long long latency[9];    /* delivered requests, by seconds from queued to delivered */
} tenant_state;

typedef struct sending {
    struct sending *prev, *next;      /* the deliverer's list of requests in flight */
    CURL *easy;
    struct deliverer *d;
    tenant_state *ts;
    long long id, created_at;
    int attempts, cls;
    char *profile;
    char *body;
    size_t body_len;
    bulk_job *bulk;                   /* a bulk job: its events' ids, profiles and pointers */
    char **profiles;                  /* a bulk job's profiles, busy until it is answered */
    long long *created;               /* a bulk job's rows' queue times */
    int nprofiles;
    struct curl_slist *headers;
    strbuf response;
    char content_type[64];
    char retry_after[32];
    char error[CURL_ERROR_SIZE];
} sending;

typedef struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct deliverer *d;
} poll_ctx;

struct deliverer {
    const config *cfg;
    pthread_t tid;
    uv_loop_t loop;
    uv_timer_t curl_timer, tick;
    uv_async_t stop_async;
    CURLM *multi;
    store_db *db;
    tenant_state *tenants;
    int ntenants;
    const tenant_config **dry;        /* tenants without a key: their requests go to a file (dry.c) */
    int ndry;
    memory *busy_profiles;            /* profiles with a request in flight */
    sending *in_flight;
    pthread_mutex_t mu;               /* guards the counters and pause flags for metrics */
    int stopping;
    long long stop_deadline;
    int lock_fd, locked;              /* DATA/delivery.lock, held while this one delivers */
    int said_waiting;
    bulk_job *packing;                /* the job being filled by a scan */
};

static int class_of(const char *path) {
    if (strstr(path, "event-bulk-create") || strstr(path, "profile-bulk-import")) return CLASS_BULK;
    if (strstr(path, "/events")) return CLASS_EVENTS;
    if (strstr(path, "profile-import") || strstr(path, "/profiles") || strstr(path, "subscription")) return CLASS_PROFILES;
    return CLASS_OTHER;
}

/* ------------------------------ rate limits -------------------------------- */

static void window_init(window *w, double capacity, long long span_ms, long long slack_ms) {
    w->cap = capacity >= 1 ? (int)capacity : 1;
    w->sent = calloc((size_t)w->cap, sizeof *w->sent);
    if (!w->sent) abort();
    w->head = w->count = 0;
    w->span_ms = span_ms + slack_ms;
}

static int window_room(const window *w, long long now) {
    return w->count < w->cap || now - w->sent[w->head] >= w->span_ms;
}

static void window_take(window *w, long long now) {
    if (w->count < w->cap) {
        w->sent[(w->head + w->count++) % w->cap] = now;
    } else {
        w->sent[w->head] = now;                   /* the oldest goes, this one is the newest */
        w->head = (w->head + 1) % w->cap;
    }
}

/* A bulk job is large and its burst small (10 a second): they leave evenly spaced, not ten at once,
 * so the jitter of their arrival cannot put eleven into one of Klaviyo's seconds. */
static int spaced(const window *w, long long now) {
    if (w->count == 0) return 1;
    long long newest = w->sent[(w->head + w->count - 1) % w->cap];
    return now - newest >= w->span_ms / w->cap;
}

/* Whether a bulk job could leave now (nothing taken). */
static int bulk_room(const tenant_state *ts, long long now) {
    return window_room(&ts->burst[CLASS_BULK], now) && window_room(&ts->steady[CLASS_BULK], now) &&
           ts->cooldown_until[CLASS_BULK] <= now && spaced(&ts->burst[CLASS_BULK], now) &&
           ts->in_flight < MAX_IN_FLIGHT && ts->bulk_in_flight < MAX_BULK_IN_FLIGHT;
}

/* Takes one request's room in both windows of the class, or nothing. */
static int take_token(tenant_state *ts, int cls, long long now) {
    if (!window_room(&ts->burst[cls], now) || !window_room(&ts->steady[cls], now) || ts->cooldown_until[cls] > now)
        return 0;
    if (cls == CLASS_BULK && !spaced(&ts->burst[cls], now)) return 0;
    window_take(&ts->burst[cls], now);
    window_take(&ts->steady[cls], now);
    return 1;
}

/* ------------------------------- answers ----------------------------------- */

static double backoff_s(int attempts) {
    double cap = 1.0;
    for (int i = 0; i < attempts && cap < BACKOFF_CAP_S; i++) cap *= 2;
    if (cap > BACKOFF_CAP_S) cap = BACKOFF_CAP_S;
    double jitter = (double)rand() / RAND_MAX * cap;     /* full jitter */
    return jitter < 0.2 ? 0.2 : jitter;
}

/* Seconds a 429 asks to wait: Retry-After, else "Expected available in N second(s)", else 0. */
static double wait_asked(const sending *s) {
    if (s->retry_after[0]) return atof(s->retry_after);
    const char *p = s->response.data ? strstr(s->response.data, "Expected available in ") : NULL;
    if (p) return atof(p + 22);
    return 0;
}

/* How long a retryable answer waits (a 429 also cools its endpoint class down), and why, for the row. */
static double retry_wait(tenant_state *ts, sending *s, long long now, CURLcode rc, long status, const char *body,
                         char *why, size_t len) {
    double wait = backoff_s(s->attempts);
    if (status == 429) {
        double asked = wait_asked(s);
        if (asked > 0) wait = asked;
        ts->cooldown_until[s->cls] = now + (long long)(wait * 1000);
    }
    if (rc != CURLE_OK) snprintf(why, len, "%s", s->error[0] ? s->error : curl_easy_strerror(rc));
    else snprintf(why, len, "HTTP %ld: %.200s", status, body ? body : "");
    return wait;
}

static const double latency_bounds[8] = { 0.1, 0.5, 1, 5, 30, 300, 3600, 86400 };
static const char *const class_names[CLASSES] = { "events", "bulk", "profiles", "other" };

/* Counts one answer by endpoint class and status (0: no answer), and a delivery's latency. */
static void record(deliverer *d, tenant_state *ts, int cls, long status, long long latency_ms) {
    pthread_mutex_lock(&d->mu);
    int i = 0;
    while (i < ts->nanswers && !(ts->answers[i].cls == cls && ts->answers[i].status == status)) i++;
    if (i == ts->nanswers && i < 32) { ts->answers[i].cls = cls; ts->answers[i].status = status; ts->answers[i].n = 0; ts->nanswers++; }
    if (i < 32) ts->answers[i].n++;
    if (latency_ms >= 0) {
        int b = 0;
        while (b < 8 && (double)latency_ms / 1000.0 > latency_bounds[b]) b++;
        ts->latency[b]++;
    }
    pthread_mutex_unlock(&d->mu);
}

static void count(deliverer *d, unsigned long long *counter) {
    pthread_mutex_lock(&d->mu);
    (*counter)++;
    pthread_mutex_unlock(&d->mu);
}

static void finish_bulk(deliverer *d, sending *s, CURLcode rc, long status);
static void pause_tenant(deliverer *d, tenant_state *ts, long status);
static void klaviyo_said(const char *body, char *out, size_t len);

static void finish(deliverer *d, sending *s, CURLcode rc, long status) {
    if (s->bulk) { finish_bulk(d, s, rc, status); return; }
    tenant_state *ts = s->ts;
    long long now = clock_now_ms();
    strbuf_addc(&s->response, 0);
    const char *body = s->response.data;
    int challenge = status == 403 && strncasecmp(s->content_type, "text/html", 9) == 0;
    int retry = rc != CURLE_OK || status == 408 || status == 429 || status >= 500 || challenge;
    int ok = rc == CURLE_OK && status >= 200 && status < 300;
    record(d, ts, s->cls, rc == CURLE_OK ? status : 0, ok ? now - s->created_at : -1);
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        store_settle(d->db, s->id, &(store_outcome){ REQUEST_DELIVERED, status, now, NULL, 1 });
        count(d, &ts->delivered);
    } else if ((status == 401 || status == 403) && !challenge) {
        pause_tenant(d, ts, status);
        store_settle(d->db, s->id, &(store_outcome){ REQUEST_QUEUED, status, now, body, 0 });
    } else if (retry && now - s->created_at < (long long)(d->cfg->max_age_hours * 3600 * 1000)) {
        char why[CURL_ERROR_SIZE + 64];
        double wait = retry_wait(ts, s, now, rc, status, body, why, sizeof why);
        store_settle(d->db, s->id, &(store_outcome){ REQUEST_QUEUED, status, now + (long long)(wait * 1000), why, 1 });
        count(d, &ts->retried);
    } else {
        char why[2600], said[1200];
        klaviyo_said(body, said, sizeof said);
        if (retry) snprintf(why, sizeof why, "gave up after %d attempts over %.0f h: HTTP %ld: %s; Klaviyo's answer: %.1200s",
                            s->attempts + 1, d->cfg->max_age_hours, status, said, body ? body : "");
        else snprintf(why, sizeof why, "HTTP %ld: %s; Klaviyo's answer: %.1200s", status, said, body ? body : "");
        store_settle(d->db, s->id, &(store_outcome){ REQUEST_DEAD, status, now, why, 1 });
        count(d, &ts->dead);
        char f[256];
        snprintf(f, sizeof f, "\"tenant\":\"%s\",\"outbox\":%lld,\"status\":%ld", ts->tc->id, s->id, status);
        log_line("warn", "request dead-lettered (see returnflow status)", f);
    }
    ts->in_flight--;
    memory_del(d->busy_profiles, s->profile, strlen(s->profile));
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

/* The next `"key": "` in an error body from p on (any spacing); *value is just after the value's
 * opening quote. NULL when there is none. */
static const char *find_key(const char *p, const char *key, const char **value) {
    size_t klen = strlen(key);
    while ((p = strchr(p, '"'))) {
        if (strncmp(p + 1, key, klen) == 0 && p[klen + 1] == '"') {
            const char *v = p + klen + 2;
            while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') v++;
            if (*v == ':') {
                v++;
                while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') v++;
                if (*v == '"') { *value = v + 1; return p; }
            }
        }
        p++;
    }
    return NULL;
}

/* One JSON string value starting at p (just after its opening quote), unescaped into out. */
static const char *read_string(const char *p, char *out, size_t len) {
    size_t n = 0;
    while (*p && *p != '"') {
        char c = *p++;
        if (c == '\\' && *p) {
            c = *p++;
            if (c == 'n') c = ' ';
            else if (c == 'u') { p += *p ? 4 : 0; c = '?'; }
        }
        if (n + 1 < len) out[n++] = c;
    }
    out[n] = 0;
    return p;
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

static void finish_bulk(deliverer *d, sending *s, CURLcode rc, long status) {
    tenant_state *ts = s->ts;
    long long now = clock_now_ms();
    int n = bulk_count(s->bulk);
    strbuf_addc(&s->response, 0);
    const char *body = s->response.data ? s->response.data : "";
    int challenge = status == 403 && strncasecmp(s->content_type, "text/html", 9) == 0;
    int retry = rc != CURLE_OK || status == 408 || status == 429 || status >= 500 || challenge;
    record(d, ts, s->cls, rc == CURLE_OK ? status : 0, -1);
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        set_rows(d, s, NULL, REQUEST_DELIVERED, status, now, NULL, 1);
        pthread_mutex_lock(&d->mu);
        ts->delivered += (unsigned long long)n;
        ts->bulk_jobs++;
        for (int i = 0; i < n; i++) {
            double age = (double)(now - s->created[i]) / 1000.0;
            int b = 0;
            while (b < 8 && age > latency_bounds[b]) b++;
            ts->latency[b]++;
        }
        pthread_mutex_unlock(&d->mu);
    } else if ((status == 401 || status == 403) && !challenge) {
        pause_tenant(d, ts, status);
        set_rows(d, s, NULL, REQUEST_QUEUED, status, now, body, 0);
    } else if (retry) {
        char why[CURL_ERROR_SIZE + 64];
        double wait = retry_wait(ts, s, now, rc, status, body, why, sizeof why);
        /* Too old rows are not kept forever: they go to the dead letters on their next single try. */
        set_rows(d, s, NULL, REQUEST_QUEUED, status, now + (long long)(wait * 1000), why, 1);
        pthread_mutex_lock(&d->mu);
        ts->retried += (unsigned long long)n;
        pthread_mutex_unlock(&d->mu);
    } else {
        /* Klaviyo refused the whole request for what some items say: those items are dead
         * letters with their error; the others go again in the next job. */
        char *blamed_flag = calloc((size_t)n, 1);
        if (!blamed_flag) abort();
        int blamed = 0;
        const char *p = body;
        const char *value;
        while ((p = find_key(p, "pointer", &value))) {
            char pointer[512], detail[1024] = "";
            const char *at = p;
            p = read_string(value, pointer, sizeof pointer);
            /* Klaviyo writes an error's detail before its source: the last detail before this pointer. */
            const char *dt = NULL, *q = body, *dv = NULL, *v;
            while ((q = find_key(q, "detail", &v)) && q < at) { dt = q; dv = v; q++; }
            if (dt) read_string(dv, detail, sizeof detail);
            int idx[BULK_MAX_EVENTS];
            int k = bulk_blamed(s->bulk, pointer, idx, BULK_MAX_EVENTS);
            for (int i = 0; i < k; i++) {
                if (blamed_flag[idx[i]]) continue;
                blamed_flag[idx[i]] = 1;
                blamed++;
                char why[1700];
                snprintf(why, sizeof why, "HTTP %ld in a bulk job, for this item (%s): %s", status, pointer, detail);
                store_settle(d->db, bulk_id(s->bulk, idx[i]), &(store_outcome){ REQUEST_DEAD, status, now, why, 1 });
            }
        }
        if (blamed) {
            set_rows(d, s, blamed_flag, REQUEST_QUEUED, status, now, NULL, 0);
            pthread_mutex_lock(&d->mu);
            ts->dead += (unsigned long long)blamed;
            pthread_mutex_unlock(&d->mu);
            char f[256];
            snprintf(f, sizeof f, "\"tenant\":\"%s\",\"dead\":%d,\"again\":%d,\"status\":%ld", ts->tc->id, blamed,
                     n - blamed, status);
            log_line("warn", "a bulk job was refused for some items: those are dead letters, the rest go again", f);
        } else {
            /* Nothing to blame: send these one by one for a while, where each answer is its own. */
            ts->bulk_off_until = now + BULK_OFF_MS;
            set_rows(d, s, NULL, REQUEST_QUEUED, status, now, NULL, 0);
            char f[256];
            snprintf(f, sizeof f, "\"tenant\":\"%s\",\"status\":%ld", ts->tc->id, status);
            log_line("warn", "a bulk job was refused as a whole: sending one by one for a minute", f);
        }
        free(blamed_flag);
    }
    ts->in_flight--;
    ts->bulk_in_flight--;
    for (int i = 0; i < s->nprofiles; i++) memory_del(d->busy_profiles, s->profiles[i], strlen(s->profiles[i]));
}

/* Klaviyo's first error, readably: "its detail (at its pointer)"; else the start of the body. A dead
 * letter's reason starts with it, so the same refusal groups as one reason. */
static void klaviyo_said(const char *body, char *out, size_t len) {
    const char *value;
    char detail[800] = "", pointer[300] = "";
    if (body && find_key(body, "detail", &value)) read_string(value, detail, sizeof detail);
    if (body && find_key(body, "pointer", &value)) read_string(value, pointer, sizeof pointer);
    if (detail[0] && pointer[0]) snprintf(out, len, "%s (at %s)", detail, pointer);
    else if (detail[0]) snprintf(out, len, "%s", detail);
    else snprintf(out, len, "%.200s", body ? body : "");
}

static void release(deliverer *d, sending *s) {
    if (s->prev) s->prev->next = s->next;
    else d->in_flight = s->next;
    if (s->next) s->next->prev = s->prev;
    curl_multi_remove_handle(d->multi, s->easy);
    curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->headers);
    strbuf_free(&s->response);
    free(s->profile);
    free(s->body);
    for (int i = 0; i < s->nprofiles; i++) free(s->profiles[i]);
    free(s->profiles);
    free(s->created);
    bulk_free(s->bulk);
    free(s);
}

static void on_tick(uv_timer_t *t);

static void check_multi_info(deliverer *d) {
    CURLMsg *msg;
    int pending, done = 0;
    while ((msg = curl_multi_info_read(d->multi, &pending))) {
        done++;
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        sending *s;
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&s);
        (void)easy;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        finish(d, s, msg->data.result, status);
        release(d, s);
    }
    /* Freed slots: look for more work at once rather than at the next tick. */
    if (done && !d->stopping) uv_timer_start(&d->tick, on_tick, 1, 50);
}

/* ------------------------------ curl <-> uv -------------------------------- */

static void on_poll(uv_poll_t *req, int status, int events) {
    poll_ctx *p = req->data;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(p->d->multi, p->fd, flags, &running);
    check_multi_info(p->d);
}

static void on_curl_timeout(uv_timer_t *t) {
    deliverer *d = t->data;
    int running;
    curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(d);
}

static int start_timeout(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    deliverer *d = userp;
    if (timeout_ms < 0) uv_timer_stop(&d->curl_timer);
    else uv_timer_start(&d->curl_timer, on_curl_timeout, timeout_ms ? (uint64_t)timeout_ms : 1, 0);
    return 0;
}

static int handle_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp) {
    (void)easy;
    deliverer *d = userp;
    poll_ctx *p = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (p) {
            uv_poll_stop(&p->poll);
            uv_close((uv_handle_t *)&p->poll, (uv_close_cb)free);
            curl_multi_assign(d->multi, fd, NULL);
        }
        return 0;
    }
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) abort();
        p->fd = fd;
        p->d = d;
        uv_poll_init_socket(&d->loop, &p->poll, fd);
        p->poll.data = p;
        curl_multi_assign(d->multi, fd, p);
    }
    int events = 0;
    if (action != CURL_POLL_IN) events |= UV_WRITABLE;
    if (action != CURL_POLL_OUT) events |= UV_READABLE;
    uv_poll_start(&p->poll, events, on_poll);
    return 0;
}

/* --------------------------------- sending --------------------------------- */

static size_t on_data(char *ptr, size_t size, size_t n, void *userp) {
    sending *s = userp;
    if (s->response.len < 64 * 1024) strbuf_add(&s->response, ptr, size * n);
    return size * n;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *userp) {
    sending *s = userp;
    size_t len = size * n;
    if (len > 13 && strncasecmp(ptr, "Content-Type:", 13) == 0)
        snprintf(s->content_type, sizeof s->content_type, "%.*s", (int)(len - 13), ptr + 13 + strspn(ptr + 13, " "));
    else if (len > 12 && strncasecmp(ptr, "Retry-After:", 12) == 0)
        snprintf(s->retry_after, sizeof s->retry_after, "%.*s", (int)(len - 12), ptr + 12);
    return len;
}

static void start_request(deliverer *d, sending *s, const char *url);

static struct curl_slist *headers_for(const tenant_config *tc) {
    char header[512];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/vnd.api+json");
    h = curl_slist_append(h, "Accept: application/vnd.api+json");
    snprintf(header, sizeof header, "revision: %s", tc->revision);
    h = curl_slist_append(h, header);
    if (strcmp(tc->key_kind, "public") != 0) {
        snprintf(header, sizeof header, "Authorization: Klaviyo-API-Key %s", tc->key);
        h = curl_slist_append(h, header);
        memset(header, 0, sizeof header);                 /* the key leaves no copy behind */
    }
    return h;
}

static void send_row(deliverer *d, tenant_state *ts, const store_request *row, int cls) {
    const tenant_config *tc = ts->tc;
    sending *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->d = d;
    s->ts = ts;
    s->cls = cls;
    s->id = row->id;
    s->profile = strdup(row->profile);
    size_t len = row->body_len;
    s->body = malloc(len + 1);
    if (!s->profile || !s->body) abort();
    memcpy(s->body, row->body, len);
    s->attempts = row->attempts;
    s->created_at = row->created_at;
    char url[2048];
    snprintf(url, sizeof url, "%s%s", tc->base_url, row->path);
    s->headers = headers_for(tc);
    s->body_len = len;
    store_mark_sending(d->db, &s->id, 1);
    memory_put(d->busy_profiles, s->profile, strlen(s->profile), "1", 1);
    start_request(d, s, url);
}

/* The request on its way: headers, body, callbacks; the multi handle takes it from here. */
static void start_request(deliverer *d, sending *s, const char *url) {
    CURL *easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)s->body_len);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, s);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, s->error);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "returnflow");
    s->ts->in_flight++;
    s->easy = easy;
    s->next = d->in_flight;
    if (d->in_flight) d->in_flight->prev = s;
    d->in_flight = s;
    curl_multi_add_handle(d->multi, easy);
}

static int profile_busy(deliverer *d, const char *profile) {
    size_t len;
    return memory_get(d->busy_profiles, profile, strlen(profile), &len) != NULL;
}

/* Sends the job being packed (taking it over), if the bulk budget allows; else drops the packing. */
static int send_bulk(deliverer *d, tenant_state *ts, long long now, const long long *created) {
    bulk_job *job = d->packing;
    int n = bulk_count(job);
    if (n == 0) return 0;
    if (ts->in_flight >= MAX_IN_FLIGHT || ts->bulk_in_flight >= MAX_BULK_IN_FLIGHT || !take_token(ts, CLASS_BULK, now)) {
        bulk_reset(job);
        return -1;
    }
    ts->bulk_in_flight++;
    sending *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->d = d;
    s->ts = ts;
    s->cls = CLASS_BULK;
    s->bulk = job;
    d->packing = bulk_new(0, 0);
    s->created = malloc((size_t)n * sizeof *s->created);
    s->profiles = calloc((size_t)n, sizeof *s->profiles);
    long long *ids = calloc((size_t)n, sizeof *ids);
    if (!s->created || !s->profiles || !ids) abort();
    memcpy(s->created, created, (size_t)n * sizeof *s->created);
    s->created_at = created[0];
    for (int i = 0; i < n; i++) ids[i] = bulk_id(job, i);
    bulk_body(job, &s->body_len);
    s->body = bulk_take_body(job);                /* the job keeps only what blames need */
    store_mark_sending(d->db, ids, n);
    free(ids);
    /* Each profile of the job waits for Klaviyo's answer before its next request goes. */
    memory *seen = memory_new();
    for (int i = 0; i < n; i++) {
        const char *p = bulk_profile(job, i);
        size_t vlen;
        if (memory_get(seen, p, strlen(p), &vlen)) continue;
        memory_put(seen, p, strlen(p), "1", 1);
        memory_put(d->busy_profiles, p, strlen(p), "1", 1);
        if (!(s->profiles[s->nprofiles++] = strdup(p))) abort();
    }
    memory_free(seen);
    char url[2048];
    snprintf(url, sizeof url, "%s/api/event-bulk-create-jobs", ts->tc->base_url);
    s->headers = headers_for(ts->tc);
    start_request(d, s, url);
    return 1;
}

/* Per-profile state during one scan (the value stored in `seen`). */
#define HELD "h"                      /* its head was sent, is busy, or waits: the rest waits too */

/* Starts what may start now for one tenant: the head of each profile's queue, or, with a
 * backlog, jobs of many profiles' events in order (each profile's run of events up to its
 * first request that is not an event). */
static void scan_tenant(deliverer *d, tenant_state *ts, long long now) {
    store_scan *scan = store_scan_queued(d->db, ts->tc->id, SCAN_LIMIT);
    if (!scan) return;
    store_request row;
    int bulk = strcmp(ts->tc->key_kind, "public") != 0 && now >= ts->bulk_off_until &&
               store_queued_at_least(d->db, ts->tc->id, BULK_THRESHOLD);
    /* With a backlog, events wait for the bulk budget rather than spend the single-event one, which
     * live webhooks need; nothing is packed while no job could leave. */
    int bulk_closed = bulk && !bulk_room(ts, now), generation = 0;
    long long created[BULK_MAX_EVENTS];
    memory *seen = memory_new();
    long long queued = 0;
    while (store_scan_next(scan, &row)) {
        queued++;
        const char *profile = row.profile;
        size_t plen = strlen(profile), vlen;
        const char *state = memory_get(seen, profile, plen, &vlen);
        if (state && strcmp(state, HELD) == 0) continue;
        const char *path = row.path;
        int due = row.next_at <= now;
        int is_event = strcmp(path, "/api/events") == 0;
        if (state) {                   /* a later row of a profile in the current job */
            char gen[16];
            snprintf(gen, sizeof gen, "%d", generation);
            int added = due && is_event && strcmp(state, gen) == 0 &&
                        bulk_add(d->packing, row.id, profile, row.body, row.body_len) == BULK_ADDED;
            if (added) created[bulk_count(d->packing) - 1] = row.created_at;
            else memory_put(seen, profile, plen, HELD, 1);
            continue;
        }
        if (profile_busy(d, profile) || !due) { memory_put(seen, profile, plen, HELD, 1); continue; }
        if (bulk && is_event && !bulk_closed) {
            long long id = row.id;
            const char *body = row.body;
            size_t blen = row.body_len;
            int rc = bulk_add(d->packing, id, profile, body, blen);
            if (rc == BULK_FULL) {
                if (send_bulk(d, ts, now, created) < 0) bulk_closed = 1;
                generation++;
                rc = bulk_closed ? BULK_FULL : bulk_add(d->packing, id, profile, body, blen);
            }
            if (rc == BULK_ADDED) {
                char gen[16];
                snprintf(gen, sizeof gen, "%d", generation);
                memory_put(seen, profile, plen, gen, strlen(gen));
                created[bulk_count(d->packing) - 1] = row.created_at;
                continue;
            }
            if (rc != BULK_NOT_EVENT) { memory_put(seen, profile, plen, HELD, 1); continue; }
        } else if (bulk && is_event) {
            memory_put(seen, profile, plen, HELD, 1);   /* the next job takes it */
            continue;
        }
        memory_put(seen, profile, plen, HELD, 1);
        if (ts->in_flight >= MAX_IN_FLIGHT) continue;             /* still counted for the queue depth */
        int cls = class_of(path);
        if (!take_token(ts, cls, now)) continue;                    /* another class may still go */
        send_row(d, ts, &row, cls);
    }
    if (bulk_count(d->packing)) send_bulk(d, ts, now, created);
    pthread_mutex_lock(&d->mu);
    ts->queued = queued;
    pthread_mutex_unlock(&d->mu);
    memory_free(seen);
    store_scan_end(scan);
}

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
    store_requeue_sending(d->db);
    return 1;
}

static void on_tick(uv_timer_t *t) {
    deliverer *d = t->data;
    long long now = clock_now_ms();
    if (d->stopping) {
        int busy = 0;
        for (int i = 0; i < d->ntenants; i++) busy += d->tenants[i].in_flight;
        if (!busy || now > d->stop_deadline) uv_stop(&d->loop);
        return;
    }
    if (!d->locked && !take_lock(d)) return;      /* another process delivers: wait for the lock */
    for (int i = 0; i < d->ntenants; i++)
        if (!d->tenants[i].paused) scan_tenant(d, &d->tenants[i], now);
    for (int i = 0; i < d->ndry; i++) dry_deliver(d->db, d->cfg->data_dir, d->dry[i]);
    int running;
    curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(d);
}

static void on_stop(uv_async_t *a) {
    deliverer *d = a->data;
    d->stopping = 1;
    d->stop_deadline = clock_now_ms() + 5000;
}

static void close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, h->type == UV_POLL ? (uv_close_cb)free : NULL);
}

static void *thread_main(void *arg) {
    deliverer *d = arg;
    uv_timer_start(&d->tick, on_tick, 50, 50);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    /* What the mapping threads' last pass left for a dry tenant reaches its file before the stop. */
    if (d->locked)
        for (int i = 0; i < d->ndry; i++) while (dry_deliver(d->db, d->cfg->data_dir, d->dry[i]) > 0) {}
    /* Whatever is still in flight stays queued in the store and is sent after the restart. */
    while (d->in_flight) release(d, d->in_flight);
    uv_walk(&d->loop, close_walk, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    json_thread_done();                          /* bulk.c read bodies on this thread */
    return NULL;
}

static void free_windows(deliverer *d) {
    for (int i = 0; i < d->ntenants; i++)
        for (int c = 0; c < CLASSES; c++) {
            free(d->tenants[i].burst[c].sent);
            free(d->tenants[i].steady[c].sent);
        }
}

deliverer *deliver_start(const config *cfg, char *err, size_t errlen) {
    deliverer *d = calloc(1, sizeof *d);
    if (!d) abort();
    d->cfg = cfg;
    d->tenants = calloc((size_t)(cfg->ntenants ? cfg->ntenants : 1), sizeof *d->tenants);
    d->dry = calloc((size_t)(cfg->ntenants ? cfg->ntenants : 1), sizeof *d->dry);
    if (!d->tenants || !d->dry) abort();
    for (int i = 0; i < cfg->ntenants; i++) {
        if (tenant_is_dry(&cfg->tenants[i])) { d->dry[d->ndry++] = &cfg->tenants[i]; continue; }
        tenant_state *ts = &d->tenants[d->ntenants++];
        ts->tc = &cfg->tenants[i];
        double scale = ts->tc->rate_scale > 0 ? ts->tc->rate_scale : 1;
        for (int c = 0; c < CLASSES; c++) {
            long long slack = c == CLASS_BULK ? BULK_SLACK_MS : WINDOW_SLACK_MS;
            window_init(&ts->burst[c], burst_per_s[c] * scale, 1000, slack);
            window_init(&ts->steady[c], steady_per_min[c] * scale, 60000, slack);
        }
    }
    char path[1024], why[1200];
    if (!(d->db = store_db_open(cfg->data_dir, STORE_RELAXED, why, sizeof why))) {
        snprintf(err, errlen, "delivery: %s", why);
        free_windows(d);
        free(d->tenants);
        free(d->dry);
        free(d);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/delivery.lock", cfg->data_dir);
    d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    d->packing = bulk_new(0, 0);
    d->busy_profiles = memory_new();
    pthread_mutex_init(&d->mu, NULL);
    uv_loop_init(&d->loop);
    uv_timer_init(&d->loop, &d->curl_timer);
    uv_timer_init(&d->loop, &d->tick);
    uv_async_init(&d->loop, &d->stop_async, on_stop);
    d->curl_timer.data = d->tick.data = d->stop_async.data = d;
    d->multi = curl_multi_init();
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, handle_socket);
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, start_timeout);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
    if (pthread_create(&d->tid, NULL, thread_main, d) != 0) {
        snprintf(err, errlen, "cannot start the delivery thread");
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
                 "returnflow_requests_total{tenant=\"%s\",outcome=\"dead\"} %llu\n"
                 "returnflow_bulk_jobs_total{tenant=\"%s\"} %llu\n",
                 ts->tc->id, ts->delivered, ts->tc->id, ts->retried, ts->tc->id, ts->dead, ts->tc->id, ts->bulk_jobs);
        strbuf_adds(out, line);
    }
    strbuf_adds(out, "# HELP returnflow_klaviyo_answers_total Klaviyo's answers by endpoint and status (0: none).\n"
                     "# TYPE returnflow_klaviyo_answers_total counter\n");
    for (int i = 0; i < d->ntenants; i++)
        for (int a = 0; a < d->tenants[i].nanswers; a++) {
            snprintf(line, sizeof line, "returnflow_klaviyo_answers_total{tenant=\"%s\",endpoint=\"%s\",status=\"%ld\"} %llu\n",
                     d->tenants[i].tc->id, class_names[d->tenants[i].answers[a].cls], d->tenants[i].answers[a].status,
                     d->tenants[i].answers[a].n);
            strbuf_adds(out, line);
        }
    strbuf_adds(out, "# TYPE returnflow_queue_depth gauge\n# TYPE returnflow_tenant_paused gauge\n");
    for (int i = 0; i < d->ntenants; i++) {
        snprintf(line, sizeof line, "returnflow_queue_depth{tenant=\"%s\"} %lld\nreturnflow_tenant_paused{tenant=\"%s\"} %d\n",
                 d->tenants[i].tc->id, d->tenants[i].queued, d->tenants[i].tc->id, d->tenants[i].paused);
        strbuf_adds(out, line);
    }
    strbuf_adds(out, "# HELP returnflow_delivery_seconds Time from queued to delivered.\n"
                     "# TYPE returnflow_delivery_seconds histogram\n");
    for (int i = 0; i < d->ntenants; i++) {
        unsigned long long cum = 0;
        for (int b = 0; b < 9; b++) {
            cum += d->tenants[i].latency[b];
            if (b < 8) snprintf(line, sizeof line, "returnflow_delivery_seconds_bucket{tenant=\"%s\",le=\"%g\"} %llu\n",
                                d->tenants[i].tc->id, latency_bounds[b], cum);
            else snprintf(line, sizeof line, "returnflow_delivery_seconds_bucket{tenant=\"%s\",le=\"+Inf\"} %llu\n"
                                             "returnflow_delivery_seconds_count{tenant=\"%s\"} %llu\n",
                          d->tenants[i].tc->id, cum, d->tenants[i].tc->id, cum);
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
    curl_multi_cleanup(d->multi);
    uv_loop_close(&d->loop);
    store_db_close(d->db);
    if (d->lock_fd >= 0) close(d->lock_fd);       /* the lock goes with it */
    bulk_free(d->packing);
    memory_free(d->busy_profiles);
    pthread_mutex_destroy(&d->mu);
    free_windows(d);
    free(d->tenants);
    free(d->dry);
    free(d);
}
