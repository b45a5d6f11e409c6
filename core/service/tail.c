/*
 * tail.c: the live tail's ring (tail.h), behind one mutex: the mapping threads write an item per
 * committed event, the console's thread reads a few times a second.
 */
#include "tail.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "json.h"

static pthread_mutex_t ring_mu = PTHREAD_MUTEX_INITIALIZER;
static tail_item ring[TAIL_RING];
static unsigned long long last_seq;
static atomic_int enabled;

void tail_enable(void) { atomic_store(&enabled, 1); }

/* The text of a top-level (or one level down) string member, as written (escapes kept), cut to fit. */
static void member_into(const char *body, size_t len, const char *name, const char *sub, char *out, size_t n) {
    const char *v;
    size_t vn;
    out[0] = 0;
    if (json_member(body, len, name, &v, &vn) != 0) return;
    if (sub && (vn == 0 || *v != '{' || json_member(v, vn, sub, &v, &vn) != 0)) return;
    if (vn < 2 || *v != '"') return;
    size_t k = vn - 2 < n - 1 ? vn - 2 : n - 1;
    memcpy(out, v + 1, k);
    out[k] = 0;
}

void tail_publish(const char *tenant, long long event_id, const char *outcome, const char *reason,
                  const char *body, size_t len) {
    if (!atomic_load(&enabled)) return;
    tail_item it = { .event_id = event_id, .at = clock_now_ms() };
    snprintf(it.tenant, sizeof it.tenant, "%s", tenant);
    snprintf(it.outcome, sizeof it.outcome, "%s", outcome);
    snprintf(it.reason, sizeof it.reason, "%s", reason ? reason : "");
    member_into(body, len, "trigger", NULL, it.trigger, sizeof it.trigger);
    member_into(body, len, "customer", NULL, it.customer, sizeof it.customer);
    char first[80], last[80];
    member_into(body, len, "customer_detail", "first_name", first, sizeof first);
    member_into(body, len, "customer_detail", "last_name", last, sizeof last);
    snprintf(it.name, sizeof it.name, "%s%s%s", first, *first && *last ? " " : "", last);
    pthread_mutex_lock(&ring_mu);
    it.seq = ++last_seq;
    ring[it.seq % TAIL_RING] = it;
    pthread_mutex_unlock(&ring_mu);
}

int tail_since(unsigned long long after, tail_item *out, int max) {
    pthread_mutex_lock(&ring_mu);
    unsigned long long from = after + 1;
    if (last_seq >= TAIL_RING && from <= last_seq - TAIL_RING) from = last_seq - TAIL_RING + 1;
    int n = 0;
    for (unsigned long long s = from; s <= last_seq && n < max; s++) out[n++] = ring[s % TAIL_RING];
    pthread_mutex_unlock(&ring_mu);
    return n;
}
