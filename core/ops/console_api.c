/*
 * console_api.c: the console's routes (console_http.h): its pages, the login, and the JSON the page
 * reads: tenants, a trace, dead letters (replay, purge), script versions, the counters, the live tail.
 *
 * Security, in one place:
 * - the admin token is compared in constant time (SHA-256 of both, then CRYPTO_memcmp: neither the
 *   bytes nor the length leak through timing); 5 wrong ones in a row make logins wait 10 s;
 * - a login gives a session cookie (HttpOnly, SameSite=Strict, 32 random bytes) and a CSRF token the
 *   page keeps in memory; every action (POST) must carry it in X-CSRF-Token, and a request whose
 *   Origin is not this host is refused;
 * - the page's script renders every value from an event, a script or Klaviyo with textContent
 *   (assets/console.js), under a Content-Security-Policy that allows only the console's own script;
 * - nothing here reads a key, a webhook secret or the token back out: the rows have none.
 */
#include "console_http.h"

#include <dirent.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "clock.h"
#include "console_assets.h"
#include "json.h"
#include "tail.h"
#include "trace.h"

#define MAX_SESSIONS 32
#define LOGIN_TRIES 5                 /* wrong tokens in a row before logins wait */
#define LOGIN_WAIT_MS 10000
#define SESSION_MS (12LL * 3600 * 1000)
#define ID_HEX 64

typedef struct session {
    char id[ID_HEX + 1], csrf[ID_HEX + 1];
    long long expires;
} session;

struct console_state {
    unsigned char token_hash[SHA256_DIGEST_LENGTH];
    char *store;                  /* the store's location */
    char *data_dir;               /* DATA/scripts/ */
    store_db *db;                 /* opened on first use, on the console's thread */
    session sessions[MAX_SESSIONS];
    int wrong_logins;             /* in a row; LOGIN_TRIES of them make logins wait LOGIN_WAIT_MS */
    long long logins_wait_until;
    void (*counters)(void *ud, strbuf *out);
    void *ud;
};

console_state *console_state_new(const char *token, const char *store, const char *data_dir,
                                  void (*counters)(void *ud, strbuf *out), void *ud) {
    console_state *s = calloc(1, sizeof *s);
    if (!s) abort();
    SHA256((const unsigned char *)token, strlen(token), s->token_hash);
    s->store = strdup(store);
    s->data_dir = strdup(data_dir);
    if (!s->store || !s->data_dir) abort();
    s->counters = counters, s->ud = ud;
    return s;
}

void console_state_free(console_state *s) {
    if (!s) return;
    if (s->db) store_db_close(s->db);
    free(s->store);
    free(s->data_dir);
    OPENSSL_cleanse(s, sizeof *s);                /* the token's hash and the sessions */
    free(s);
}

static store_db *db_of(console_state *s) {
    char err[512];
    if (!s->db) s->db = store_db_open(s->store, 0, err, sizeof err);
    return s->db;
}

/* ------------------------------- helpers ---------------------------------- */

static void random_hex(char *out) {
    unsigned char b[ID_HEX / 2];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) abort();     /* never a guessable session */
    for (size_t i = 0; i < sizeof b; i++) sprintf(out + 2 * i, "%02x", b[i]);
    out[ID_HEX] = 0;
}

static void error_json(console_response *rs, int status, const char *message) {
    rs->status = status;
    rs->body.len = 0;
    strbuf_adds(&rs->body, "{\"error\":");
    json_append_string(&rs->body, message, strlen(message));
    strbuf_addc(&rs->body, '}');
}

/* A query parameter, percent-decoded into out; 1 found. */
static int query_param(const char *query, const char *name, char *out, size_t n) {
    size_t nl = strlen(name);
    for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, name, nl) != 0 || p[nl] != '=') continue;
        const char *v = p + nl + 1;
        size_t k = 0;
        for (; *v && *v != '&' && k + 1 < n; v++) {
            if (*v == '+') out[k++] = ' ';
            else if (*v == '%' && v[1] && v[2]) {
                char hex[3] = { v[1], v[2], 0 };
                out[k++] = (char)strtol(hex, NULL, 16);
                v += 2;
            } else out[k++] = *v;
        }
        out[k] = 0;
        return 1;
    }
    return 0;
}

