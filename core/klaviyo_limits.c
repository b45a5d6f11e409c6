/*
 * klaviyo_limits.c: refuse, before anything is queued, what Klaviyo would refuse.
 *
 * Klaviyo rejects an event with more than 400 properties, an array over 4000
 * items, more than 10 levels of nesting or a string over 100 KB. A rejected
 * event is a dead letter found days later; checked here it is an error at the
 * script's own line, naming the limit and the property path. Nothing is ever
 * truncated to fit: a changed value is worse than a refused one.
 */
#include "klaviyo_limits.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "lauxlib.h"
#include "strbuf.h"

typedef struct walk {
    lua_State *L;
    strbuf path;
    char *err;
    size_t errlen;
} walk;

static int fail(walk *w, const char *fmt, long long n, long long limit) {
    char msg[160];
    snprintf(msg, sizeof msg, fmt, n, limit);
    snprintf(w->err, w->errlen, "%.*s: %s", (int)(w->path.len > 200 ? 200 : w->path.len),
             w->path.data ? w->path.data : "", msg);
    return -1;
}

static int check_value(walk *w, int idx, int depth);

static int check_table(walk *w, int idx, int depth) {
    lua_State *L = w->L;
    if (depth > KLAVIYO_MAX_DEPTH)
        return fail(w, "nested %lld levels deep, over Klaviyo's limit of %lld", depth, KLAVIYO_MAX_DEPTH);
    luaL_checkstack(L, 4, "limits");
    json_unwrap(L, idx);
    int t = lua_gettop(L);
    int is_array = json_is_array(L, idx);
    long long n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        n++;
        size_t mark = w->path.len;
        if (lua_type(L, -2) == LUA_TSTRING) {
            strbuf_addc(&w->path, '.');
            size_t klen;
            const char *k = lua_tolstring(L, -2, &klen);
            strbuf_add(&w->path, k, klen);
        } else if (lua_isinteger(L, -2)) {
            char ix[32];
            snprintf(ix, sizeof ix, "[%lld]", (long long)lua_tointeger(L, -2));
            strbuf_adds(&w->path, ix);
        }
        if (check_value(w, lua_gettop(L), depth)) { lua_pop(L, 3); return -1; }
        w->path.len = mark;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (is_array && n > KLAVIYO_MAX_ARRAY)
        return fail(w, "%lld items, over Klaviyo's limit of %lld per array", n, KLAVIYO_MAX_ARRAY);
    if (depth == 1 && n > KLAVIYO_MAX_PROPERTIES)
        return fail(w, "%lld properties, over Klaviyo's limit of %lld", n, KLAVIYO_MAX_PROPERTIES);
    return 0;
}

static int check_value(walk *w, int idx, int depth) {
    switch (lua_type(w->L, idx)) {
    case LUA_TSTRING: {
        size_t n = lua_rawlen(w->L, idx);
        if (n > KLAVIYO_MAX_STRING)
            return fail(w, "string of %lld bytes, over Klaviyo's limit of %lld (100 KB)", (long long)n, KLAVIYO_MAX_STRING);
        return 0;
    }
    case LUA_TTABLE: return check_table(w, idx, depth + 1);
    default: return 0;
    }
}

int klaviyo_limits_check(lua_State *L, int idx, char *err, size_t errlen) {
    walk w = { L, {0}, err, errlen };
    int rc = check_table(&w, lua_absindex(L, idx), 1);
    strbuf_free(&w.path);
    return rc;
}

static int l_check(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    char err[320];
    if (klaviyo_limits_check(L, 1, err, sizeof err)) {
        lua_pushstring(L, err);
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

int klaviyo_limits_luaopen(lua_State *L) {
    lua_createtable(L, 0, 8);
    lua_pushcfunction(L, l_check);
    lua_setfield(L, -2, "check");
    lua_pushinteger(L, KLAVIYO_MAX_PROPERTIES); lua_setfield(L, -2, "MAX_PROPERTIES");
    lua_pushinteger(L, KLAVIYO_MAX_ARRAY); lua_setfield(L, -2, "MAX_ARRAY");
    lua_pushinteger(L, KLAVIYO_MAX_DEPTH); lua_setfield(L, -2, "MAX_DEPTH");
    lua_pushinteger(L, KLAVIYO_MAX_STRING); lua_setfield(L, -2, "MAX_STRING");
    lua_pushinteger(L, KLAVIYO_MAX_BODY); lua_setfield(L, -2, "MAX_BODY");
    return 1;
}
