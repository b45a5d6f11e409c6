/*
 * mapper.c: one tenant's scripts, one event in, one result document out.
 *
 * The C half owns what must be exact and fast: decoding the event into
 * read-only tables, running everything for one event inside one capped,
 * protected call, and encoding the bodies byte for byte as they will be sent.
 * The Lua half (returnflow.runtime) owns the rules: which handlers run, what
 * the emitter records, how actions become Klaviyo requests.
 *
 * Invariant: an event's result is all or nothing. Either every request,
 * schedule and memory write of the event is produced, or none is and the
 * event is failed (or dropped, or deferred) with its reason. A state that
 * broke a cap is thrown away and the scripts are loaded again, so no event
 * ever runs in a state a runaway script left behind.
 */
#include "mapper.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "lauxlib.h"
#include "klaviyo_body.h"
#include "klaviyo_endpoints.h"
#include "klaviyo_limits.h"
#include "map_limits.h"
#include "strmap.h"
#include "utf8.h"
#include "version.h"
#include "sandbox_lib.h"

const char *const map_status_names[] = { "mapped", "dropped", "failed", "deferred" };

static const char map_fn_key = 0, recall_key = 0;

struct mapper {
    mapper_config cfg;
    char *strings[7];             /* owned copies of cfg's strings */
    sandbox *sb;
    strmap *mem;
    int files, handlers;
    strbuf body;                  /* scratch: one request body, then one memory write's value */
    json_memo *memo;              /* properties shared by an event's requests, encoded once */
    strbuf reason;                /* the last event's reason, for mapper_reason */
    strbuf headers;               /* the JSON headers of every request, built once from the config */
    /* An event's buffers (map_call's), kept from one event to the next, emptied: grown from nothing
     * for each, they were a dozen reallocs an event. One past KEEP_MAX is freed, not kept. */
    strbuf keep[7];
    int (*recall_fallback)(void *ud, const char *key, size_t klen, strbuf *out);
    void *recall_ud;
    /* The last event's result, structured (mapper_result): strings in one arena. */
    strbuf arena;
    struct req_at { size_t method, path, body, body_len, profile, key, due; } *reqs;
    size_t *cancels, *mem_keys, *mem_values;
    int nreqs, ncancels, nmem, cap_reqs, cap_cancels, cap_mem;
    map_result result;
    map_request *result_reqs;
    const char **result_cancels, **result_mem_keys, **result_mem_values;
    int result_caps[4];           /* the four result arrays' room: grown, never shrunk, so not a realloc each */
};

/* Appends s and a NUL to the arena; returns its offset. */
static size_t arena_add(mapper *m, const char *s, size_t n) {
    size_t at = m->arena.len;
    strbuf_add(&m->arena, s ? s : "", n);
    strbuf_addc(&m->arena, 0);
    return at;
}

static void *grow(void *p, int *cap, size_t size) {
    *cap = *cap ? *cap * 2 : 8;
    void *q = realloc(p, (size_t)*cap * size);
    if (!q) abort();
    return q;
}

static void result_reset(mapper *m) {
    m->arena.len = 0;
    m->nreqs = m->ncancels = m->nmem = 0;
}

/* ------------------------------- loading --------------------------------- */

/* The first line of the file at `path` that holds `text`, or 1. A file's `changes` table is data
 * with no line of its own, so a problem with one of its rules is reported at the line that names
 * the rule's metric: the merchant's line. Reads only the file being loaded, returns only a number. */
static lua_Integer line_holding(const char *path, const char *text, size_t tlen) {
    FILE *f = tlen ? fopen(path, "rb") : NULL;
    if (!f) return 1;
    char *line = NULL;
    size_t cap = 0;
    lua_Integer n = 0, found = 1;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        n++;
        if ((size_t)len >= tlen && memmem(line, (size_t)len, text, tlen)) { found = n; break; }
    }
    free(line);
    fclose(f);
    return found;
}

/* lines(fn) → the line fn is defined on; lines(text) → the first line of the file holding text
 * (upvalue 1: the file's path; none for the compiled-in defaults, whose lines are 1). */
static int fn_line(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t tlen;
        const char *text = lua_tolstring(L, 1, &tlen);
        const char *path = lua_tostring(L, lua_upvalueindex(1));
        lua_pushinteger(L, path ? line_holding(path, text, tlen) : 1);
        return 1;
    }
    lua_Debug ar;
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    lua_getinfo(L, ">S", &ar);
    lua_pushinteger(L, ar.linedefined > 0 ? ar.linedefined : 1);
    return 1;
}

/* A key (memory, schedule, cancel) is text the store and Klaviyo keep: valid UTF-8, no NUL byte.
 * Refused here, so `map` says what serve's worker channel would refuse. */
static int key_ok(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        int k = *p ? utf8_len(p, end) : 0;
        if (!k) return 0;
        p += k;
    }
    return 1;
}

static int recall(lua_State *L) {
    mapper *m = lua_touserdata(L, lua_upvalueindex(1));
    size_t klen, len;
    const char *key = luaL_checklstring(L, 1, &klen);
    if (!key_ok(key, klen)) return luaL_argerror(L, 1, "a key must be valid UTF-8 with no NUL byte");
    const char *json = strmap_get(m->mem, key, klen, &len);
    char err[128];
    if (!json && m->recall_fallback) {            /* not in the cache: ask the owner's store */
        strbuf found = {0};
        if (m->recall_fallback(m->recall_ud, key, klen, &found)) {
            strmap_put(m->mem, key, klen, found.data ? found.data : "", found.len);
            json = strmap_get(m->mem, key, klen, &len);
        }
        strbuf_free(&found);
    }
    if (!json || json_decode(L, json, len, JSON_WRITABLE, err, sizeof err)) lua_pushnil(L);
    return 1;
}

