/*
 * trace.c: one return followed end to end (trace.h).
 *
 * How a return is found: a return id names it directly; an event id names the return its webhook is
 * about; an email names every return of that customer. The store gives the events whose raw body
 * contains the id or the email (newest TRACE_LIMIT), and each body is read here to keep only the true
 * matches: a return's id is the webhook's "return_id", else its "id" for the topics whose id is the
 * return's (return, label, restock); the customer's email is "customer", "customer_detail.email" or
 * "email". Nothing here writes.
 *
 * What the store does not keep is not made up: a request's failed tries are kept with their time and
 * answer (request_attempts), its delivered try only as its state and last status; a request sent in a
 * Klaviyo bulk job carries the job of its last send (named by the job's first request, with its size),
 * not Klaviyo's own job id (docs/trace.md, "What it cannot show").
 */
#include "trace.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "json.h"

#define TRACE_LIMIT 500           /* webhooks read per id or email: a return has a handful */

typedef struct trace_schedule {
    char *key, *method, *path;
    long long due_at, cancelled_by, cancelled_at;
    int cancelled;
} trace_schedule;

typedef struct trace_attempt { long long at; long status; char *error; } trace_attempt;

typedef struct trace_request {
    trace_attempt *failed;        /* the tries Klaviyo did not take, in time order */
    int nfailed;
    long long id, created_at, next_at;
    request_state state;
    int attempts;
    long last_status;
    char *profile, *method, *path, *last_error, *job, *schedule_key, *metric;
    store_bulk_mark bulk;         /* the Klaviyo bulk job of its last send; size 0: alone */
} trace_request;

typedef struct trace_event {
    long long id, received_at;
    char *tenant, *trigger, *return_id, *email, *reason, *script_version, *node;
    event_state state;
    int attempts;
    trace_request *requests;
    int nrequests;
    trace_schedule *schedules;
    int nschedules;
} trace_event;

typedef struct trace_memory { char *tenant, *key, *value; } trace_memory;

struct trace {
    trace_kind kind;
    char *value, *tenant;
    trace_event *events;
    int nevents;
    char **returns, **emails;     /* the returns and customers found */
    int nreturns, nemails;
    trace_memory *memory;
    int nmemory;
};

static char *dup_or_null(const char *s) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

static void *grow(void *p, int n, size_t size) {
    void *q = realloc(p, (size_t)(n + 1) * size);
    if (!q) abort();
    return q;
}

/* The text of a raw JSON string or number value (the few escapes an id or an email may hold are
 * undone; other escapes are kept as written). NULL for null, objects and arrays. */
static char *scalar_text(const char *v, size_t n) {
    if (n == 0 || *v == '{' || *v == '[' || (n == 4 && memcmp(v, "null", 4) == 0)) return NULL;
    char *out = malloc(n + 1);
    if (!out) abort();
    size_t k = 0;
    if (*v == '"' && n >= 2) {
        for (size_t i = 1; i < n - 1; i++) {
            if (v[i] == '\\' && i + 1 < n - 1 && (v[i + 1] == '"' || v[i + 1] == '\\' || v[i + 1] == '/')) i++;
            out[k++] = v[i];
        }
    } else {
        memcpy(out, v, n);
        k = n;
    }
    out[k] = 0;
    return out;
}

static char *member_text(const char *body, size_t len, const char *name) {
    const char *v;
    size_t vn;
    return json_member(body, len, name, &v, &vn) == 0 ? scalar_text(v, vn) : NULL;
}

/* The return a webhook is about, or NULL. */
static char *return_of(const char *body, size_t len) {
    char *id = member_text(body, len, "return_id");
    if (id) return id;
    char *topic = member_text(body, len, "topic");
    int by_id = topic && (strcmp(topic, "return") == 0 || strcmp(topic, "label") == 0 || strcmp(topic, "restock") == 0);
    free(topic);
    return by_id ? member_text(body, len, "id") : NULL;
}

/* The customer's email a webhook carries, or NULL. */
static char *email_of(const char *body, size_t len) {
    char *e = member_text(body, len, "customer");
    if (e && strchr(e, '@')) return e;
    free(e);
    const char *v;
    size_t vn;
    if (json_member(body, len, "customer_detail", &v, &vn) == 0 && vn && *v == '{' && (e = member_text(v, vn, "email")))
        return e;
    return member_text(body, len, "email");
}

/* ---------------------------------- reading ----------------------------------- */

