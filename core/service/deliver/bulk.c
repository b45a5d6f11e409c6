/*
 * bulk.c: single-event request bodies packed into one events-bulk-create job.
 *
 * The mapper writes one EventCreateQueryV2 body per tracked event, which is
 * what a live webhook wants: one request, sent at once. A backlog (a burst,
 * a backfill) wants the opposite: Klaviyo's bulk endpoint takes up to 1,000
 * events in one request, and its own rate budget. Repacking at delivery time
 * keeps one outbox, one order and one retry story for both; the bodies are
 * our own encoder's output, so moving their members about is a textual job.
 *
 * A job groups events by profile, as the endpoint does: one entry per profile
 * with its events in queue order. Klaviyo fails a whole bulk request that
 * repeats a unique_id for one profile and metric, and a profile can carry only
 * one set of attributes per entry, so such an event is refused here and waits
 * for the next job. Errors that point into the job name the events to blame.
 *
 * A public key has no bulk job, but /client/event-bulk-create takes one
 * profile's events (up to 1,000) in one request, on its own budget: its body is
 * exactly one entry of a job, {"data": ENTRY}. A client job (bulk_new_client)
 * holds one profile, refuses a second, and writes that body.
 */
#include "bulk.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "strbuf.h"

typedef struct entry {
    char *profile_key;
    char *attributes, *meta;          /* the profile, meta moved beside its attributes */
    int first, count;                 /* its events: events[first .. first + count) */
} entry;

typedef struct event {
    long long id;
    char *attributes;                 /* the event's attributes without its profile */
    char *key;                        /* metric and unique_id, for the duplicate rule */
    int entry;
} event;

struct bulk_job {
    entry *entries;
    int nentries, entries_cap;
    event *events;
    int nevents, events_cap;
    size_t size;                      /* of the body once written */
    int max_events;
    size_t max_bytes;
    int client;                       /* one profile, written as /client/event-bulk-create's body */
    int *index;                       /* entry + 1 by its profile key's hash (open addressing); 0: free */
    size_t index_slots;               /* a power of two, at least twice the entries */
    strbuf body;
    bulk_parts *parts;                /* what earlier jobs read from bodies (bulk_set_parts), or NULL */
};

/* A backlog is sent in bulk because the bulk budget is the scarce one (Klaviyo: 150 jobs a minute),
 * and a job of 200 events spends as much of it as one of 1,000: a backfill that sent each scan's
 * arrivals at once used 371 jobs for 300 jobs' events. So a job waits while the queue still grows
 * (the mapping commits a batch every few hundred ms at worst), and at most BULK_LINGER_MS: jobs are
 * packed only with a backlog, when live events wait seconds anyway. A queue that stopped growing
 * gains nothing by waiting. A row stored after the tick read its clock (a mapping commit during the
 * tick) is a few ms "in the future": it has waited 0 (counted as never waiting, a backfill's first
 * rows left as a job of 128 events, and the one job too many waited a minute window at the end).
 * An age further outside [0, bound) (a clock set back, another node's clock) never waits, so no
 * clock can hold a job for longer than twice the bound. */
int bulk_may_wait(long long oldest, long long newest, long long now) {
    long long waited = now - oldest, quiet = now - newest;
    if (waited < 0 && waited > -BULK_LINGER_MS) waited = 0;
    if (quiet < 0 && quiet > -BULK_LINGER_MS) quiet = 0;
    return waited >= 0 && waited < BULK_LINGER_MS && quiet >= 0 && quiet < BULK_QUIET_MS;
}

/* ------------------------------ reading bodies ------------------------------ */

typedef struct span { const char *p; size_t n; } span;

static int key_is(span key, const char *name) {
    return key.n == strlen(name) && memcmp(key.p, name, key.n) == 0;
}

/* obj.name, or an empty span. */
static span member(span obj, const char *name) {
    span v = { NULL, 0 };
    if (obj.p) json_member(obj.p, obj.n, name, &v.p, &v.n);
    return v;
}

/* An object's members other than one, written again as an object. */
typedef struct without { const char *skip; strbuf *out; int n; } without;

static int copy_member(void *ud, const char *k, size_t klen, const char *v, size_t vlen) {
    without *w = ud;
    if (key_is((span){ k, klen }, w->skip)) return 0;
    strbuf_adds(w->out, w->n++ ? ",\"" : "{\"");
    strbuf_add(w->out, k, klen);
    strbuf_adds(w->out, "\":");
    strbuf_add(w->out, v, vlen);
    return 0;
}

static char *object_without(span obj, const char *skip) {
    strbuf out = {0};
    without w = { skip, &out, 0 };
    json_each_member(obj.p, obj.n, copy_member, &w);
    strbuf_adds(&out, w.n ? "}" : "{}");
    strbuf_addc(&out, 0);
    return out.data;
}

