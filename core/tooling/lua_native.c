/*
 * lua_native.c: the host's mapper and JSON as a Lua library, `returnflow.native`.
 *
 * Merchants test their scripts with busted under a plain lua5.4. If the test
 * side re-implemented the mapping in Lua, a spec could pass on semantics the
 * service does not have. So the testing module calls this library, which is
 * the service's own C: the same sandbox, caps, lazy read-only event, encoder
 * and Klaviyo limits, compiled once more as a shared object. A mapper here
 * runs the scripts in its own sandboxed state, never in the caller's.
 *
 * The binary's tooling commands (templates, test) open the same library in
 * their (unsandboxed) tool state, so there is one binding, not two.
 */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "lauxlib.h"
#include "lua_native.h"
#include "share.h"
#include "mapper.h"
#include "signature.h"
#include "version.h"

#define MAPPER_MT "returnflow.mapper"

typedef struct lua_mapper {
    mapper *m;
    strbuf doc;
} lua_mapper;

static lua_mapper *check_mapper(lua_State *L) {
    lua_mapper *lm = luaL_checkudata(L, 1, MAPPER_MT);
    if (!lm->m) luaL_error(L, "the mapper was closed");
    return lm;
}

static const char *opt_string(lua_State *L, int t, const char *field) {
    const char *v = NULL;
    int kind = lua_getfield(L, t, field);
    if (kind == LUA_TSTRING) v = lua_tostring(L, -1);
    else if (kind != LUA_TNIL) luaL_error(L, "mapper option '%s' must be a string", field);
    lua_pop(L, 1);                              /* the string stays alive: the table holds it */
    return v;
}

static double opt_number(lua_State *L, int t, const char *field, double fallback) {
    double v = fallback;
    int kind = lua_getfield(L, t, field);
    if (kind == LUA_TNUMBER) v = lua_tonumber(L, -1);
    else if (kind != LUA_TNIL) luaL_error(L, "mapper option '%s' must be a number", field);
    lua_pop(L, 1);
    return v;
}

/* native.mapper{ scripts =, tenant =, key_kind =, site_id =, revision =, segments_property =,
 *                backfill =, memory_cap_mib =, time_cap_ms = } -> mapper | nil, problems */
static int l_mapper(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    mapper_config cfg = {0};
    cfg.scripts_dir = opt_string(L, 1, "scripts");
    cfg.tenant = opt_string(L, 1, "tenant");
    cfg.key_kind = opt_string(L, 1, "key_kind");
    cfg.site_id = opt_string(L, 1, "site_id");
    cfg.revision = opt_string(L, 1, "revision");
    cfg.segments_property = opt_string(L, 1, "segments_property");
    lua_getfield(L, 1, "backfill");
    cfg.backfill = lua_toboolean(L, -1);
    lua_pop(L, 1);
    double mib = opt_number(L, 1, "memory_cap_mib", (double)(SANDBOX_DEFAULT_MEMORY >> 20));
    double ms = opt_number(L, 1, "time_cap_ms", SANDBOX_DEFAULT_SECONDS * 1000.0);
    if (mib < 1 || mib > 4096) return luaL_error(L, "memory_cap_mib must be 1 to 4096");
    if (ms < 1) return luaL_error(L, "time_cap_ms must be at least 1");
    cfg.caps.memory_bytes = (size_t)mib << 20;
    cfg.caps.seconds = ms / 1000.0;
    if (cfg.key_kind && strcmp(cfg.key_kind, "private") && strcmp(cfg.key_kind, "public"))
        return luaL_error(L, "key_kind must be 'private' or 'public'");

    lua_mapper *lm = lua_newuserdatauv(L, sizeof *lm, 0);
    memset(lm, 0, sizeof *lm);
    luaL_setmetatable(L, MAPPER_MT);
    strbuf problems = {0};
    lm->m = mapper_new(&cfg, &problems);
    if (!lm->m) {
        lua_pushnil(L);
        lua_pushlstring(L, problems.data ? problems.data : "", problems.len);
        strbuf_free(&problems);
        return 2;
    }
    strbuf_free(&problems);
    return 1;
}

static void set_string(lua_State *L, const char *field, const char *value) {
    if (!value) return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, field);
}

/* mapper:map(json_text [, label]) -> { status, reason, doc, requests = { {method, path, body,
 * profile, schedule_key, due} }, cancelled = { key }, memory = { [key] = json_text } }.
 * doc is the line `returnflow map` prints for the event, byte for byte. */