/* Lua shortens a chunk name longer than LUA_IDSIZE to "..." and its tail, so a message about
 * /srv/acme/returnflow/scripts/45-x.lua reads "...eturnflow/scripts/45-x.lua:3: boom". Every chunk of
 * ours is named dir/relative-path, so the folder can be put back in front of the tail. */
static void restore_chunk_path(const char *dir, const char *msg, strbuf *out) {
    out->len = 0;
    const char *colon = msg && strncmp(msg, "...", 3) == 0 ? strchr(msg + 3, ':') : NULL;
    size_t dlen = dir ? strlen(dir) : 0;
    if (colon && dlen) {
        const char *tail = msg + 3;
        size_t tlen = (size_t)(colon - tail);
        /* the longest end of "dir/" that the tail starts with: the rest of the tail is the file */
        for (size_t k = dlen + 1 < tlen ? dlen + 1 : tlen; k > 0; k--) {
            const char *end_of_dir = dir + dlen + 1 - k;   /* k chars of "dir/", the last being '/' */
            if (memcmp(tail, end_of_dir, k - 1) == 0 && tail[k - 1] == '/') {
                strbuf_adds(out, dir);
                strbuf_adds(out, tail + k - 1);
                strbuf_addc(out, 0);
                out->len--;
                return;
            }
        }
    }
    strbuf_adds(out, msg ? msg : "");
    strbuf_addc(out, 0);
    out->len--;
}

static void add_problem(strbuf *problems, const char *path, const char *msg) {
    /* Lua's own messages already start with "path:line:"; others get the path. */
    size_t plen = strlen(path);
    if (strncmp(msg, path, plen) == 0 && msg[plen] == ':') strbuf_adds(problems, msg);
    else {
        strbuf_adds(problems, path);
        strbuf_adds(problems, ":1: ");
        strbuf_adds(problems, msg);
    }
    strbuf_addc(problems, '\n');
}

static int is_script(const struct dirent *d) {
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 4 && strcmp(d->d_name + n - 4, ".lua") == 0;
}

/* Pushes the event's settings: a new table for every event, built from the host's config, so
 * nothing a script could have done to an earlier event's settings reaches this one. */
/* The runtime's config table, made once per state (the mapper's settings do not change, and a reload
 * is a new state): the runtime, the emitter and returnflow.klaviyo only read it, and no script can
 * reach it (the emitter keeps it in its private state). Only `now` is set again, each event. */
static const char config_key = 0;

static void push_config(mapper *m, lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &config_key) == LUA_TTABLE) {
        lua_pushinteger(L, (lua_Integer)time(NULL));
        lua_setfield(L, -2, "now");
        return;
    }
    lua_pop(L, 1);
    const mapper_config *c = &m->cfg;
    lua_createtable(L, 0, 9);
    lua_pushstring(L, c->tenant); lua_setfield(L, -2, "tenant");
    lua_pushstring(L, c->key_kind); lua_setfield(L, -2, "key_kind");
    if (c->site_id) { lua_pushstring(L, c->site_id); lua_setfield(L, -2, "site_id"); }
    lua_pushstring(L, c->revision); lua_setfield(L, -2, "revision");
    lua_pushstring(L, c->segments_property); lua_setfield(L, -2, "segments_property");
    lua_pushboolean(L, c->backfill); lua_setfield(L, -2, "backfill");
    lua_pushinteger(L, (lua_Integer)time(NULL)); lua_setfield(L, -2, "now");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &recall_key);
    lua_setfield(L, -2, "recall");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &config_key);
}

/* The headers of every request, as the JSON map's output shows them (the key redacted: the real
 * one is added by delivery, which alone holds it). Keys sorted, as json_encode writes them. */
static void build_headers(mapper *m) {
    strbuf *h = &m->headers;
    strbuf_adds(h, "{\"Accept\":\"application/vnd.api+json\",");
    if (strcmp(m->cfg.key_kind, "public") != 0) strbuf_adds(h, "\"Authorization\":\"Klaviyo-API-Key ***\",");
    strbuf_adds(h, "\"Content-Type\":\"application/vnd.api+json\",\"revision\":");
    json_append_string(h, m->cfg.revision, strlen(m->cfg.revision));
    strbuf_addc(h, '}');
}

/* CPU time a whole folder may take to load, however many files it has: 4 per-event caps, at
 * least 2 s (docs/mapping-api.md). Each file still has the per-event cap of its own. */
static double load_budget(const mapper *m) {
    double s = m->cfg.caps.seconds * 4;
    return m->cfg.caps.seconds <= 0 ? 0 : s < 2 ? 2 : s;
}

