/*
 * settle.c: delivery sends nothing it could not record, and forgets no answer it had.
 *
 * Before: an outcome the store refused (a full disk) left its row queued, so the next scan sent it
 * again, and again: 15,362 requests for 583 rows. Now every change delivery makes to the store goes
 * through here:
 * - the requests a scan chose are sent only once the store has them marked in flight (one
 *   transaction for the lot, deliver_launch); if it refuses, none of them is sent;
 * - every answer's outcome is kept in memory (deliver_settle) and committed with the others of its
 *   moment in one transaction (deliver_flush); if the store refuses, they stay in memory;
 * - while anything stays uncommitted, or the store refused a read, the deliverer takes no new row
 *   for any tenant and tries the store again with a backoff (STORE_RETRY_MIN_MS doubling up to
 *   STORE_RETRY_MAX_MS); requests already in flight finish, and their answers are kept too.
 * So a row is sent at most once per attempt whatever the store does. The state goes to
 * store_health.h (/healthz, /metrics, `returnflow status`), which logs each change once. On a shared
 * store each tenant's marks are fenced by its lease (store_mark_sending_fenced): a node that lost
 * the tenant sends none of them.
 *
 * A crash while answers are kept loses them: their rows are in flight in the store, and a start puts
 * them back in the queue, so they are sent again (at least once; Klaviyo keeps one per unique_id).
 */
#include "deliverer.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "store_health.h"

#define STORE_RETRY_MIN_MS 100
#define STORE_RETRY_MAX_MS 5000

typedef struct settle { long long id; store_outcome o; char *error; } settle;

void deliver_settle(deliverer *d, long long id, const store_outcome *o) {
    if (d->nsettles == d->settles_cap) {
        d->settles_cap = d->settles_cap ? 2 * d->settles_cap : 256;
        d->settles = realloc(d->settles, (size_t)d->settles_cap * sizeof *d->settles);
        if (!d->settles) abort();
    }
    settle *k = &d->settles[d->nsettles++];
    k->id = id;
    k->o = *o;
    k->error = o->error ? strdup(o->error) : NULL;
    if (o->error && !k->error) abort();
    k->o.error = k->error;
}

int deliver_flush(deliverer *d) {
    if (!d->nsettles) return 0;
    long long *ids = malloc((size_t)d->nsettles * sizeof *ids);
    store_outcome *o = malloc((size_t)d->nsettles * sizeof *o);
    if (!ids || !o) abort();
    for (int i = 0; i < d->nsettles; i++) {
        ids[i] = d->settles[i].id;
        o[i] = d->settles[i].o;
    }
    int rc = store_settle(d->db, ids, o, d->nsettles);
    free(ids);
    free(o);
    if (rc != 0) {
        deliver_store_failed(d, 0, "cannot record Klaviyo's answers");
        return -1;
    }
    for (int i = 0; i < d->nsettles; i++) free(d->settles[i].error);
    d->nsettles = 0;
    deliver_store_worked(d, 1);
    deliver_read_depths(d);
    return 0;
}

/* A request chosen but never sent: everything it took is given back (its place in the rate
 * windows from now, as if answered: the window stays conservative). */
static void discard(deliverer *d, sending *s) {
    rate_answered(&s->ts->rate, s->cls, s->seq, clock_mono_ms());
    s->ts->in_flight--;
    d->freed++;
    if (s->bulk) {
        s->ts->bulk_in_flight--;
        for (int i = 0; i < s->nprofiles; i++) strmap_del(d->busy_profiles, s->profiles[i], strlen(s->profiles[i]));
    } else {
        strmap_del(d->busy_profiles, s->profile, strlen(s->profile));
    }
    deliver_free_sending(s);
}

/* The rows of the requests in list (of one tenant when only is set), in ids, and the Klaviyo bulk
 * job each goes in, in bulk (both grown as needed): a job is named by its first row. */