typedef struct search {
    trace *t;
    trace_kind kind;              /* TRACE_RETURN or TRACE_EMAIL: what a body must match */
    const char *value;
    int failed;
} search;

static int has_event(const trace *t, long long id) {
    for (int i = 0; i < t->nevents; i++) if (t->events[i].id == id) return 1;
    return 0;
}

static void add_unique(char ***list, int *n, const char *s, int nocase) {
    for (int i = 0; i < *n; i++)
        if (nocase ? strcasecmp((*list)[i], s) == 0 : strcmp((*list)[i], s) == 0) return;
    *list = grow(*list, *n, sizeof **list);
    (*list)[(*n)++] = dup_or_null(s);
}

static void add_event(trace *t, const store_trace_event *e, char *return_id, char *email) {
    t->events = grow(t->events, t->nevents, sizeof *t->events);
    trace_event *te = &t->events[t->nevents++];
    memset(te, 0, sizeof *te);
    te->id = e->id;
    te->received_at = e->received_at;
    te->tenant = dup_or_null(e->tenant);
    te->trigger = member_text(e->body, e->len, "trigger");
    te->return_id = return_id;
    te->email = email;
    te->reason = dup_or_null(e->reason);
    te->script_version = dup_or_null(e->script_version);
    te->node = dup_or_null(e->node);
    te->state = e->state;
    te->attempts = e->attempts;
    if (return_id) add_unique(&t->returns, &t->nreturns, return_id, 0);
    if (email) add_unique(&t->emails, &t->nemails, email, 1);
}

static int on_event(void *ud, const store_trace_event *e) {
    search *s = ud;
    if (has_event(s->t, e->id)) return 0;
    char *return_id = return_of(e->body, e->len), *email = email_of(e->body, e->len);
    int match = s->kind == TRACE_EVENT ||
                (s->kind == TRACE_RETURN && return_id && strcmp(return_id, s->value) == 0) ||
                (s->kind == TRACE_EMAIL && email && strcasecmp(email, s->value) == 0);
    if (match) add_event(s->t, e, return_id, email);
    else free(return_id), free(email);
    return 0;
}

static int find_events(store_db *db, trace *t, trace_kind kind, const char *value) {
    search s = { .t = t, .kind = kind, .value = value };
    return store_trace_events(db, t->tenant, value, TRACE_LIMIT, on_event, &s) < 0 ? -1 : 0;
}

/* The text of a request body's metric name (an event's data.attributes.metric...name), or NULL. */
static char *metric_of(const char *body, size_t len) {
    const char *m = memmem(body, len, "\"metric\"", 8);
    if (!m) return NULL;
    const char *name = memmem(m, len - (size_t)(m - body), "\"name\":\"", 8);
    if (!name) return NULL;
    name += 8;
    const char *end = memchr(name, '"', len - (size_t)(name - body));
    if (!end || end - name > 200) return NULL;
    char *out = strndup(name, (size_t)(end - name));
    if (!out) abort();
    return out;
}

static int on_request(void *ud, const store_trace_request *r) {
    trace_event *e = ud;
    e->requests = grow(e->requests, e->nrequests, sizeof *e->requests);
    e->requests[e->nrequests++] = (trace_request){
        .id = r->id, .created_at = r->created_at, .next_at = r->next_at, .state = r->state, .attempts = r->attempts,
        .last_status = r->last_status, .profile = dup_or_null(r->profile), .method = dup_or_null(r->method),
        .path = dup_or_null(r->path), .last_error = dup_or_null(r->last_error), .job = dup_or_null(r->job),
        .schedule_key = dup_or_null(r->schedule_key), .metric = metric_of(r->body, r->body_len), .bulk = r->bulk,
    };
    return 0;
}

static int on_attempt(void *ud, const store_trace_attempt *a) {
    trace_event *e = ud;
    for (int r = 0; r < e->nrequests; r++) {
        trace_request *q = &e->requests[r];
        if (q->id != a->request_id) continue;
        q->failed = grow(q->failed, q->nfailed, sizeof *q->failed);
        q->failed[q->nfailed++] = (trace_attempt){ a->at, a->status, dup_or_null(a->error) };
        break;
    }
    return 0;
}

static int on_schedule(void *ud, const store_trace_schedule *s) {
    trace_event *e = ud;
    e->schedules = grow(e->schedules, e->nschedules, sizeof *e->schedules);
    e->schedules[e->nschedules++] = (trace_schedule){
        .key = dup_or_null(s->key), .method = dup_or_null(s->method), .path = dup_or_null(s->path),
        .due_at = s->due_at, .cancelled = s->cancelled, .cancelled_by = s->cancelled_by, .cancelled_at = s->cancelled_at,
    };
    return 0;
}