static double thread_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Registers the handler table on top of the stack (a file's result) under the name shown, and pops
 * it; a problem with it (not a table, an unknown trigger) is appended to problems. */
static void take_handlers(mapper *m, int runtime, const char *path, const char *shown, const char *shown_dir,
                          strbuf *problems) {
    lua_State *L = sandbox_lua(m->sb);
    lua_getfield(L, runtime, "register");
    lua_pushstring(L, shown);
    lua_pushvalue(L, -3);
    if (path) lua_pushstring(L, path);
    lua_pushcclosure(L, fn_line, path ? 1 : 0);
    if (sandbox_call(m->sb, 3, 1) != LUA_OK) {
        restore_chunk_path(shown_dir, lua_tostring(L, -1), &m->reason);
        add_problem(problems, shown, m->reason.data);
        lua_pop(L, 2);
        return;
    }
    int k = (int)lua_rawlen(L, -1);
    for (int j = 1; j <= k; j++) {
        lua_rawgeti(L, -1, j);
        lua_getfield(L, -1, "line");
        lua_getfield(L, -2, "message");
        char msg[1400];
        snprintf(msg, sizeof msg, "%s:%d: %s", shown, (int)lua_tointeger(L, -2), lua_tostring(L, -1));
        add_problem(problems, shown, msg);
        lua_pop(L, 3);
    }
    lua_pop(L, 2);
}

/* Builds a fresh state and loads every script; returns the number of problems. */
static int load(mapper *m, strbuf *problems) {
    char err[256];
    size_t before = problems->len;
    int count = 0;
    m->sb = sandbox_new(&m->cfg.caps, m->cfg.scripts_dir, err, sizeof err);
    if (!m->sb) { add_problem(problems, m->cfg.scripts_dir, err); return 1; }
    const char *shown_dir = m->cfg.display_dir && *m->cfg.display_dir ? m->cfg.display_dir : m->cfg.scripts_dir;
    sandbox_set_display_dir(m->sb, m->cfg.display_dir);
    lua_State *L = sandbox_lua(m->sb);

    if (sandbox_require(m->sb, "returnflow.runtime") != LUA_OK) {
        add_problem(problems, "returnflow.runtime", lua_tostring(L, -1));
        lua_pop(L, 1);
        return 1;
    }
    int runtime = lua_gettop(L);
    lua_getfield(L, runtime, "map");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &map_fn_key);
    lua_getfield(L, runtime, "Stop");
    sandbox_set_stop_metatable(m->sb);
    lua_pushlightuserdata(L, m);
    lua_pushcclosure(L, recall, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &recall_key);
    double started = thread_cpu_seconds(), budget = load_budget(m), per_file = m->cfg.caps.seconds;

    if (m->cfg.builtin_defaults) {                /* the defaults compiled in: one "file" */
        if (sandbox_require(m->sb, "returnflow.defaults") != LUA_OK) {
            add_problem(problems, MAPPER_BUILTIN_NAME, lua_tostring(L, -1));
            lua_pop(L, 2);
            return 1;
        }
        take_handlers(m, runtime, NULL, MAPPER_BUILTIN_NAME, shown_dir, problems);
        goto loaded;
    }
    struct dirent **list;
    int n = scandir(m->cfg.scripts_dir, &list, is_script, alphasort);
    if (n < 0) {
        snprintf(err, sizeof err, "cannot read the scripts folder: %s", strerror(errno));
        add_problem(problems, m->cfg.scripts_dir, err);
        lua_pop(L, 1);
        return 1;
    }
    int over_budget = 0;
    for (int i = 0; i < n; i++) {
        char path[1024], shown[1024];
        snprintf(path, sizeof path, "%s/%s", m->cfg.scripts_dir, list[i]->d_name);
        snprintf(shown, sizeof shown, "%s/%s", shown_dir, list[i]->d_name);
        free(list[i]);
        if (over_budget) continue;
        if (budget > 0) {
            double left = budget - (thread_cpu_seconds() - started);
            if (left <= 0) {
                snprintf(err, sizeof err, "cap: loading the folder took over %d ms of CPU time (the total "
                         "load cap); this file and the ones after it were not loaded", (int)(budget * 1000));
                add_problem(problems, shown, err);
                over_budget = 1;
                continue;
            }
            sandbox_set_seconds(m->sb, left < per_file ? left : per_file);
        }
        if (sandbox_load_file(m->sb, path) != LUA_OK || sandbox_call(m->sb, 0, 1) != LUA_OK) {
            restore_chunk_path(shown_dir, lua_tostring(L, -1), &m->reason);
            add_problem(problems, shown, m->reason.data);
            lua_pop(L, 1);
            continue;
        }
        take_handlers(m, runtime, path, shown, shown_dir, problems);
    }
    free(list);
loaded:
    sandbox_set_seconds(m->sb, per_file);
    lua_getfield(L, runtime, "counts");
    lua_call(L, 0, 2);
    m->files = (int)lua_tointeger(L, -2);
    m->handlers = (int)lua_tointeger(L, -1);
    lua_pop(L, 3);
    for (size_t i = before; i < problems->len; i++) count += problems->data[i] == '\n';
    return count;
}

static char *dup_or(const char *s, const char *fallback) {
    const char *v = s && *s ? s : fallback;
    if (!v) return NULL;
    char *d = strdup(v);
    if (!d) abort();
    return d;
}