/* A string member of a JSON object body, unescaped for the few escapes a token or id may hold. */
static int body_string(const console_request *rq, const char *name, char *out, size_t n) {
    const char *v;
    size_t vn;
    if (json_member(rq->body, rq->body_len, name, &v, &vn) != 0 || vn < 2 || *v != '"') return 0;
    size_t k = 0;
    for (size_t i = 1; i + 1 < vn && k + 1 < n; i++) {
        if (v[i] == '\\' && i + 2 < vn) i++;
        out[k++] = v[i];
    }
    out[k] = 0;
    return 1;
}

static session *session_of(console_state *s, const char *cookie) {
    const char *p = strstr(cookie, "rf_session=");
    if (!p) return NULL;
    p += strlen("rf_session=");
    if (strspn(p, "0123456789abcdef") < ID_HEX) return NULL;
    long long now = clock_now_ms();
    for (int i = 0; i < MAX_SESSIONS; i++)
        if (s->sessions[i].expires > now && CRYPTO_memcmp(s->sessions[i].id, p, ID_HEX) == 0) return &s->sessions[i];
    return NULL;
}

/* An action's request came from the console's own page: its Origin (when the browser sent one) is
 * this host, and it carries the session's CSRF token. */
static int same_origin(const console_request *rq) {
    if (!*rq->origin) return 1;
    const char *o = strstr(rq->origin, "://");
    return o && strcmp(o + 3, rq->host) == 0;
}

static int csrf_ok(const session *se, const console_request *rq) {
    return strlen(rq->csrf) == ID_HEX && CRYPTO_memcmp(se->csrf, rq->csrf, ID_HEX) == 0 && same_origin(rq);
}

/* ------------------------------- routes ----------------------------------- */

static void login(console_state *s, const console_request *rq, console_response *rs) {
    char token[512];
    if (strncmp(rq->content_type, "application/json", 16) != 0 || !same_origin(rq))
        return error_json(rs, 403, "a login comes from the console's page");
    long long now = clock_now_ms();
    if (now < s->logins_wait_until) return error_json(rs, 429, "too many wrong tokens: wait a few seconds");
    unsigned char h[SHA256_DIGEST_LENGTH];
    if (!body_string(rq, "token", token, sizeof token)) token[0] = 0;
    SHA256((const unsigned char *)token, strlen(token), h);
    OPENSSL_cleanse(token, sizeof token);
    if (CRYPTO_memcmp(h, s->token_hash, sizeof h) != 0) {
        if (++s->wrong_logins >= LOGIN_TRIES) s->wrong_logins = 0, s->logins_wait_until = now + LOGIN_WAIT_MS;
        return error_json(rs, 401, "wrong token");
    }
    s->wrong_logins = 0;
    int slot = 0;
    for (int i = 1; i < MAX_SESSIONS; i++)                     /* a free slot, else the oldest */
        if (s->sessions[i].expires < s->sessions[slot].expires) slot = i;
    session *se = &s->sessions[slot];
    random_hex(se->id);
    random_hex(se->csrf);
    se->expires = clock_now_ms() + SESSION_MS;
    snprintf(rs->set_cookie, sizeof rs->set_cookie, "rf_session=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%lld",
             se->id, SESSION_MS / 1000);
    strbuf_adds(&rs->body, "{\"csrf\":\"");
    strbuf_adds(&rs->body, se->csrf);
    strbuf_adds(&rs->body, "\"}");
}

typedef struct tenants_ctx { console_state *s; strbuf *out; int n; } tenants_ctx;