typedef struct memory_ctx { trace *t; const char *tenant; } memory_ctx;

static int on_memory(void *ud, const char *key, const char *value) {
    memory_ctx *m = ud;
    for (int i = 0; i < m->t->nmemory; i++)
        if (strcmp(m->t->memory[i].key, key) == 0 && strcmp(m->t->memory[i].tenant, m->tenant) == 0) return 0;
    m->t->memory = grow(m->t->memory, m->t->nmemory, sizeof *m->t->memory);
    m->t->memory[m->t->nmemory++] = (trace_memory){ dup_or_null(m->tenant), dup_or_null(key), dup_or_null(value) };
    return 0;
}

static int by_id(const void *a, const void *b) {
    long long x = ((const trace_event *)a)->id, y = ((const trace_event *)b)->id;
    return x < y ? -1 : x > y;
}

trace *trace_read(store_db *db, const char *tenant, trace_kind kind, const char *value, char *err, size_t errlen) {
    if (kind == TRACE_GUESS)
        kind = strchr(value, '@') ? TRACE_EMAIL : strncmp(value, "event:", 6) == 0 ? TRACE_EVENT : TRACE_RETURN;
    if (kind == TRACE_EVENT && strncmp(value, "event:", 6) == 0) value += 6;
    trace *t = calloc(1, sizeof *t);
    if (!t) abort();
    t->kind = kind;
    t->value = dup_or_null(value);
    t->tenant = dup_or_null(tenant);
    int rc = 0;
    if (kind == TRACE_EVENT) {
        char *end;
        long long id = strtoll(value, &end, 10);
        search s = { .t = t, .kind = TRACE_EVENT };
        if (*end || id <= 0) { snprintf(err, errlen, "'%s' is not an event id (a number, or event:N)", value); trace_free(t); return NULL; }
        rc = store_trace_event_by_id(db, id, on_event, &s) < 0 ? -1 : 0;
        if (t->nevents && tenant && strcmp(t->events[0].tenant, tenant) != 0) {   /* another tenant's */
            trace_free(t);
            t = calloc(1, sizeof *t);
            if (!t) abort();
            t->kind = kind, t->value = dup_or_null(value), t->tenant = dup_or_null(tenant);
        }
    } else if (kind == TRACE_EMAIL) {
        /* as given, and in lower case (the store's search is exact; the match here ignores case) */
        char *lower = dup_or_null(value);
        for (char *p = lower; *p; p++) *p = (char)tolower((unsigned char)*p);
        rc = find_events(db, t, TRACE_EMAIL, value);
        if (rc == 0 && strcmp(lower, value) != 0) rc = find_events(db, t, TRACE_EMAIL, lower);
        free(lower);
    }
    /* Every webhook of the returns found so far (an email's, an event's), or of the one named. */
    if (kind == TRACE_RETURN) rc = find_events(db, t, TRACE_RETURN, value);
    for (int i = 0; rc == 0 && i < t->nreturns && kind != TRACE_RETURN; i++) {
        char *id = dup_or_null(t->returns[i]);        /* find_events may grow the list */
        rc = find_events(db, t, TRACE_RETURN, id);
        free(id);
    }
    if (t->nevents > 1) qsort(t->events, (size_t)t->nevents, sizeof *t->events, by_id);
    for (int i = 0; rc == 0 && i < t->nevents; i++) {
        trace_event *e = &t->events[i];
        if (store_trace_requests(db, e->id, on_request, e) < 0 || store_trace_attempts(db, e->id, on_attempt, e) < 0 ||
            store_trace_schedules(db, e->tenant, e->id, on_schedule, e) < 0)
            rc = -1;
    }
    /* Memory keys that name a return or a customer, in each tenant seen. */
    for (int i = 0; rc == 0 && i < t->nevents; i++) {
        if (i > 0 && strcmp(t->events[i].tenant, t->events[i - 1].tenant) == 0) continue;
        memory_ctx m = { t, t->events[i].tenant };
        for (int r = 0; rc == 0 && r < t->nreturns; r++) rc = store_trace_memory(db, m.tenant, t->returns[r], on_memory, &m) < 0;
        for (int r = 0; rc == 0 && r < t->nemails; r++) rc = store_trace_memory(db, m.tenant, t->emails[r], on_memory, &m) < 0;
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot read the store (%s): %s", store_db_backend(db), store_db_error(db));
        trace_free(t);
        return NULL;
    }
    return t;
}