static char *copy_span(span s) {
    char *c = malloc(s.n + 1);
    if (!c) abort();
    memcpy(c, s.p, s.n);
    c[s.n] = 0;
    return c;
}

/* The duplicate key of an event's data.attributes. */
static int key_of(span attrs, span metric_obj, char *out, size_t outlen) {
    span metric = member(member(member(metric_obj, "data"), "attributes"), "name");
    span uid = member(attrs, "unique_id");
    if (!metric.p) return -1;
    snprintf(out, outlen, "%.*s\x1f%.*s", (int)metric.n, metric.p, (int)uid.n, uid.p ? uid.p : "");
    return 0;
}

int bulk_event_key(const char *body, size_t len, char *out, size_t outlen) {
    span attrs = member(member((span){ body, len }, "data"), "attributes");
    return key_of(attrs, member(attrs, "metric"), out, outlen);
}

/* ------------------------------- parts kept --------------------------------- */

/* What bulk_add reads from one body: the profile's attributes and meta, the event's attributes
 * without the profile, the duplicate key; or that it is no event body. */
typedef struct parts {
    int not_event;
    char *pattrs, *pmeta, *eattrs, *key;
} parts;

static void parts_clear(parts *p) {
    free(p->pattrs);
    free(p->pmeta);
    free(p->eattrs);
    free(p->key);
    *p = (parts){0};
}

static int read_parts(const char *body, size_t len, parts *out) {
    *out = (parts){ .not_event = 1 };
    span data = member((span){ body, len }, "data");
    span attrs = member(data, "attributes");
    span profile_attrs = member(member(member(attrs, "profile"), "data"), "attributes");
    span metric = member(attrs, "metric");
    if (!profile_attrs.p || !metric.p) return -1;
    char key[600];
    if (key_of(attrs, metric, key, sizeof key) != 0) return -1;
    span meta = member(profile_attrs, "meta");
    out->not_event = 0;
    out->pattrs = object_without(profile_attrs, "meta");
    out->pmeta = meta.p ? copy_span(meta) : NULL;
    out->eattrs = object_without(attrs, "profile");
    out->key = strdup(key);
    if (!out->key) abort();
    return 0;
}

/* A backlog's events are packed again at each scan while their job waits to fill (bulk_may_wait):
 * reading their bodies again (JSON walks and copies) was 43% of the delivery thread's CPU in a
 * backfill at Klaviyo's limits. So the parts of a body are kept by its outbox row id, beside the
 * body itself, which a later read must match byte for byte: SQLite gives a row id again once the
 * newest row is gone, to another body. At most PARTS_KEPT bodies; then all are dropped at once. */
#define PARTS_SLOTS 4096                      /* a power of two */
#define PARTS_KEPT (PARTS_SLOTS / 2)

typedef struct kept { long long id; char *body; size_t len; parts p; } kept;

struct bulk_parts {
    kept *slots;
    size_t used;
};

bulk_parts *bulk_parts_new(void) {
    bulk_parts *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->slots = calloc(PARTS_SLOTS, sizeof *c->slots);
    if (!c->slots) abort();
    return c;
}

static void parts_drop_all(bulk_parts *c) {
    for (size_t i = 0; i < PARTS_SLOTS; i++) {
        if (!c->slots[i].body) continue;
        free(c->slots[i].body);
        parts_clear(&c->slots[i].p);
        c->slots[i] = (kept){0};
    }
    c->used = 0;
}

void bulk_parts_free(bulk_parts *c) {
    if (!c) return;
    parts_drop_all(c);
    free(c->slots);
    free(c);
}

static size_t parts_slot(long long id) { return (size_t)(((uint64_t)id * 0x9e3779b97f4a7c15u) >> 52) & (PARTS_SLOTS - 1); }

/* The slot holding row id, or the free slot where it goes. */
static kept *parts_find(bulk_parts *c, long long id) {
    size_t s = parts_slot(id);
    while (c->slots[s].body && c->slots[s].id != id) s = (s + 1) & (PARTS_SLOTS - 1);
    return &c->slots[s];
}

/* The parts of row id's body, read now or kept from before; NULL if c is NULL (read into *mine). */
static const parts *parts_of(bulk_parts *c, long long id, const char *body, size_t len, parts *mine) {
    if (!c) {
        read_parts(body, len, mine);
        return mine;
    }
    kept *k = parts_find(c, id);
    if (k->body && k->len == len && memcmp(k->body, body, len) == 0) return &k->p;
    if (k->body) {                                /* the id came again with another body */
        free(k->body);
        parts_clear(&k->p);
        c->used--;
    } else if (c->used >= PARTS_KEPT) {
        parts_drop_all(c);
        k = parts_find(c, id);
    }
    k->id = id;
    k->len = len;
    k->body = malloc(len + 1);
    if (!k->body) abort();
    memcpy(k->body, body, len);
    k->body[len] = 0;
    read_parts(body, len, &k->p);
    c->used++;
    return &k->p;
}