mapper *mapper_new(const mapper_config *cfg, strbuf *problems) {
    mapper *m = calloc(1, sizeof *m);
    if (!m) abort();
    m->cfg = *cfg;
    m->cfg.scripts_dir = m->strings[0] = dup_or(cfg->builtin_defaults ? MAPPER_BUILTIN_NAME : cfg->scripts_dir, "scripts");
    m->cfg.tenant = m->strings[1] = dup_or(cfg->tenant, "default");
    m->cfg.key_kind = m->strings[2] = dup_or(cfg->key_kind, "private");
    m->cfg.site_id = m->strings[3] = dup_or(cfg->site_id, NULL);
    m->cfg.revision = m->strings[4] = dup_or(cfg->revision, KLAVIYO_REVISION);
    m->cfg.segments_property = m->strings[5] = dup_or(cfg->segments_property, "returnflow_segments");
    m->cfg.display_dir = m->strings[6] = dup_or(cfg->display_dir, NULL);
    m->mem = strmap_new();
    m->memo = json_memo_new();
    build_headers(m);
    if (load(m, problems)) {
        mapper_free(m);
        return NULL;
    }
    return m;
}

void mapper_free(mapper *m) {
    if (!m) return;
    sandbox_free(m->sb);
    strmap_free(m->mem);
    strbuf_free(&m->body);
    strbuf_free(&m->reason);
    strbuf_free(&m->headers);
    for (int i = 0; i < 7; i++) strbuf_free(&m->keep[i]);
    json_memo_free(m->memo);
    strbuf_free(&m->arena);
    free(m->reqs);
    free(m->cancels);
    free(m->mem_keys);
    free(m->mem_values);
    free(m->result_reqs);
    free(m->result_cancels);
    free(m->result_mem_keys);
    free(m->result_mem_values);
    for (int i = 0; i < 7; i++) free(m->strings[i]);
    free(m);
}

const char *mapper_reason(const mapper *m) {
    return m->reason.data ? m->reason.data : "";
}

void mapper_counts(const mapper *m, int *files, int *handlers) {
    *files = m->files;
    *handlers = m->handlers;
}

/* ------------------------------- mapping --------------------------------- */

/* One mapper_map call: the event in, what its handlers produce (not a batch job, not a bulk job). */
typedef struct map_call {
    mapper *m;
    const char *text;
    size_t len;
    map_status status;
    strbuf trigger;               /* JSON string or null */
    strbuf reason;                /* plain text */
    strbuf requests, scheduled, cancelled;   /* JSON array contents */
    strbuf profile;               /* the profile key of every request */
    strbuf kinds;                 /* the kind of each action, a letter each (action_kind) */
} map_call;

static void set_reason(map_call *j, map_status status, const char *reason) {
    j->status = status;
    const mapper_config *c = &j->m->cfg;
    restore_chunk_path(c->display_dir && *c->display_dir ? c->display_dir : c->scripts_dir, reason, &j->reason);
}

/* "track 'Loop Return Created'" for a request's error messages, or its action. */
static void describe_request(lua_State *L, int r, char *what, size_t size) {
    lua_getfield(L, r, "body");
    const char *keys[] = { "data", "attributes", "metric", "data", "attributes", "name" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys && lua_istable(L, -1); i++) lua_getfield(L, -1, keys[i]);
    if (lua_type(L, -1) == LUA_TSTRING) snprintf(what, size, "event '%.100s'", lua_tostring(L, -1));
    else snprintf(what, size, "request");
}

/* A string field of a host-made table, checked: the host trusts no type or byte of it. */
static const char *string_field(lua_State *L, int t, const char *field, size_t *len, const char *what) {
    if (lua_getfield(L, t, field) != LUA_TSTRING) luaL_error(L, "%s: '%s' is not a string", what, field);
    const char *s = lua_tolstring(L, -1, len);
    if (!key_ok(s, *len)) luaL_error(L, "%s: a key must be valid UTF-8 with no NUL byte", what);
    return s;
}

/* Counts bytes the host keeps for this event against the sandbox's memory cap. */
static void charge(lua_State *L, size_t n) {
    if (sandbox_charge(L, n)) luaL_error(L, "cap: memory exceeded (the event's requests and memory writes "
                                            "would not fit the cap)");
}

/* The profile a request is about, as one string ("email:maria@example.com"): the first identifier
 * of the event's profile that is a non-empty string, or "". Requests of one profile are delivered in
 * order; every request of an event is about the same profile. */
static void profile_key(lua_State *L, int person, strbuf *out) {
    static const char *const ids[] = { "email", "phone_number", "external_id" };
    out->len = 0;
    for (size_t i = 0; i < sizeof ids / sizeof *ids && lua_istable(L, person); i++) {
        size_t n;
        lua_pushstring(L, ids[i]);               /* raw, as the bodies read it (klaviyo_body.c) */
        if (lua_rawget(L, person) == LUA_TSTRING && (lua_tolstring(L, -1, &n), n > 0)) {
            strbuf_adds(out, ids[i]);
            strbuf_addc(out, ':');
            strbuf_add(out, lua_tostring(L, -1), n);
            lua_pop(L, 1);
            return;
        }
        lua_pop(L, 1);
    }
}

/* What the event's requests share: its profile (table index), the meta its first track carries
 * (index, 0 for none) and the profile key. */
typedef struct request_ctx {
    int person, meta;
    int meta_taken;
    const strbuf *profile;
} request_ctx;

/* Appends {"method":..,"path":..,"headers":{..},"body":{..}} for the request on top, and records it
 * in the structured result (key and due name a scheduled one). Method, path and headers come from
 * the host: the endpoint of the request's action in the fixed table, for the tenant's key kind. A
 * request is an emitter action ("track", "schedule": its body is written here, klaviyo_body.c) or
 * names its action ("profile", "subscribe") with a body table. */