/* DATA/scripts/TENANT/status.json's "version" (reload.c writes it), or "". */
static void running_version(const console_state *s, const char *tenant, char *out, size_t n) {
    char path[1200];
    out[0] = 0;
    snprintf(path, sizeof path, "%s/scripts/%s/status.json", s->data_dir, tenant);
    FILE *f = fopen(path, "r");
    if (!f) return;
    char buf[8192];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    const char *v;
    size_t vn;
    if (json_member(buf, len, "version", &v, &vn) == 0 && vn >= 2 && *v == '"' && vn - 2 < n) {
        memcpy(out, v + 1, vn - 2);
        out[vn - 2] = 0;
    }
}

static void on_tenant(void *ud, const char *tenant) {
    tenants_ctx *t = ud;
    store_tenant_counts c = {0};
    store_tenant_counts_of(t->s->db, tenant, &c);
    char version[128], line[512];
    running_version(t->s, tenant, version, sizeof version);
    if (t->n++) strbuf_addc(t->out, ',');
    strbuf_adds(t->out, "{\"tenant\":");
    json_append_string(t->out, tenant, strlen(tenant));
    snprintf(line, sizeof line, ",\"journaled\":%lld,\"deferred\":%lld,\"failed\":%lld,\"queued\":%lld,\"retrying\":%lld,"
             "\"delivered\":%lld,\"dead\":%lld,\"paused\":%s,\"version\":", c.journaled, c.deferred, c.failed, c.queued,
             c.retrying, c.delivered, c.dead, c.paused ? "true" : "false");
    strbuf_adds(t->out, line);
    json_append_string(t->out, version, strlen(version));
    strbuf_adds(t->out, ",\"last_error\":");
    json_append_string(t->out, c.last_error, strlen(c.last_error));
    strbuf_addc(t->out, '}');
}

static void tenants(console_state *s, console_response *rs) {
    tenants_ctx t = { s, &rs->body, 0 };
    strbuf_addc(&rs->body, '[');
    store_tenants(s->db, on_tenant, &t);
    strbuf_addc(&rs->body, ']');
}

static void trace_route(console_state *s, const console_request *rq, console_response *rs) {
    char q[256], tenant[80], err[512];
    if (!query_param(rq->query, "q", q, sizeof q) || !*q) return error_json(rs, 400, "give q: a return id, event:N or an email");
    int has_tenant = query_param(rq->query, "tenant", tenant, sizeof tenant) && *tenant;
    trace *t = trace_read(s->db, has_tenant ? tenant : NULL, TRACE_GUESS, q, err, sizeof err);
    if (!t) return error_json(rs, 400, err);
    trace_json(t, &rs->body);
    trace_free(t);
}

typedef struct dead_ctx { strbuf *out; int n; } dead_ctx;

static void on_dead(void *ud, const char *id, const char *tenant, const char *what, const char *why) {
    dead_ctx *d = ud;
    if (d->n++ >= 500) return;
    if (d->n > 1) strbuf_addc(d->out, ',');
    strbuf_adds(d->out, "{\"id\":");
    json_append_string(d->out, id, strlen(id));
    strbuf_adds(d->out, ",\"tenant\":");
    json_append_string(d->out, tenant, strlen(tenant));
    strbuf_adds(d->out, ",\"what\":");
    json_append_string(d->out, what ? what : "", what ? strlen(what) : 0);
    strbuf_adds(d->out, ",\"why\":");
    json_append_string(d->out, why ? why : "", why ? strlen(why) : 0);
    strbuf_addc(d->out, '}');
}

static void dead_letters(console_state *s, const console_request *rq, console_response *rs) {
    char tenant[80];
    int has_tenant = query_param(rq->query, "tenant", tenant, sizeof tenant) && *tenant;
    dead_ctx d = { &rs->body, 0 };
    strbuf_addc(&rs->body, '[');
    store_dead_letters(s->db, has_tenant ? tenant : NULL, on_dead, &d);
    strbuf_addc(&rs->body, ']');
}