static char *dup_or_null(const char *s) {
    if (!s) return NULL;
    char *c = strdup(s);
    if (!c) abort();
    return c;
}

/* --------------------------------- the job ---------------------------------- */

bulk_job *bulk_new(int max_events, size_t max_bytes) {
    bulk_job *b = calloc(1, sizeof *b);
    if (!b) abort();
    b->max_events = max_events > 0 ? max_events : BULK_MAX_EVENTS;
    b->max_bytes = max_bytes > 0 ? max_bytes : BULK_MAX_BYTES;
    bulk_reset(b);
    return b;
}

bulk_job *bulk_new_client(void) {
    bulk_job *b = bulk_new(0, 0);
    b->client = 1;
    return b;
}

void bulk_reset(bulk_job *b) {
    for (int i = 0; i < b->nentries; i++) {
        free(b->entries[i].profile_key);
        free(b->entries[i].attributes);
        free(b->entries[i].meta);
    }
    for (int i = 0; i < b->nevents; i++) {
        free(b->events[i].attributes);
        free(b->events[i].key);
    }
    if (b->nentries) memset(b->index, 0, b->index_slots * sizeof *b->index);
    b->nentries = b->nevents = 0;
    b->size = 96;                                   /* the job's own wrapping */
    b->body.len = 0;
}

void bulk_free(bulk_job *b) {
    if (!b) return;
    bulk_reset(b);
    free(b->entries);
    free(b->events);
    free(b->index);
    strbuf_free(&b->body);
    free(b);
}

int bulk_count(const bulk_job *b) { return b->nevents; }
long long bulk_id(const bulk_job *b, int i) { return b->events[i].id; }
const char *bulk_profile(const bulk_job *b, int i) { return b->entries[b->events[i].entry].profile_key; }

/* The entries by profile key. A backfill's job has an entry for each of up to 1,000 profiles, and
 * every event added looked for its profile among all the entries before it: half a million string
 * compares a job, and a job that waits to fill is packed again at every scan. */
static size_t key_hash(const char *s) {
    uint64_t h = 1469598103934665603u;             /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (size_t)(h ^ (h >> 29));
}

/* The slot of profile_key's entry, or the free slot where it would go. */
static size_t index_slot(const bulk_job *b, const char *profile_key) {
    size_t mask = b->index_slots - 1, s = key_hash(profile_key) & mask;
    while (b->index[s] && strcmp(b->entries[b->index[s] - 1].profile_key, profile_key) != 0) s = (s + 1) & mask;
    return s;
}

static int find_entry(const bulk_job *b, const char *profile_key) {
    if (!b->index_slots) return -1;
    int at = b->index[index_slot(b, profile_key)];
    return at - 1;
}

/* Entry e (just added) into the index, which grows to keep at least half its slots free. */
static void index_entry(bulk_job *b, int e) {
    if ((size_t)b->nentries * 2 > b->index_slots) {
        free(b->index);
        b->index_slots = b->index_slots ? 2 * b->index_slots : 256;
        b->index = calloc(b->index_slots, sizeof *b->index);
        if (!b->index) abort();
        for (int i = 0; i < b->nentries; i++)
            if (i != e) b->index[index_slot(b, b->entries[i].profile_key)] = i + 1;
    }
    b->index[index_slot(b, b->entries[e].profile_key)] = e + 1;
}

void bulk_set_parts(bulk_job *b, bulk_parts *c) { b->parts = c; }