static void encode_request(lua_State *L, map_call *j, request_ctx *rc, strbuf *out, const char *key, const char *due) {
    char err[400], pathbuf[160];
    int r = lua_gettop(L);
    mapper *m = j->m;
    if (!lua_istable(L, r)) luaL_error(L, "a request is not a table");
    lua_getfield(L, r, "kind");
    const char *kind = lua_tostring(L, -1);
    int track = kind && strcmp(kind, "track") == 0, scheduled = kind && strcmp(kind, "schedule") == 0;
    const char *action = NULL;
    if (!track && !scheduled) {
        lua_getfield(L, r, "action");
        action = lua_tostring(L, -1);
    }
    klaviyo_action a = track || scheduled ? KLAVIYO_TRACK : !action ? KLAVIYO_ACTION_COUNT
                     : strcmp(action, "track") == 0 ? KLAVIYO_TRACK
                     : strcmp(action, "profile") == 0 ? KLAVIYO_PROFILE
                     : strcmp(action, "subscribe") == 0 ? KLAVIYO_SUBSCRIBE : KLAVIYO_ACTION_COUNT;
    const char *path = klaviyo_endpoint_path(a, m->cfg.key_kind, m->cfg.site_id, pathbuf, sizeof pathbuf);
    if (!path)
        luaL_error(L, a == KLAVIYO_ACTION_COUNT ? "a request names no Klaviyo action"
                      : "a public key needs its site id (letters and digits, --site-id) to name the endpoint");
    strbuf *body = &m->body;
    body->len = 0;
    if (track || scheduled) {
        if (!lua_istable(L, rc->person)) luaL_error(L, "the event's result has no profile");
        int meta = track && !rc->meta_taken ? rc->meta : 0;
        if (track) rc->meta_taken = 1;
        if (klaviyo_track_body(L, r, rc->person, meta, track, m->cfg.backfill, body, m->memo, err, sizeof err)) {
            char what[200];
            lua_getfield(L, r, "metric");
            if (lua_type(L, -1) == LUA_TSTRING) snprintf(what, sizeof what, "event '%.100s'", lua_tostring(L, -1));
            else snprintf(what, sizeof what, "request");
            luaL_error(L, "%s: %s", what, err);
        }
    } else {
        lua_getfield(L, r, "body");
        if (json_encode_with(L, -1, body, &klaviyo_rules, m->memo, err, sizeof err)) {
            char what[200];
            describe_request(L, r, what, sizeof what);
            luaL_error(L, "%s: %s", what, err);
        }
    }
    size_t limit = klaviyo_body_limit(path);
    if (body->len > limit)
        luaL_error(L, "%s body of %d bytes is over Klaviyo's limit of %d bytes", path, (int)body->len, (int)limit);
    charge(L, 2 * body->len + 512);
    strbuf_adds(out, "{\"method\":\"POST\",\"path\":");
    json_append_string(out, path, strlen(path));
    strbuf_adds(out, ",\"headers\":");
    strbuf_add(out, m->headers.data, m->headers.len);
    strbuf_adds(out, ",\"body\":");
    strbuf_add(out, body->data, body->len);
    strbuf_addc(out, '}');

    if (m->nreqs == m->cap_reqs) m->reqs = grow(m->reqs, &m->cap_reqs, sizeof *m->reqs);
    struct req_at *at = &m->reqs[m->nreqs++];
    at->method = arena_add(m, "POST", 4);
    at->path = arena_add(m, path, strlen(path));
    at->body = arena_add(m, body->data, body->len);
    at->body_len = body->len;
    at->profile = arena_add(m, rc->profile->data, rc->profile->len);
    at->key = key ? arena_add(m, key, strlen(key)) : (size_t)-1;
    at->due = due ? arena_add(m, due, strlen(due)) : (size_t)-1;
    lua_settop(L, r);
}

/* What returnflow.runtime's map returns, in this order (values, not a table: nothing to build or
 * look up by name). */
enum { R_STATUS, R_REASON, R_ACTIONS, R_UPSERT, R_NREQUESTS, R_NSCHEDULED, R_NCANCELLED, R_MEMORY, R_PERSON,
       R_META, R_COUNT };

/* An action's kind, as one letter (track, schedule, subscribe, cancel, else '?'): the three passes
 * over the actions read each kind once. */
static char action_kind(lua_State *L, int a) {
    a = lua_absindex(L, a);
    if (lua_type(L, a) != LUA_TTABLE) return '?';
    lua_pushliteral(L, "kind");
    char k = '?';
    if (lua_rawget(L, a) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        k = strcmp(s, "track") == 0 ? 'T' : strcmp(s, "schedule") == 0 ? 'S'
          : strcmp(s, "subscribe") == 0 ? 'U' : strcmp(s, "cancel") == 0 ? 'C' : '?';
    }
    lua_pop(L, 1);
    return k;
}

/* Pushes one of them; returns its type. */
static int push_result(lua_State *L, int res, int which) {
    lua_pushvalue(L, res + which);
    return lua_type(L, -1);
}

/* Runs inside sandbox_call: decode, map, encode. Raises on any script error. Everything read
 * here from the runtime's result is host-made, but checked all the same (types, NUL bytes). */