/* POST /api/dead/replay and /api/dead/purge {"id": "event:N" | "request:N"}: one dead letter. */
static void dead_action(console_state *s, const console_request *rq, console_response *rs, int replay) {
    char id[64];
    if (!body_string(rq, "id", id, sizeof id)) return error_json(rs, 400, "give id: event:N or request:N");
    int is_event = strncmp(id, "event:", 6) == 0, is_request = strncmp(id, "request:", 8) == 0;
    char *end;
    long long n = strtoll(id + (is_event ? 6 : 8), &end, 10);
    if ((!is_event && !is_request) || *end || n <= 0) return error_json(rs, 400, "give id: event:N or request:N");
    int changed = is_event ? (replay ? store_replay_dead_events(s->db, n, NULL) : store_purge_dead_events(s->db, n, NULL))
                           : (replay ? store_replay_dead_requests(s->db, n, NULL) : store_purge_dead_requests(s->db, n, NULL));
    if (changed < 0) return error_json(rs, 503, "the store refused it; try again");
    if (changed == 0) return error_json(rs, 404, "no such dead letter (replayed or purged already?)");
    char out[96];
    snprintf(out, sizeof out, "{\"%s\":\"%s\"}", replay ? "replayed" : "purged", id);
    strbuf_adds(&rs->body, out);
}

/* A name that is one path segment of letters, digits, '_', '-' and '.', never "." or "..". */
static int plain_name(const char *s) {
    if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strlen(s) > 128) return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == strlen(s);
}

/* GET /api/scripts?tenant=T: the frozen versions (DATA/scripts/T/VERSION/), newest first. */
static void script_versions(console_state *s, const console_request *rq, console_response *rs) {
    char tenant[80], path[1200], version[128];
    if (!query_param(rq->query, "tenant", tenant, sizeof tenant) || !plain_name(tenant))
        return error_json(rs, 400, "give tenant");
    snprintf(path, sizeof path, "%s/scripts/%s", s->data_dir, tenant);
    DIR *d = opendir(path);
    running_version(s, tenant, version, sizeof version);
    strbuf_adds(&rs->body, "{\"running\":");
    json_append_string(&rs->body, version, strlen(version));
    strbuf_adds(&rs->body, ",\"versions\":[");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char sub[1600];
        struct stat st;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (e->d_name[0] == '.' || stat(sub, &st) != 0 || !S_ISDIR(st.st_mode) || !plain_name(e->d_name)) continue;
        char item[400];
        snprintf(item, sizeof item, "%s{\"version\":\"%s\",\"frozen_at\":%lld}", n++ ? "," : "", e->d_name,
                 (long long)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
        strbuf_adds(&rs->body, item);
    }
    if (d) closedir(d);
    strbuf_adds(&rs->body, "]}");
}

/* GET /api/script?tenant=T&version=V: {file: text} of that version's .lua files (the page diffs two). */
static void script_files(console_state *s, const console_request *rq, console_response *rs) {
    char tenant[80], version[128], path[1200];
    if (!query_param(rq->query, "tenant", tenant, sizeof tenant) || !plain_name(tenant) ||
        !query_param(rq->query, "version", version, sizeof version) || !plain_name(version))
        return error_json(rs, 400, "give tenant and version");
    snprintf(path, sizeof path, "%s/scripts/%s/%s", s->data_dir, tenant, version);
    DIR *d = opendir(path);
    if (!d) return error_json(rs, 404, "no such version");
    strbuf_addc(&rs->body, '{');
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0 || !plain_name(e->d_name)) continue;
        char file[1600];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        FILE *f = fopen(file, "rb");
        if (!f) continue;
        strbuf text = {0};
        char buf[4096];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0 && text.len < (1 << 20)) strbuf_add(&text, buf, got);
        fclose(f);
        if (n++) strbuf_addc(&rs->body, ',');
        json_append_string(&rs->body, e->d_name, len);
        strbuf_addc(&rs->body, ':');
        json_append_string(&rs->body, text.data ? text.data : "", text.len);
        strbuf_free(&text);
    }
    closedir(d);
    strbuf_addc(&rs->body, '}');
}