static int l_map(lua_State *L) {
    lua_mapper *lm = check_mapper(L);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    const char *label = luaL_optstring(L, 3, "event");
    lm->doc.len = 0;
    mapper_map(lm->m, text, len, label, &lm->doc);
    const map_result *r = mapper_result(lm->m);
    lua_createtable(L, 0, 6);
    set_string(L, "status", map_status_names[r->status]);
    set_string(L, "reason", r->reason);
    lua_pushlstring(L, lm->doc.data ? lm->doc.data : "", lm->doc.len);
    lua_setfield(L, -2, "doc");
    lua_createtable(L, r->nrequests, 0);
    for (int i = 0; i < r->nrequests; i++) {
        const map_request *q = &r->requests[i];
        lua_createtable(L, 0, 6);
        set_string(L, "method", q->method);
        set_string(L, "path", q->path);
        lua_pushlstring(L, q->body, q->body_len);
        lua_setfield(L, -2, "body");
        set_string(L, "profile", q->profile);
        set_string(L, "schedule_key", q->schedule_key);
        set_string(L, "due", q->due);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "requests");
    lua_createtable(L, r->ncancels, 0);
    for (int i = 0; i < r->ncancels; i++) {
        lua_pushstring(L, r->cancels[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "cancelled");
    lua_createtable(L, 0, r->nmemory);
    for (int i = 0; i < r->nmemory; i++) {
        lua_pushstring(L, r->memory_values[i]);
        lua_setfield(L, -2, r->memory_keys[i]);
    }
    lua_setfield(L, -2, "memory");
    return 1;
}

/* mapper:remember(key, json_text): what an earlier event would have left (out:recall finds it). */
static int l_remember(lua_State *L) {
    lua_mapper *lm = check_mapper(L);
    size_t klen, vlen;
    const char *key = luaL_checklstring(L, 2, &klen);
    const char *json = luaL_checklstring(L, 3, &vlen);
    mapper_remember(lm->m, key, klen, json, vlen);
    return 0;
}

static int l_forget(lua_State *L) {
    mapper_forget_memory(check_mapper(L)->m);
    return 0;
}

static int l_counts(lua_State *L) {
    int files, handlers;
    mapper_counts(check_mapper(L)->m, &files, &handlers);
    lua_pushinteger(L, files);
    lua_pushinteger(L, handlers);
    return 2;
}

static int l_close(lua_State *L) {
    lua_mapper *lm = luaL_checkudata(L, 1, MAPPER_MT);
    mapper_free(lm->m);
    lm->m = NULL;
    strbuf_free(&lm->doc);
    return 0;
}

/* native.pretty(json_text) -> the same JSON indented (what `returnflow map --pretty` prints). */
static int l_pretty(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    strbuf out = {0};
    json_pretty(text, len, &out);
    lua_pushlstring(L, out.data ? out.data : "", out.len);
    strbuf_free(&out);
    return 1;
}

/* native.sign(secret, body) -> Loop's X-Loop-Signature of body: signature.c, the one ingest verifies,
 * so a spec or a merchant's test signs a webhook in-process exactly as Loop does. */
static int l_sign(lua_State *L) {
    size_t secret_len, len;
    const char *secret = luaL_checklstring(L, 1, &secret_len);
    const char *body = luaL_checklstring(L, 2, &len);
    char out[SIGNATURE_B64_LEN + 1];
    signature_sign(secret, secret_len, body, len, out);
    lua_pushstring(L, out);
    return 1;
}

int luaopen_returnflow_native(lua_State *L) {
    static const luaL_Reg methods[] = {
        { "map", l_map }, { "remember", l_remember }, { "forget", l_forget },
        { "counts", l_counts }, { "close", l_close }, { NULL, NULL },
    };
    if (luaL_newmetatable(L, MAPPER_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    json_open(L);                                 /* null, and the array/object marks encode uses */
    lua_newtable(L);
    lua_pushcfunction(L, l_mapper);
    lua_setfield(L, -2, "mapper");
    lua_pushcfunction(L, l_pretty);
    lua_setfield(L, -2, "pretty");
    json_luaopen(L);
    lua_setfield(L, -2, "json");
    lua_pushliteral(L, RETURNFLOW_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushliteral(L, KLAVIYO_REVISION);           /* the host's default (version.h), for the tools */
    lua_setfield(L, -2, "klaviyo_revision");
    lua_pushstring(L, share_dir());               /* templates, fixtures: the checkout's, else installed */
    lua_setfield(L, -2, "share");
    lua_pushcfunction(L, l_sign);
    lua_setfield(L, -2, "sign");
    lua_native_add_http(L);
    return 1;
}