static int map_protected(lua_State *L) {
    map_call *j = lua_touserdata(L, 1);
    char err[320];
    lua_settop(L, 0);
    if (json_decode_event(L, j->text, j->len, err, sizeof err)) {
        char msg[400];
        snprintf(msg, sizeof msg, "invalid JSON: %s", err);
        set_reason(j, MAP_FAILED, msg);
        return 0;
    }
    if (lua_type(L, 1) != LUA_TTABLE || (!json_event_fresh_object(L, 1) && json_is_array(L, 1))) {
        set_reason(j, MAP_FAILED, lua_type(L, 1) == LUA_TTABLE ? "the event must be a JSON object, got an array"
                                                                : "the event must be a JSON object");
        if (lua_type(L, 1) != LUA_TTABLE) {
            char msg[96];
            snprintf(msg, sizeof msg, "the event must be a JSON object, got a %s",
                     lua_isnil(L, 1) || lua_islightuserdata(L, 1) ? "null" : luaL_typename(L, 1));
            set_reason(j, MAP_FAILED, msg);
        }
        return 0;
    }
    lua_getfield(L, 1, "trigger");
    if (lua_type(L, -1) == LUA_TSTRING) json_append_string(&j->trigger, lua_tostring(L, -1), lua_rawlen(L, -1));
    lua_pop(L, 1);
    json_set_event_root(L, 1);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &map_fn_key);
    lua_pushvalue(L, 1);
    push_config(j->m, L);
    lua_call(L, 2, R_COUNT);
    int res = lua_gettop(L) - R_COUNT + 1;
    if (lua_type(L, res + R_STATUS) != LUA_TSTRING) luaL_error(L, "the runtime returned no status");

    push_result(L, res, R_STATUS);
    const char *status = lua_tostring(L, -1);
    map_status st = status && strcmp(status, "dropped") == 0 ? MAP_DROPPED : MAP_MAPPED;
    push_result(L, res, R_REASON);
    set_reason(j, st, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL);
    lua_pop(L, 2);

    /* serve's worker channel refuses a result past map_limits.h: so does the mapper, saying why */
    lua_Integer nreq = lua_tointeger(L, res + R_NREQUESTS), nsched = lua_tointeger(L, res + R_NSCHEDULED);
    lua_Integer ncancel = lua_tointeger(L, res + R_NCANCELLED);
    lua_Integer nmem = push_result(L, res, R_MEMORY) == LUA_TTABLE ? luaL_len(L, -1) : 0;
    lua_pop(L, 1);
    if (nreq < 0 || nsched < 0 || nreq + nsched > MAP_MAX_REQUESTS)
        luaL_error(L, "limit: %I requests and scheduled requests in one event, over the %d a worker may return",
                   nreq + nsched, MAP_MAX_REQUESTS);
    if (ncancel < 0 || ncancel > MAP_MAX_CANCELS)
        luaL_error(L, "limit: %I cancels in one event, over the %d a worker may return", ncancel, MAP_MAX_CANCELS);
    if (nmem < 0 || nmem > MAP_MAX_MEMORY)
        luaL_error(L, "limit: %I memory writes in one event, over the %d a worker may return", nmem, MAP_MAX_MEMORY);

    request_ctx rc = { 0, 0, 0, NULL };
    push_result(L, res, R_PERSON);
    rc.person = lua_gettop(L);
    push_result(L, res, R_META);
    rc.meta = lua_isnil(L, -1) ? 0 : lua_gettop(L);
    profile_key(L, rc.person, &j->profile);
    rc.profile = &j->profile;
    /* The requests: the profile upsert, then the tracks and subscribes in the order of the actions;
     * then the scheduled ones, then the cancels, each in that order (returnflow.klaviyo's requests). */
    int actions = lua_gettop(L) + 1, nactions = 0, written = 0;
    if (push_result(L, res, R_ACTIONS) == LUA_TTABLE) nactions = (int)lua_rawlen(L, actions);
    if (nactions > nreq + nsched + ncancel) luaL_error(L, "the runtime counted its actions wrong");
    j->kinds.len = 0;
    for (int i = 1; i <= nactions; i++) {
        lua_rawgeti(L, actions, i);
        strbuf_addc(&j->kinds, action_kind(L, -1));
        lua_pop(L, 1);
    }
    if (push_result(L, res, R_UPSERT) == LUA_TTABLE) {
        encode_request(L, j, &rc, &j->requests, NULL, NULL);
        written++;
    }
    lua_pop(L, 1);
    for (int i = 1; i <= nactions; i++) {
        if (j->kinds.data[i - 1] != 'T' && j->kinds.data[i - 1] != 'U') continue;
        if (written++) strbuf_addc(&j->requests, ',');
        lua_rawgeti(L, actions, i);
        encode_request(L, j, &rc, &j->requests, NULL, NULL);
        lua_pop(L, 1);
    }
    written = 0;
    for (int i = 1; i <= nactions; i++) {
        if (j->kinds.data[i - 1] != 'S') continue;
        if (written++) strbuf_addc(&j->scheduled, ',');
        lua_rawgeti(L, actions, i);
        int s = lua_gettop(L);
        size_t klen, alen;
        const char *key = string_field(L, s, "key", &klen, "schedule");
        const char *at = string_field(L, s, "at", &alen, "schedule");
        if (klen > MAP_MAX_KEY) luaL_error(L, "schedule: a key is over the %d bytes a key may hold", MAP_MAX_KEY);
        strbuf_adds(&j->scheduled, "{\"key\":");
        json_append_string(&j->scheduled, key, klen);
        strbuf_adds(&j->scheduled, ",\"at\":");
        json_append_string(&j->scheduled, at, alen);
        strbuf_adds(&j->scheduled, ",\"request\":");
        lua_pushvalue(L, s);                  /* a schedule action is its own request */
        encode_request(L, j, &rc, &j->scheduled, key, at);
        strbuf_addc(&j->scheduled, '}');
        lua_settop(L, s - 1);
    }
    written = 0;
    mapper *m = j->m;
    for (int i = 1; i <= nactions; i++) {
        if (j->kinds.data[i - 1] != 'C') continue;
        lua_rawgeti(L, actions, i);
        lua_getfield(L, -1, "key");
        lua_remove(L, -2);
        size_t klen;
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "cancel: a key is not a string");
        const char *key = lua_tolstring(L, -1, &klen);
        if (!key_ok(key, klen)) luaL_error(L, "cancel: a key must be valid UTF-8 with no NUL byte");
        if (klen > MAP_MAX_KEY) luaL_error(L, "cancel: a key is over the %d bytes a key may hold", MAP_MAX_KEY);
        charge(L, 2 * klen + 16);
        if (m->ncancels == m->cap_cancels) m->cancels = grow(m->cancels, &m->cap_cancels, sizeof *m->cancels);
        m->cancels[m->ncancels++] = arena_add(m, key, klen);
        if (written++) strbuf_addc(&j->cancelled, ',');
        json_append_string(&j->cancelled, key, klen);
        lua_pop(L, 1);
    }
    lua_settop(L, actions - 1);

    /* Memory writes last, all encoded here; the mapper keeps them only once the whole call
     * returned without error (mapper_map): all or nothing. */
    if (push_result(L, res, R_MEMORY) == LUA_TTABLE) {
        mapper *m = j->m;
        int n = (int)luaL_len(L, -1);
        strbuf *value = &m->body;               /* the requests' scratch, theirs done */
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            int w = lua_gettop(L);
            if (!lua_istable(L, w)) luaL_error(L, "remember: a write is not a table");
            lua_getfield(L, w, "key");
            size_t klen = 0;
            const char *key = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &klen) : NULL;
            if (!key || !key_ok(key, klen))
                luaL_error(L, "remember: a key must be a string of valid UTF-8 with no NUL byte");
            if (klen > MAP_MAX_KEY) luaL_error(L, "remember: a key is over the %d bytes a key may hold", MAP_MAX_KEY);
            lua_getfield(L, w, "value");
            value->len = 0;
            if (json_encode_reusing(L, -1, value, m->memo, err, sizeof err))   /* props: the bodies' bytes */
                luaL_error(L, "remember: %s", err);
            if (value->len > MAP_MAX_MEMORY_VALUE)
                luaL_error(L, "remember: a value is over the %d bytes of JSON a memory write may hold",
                           (int)MAP_MAX_MEMORY_VALUE);
            if (sandbox_charge(L, 2 * (klen + value->len) + 32)) charge(L, SIZE_MAX);
            if (m->nmem == m->cap_mem) {
                int cap = m->cap_mem;
                m->mem_keys = grow(m->mem_keys, &cap, sizeof *m->mem_keys);
                m->mem_values = grow(m->mem_values, &m->cap_mem, sizeof *m->mem_values);
            }
            m->mem_keys[m->nmem] = arena_add(m, key, klen);
            m->mem_values[m->nmem++] = arena_add(m, value->data, value->len);
            lua_settop(L, w - 1);
        }
    }
    json_set_event_root(L, 0);
    return 0;
}