int bulk_add(bulk_job *b, long long id, const char *profile_key, const char *body, size_t len) {
    parts mine = {0};
    const parts *p = parts_of(b->parts, id, body, len, &mine);
    int rc = BULK_ADDED;
    int e = find_entry(b, profile_key);
    if (p->not_event) {
        rc = BULK_NOT_EVENT;
    } else if (e < 0 && b->client && b->nentries) {   /* a client job is one profile's */
        rc = BULK_PROFILE_CHANGED;
    } else if (e >= 0) {
        const entry *en = &b->entries[e];
        /* One entry per profile, in order: its events must be the last added, with its attributes. */
        int same = e == b->nentries - 1 && strcmp(en->attributes, p->pattrs) == 0 &&
                   ((!en->meta && !p->pmeta) || (en->meta && p->pmeta && strcmp(en->meta, p->pmeta) == 0));
        int dup = 0;
        for (int i = en->first; same && i < en->first + en->count; i++) dup |= strcmp(b->events[i].key, p->key) == 0;
        if (!same || dup) rc = dup ? BULK_DUPLICATE : BULK_PROFILE_CHANGED;
    }
    size_t grow = 0;
    if (rc == BULK_ADDED) {
        grow = strlen(p->eattrs) + 40 + (e < 0 ? strlen(p->pattrs) + (p->pmeta ? strlen(p->pmeta) : 0) + 140 : 0);
        if (b->nevents == b->max_events || (b->nevents && b->size + grow > b->max_bytes)) rc = BULK_FULL;
    }
    if (rc != BULK_ADDED) {
        parts_clear(&mine);
        return rc;
    }
    if (e < 0) {
        if (b->nentries == b->entries_cap) {
            b->entries_cap = b->entries_cap ? 2 * b->entries_cap : 64;
            b->entries = realloc(b->entries, (size_t)b->entries_cap * sizeof *b->entries);
            if (!b->entries) abort();
        }
        e = b->nentries++;
        b->entries[e] = (entry){ .profile_key = dup_or_null(profile_key), .attributes = dup_or_null(p->pattrs),
                                 .meta = dup_or_null(p->pmeta), .first = b->nevents, .count = 0 };
        index_entry(b, e);
    }
    if (b->nevents == b->events_cap) {
        b->events_cap = b->events_cap ? 2 * b->events_cap : 256;
        b->events = realloc(b->events, (size_t)b->events_cap * sizeof *b->events);
        if (!b->events) abort();
    }
    b->events[b->nevents++] = (event){ .id = id, .attributes = dup_or_null(p->eattrs), .key = dup_or_null(p->key),
                                       .entry = e };
    b->entries[e].count++;
    b->size += grow;
    parts_clear(&mine);
    return BULK_ADDED;
}

const char *bulk_body(bulk_job *b, size_t *len) {
    strbuf *out = &b->body;
    out->len = 0;
    strbuf_adds(out, b->client ? "{\"data\":" : "{\"data\":{\"type\":\"event-bulk-create-job\",\"attributes\":{\"events-bulk-create\":{\"data\":[");
    for (int e = 0; e < b->nentries; e++) {
        const entry *en = &b->entries[e];
        strbuf_adds(out, e ? ",{\"type\":\"event-bulk-create\",\"attributes\":{\"profile\":{\"data\":{\"type\":\"profile\","
                             "\"attributes\":"
                           : "{\"type\":\"event-bulk-create\",\"attributes\":{\"profile\":{\"data\":{\"type\":\"profile\","
                             "\"attributes\":");
        strbuf_adds(out, en->attributes);
        if (en->meta) {
            strbuf_adds(out, ",\"meta\":");
            strbuf_adds(out, en->meta);
        }
        strbuf_adds(out, "}},\"events\":{\"data\":[");
        for (int i = en->first; i < en->first + en->count; i++) {
            strbuf_adds(out, i > en->first ? ",{\"type\":\"event\",\"attributes\":" : "{\"type\":\"event\",\"attributes\":");
            strbuf_adds(out, b->events[i].attributes);
            strbuf_addc(out, '}');
        }
        strbuf_adds(out, "]}}}");
    }
    strbuf_adds(out, b->client ? "}" : "]}}}}");
    *len = out->len;
    strbuf_addc(out, 0);
    return out->data;
}

char *bulk_take_body(bulk_job *b) {
    char *body = b->body.data;
    b->body = (strbuf){0};
    for (int i = 0; i < b->nevents; i++) {      /* written into the body: not needed any more */
        free(b->events[i].attributes);
        b->events[i].attributes = NULL;
    }
    for (int e = 0; e < b->nentries; e++) {
        free(b->entries[e].attributes);
        free(b->entries[e].meta);
        b->entries[e].attributes = b->entries[e].meta = NULL;
    }
    return body;
}

int bulk_blamed(const bulk_job *b, const char *pointer, int *events, int max) {
    static const char prefix[] = "/data/attributes/events-bulk-create/data/";
    char *end;
    long e = 0;
    if (b->client) {                               /* the body's data is the one entry */
        if (strncmp(pointer, "/data", 5) != 0 || !b->nentries) return 0;
        end = (char *)pointer + 5;
    } else {
        if (strncmp(pointer, prefix, sizeof prefix - 1) != 0) return 0;
        e = strtol(pointer + sizeof prefix - 1, &end, 10);
        if (end == pointer + sizeof prefix - 1 || e < 0 || e >= b->nentries) return 0;
    }
    const entry *en = &b->entries[e];
    long m = -1;
    if (strncmp(end, "/attributes/events/data/", 24) == 0) {
        char *after;
        m = strtol(end + 24, &after, 10);
        if (after == end + 24 || m < 0 || m >= en->count) m = -1;
    }
    int n = 0;
    for (int i = 0; i < en->count && n < max; i++)
        if (m < 0 || i == m) events[n++] = en->first + i;
    return n;
}