static int ids_of(sending *list, const tenant_state *only, long long **ids, store_bulk_mark **bulk, int *cap) {
    int n = 0;
    for (sending *s = list; s; s = s->next) {
        if (only && s->ts != only) continue;
        int k = s->bulk ? bulk_count(s->bulk) : 1;
        while (n + k > *cap) {
            *cap *= 2;
            *ids = realloc(*ids, (size_t)*cap * sizeof **ids);
            *bulk = realloc(*bulk, (size_t)*cap * sizeof **bulk);
            if (!*ids || !*bulk) abort();
        }
        for (int i = 0; i < k; i++, n++) {
            (*ids)[n] = s->bulk ? bulk_id(s->bulk, i) : s->id;
            (*bulk)[n] = s->bulk ? (store_bulk_mark){ bulk_id(s->bulk, 0), k } : (store_bulk_mark){ 0, 0 };
        }
    }
    return n;
}

/* Sends (or discards) the requests of list that are of tenant `of` (every one when NULL); the rest
 * stay in list. */
static sending *launch_or_discard(deliverer *d, sending *list, const tenant_state *of, int send) {
    sending *rest = NULL, **tail = &rest;
    while (list) {
        sending *s = list;
        list = s->next;
        s->next = NULL;
        if (of && s->ts != of) { *tail = s; tail = &s->next; continue; }
        if (send) deliver_start_request(d, s);
        else discard(d, s);
    }
    return rest;
}

void deliver_launch(deliverer *d) {
    sending *list = d->starting;
    d->starting = NULL;
    if (!list) return;
    int cap = 64;
    long long *ids = malloc((size_t)cap * sizeof *ids);
    store_bulk_mark *bulk = malloc((size_t)cap * sizeof *bulk);
    if (!ids || !bulk) abort();
    if (!ownership_clustered(d->own)) {           /* one node: the lot in one transaction */
        int n = ids_of(list, NULL, &ids, &bulk, &cap);
        int ok = store_mark_sending(d->db, ids, bulk, n) == 0;
        free(ids);
        free(bulk);
        if (!ok) deliver_store_failed(d, 0, "cannot mark requests in flight: none of them is sent");
        else deliver_store_worked(d, 1);
        launch_or_discard(d, list, NULL, ok);
        return;
    }
    /* Several nodes: each tenant's requests in a transaction fenced by its lease, so a node that lost
     * the tenant sends none of them (the new owner does). */
    while (list) {
        tenant_state *ts = list->ts;
        int n = ids_of(list, ts, &ids, &bulk, &cap);
        int rc = store_mark_sending_fenced(d->db, ts->tc->id, ownership_node(d->own), ts->epoch, ids, bulk, n);
        if (rc < 0) {
            deliver_store_failed(d, 0, "cannot mark requests in flight: none of them is sent");
            launch_or_discard(d, list, NULL, 0);
            break;
        }
        deliver_store_worked(d, 1);
        list = launch_or_discard(d, list, ts, rc == 0);
    }
    free(ids);
    free(bulk);
}

int deliver_store_may_try(deliverer *d, long long mono) { return !d->store_down || mono >= d->store_retry_at; }

void deliver_store_failed(deliverer *d, int on_read, const char *what) {
    store_fault fault = store_db_fault(d->db);
    char why[400];
    snprintf(why, sizeof why, "%s: %s", what, store_db_error(d->db));
    long long wait = STORE_RETRY_MIN_MS;
    for (int i = 0; i < d->store_tries && wait < STORE_RETRY_MAX_MS; i++) wait *= 2;
    if (wait > STORE_RETRY_MAX_MS) wait = STORE_RETRY_MAX_MS;
    d->store_down = 1;
    d->down_on_read = on_read;
    d->store_tries++;
    d->store_retry_at = clock_mono_ms() + wait;
    store_health_failed(STORE_PART_DELIVERY, fault == STORE_FAULT_NONE ? STORE_FAULT_OTHER : fault, why);
}

/* A write went through (or a read, when a read was what failed): the store is back. */
void deliver_store_worked(deliverer *d, int wrote) {
    if (!d->store_down || (!wrote && !d->down_on_read) || d->nsettles) return;
    d->store_down = 0;
    d->store_tries = 0;
    store_health_ok(STORE_PART_DELIVERY);
}

void deliver_settles_free(deliverer *d) {
    for (int i = 0; i < d->nsettles; i++) free(d->settles[i].error);
    free(d->settles);
    d->settles = NULL;
    d->nsettles = d->settles_cap = 0;
}