/* p with room for n (at least 1) items of size bytes: p itself when it has it (*cap says how many). */
static void *room(void *p, int *cap, int n, size_t size) {
    if (n < 1) n = 1;
    if (n <= *cap) return p;
    p = realloc(p, (size_t)n * size);
    if (!p) abort();
    *cap = n;
    return p;
}

/* Points the public result at the arena, now that it no longer moves. */
static void build_result(mapper *m, map_status status) {
    m->result_reqs = room(m->result_reqs, &m->result_caps[0], m->nreqs, sizeof *m->result_reqs);
    m->result_cancels = room(m->result_cancels, &m->result_caps[1], m->ncancels, sizeof(char *));
    m->result_mem_keys = room(m->result_mem_keys, &m->result_caps[2], m->nmem, sizeof(char *));
    m->result_mem_values = room(m->result_mem_values, &m->result_caps[3], m->nmem, sizeof(char *));
    const char *a = m->arena.data;
    for (int i = 0; i < m->nreqs; i++) {
        const struct req_at *r = &m->reqs[i];
        m->result_reqs[i] = (map_request){
            .method = a + r->method, .path = a + r->path, .body = a + r->body, .body_len = r->body_len,
            .profile = a + r->profile,
            .schedule_key = r->key == (size_t)-1 ? NULL : a + r->key,
            .due = r->due == (size_t)-1 ? NULL : a + r->due,
        };
    }
    for (int i = 0; i < m->ncancels; i++) m->result_cancels[i] = a + m->cancels[i];
    for (int i = 0; i < m->nmem; i++) {
        m->result_mem_keys[i] = a + m->mem_keys[i];
        m->result_mem_values[i] = a + m->mem_values[i];
    }
    m->result = (map_result){
        .status = status, .reason = m->reason.data ? m->reason.data : "",
        .requests = m->result_reqs, .nrequests = m->nreqs,
        .cancels = m->result_cancels, .ncancels = m->ncancels,
        .memory_keys = m->result_mem_keys, .memory_values = m->result_mem_values, .nmemory = m->nmem,
    };
}