int trace_events(const trace *t) { return t->nevents; }

void trace_free(trace *t) {
    if (!t) return;
    for (int i = 0; i < t->nevents; i++) {
        trace_event *e = &t->events[i];
        free(e->tenant), free(e->trigger), free(e->return_id), free(e->email), free(e->reason), free(e->script_version);
        free(e->node);
        for (int r = 0; r < e->nrequests; r++) {
            trace_request *q = &e->requests[r];
            free(q->profile), free(q->method), free(q->path), free(q->last_error), free(q->job), free(q->schedule_key);
            free(q->metric);
            for (int a = 0; a < q->nfailed; a++) free(q->failed[a].error);
            free(q->failed);
        }
        free(e->requests);
        for (int s = 0; s < e->nschedules; s++) free(e->schedules[s].key), free(e->schedules[s].method), free(e->schedules[s].path);
        free(e->schedules);
    }
    free(t->events);
    for (int i = 0; i < t->nreturns; i++) free(t->returns[i]);
    for (int i = 0; i < t->nemails; i++) free(t->emails[i]);
    free(t->returns), free(t->emails);
    for (int i = 0; i < t->nmemory; i++) free(t->memory[i].tenant), free(t->memory[i].key), free(t->memory[i].value);
    free(t->memory);
    free(t->value), free(t->tenant);
    free(t);
}

/* ---------------------------------- output ------------------------------------ */

static const char *event_state_name(event_state s) {
    static const char *const names[] = { "journaled", "mapped", "failed", "dropped", "deferred", "held" };
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown";
}

static const char *request_state_name(request_state s) {
    static const char *const names[] = { "queued", "delivered", "dead", "sending" };
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown";
}

static const char *kind_name(trace_kind k) {
    return k == TRACE_EVENT ? "event" : k == TRACE_EMAIL ? "email" : "return";
}

/* ms since the epoch as ISO 8601 UTC with milliseconds. */
static void iso_time(long long ms, char *out, size_t n) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03lldZ", base, ms % 1000);
}

static void add_str(strbuf *out, const char *key, const char *v) {
    strbuf_addc(out, '"');
    strbuf_adds(out, key);
    strbuf_adds(out, "\":");
    if (v) json_append_string(out, v, strlen(v));
    else strbuf_adds(out, "null");
}

static void add_num(strbuf *out, const char *key, long long v) {
    char b[64];
    snprintf(b, sizeof b, "\"%s\":%lld", key, v);
    strbuf_adds(out, b);
}

static void add_time(strbuf *out, const char *key, long long ms) {
    char t[48];
    iso_time(ms, t, sizeof t);
    add_str(out, key, ms > 0 ? t : NULL);
}

static void add_list(strbuf *out, const char *key, char **items, int n) {
    strbuf_addc(out, '"');
    strbuf_adds(out, key);
    strbuf_adds(out, "\":[");
    for (int i = 0; i < n; i++) {
        if (i) strbuf_addc(out, ',');
        json_append_string(out, items[i], strlen(items[i]));
    }
    strbuf_addc(out, ']');
}

