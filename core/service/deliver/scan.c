/*
 * scan.c: what may start now, for one tenant, each tick: the head of each profile's queue as a
 * single request, or, with a backlog (BULK_THRESHOLD queued, a private key), jobs of many
 * profiles' events packed by bulk.c, on the bulk endpoint's own budget.
 *
 * Invariant (per-profile order): only the oldest queued request of a profile may be in flight; the
 * rest of that profile waits behind it, and nothing else does. A scan only reads: what it chooses is
 * sent by deliver_launch (settle.c) once the scan has ended and the store has the rows in flight. A bulk job takes each profile's run
 * of events up to its first request that is not an event, in order, and marks every profile of the
 * job busy until Klaviyo answers.
 */
#include "deliverer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "klaviyo_endpoints.h"
#include "log.h"

/* ---------------------------- profiles in a scan --------------------------- */

/* What one scan knows of a profile it met: held (its head was sent, is busy, or waits, so the rest
 * waits too), or packing its run of events into the scan's bulk job number `job`. */
typedef struct profile_state { char *profile; int held, job; } profile_state;

/* The profiles a scan met (at most SCAN_LIMIT): open addressing, grown at half full. */
typedef struct profile_table { profile_state *slots; size_t cap, n; } profile_table;

static size_t hash(const char *s) {
    size_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static profile_state *slot_of(profile_state *slots, size_t cap, const char *profile) {
    size_t i = hash(profile) & (cap - 1);
    while (slots[i].profile && strcmp(slots[i].profile, profile) != 0) i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* The profile's state, or NULL if the scan has not met it. */
static profile_state *profile_find(const profile_table *t, const char *profile) {
    if (!t->cap) return NULL;
    profile_state *p = slot_of(t->slots, t->cap, profile);
    return p->profile ? p : NULL;
}

/* The profile's state, added (not held, job -1) if new. */
static profile_state *profile_meet(profile_table *t, const char *profile) {
    if (2 * (t->n + 1) > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        profile_state *slots = calloc(cap, sizeof *slots);
        if (!slots) abort();
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].profile) *slot_of(slots, cap, t->slots[i].profile) = t->slots[i];
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    profile_state *p = slot_of(t->slots, t->cap, profile);
    if (!p->profile) {
        if (!(p->profile = strdup(profile))) abort();
        p->held = 0;
        p->job = -1;
        t->n++;
    }
    return p;
}

static void profile_hold(profile_table *t, const char *profile) { profile_meet(t, profile)->held = 1; }

static void profile_table_free(profile_table *t) {
    for (size_t i = 0; i < t->cap; i++) free(t->slots[i].profile);
    free(t->slots);
}

/* ------------------------------- starting ---------------------------------- */

static int profile_busy(deliverer *d, const char *profile) {
    size_t len;
    return strmap_get(d->busy_profiles, profile, strlen(profile), &len) != NULL;
}

/* Only the base URL plus a path of the fixed endpoint table (klaviyo_endpoints.h) ever leaves,
 * whatever a row holds: anything else is a dead letter with the reason, never a request elsewhere. */
static int refuse_foreign(deliverer *d, tenant_state *ts, const store_request *row, long long now) {
    const tenant_config *tc = ts->tc;
    if (klaviyo_endpoint_allowed(row->method, row->path, tc->key_kind, tc->site_id) &&
        strlen(tc->base_url) + strlen(row->path) < 2048)
        return 0;
    deliver_settle(d, row->id, &(store_outcome){ REQUEST_DEAD, 0, now,
                   "refused: its method and path are not a Klaviyo endpoint of the tenant's key kind (nothing was sent)", 1 });
    pthread_mutex_lock(&d->mu);
    ts->dead++;
    pthread_mutex_unlock(&d->mu);
    char f[256];
    snprintf(f, sizeof f, "\"tenant\":\"%s\",\"outbox\":%lld", tc->id, row->id);
    log_line("warn", "request refused: not a Klaviyo endpoint (dead-lettered, nothing sent)", f);
    return 1;
}

static void send_row(deliverer *d, tenant_state *ts, const store_request *row, rate_class cls, long long now,
                     long long mono) {
    const tenant_config *tc = ts->tc;
    long long seq[2];
    rate_taken(&ts->rate, cls, seq);
    if (refuse_foreign(d, ts, row, now)) {
        rate_answered(&ts->rate, cls, seq, mono);           /* nothing went: its place is given back */
        return;
    }
    sending *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->d = d;
    s->ts = ts;
    s->cls = cls;
    memcpy(s->seq, seq, sizeof seq);
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
    s->headers = deliver_headers(tc);
    s->body_len = len;
    strmap_put(d->busy_profiles, s->profile, strlen(s->profile), "1", 1);
    ts->in_flight++;
    deliver_prepare_request(d, s, url);
    s->next = d->starting;
    d->starting = s;
}

/* Sends job to path on the bulk budget, taking the job over (1); -1 when the budget has no room
 * (the job stays the caller's). */
static int send_job(deliverer *d, tenant_state *ts, bulk_job *job, const char *path, long long mono,
                    const long long *created, const int *attempts) {
    int n = bulk_count(job);
    if (ts->in_flight >= MAX_IN_FLIGHT || ts->bulk_in_flight >= MAX_BULK_IN_FLIGHT ||
        !rate_take(&ts->rate, CLASS_BULK, mono))
        return -1;
    ts->bulk_in_flight++;
    ts->in_flight++;
    sending *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->d = d;
    s->ts = ts;
    s->cls = CLASS_BULK;
    rate_taken(&ts->rate, CLASS_BULK, s->seq);
    s->bulk = job;
    s->created = malloc((size_t)n * sizeof *s->created);
    s->row_attempts = malloc((size_t)n * sizeof *s->row_attempts);
    s->profiles = calloc((size_t)n, sizeof *s->profiles);
    if (!s->created || !s->row_attempts || !s->profiles) abort();
    memcpy(s->created, created, (size_t)n * sizeof *s->created);
    memcpy(s->row_attempts, attempts, (size_t)n * sizeof *s->row_attempts);
    s->created_at = created[0];
    s->attempts = attempts[0];
    for (int i = 1; i < n; i++) if (attempts[i] < s->attempts) s->attempts = attempts[i];   /* the job's cool-down */
    bulk_body(job, &s->body_len);
    s->body = bulk_take_body(job);                /* the job keeps only what blames need */
    /* Each profile of the job waits for Klaviyo's answer before its next request goes. */
    for (int i = 0; i < n; i++) {
        const char *p = bulk_profile(job, i);
        if (profile_busy(d, p)) continue;          /* met earlier in this job */
        strmap_put(d->busy_profiles, p, strlen(p), "1", 1);
        if (!(s->profiles[s->nprofiles++] = strdup(p))) abort();
    }
    char url[2048];
    snprintf(url, sizeof url, "%s%s", ts->tc->base_url, path);
    s->headers = deliver_headers(ts->tc);
    deliver_prepare_request(d, s, url);
    s->next = d->starting;
    d->starting = s;
    return 1;
}

/* Sends the job being packed (taking it over), if the bulk budget allows; else drops the packing. */
static int send_bulk(deliverer *d, tenant_state *ts, long long mono, const long long *created, const int *attempts) {
    if (bulk_count(d->packing) == 0) return 0;
    if (send_job(d, ts, d->packing, "/api/event-bulk-create-jobs", mono, created, attempts) < 0) {
        bulk_reset(d->packing);
        return -1;
    }
    d->packing = bulk_new(0, 0);
    bulk_set_parts(d->packing, d->parts);
    return 1;
}

/* A public key's backlog: the profiles with two or more rows among the next SCAN_LIMIT queued
 * ("2"; their events may go together), and the last id of those rows. */
static strmap *client_candidates(deliverer *d, const char *tenant, long long *last_id) {
    strmap *m = strmap_new();
    *last_id = 0;
    store_scan *scan = store_scan_queued(d->db, tenant, SCAN_LIMIT);
    if (!scan) return m;
    store_request row;
    while (store_scan_next(scan, &row) > 0) {
        size_t vlen, plen = strlen(row.profile);
        *last_id = row.id;
        strmap_put(m, row.profile, plen, strmap_get(m, row.profile, plen, &vlen) ? "2" : "1", 1);
    }
    store_scan_end(scan);
    return m;
}

/* A public key has no bulk job, but /client/event-bulk-create takes one profile's events (up to
 * 1,000) on a budget of its own (10/s beside the 350/s of /client/events). So when a public tenant
 * has a backlog, a profile's run of two or more due events (up to the first that is not an event,
 * not due or not packable, and up to last_id) leaves as one request. 1 when it left, 0 when the
 * profile's first request is to go on its own. */
static int send_client_bulk(deliverer *d, tenant_state *ts, const char *profile, long long last_id, long long now,
                            long long mono) {
    store_scan *scan = store_scan_queued(d->db, ts->tc->id, SCAN_LIMIT);
    if (!scan) return 0;
    bulk_job *job = bulk_new_client();
    bulk_set_parts(job, d->parts);
    long long created[BULK_MAX_EVENTS];
    int attempts[BULK_MAX_EVENTS];
    store_request row;
    while (store_scan_next(scan, &row) > 0 && row.id <= last_id) {
        if (strcmp(row.profile, profile) != 0) continue;
        if (strncmp(row.path, "/client/events?", 15) != 0 || row.next_at > now ||
            bulk_add(job, row.id, profile, row.body, row.body_len) != BULK_ADDED) break;
        created[bulk_count(job) - 1] = row.created_at;
        attempts[bulk_count(job) - 1] = row.attempts;
    }
    store_scan_end(scan);
    char path[200];
    snprintf(path, sizeof path, "/client/event-bulk-create?company_id=%s", ts->tc->site_id);
    if (bulk_count(job) >= 2 && send_job(d, ts, job, path, mono, created, attempts) > 0) return 1;
    bulk_free(job);
    return 0;
}

/* No job could leave now: the bulk budget is spent, or as many requests as may be are in flight. */
static int bulk_closed_now(const tenant_state *ts, long long mono) {
    return !rate_bulk_room(&ts->rate, mono) || ts->in_flight >= MAX_IN_FLIGHT || ts->bulk_in_flight >= MAX_BULK_IN_FLIGHT;
}

/* A backlog waiting for a job to leave was read again at every tick: 2,000 rows every 50 ms, up to
 * a quarter of a core while the bulk budget stays spent or the jobs in flight are answered, to send
 * nothing. So a scan that could send nothing but for that (every row it looked at an event waiting
 * for a job, a row of a profile in flight or after one held, or a row not yet due) marks the tenant
 * idle, and the next ticks skip it while no job could leave, no request was answered or given back
 * (d->freed), no row's retry time has come, and the rows a scan would read are the same:
 *   - its count of queued rows (the store's queue_counts, one row) is the same; or
 *   - the scan read all SCAN_LIMIT rows it may, and the rows up to the last it read are all still
 *     queued (an index count): a scan reads no further, so rows queued since, which come after,
 *     change nothing it would find. While a backfill is read, rows are queued at every tick: without
 *     this the backlog was read whole at each one. (Ids only grow while a queued row is past the
 *     last read: SQLite gives an id again only after the newest row is gone.) */
static int still_idle(deliverer *d, tenant_state *ts, long long now, long long mono) {
    if (!ts->idle) return 0;
    if (d->freed == ts->idle_freed && bulk_closed_now(ts, mono) && now < ts->idle_until) {
        long long queued = store_queued_count(d->db, ts->tc->id);
        if (queued == ts->idle_queued) return 1;
        if (ts->idle_read == SCAN_LIMIT && queued > SCAN_LIMIT &&
            store_queued_through(d->db, ts->tc->id, ts->idle_last_id) == SCAN_LIMIT)
            return 1;
    }
    ts->idle = 0;
    return 0;
}

int deliver_scan(deliverer *d, tenant_state *ts, long long now, long long mono) {
    if (still_idle(d, ts, now, mono)) return 0;
    int public = strcmp(ts->tc->key_kind, "public") == 0;
    int bulk = !public && mono >= ts->bulk_off_until && store_queued_at_least(d->db, ts->tc->id, BULK_THRESHOLD);
    /* With no job able to leave, the scan may find the tenant idle: its count before the scan is what
     * still_idle compares (a row queued meanwhile makes it differ). */
    long long queued_before = bulk && bulk_closed_now(ts, mono) ? store_queued_count(d->db, ts->tc->id) : -1;
    int sent = 0, other_hold = 0;              /* a row sent, or held for another reason than bulk */
    long long next_due = LLONG_MAX;
    store_scan *scan = store_scan_queued(d->db, ts->tc->id, SCAN_LIMIT);
    if (!scan) return -1;
    store_request row;
    long long last_id = 0, last_read = 0;
    strmap *multi = public && mono >= ts->bulk_off_until && rate_bulk_room(&ts->rate, mono) &&
                    store_queued_at_least(d->db, ts->tc->id, BULK_THRESHOLD)
                    ? client_candidates(d, ts->tc->id, &last_id) : NULL;
    /* With a backlog, events wait for the bulk budget rather than spend the single-event one, which
     * live webhooks need; nothing is packed while no job could leave. */
    int bulk_room = rate_bulk_room(&ts->rate, mono) && ts->in_flight < MAX_IN_FLIGHT &&
                    ts->bulk_in_flight < MAX_BULK_IN_FLIGHT;
    int bulk_closed = bulk && !bulk_room, job = 0;
    long long created[BULK_MAX_EVENTS];
    int attempts[BULK_MAX_EVENTS];
    profile_table seen = {0};
    int more;
    long long newest = 0;                /* the latest queue time of a row in the scan */
    int read = 0;
    while ((more = store_scan_next(scan, &row)) > 0) {
        const char *profile = row.profile;
        read++;
        last_read = row.id;
        if (row.created_at > newest) newest = row.created_at;
        profile_state *state = profile_find(&seen, profile);
        if (state && state->held) continue;
        int due = row.next_at <= now;
        int is_event = strcmp(row.path, "/api/events") == 0;
        if (state) {                   /* a later row of a profile in a job of this scan */
            int added = due && is_event && state->job == job &&
                        bulk_add(d->packing, row.id, profile, row.body, row.body_len) == BULK_ADDED;
            if (added) {
                created[bulk_count(d->packing) - 1] = row.created_at;
                attempts[bulk_count(d->packing) - 1] = row.attempts;
            } else {
                state->held = 1;
            }
            continue;
        }
        int busy = profile_busy(d, profile);
        if (busy || !due) {                       /* free once its request is answered (d->freed) */
            if (!due && row.next_at < next_due) next_due = row.next_at;
            profile_hold(&seen, profile);
            continue;
        }
        size_t vlen;
        const char *n = multi ? strmap_get(multi, profile, strlen(profile), &vlen) : NULL;
        if (n && *n == '2' && rate_bulk_room(&ts->rate, mono) && send_client_bulk(d, ts, profile, last_id, now, mono)) {
            profile_hold(&seen, profile);
            sent = 1;
            continue;
        }
        if (bulk && is_event && !bulk_closed) {
            int rc = bulk_add(d->packing, row.id, profile, row.body, row.body_len);
            if (rc == BULK_FULL) {
                if (send_bulk(d, ts, mono, created, attempts) < 0) bulk_closed = 1;
                job++;
                rc = bulk_closed ? BULK_FULL : bulk_add(d->packing, row.id, profile, row.body, row.body_len);
            }
            if (rc == BULK_ADDED) {
                profile_meet(&seen, profile)->job = job;
                created[bulk_count(d->packing) - 1] = row.created_at;
                attempts[bulk_count(d->packing) - 1] = row.attempts;
                continue;
            }
            if (rc != BULK_NOT_EVENT) { profile_hold(&seen, profile); continue; }
        } else if (bulk && is_event) {
            profile_hold(&seen, profile);             /* the next job takes it */
            continue;
        }
        profile_hold(&seen, profile);
        other_hold = 1;                           /* a single: sent now, or when its class has room */
        if (ts->in_flight >= MAX_IN_FLIGHT) continue;
        rate_class cls = rate_class_of(row.path);
        if (!rate_take(&ts->rate, cls, mono)) continue;            /* another class may still go */
        send_row(d, ts, &row, cls, now, mono);
        sent = 1;
    }
    if (bulk_count(d->packing)) {
        long long oldest = created[0];
        for (int i = 1; i < bulk_count(d->packing); i++) if (created[i] < oldest) oldest = created[i];
        if (bulk_may_wait(oldest, newest, now)) bulk_reset(d->packing);      /* the next scan packs it again */
        else send_bulk(d, ts, mono, created, attempts);
    }
    profile_table_free(&seen);
    strmap_free(multi);
    store_scan_end(scan);
    if (more == 0 && queued_before >= 0 && bulk_closed && !sent && !other_hold) {
        ts->idle = 1;
        ts->idle_freed = d->freed;
        ts->idle_queued = queued_before;
        ts->idle_until = next_due;
        ts->idle_last_id = last_read;
        ts->idle_read = read;
    }
    return more < 0 ? -1 : 0;
}
