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

/* A job's strings live in its pool, one block (no allocation an event): an entry's and an event's
 * fields are offsets into it, NONE for none. */
#define NONE ((size_t)-1)

typedef struct entry {
    size_t profile_key;
    size_t attributes, meta;          /* the profile, meta moved beside its attributes */
    size_t attributes_len, meta_len;
    int first, count;                 /* its events: events[first .. first + count) */
} entry;

typedef struct event {
    long long id;
    size_t attributes, attributes_len;  /* the event's attributes without its profile */
    size_t key;                       /* metric and unique_id, for the duplicate rule */
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
    strbuf pool;                      /* the entries' and events' strings */
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

/* An object's members, written again as an object into out, but for `skip`, which is given back,
 * as are `a` and `b` (read, and copied too). The walk stops at the object's '}': the text may run
 * on past it, so a member reached with json_member_start is walked once, not first scanned to its
 * end. */
typedef struct without {
    strbuf *out;
    int n;
    const char *skip, *a, *b;
    span skipped, a_val, b_val;
} without;

static int copy_member(void *ud, const char *k, size_t klen, const char *v, size_t vlen) {
    without *w = ud;
    span key = { k, klen };
    if (w->a && !w->a_val.p && key_is(key, w->a)) w->a_val = (span){ v, vlen };   /* the first, as json_member */
    if (w->b && !w->b_val.p && key_is(key, w->b)) w->b_val = (span){ v, vlen };
    if (key_is(key, w->skip)) {
        if (!w->skipped.p) w->skipped = (span){ v, vlen };
        return 0;
    }
    strbuf_adds(w->out, w->n++ ? ",\"" : "{\"");
    strbuf_add(w->out, k, klen);
    strbuf_adds(w->out, "\":");
    strbuf_add(w->out, v, vlen);
    return 0;
}

/* Writes the object at obj (see without) into out, NUL-terminated; -1 if it is no object. */
static int write_without(span obj, without *w) {
    if (json_each_member(obj.p, obj.n, copy_member, w) < 0) return -1;
    strbuf_adds(w->out, w->n ? "}" : "{}");
    strbuf_addc(w->out, 0);
    return 0;
}

/* The value where obj's member name begins, running on to obj's end (see json_member_start). */
static span member_start(span obj, const char *name) {
    const char *v;
    if (!obj.p || json_member_start(obj.p, obj.n, name, &v) != 0) return (span){ NULL, 0 };
    return (span){ v, obj.n - (size_t)(v - obj.p) };
}

/* The duplicate key of an event's metric (its data.attributes.metric) and unique_id. */
static int key_of(span metric_obj, span uid, char *out, size_t outlen) {
    span metric = member(member(member(metric_obj, "data"), "attributes"), "name");
    if (!metric.p) return -1;
    snprintf(out, outlen, "%.*s\x1f%.*s", (int)metric.n, metric.p, (int)uid.n, uid.p ? uid.p : "");
    return 0;
}

int bulk_event_key(const char *body, size_t len, char *out, size_t outlen) {
    span attrs = member(member((span){ body, len }, "data"), "attributes");
    return key_of(member(attrs, "metric"), member(attrs, "unique_id"), out, outlen);
}

/* ------------------------------- parts kept --------------------------------- */

/* What bulk_add reads from one body: the profile's attributes and meta, the event's attributes
 * without the profile, the duplicate key (all in one block); or that it is no event body. */
typedef struct parts {
    int not_event;
    char *block;
    const char *pattrs, *pmeta, *eattrs, *key;
} parts;

static void parts_clear(parts *p) {
    free(p->block);
    *p = (parts){0};
}

/* One walk over data.attributes (copying all but the profile, noting the metric and unique_id),
 * one over the profile's attributes (all but meta): a body's large properties are scanned once. */
static int read_parts(const char *body, size_t len, parts *out) {
    *out = (parts){ .not_event = 1 };
    span attrs = member_start(member_start((span){ body, len }, "data"), "attributes");
    if (!attrs.p) return -1;
    strbuf block = {0};
    strbuf_reserve(&block, len + 16);
    without ev = { &block, 0, "profile", "metric", "unique_id", { 0 }, { 0 }, { 0 } };
    char key[600];
    if (write_without(attrs, &ev) != 0 || !ev.a_val.p || key_of(ev.a_val, ev.b_val, key, sizeof key) != 0) {
        strbuf_free(&block);
        return -1;
    }
    span profile_attrs = member(member(ev.skipped, "data"), "attributes");
    size_t pattrs_at = block.len;
    without pr = { &block, 0, "meta", NULL, NULL, { 0 }, { 0 }, { 0 } };
    if (!profile_attrs.p || write_without(profile_attrs, &pr) != 0) {
        strbuf_free(&block);
        return -1;
    }
    size_t meta_at = block.len;
    if (pr.skipped.p) {
        strbuf_add(&block, pr.skipped.p, pr.skipped.n);
        strbuf_addc(&block, 0);
    }
    size_t key_at = block.len;
    strbuf_adds(&block, key);
    strbuf_addc(&block, 0);
    out->not_event = 0;
    out->block = block.data;
    out->eattrs = block.data;
    out->pattrs = block.data + pattrs_at;
    out->pmeta = pr.skipped.p ? block.data + meta_at : NULL;
    out->key = block.data + key_at;
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
    if (b->nentries) memset(b->index, 0, b->index_slots * sizeof *b->index);
    b->nentries = b->nevents = 0;
    b->pool.len = 0;
    b->size = 96;                                   /* the job's own wrapping */
    b->body.len = 0;
}

void bulk_free(bulk_job *b) {
    if (!b) return;
    bulk_reset(b);
    free(b->entries);
    free(b->events);
    free(b->index);
    strbuf_free(&b->pool);
    strbuf_free(&b->body);
    free(b);
}

int bulk_count(const bulk_job *b) { return b->nevents; }
long long bulk_id(const bulk_job *b, int i) { return b->events[i].id; }
/* The string at offset off of the job's pool. */
static const char *at(const bulk_job *b, size_t off) { return b->pool.data + off; }

/* Keeps n bytes (and a NUL) in the pool; their offset. */
static size_t keep(bulk_job *b, const char *s, size_t n) {
    size_t off = b->pool.len;
    strbuf_add(&b->pool, s, n);
    strbuf_addc(&b->pool, 0);
    return off;
}

const char *bulk_profile(const bulk_job *b, int i) { return at(b, b->entries[b->events[i].entry].profile_key); }

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
    while (b->index[s] && strcmp(at(b, b->entries[b->index[s] - 1].profile_key), profile_key) != 0) s = (s + 1) & mask;
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
            if (i != e) b->index[index_slot(b, at(b, b->entries[i].profile_key))] = i + 1;
    }
    b->index[index_slot(b, at(b, b->entries[e].profile_key))] = e + 1;
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
        int same = e == b->nentries - 1 && strcmp(at(b, en->attributes), p->pattrs) == 0 &&
                   ((en->meta == NONE && !p->pmeta) || (en->meta != NONE && p->pmeta && strcmp(at(b, en->meta), p->pmeta) == 0));
        int dup = 0;
        for (int i = en->first; same && i < en->first + en->count; i++) dup |= strcmp(at(b, b->events[i].key), p->key) == 0;
        if (!same || dup) rc = dup ? BULK_DUPLICATE : BULK_PROFILE_CHANGED;
    }
    size_t grow = 0, elen = 0, plen = 0, mlen = 0;
    if (rc == BULK_ADDED) {
        elen = strlen(p->eattrs);
        if (e < 0) {
            plen = strlen(p->pattrs);
            mlen = p->pmeta ? strlen(p->pmeta) : 0;
        }
        grow = elen + 40 + (e < 0 ? plen + mlen + 140 : 0);
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
        size_t key = keep(b, profile_key, strlen(profile_key)), attrs = keep(b, p->pattrs, plen);
        b->entries[e] = (entry){ .profile_key = key, .attributes = attrs, .attributes_len = plen,
                                 .meta = p->pmeta ? keep(b, p->pmeta, mlen) : NONE, .meta_len = mlen,
                                 .first = b->nevents, .count = 0 };
        index_entry(b, e);
    }
    if (b->nevents == b->events_cap) {
        b->events_cap = b->events_cap ? 2 * b->events_cap : 256;
        b->events = realloc(b->events, (size_t)b->events_cap * sizeof *b->events);
        if (!b->events) abort();
    }
    size_t attrs = keep(b, p->eattrs, elen), key = keep(b, p->key, strlen(p->key));
    b->events[b->nevents++] = (event){ .id = id, .attributes = attrs, .attributes_len = elen, .key = key,
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
        strbuf_add(out, at(b, en->attributes), en->attributes_len);
        if (en->meta != NONE) {
            strbuf_adds(out, ",\"meta\":");
            strbuf_add(out, at(b, en->meta), en->meta_len);
        }
        strbuf_adds(out, "}},\"events\":{\"data\":[");
        for (int i = en->first; i < en->first + en->count; i++) {
            strbuf_adds(out, i > en->first ? ",{\"type\":\"event\",\"attributes\":" : "{\"type\":\"event\",\"attributes\":");
            strbuf_add(out, at(b, b->events[i].attributes), b->events[i].attributes_len);
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
    /* Written into the body: the attributes and keys are not needed any more. The pool keeps what
     * bulk_profile reads, the profile keys. */
    strbuf kept = {0};
    for (int e = 0; e < b->nentries; e++) {
        entry *en = &b->entries[e];
        const char *key = at(b, en->profile_key);
        en->profile_key = kept.len;
        strbuf_add(&kept, key, strlen(key) + 1);
        en->attributes = en->meta = NONE;
    }
    for (int i = 0; i < b->nevents; i++) b->events[i].attributes = b->events[i].key = NONE;
    strbuf_free(&b->pool);
    b->pool = kept;
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