void trace_json(const trace *t, strbuf *out) {
    strbuf_adds(out, "{\"query\":{");
    add_str(out, "kind", kind_name(t->kind)), strbuf_addc(out, ',');
    add_str(out, "value", t->value), strbuf_addc(out, ',');
    add_str(out, "tenant", t->tenant);
    strbuf_adds(out, "},");
    add_list(out, "returns", t->returns, t->nreturns), strbuf_addc(out, ',');
    add_list(out, "emails", t->emails, t->nemails);
    strbuf_adds(out, ",\"events\":[");
    for (int i = 0; i < t->nevents; i++) {
        const trace_event *e = &t->events[i];
        if (i) strbuf_addc(out, ',');
        strbuf_addc(out, '{');
        add_num(out, "id", e->id), strbuf_addc(out, ',');
        add_str(out, "tenant", e->tenant), strbuf_addc(out, ',');
        add_time(out, "received_at", e->received_at), strbuf_addc(out, ',');
        add_str(out, "node", e->node), strbuf_addc(out, ',');
        add_str(out, "trigger", e->trigger), strbuf_addc(out, ',');
        add_str(out, "return_id", e->return_id), strbuf_addc(out, ',');
        add_str(out, "email", e->email), strbuf_addc(out, ',');
        add_str(out, "state", event_state_name(e->state)), strbuf_addc(out, ',');
        add_str(out, "reason", e->reason), strbuf_addc(out, ',');
        add_str(out, "script_version", e->script_version), strbuf_addc(out, ',');
        add_num(out, "mapping_attempts", e->attempts);
        strbuf_adds(out, ",\"requests\":[");
        for (int r = 0; r < e->nrequests; r++) {
            const trace_request *q = &e->requests[r];
            if (r) strbuf_addc(out, ',');
            strbuf_addc(out, '{');
            add_num(out, "id", q->id), strbuf_addc(out, ',');
            add_str(out, "method", q->method), strbuf_addc(out, ',');
            add_str(out, "path", q->path), strbuf_addc(out, ',');
            add_str(out, "metric", q->metric), strbuf_addc(out, ',');
            add_str(out, "profile", q->profile), strbuf_addc(out, ',');
            add_str(out, "state", request_state_name(q->state)), strbuf_addc(out, ',');
            add_num(out, "attempts", q->attempts), strbuf_addc(out, ',');
            strbuf_adds(out, "\"last_status\":");
            if (q->last_status) { char b[24]; snprintf(b, sizeof b, "%ld", q->last_status); strbuf_adds(out, b); }
            else strbuf_adds(out, "null");
            strbuf_addc(out, ',');
            add_str(out, "last_error", q->last_error), strbuf_addc(out, ',');
            add_time(out, "queued_at", q->created_at), strbuf_addc(out, ',');
            add_time(out, "next_at", q->state == REQUEST_QUEUED ? q->next_at : 0), strbuf_addc(out, ',');
            add_str(out, "batch_job", q->job), strbuf_addc(out, ',');
            add_str(out, "schedule", q->schedule_key), strbuf_adds(out, ",\"bulk_job\":");
            if (q->bulk.size > 0) {
                char b[96];
                snprintf(b, sizeof b, "{\"first_request\":%lld,\"size\":%d}", q->bulk.first, q->bulk.size);
                strbuf_adds(out, b);
            } else {
                strbuf_adds(out, "null");
            }
            strbuf_adds(out, ",\"failed_attempts\":[");
            for (int a = 0; a < q->nfailed; a++) {
                if (a) strbuf_addc(out, ',');
                strbuf_addc(out, '{');
                add_time(out, "at", q->failed[a].at), strbuf_addc(out, ',');
                add_num(out, "status", q->failed[a].status), strbuf_addc(out, ',');
                add_str(out, "error", q->failed[a].error);
                strbuf_addc(out, '}');
            }
            strbuf_adds(out, "]}");
        }
        strbuf_adds(out, "],\"schedules\":[");
        for (int s = 0; s < e->nschedules; s++) {
            const trace_schedule *sc = &e->schedules[s];
            if (s) strbuf_addc(out, ',');
            strbuf_addc(out, '{');
            add_str(out, "key", sc->key), strbuf_addc(out, ',');
            add_str(out, "state", sc->cancelled ? "cancelled" : "pending"), strbuf_addc(out, ',');
            add_time(out, "due_at", sc->due_at), strbuf_addc(out, ',');
            add_str(out, "method", sc->method), strbuf_addc(out, ',');
            add_str(out, "path", sc->path), strbuf_addc(out, ',');
            strbuf_adds(out, "\"cancelled_by\":");
            if (sc->cancelled) { char b[24]; snprintf(b, sizeof b, "%lld", sc->cancelled_by); strbuf_adds(out, b); }
            else strbuf_adds(out, "null");
            strbuf_addc(out, ',');
            add_time(out, "cancelled_at", sc->cancelled ? sc->cancelled_at : 0);
            strbuf_addc(out, '}');
        }
        strbuf_adds(out, "]}");
    }
    strbuf_adds(out, "],\"memory\":[");
    for (int i = 0; i < t->nmemory; i++) {
        if (i) strbuf_addc(out, ',');
        strbuf_addc(out, '{');
        add_str(out, "tenant", t->memory[i].tenant), strbuf_addc(out, ',');
        add_str(out, "key", t->memory[i].key), strbuf_adds(out, ",\"value\":");
        strbuf_adds(out, t->memory[i].value);        /* stored as JSON text (out:remember) */
        strbuf_addc(out, '}');
    }
    strbuf_adds(out, "]}");
}