static int serve_asset(const char *path, console_response *rs) {
    const console_asset *a = console_asset_find(strcmp(path, "/") == 0 ? "/index.html" : path);
    if (!a) return 0;
    rs->content_type = a->content_type;
    strbuf_add(&rs->body, a->data, a->len);
    return 1;
}

void console_route(console_state *s, const console_request *rq, console_response *rs) {
    int get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;
    rs->status = 200;
    rs->content_type = "application/json";
    if (get && strncmp(rq->path, "/api/", 5) != 0) {
        if (!serve_asset(rq->path, rs)) error_json(rs, 404, "not found");
        return;
    }
    if (post && strcmp(rq->path, "/api/login") == 0) return login(s, rq, rs);
    session *se = session_of(s, rq->cookie);
    if (!se) return error_json(rs, 401, "log in first");
    if (post && !csrf_ok(se, rq)) return error_json(rs, 403, "missing or wrong CSRF token");
    if (post && strcmp(rq->path, "/api/logout") == 0) {
        memset(se, 0, sizeof *se);
        snprintf(rs->set_cookie, sizeof rs->set_cookie, "rf_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
        strbuf_adds(&rs->body, "{}");
        return;
    }
    if (get && strcmp(rq->path, "/api/session") == 0) {
        strbuf_adds(&rs->body, "{\"csrf\":\"");
        strbuf_adds(&rs->body, se->csrf);
        strbuf_adds(&rs->body, "\"}");
        return;
    }
    if (get && strcmp(rq->path, "/api/counters") == 0) {
        rs->content_type = "text/plain; version=0.0.4";
        if (s->counters) s->counters(s->ud, &rs->body);
        return;
    }
    if (get && strcmp(rq->path, "/api/tail") == 0) {
        rs->content_type = "text/event-stream";
        rs->event_stream = 1;
        return;
    }
    if (get && strcmp(rq->path, "/api/scripts") == 0) return script_versions(s, rq, rs);
    if (get && strcmp(rq->path, "/api/script") == 0) return script_files(s, rq, rs);
    if (!db_of(s)) return error_json(rs, 503, "the store cannot be opened");
    if (get && strcmp(rq->path, "/api/tenants") == 0) return tenants(s, rs);
    if (get && strcmp(rq->path, "/api/trace") == 0) return trace_route(s, rq, rs);
    if (get && strcmp(rq->path, "/api/dead") == 0) return dead_letters(s, rq, rs);
    if (post && strcmp(rq->path, "/api/dead/replay") == 0) return dead_action(s, rq, rs, 1);
    if (post && strcmp(rq->path, "/api/dead/purge") == 0) return dead_action(s, rq, rs, 0);
    error_json(rs, get || post ? 404 : 405, get || post ? "not found" : "method not allowed");
}

unsigned long long console_tail(unsigned long long after, strbuf *out) {
    tail_item items[64];
    int n;
    if (!out) {                                   /* where "from now on" starts */
        unsigned long long last = after;
        while ((n = tail_since(last, items, 64)) > 0) last = items[n - 1].seq;
        return last;
    }
    n = tail_since(after, items, 64);
    for (int i = 0; i < n; i++) {
        const tail_item *t = &items[i];
        char head[160];
        snprintf(head, sizeof head, "id: %llu\ndata: {\"event\":%lld,\"at\":%lld,\"tenant\":", t->seq, t->event_id, t->at);
        strbuf_adds(out, head);
        json_append_string(out, t->tenant, strlen(t->tenant));
        strbuf_adds(out, ",\"trigger\":");
        json_append_string(out, t->trigger, strlen(t->trigger));
        strbuf_adds(out, ",\"customer\":");
        json_append_string(out, t->customer, strlen(t->customer));
        strbuf_adds(out, ",\"name\":");
        json_append_string(out, t->name, strlen(t->name));
        strbuf_adds(out, ",\"outcome\":");
        json_append_string(out, t->outcome, strlen(t->outcome));
        strbuf_adds(out, ",\"reason\":");
        json_append_string(out, t->reason, strlen(t->reason));
        strbuf_adds(out, "}\n\n");
        after = t->seq;
    }
    return after;
}