const map_result *mapper_result(const mapper *m) { return &m->result; }

void mapper_set_recall(mapper *m, int (*fallback)(void *ud, const char *key, size_t klen, strbuf *out), void *ud) {
    m->recall_fallback = fallback;
    m->recall_ud = ud;
}

size_t mapper_memory_count(const mapper *m) { return strmap_count(m->mem); }

void mapper_remember(mapper *m, const char *key, size_t klen, const char *json, size_t len) {
    strmap_put(m->mem, key, klen, json, len);
}

void mapper_forget_memory(mapper *m) {
    strmap_free(m->mem);
    m->mem = strmap_new();
}

static void reload(mapper *m) {
    strbuf problems = {0};
    sandbox_free(m->sb);
    m->sb = NULL;
    if (load(m, &problems)) fprintf(stderr, "returnflow: reloading scripts after a cap: %.*s",
                                    (int)problems.len, problems.data);
    strbuf_free(&problems);
}

/* The bytes of a buffer an event used that the mapper keeps for the next; a larger one is freed (a
 * huge event must not keep its memory for good). */
#define KEEP_MAX (1 << 20)

/* map_call's buffers, in the order of mapper.keep. */
static strbuf *call_buffers(map_call *j, int i) {
    strbuf *const b[7] = { &j->trigger, &j->reason, &j->requests, &j->scheduled, &j->cancelled, &j->profile,
                           &j->kinds };
    return b[i];
}

map_status mapper_map(mapper *m, const char *text, size_t len, const char *label, strbuf *doc) {
    map_call j = { .m = m, .text = text, .len = len, .status = MAP_MAPPED };
    for (int i = 0; i < 7; i++) {
        *call_buffers(&j, i) = m->keep[i];
        call_buffers(&j, i)->len = 0;
    }
    json_memo_reset(m->memo);
    result_reset(m);
    lua_State *L = sandbox_lua(m->sb);
    lua_pushcfunction(L, map_protected);
    lua_pushlightuserdata(L, &j);
    if (sandbox_call(m->sb, 1, 0) != LUA_OK) {
        j.requests.len = j.scheduled.len = j.cancelled.len = 0;
        result_reset(m);                          /* nothing of a failed event is kept */
        /* The sandbox's message handler made the error value a plain string, or for a
         * drop/fail/defer a new plain table { status, reason }: read raw, nothing runs. */
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_pushliteral(L, "status");
            lua_rawget(L, -2);
            lua_pushliteral(L, "reason");
            lua_rawget(L, -3);
            const char *s = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            map_status st = !s ? MAP_FAILED : strcmp(s, "dropped") == 0 ? MAP_DROPPED
                          : strcmp(s, "deferred") == 0 ? MAP_DEFERRED : MAP_FAILED;
            set_reason(&j, st, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(no reason given)");
            lua_pop(L, 2);
        } else {
            const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            set_reason(&j, MAP_FAILED, msg && *msg ? msg : "(the error has no message)");
        }
        lua_pop(L, 1);
        json_set_event_root(L, 0);
        if (sandbox_spoiled(m->sb)) reload(m);
    } else {
        /* The event mapped whole: now, and only now, its memory writes are kept. */
        for (int i = 0; i < m->nmem; i++) {
            const char *k = m->arena.data + m->mem_keys[i], *v = m->arena.data + m->mem_values[i];
            strmap_put(m->mem, k, strlen(k), v, strlen(v));
        }
    }

    strbuf_adds(doc, "{\"input\":");
    json_append_string(doc, label, strlen(label));
    strbuf_adds(doc, ",\"trigger\":");
    if (j.trigger.len) strbuf_add(doc, j.trigger.data, j.trigger.len);
    else strbuf_adds(doc, "null");
    strbuf_adds(doc, ",\"status\":\"");
    strbuf_adds(doc, map_status_names[j.status]);
    strbuf_addc(doc, '"');
    if (j.reason.len) {
        strbuf_adds(doc, ",\"reason\":");
        json_append_string(doc, j.reason.data, j.reason.len);
    }
    strbuf_adds(doc, ",\"requests\":[");
    strbuf_add(doc, j.requests.data, j.requests.len);
    strbuf_adds(doc, "],\"scheduled\":[");
    strbuf_add(doc, j.scheduled.data, j.scheduled.len);
    strbuf_adds(doc, "],\"cancelled\":[");
    strbuf_add(doc, j.cancelled.data, j.cancelled.len);
    strbuf_adds(doc, "]}");
    m->reason.len = 0;
    strbuf_add(&m->reason, j.reason.data ? j.reason.data : "", j.reason.len);
    strbuf_addc(&m->reason, 0);
    build_result(m, j.status);
    for (int i = 0; i < 7; i++) {
        strbuf *b = call_buffers(&j, i);
        if (b->cap > KEEP_MAX) strbuf_free(b);
        m->keep[i] = *b;
    }
    return j.status;
}