void trace_print(const trace *t, FILE *f) {
    char when[48];
    if (!t->nevents) {
        fprintf(f, "no webhook found for %s %s%s%s\n", kind_name(t->kind), t->value, t->tenant ? " in tenant " : "",
                t->tenant ? t->tenant : "");
        return;
    }
    fprintf(f, "%s %s: %d webhook%s", kind_name(t->kind), t->value, t->nevents, t->nevents == 1 ? "" : "s");
    for (int i = 0; i < t->nreturns; i++) fprintf(f, "%s%s", i ? ", " : "; return ", t->returns[i]);
    for (int i = 0; i < t->nemails; i++) fprintf(f, "%s%s", i ? ", " : "; customer ", t->emails[i]);
    fputc('\n', f);
    for (int i = 0; i < t->nevents; i++) {
        const trace_event *e = &t->events[i];
        iso_time(e->received_at, when, sizeof when);
        fprintf(f, "\n%s  webhook event:%lld %s (tenant %s, return %s, acked by %s)\n", when, e->id,
                e->trigger ? e->trigger : "?", e->tenant, e->return_id ? e->return_id : "-", e->node ? e->node : "?");
        fprintf(f, "    mapping: %s", event_state_name(e->state));
        if (e->script_version) fprintf(f, " by scripts %s", e->script_version);
        if (e->attempts > 1) fprintf(f, " (%d tries)", e->attempts);
        if (e->reason) fprintf(f, ": %s", e->reason);
        fputc('\n', f);
        if (e->state == EVENT_FAILED) fprintf(f, "    -> a dead letter: returnflow dlq show event:%lld\n", e->id);
        for (int r = 0; r < e->nrequests; r++) {
            const trace_request *q = &e->requests[r];
            iso_time(q->created_at, when, sizeof when);
            fprintf(f, "    request:%lld %s %s%s%s%s\n", q->id, q->method, q->path, q->metric ? " (" : "",
                    q->metric ? q->metric : "", q->metric ? ")" : "");
            fprintf(f, "      queued %s; %s after %d attempt%s", when, request_state_name(q->state), q->attempts,
                    q->attempts == 1 ? "" : "s");
            if (q->last_status) fprintf(f, "; Klaviyo answered %ld", q->last_status);
            if (q->state == REQUEST_QUEUED && q->next_at > 0) {
                iso_time(q->next_at, when, sizeof when);
                fprintf(f, "; next try %s", when);
            }
            if (q->schedule_key) fprintf(f, "; fired from schedule %s", q->schedule_key);
            if (q->job) fprintf(f, "; batch job %s", q->job);
            if (q->bulk.size > 0)
                fprintf(f, "; in a Klaviyo bulk job of %d request%s (first request:%lld)", q->bulk.size,
                        q->bulk.size == 1 ? "" : "s", q->bulk.first);
            fputc('\n', f);
            for (int a = 0; a < q->nfailed; a++) {
                iso_time(q->failed[a].at, when, sizeof when);
                if (q->failed[a].status) fprintf(f, "      try at %s: Klaviyo answered %ld\n", when, q->failed[a].status);
                else fprintf(f, "      try at %s: no answer (%s)\n", when, q->failed[a].error ? q->failed[a].error : "?");
            }
            if (q->last_error) fprintf(f, "      %s: %s\n", q->state == REQUEST_DEAD ? "why" : "last error", q->last_error);
            if (q->state == REQUEST_DEAD) fprintf(f, "      -> a dead letter: returnflow dlq replay request:%lld\n", q->id);
        }
        for (int s = 0; s < e->nschedules; s++) {
            const trace_schedule *sc = &e->schedules[s];
            iso_time(sc->due_at, when, sizeof when);
            if (sc->cancelled) {
                char at[48];
                iso_time(sc->cancelled_at, at, sizeof at);
                fprintf(f, "    schedule %s (due %s): cancelled by event:%lld at %s\n", sc->key, when, sc->cancelled_by, at);
            } else {
                fprintf(f, "    schedule %s: pending, due %s (%s %s)\n", sc->key, when, sc->method ? sc->method : "",
                        sc->path ? sc->path : "");
            }
        }
    }
    if (t->nmemory) {
        fprintf(f, "\nmemory:\n");
        for (int i = 0; i < t->nmemory; i++)
            fprintf(f, "  %s %s = %s\n", t->memory[i].tenant, t->memory[i].key, t->memory[i].value);
    }
}
