/*
 * klaviyo_body.c: the body of a Klaviyo event, written by the host from the script's track action.
 *
 * A track action (emitter.lua) holds what the script chose: metric, properties, value, currency,
 * time, unique_id, backfill. The body around them is fixed by Klaviyo's API (spec/klaviyo/README.md)
 * and costs, built as Lua tables, seven tables a request and a walk over each; here it is written
 * straight into the output buffer, and only the script's values go through the encoder.
 *
 * Invariant: the bytes are those json_encode_with would write for the table body returnflow.klaviyo
 * built before: keys in bytewise order, an absent (nil) value left out, every value encoded under
 * the same rules, scope, memo and error path (json_encode_member), so a limit is checked on exactly
 * what is sent and a properties table shared by several requests is encoded once.
 */
#include "klaviyo_body.h"


#include "klaviyo_limits.h"
#include "lauxlib.h"

/* Every field name read here, and where each sits in the state's table of them: the fields are read
 * raw (the tables are the host's, and a profile table a `changes` function saw stays data: no
 * __index of a script runs here) and by a key string made once per state, not once per read. */
enum {
    K_EMAIL = 1, K_EXTERNAL_ID, K_FIRST_NAME, K_IMAGE, K_LAST_NAME, K_LOCALE, K_LOCATION, K_ORGANIZATION,
    K_PHONE_NUMBER, K_PROPERTIES, K_TITLE, K_BACKFILL, K_METRIC, K_TIME, K_UNIQUE_ID, K_VALUE, K_CURRENCY,
    K_COUNT = K_CURRENCY
};
static const char *const key_names[K_COUNT + 1] = {
    NULL, "email", "external_id", "first_name", "image", "last_name", "locale", "location", "organization",
    "phone_number", "properties", "title", "backfill", "metric", "time", "unique_id", "value", "currency",
};
static const char body_keys = 0;                /* the registry's table of key_names, as Lua strings */

/* The profile's attributes, in bytewise order (meta is the event's patch, not the profile's); identity
 * ones go on every event, the rest only on the request that carries the profile (a track, not a
 * scheduled one). */
static const struct { int key; int identity; } profile_keys[] = {
    { K_EMAIL, 1 }, { K_EXTERNAL_ID, 1 }, { K_FIRST_NAME, 0 }, { K_IMAGE, 0 }, { K_LAST_NAME, 0 },
    { K_LOCALE, 0 }, { K_LOCATION, 0 }, { 0, 0 }, { K_ORGANIZATION, 0 }, { K_PHONE_NUMBER, 1 },
    { K_PROPERTIES, 0 }, { K_TITLE, 0 },
};

typedef struct writer {
    lua_State *L;
    int keys;                     /* stack index of the table of key strings */
    strbuf *out;
    json_memo *memo;
    size_t limit;
    char *err;
    size_t errlen;
} writer;

/* Pushes the state's table of key strings, made on first use. */
static int push_keys(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &body_keys) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, K_COUNT, 0);
        for (int k = 1; k <= K_COUNT; k++) {
            lua_pushstring(L, key_names[k]);
            lua_rawseti(L, -2, k);
        }
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &body_keys);
    }
    return lua_gettop(L);
}

/* Pushes t[key], read raw; returns its type. */
static int get(writer *w, int t, int key) {
    lua_rawgeti(w->L, w->keys, key);
    return lua_rawget(w->L, t);
}

/* ,"key": then the value on top of the stack (popped), encoded as if at path. */
static int member(writer *w, int *first, const char *const *path, int depth) {
    if (!*first) strbuf_addc(w->out, ',');
    *first = 0;
    strbuf_addc(w->out, '"');
    strbuf_adds(w->out, path[depth - 1]);
    strbuf_add(w->out, "\":", 2);
    int rc = json_encode_member(w->L, -1, w->out, &klaviyo_rules, w->memo, path, depth, w->limit, w->err, w->errlen);
    lua_pop(w->L, 1);
    return rc;
}

/* The field `key` of the table at t, as a member at path (whose last step names it), unless nil. */
static int field(writer *w, int t, int key, int *first, const char *const *path, int depth) {
    if (get(w, t, key) == LUA_TNIL) { lua_pop(w->L, 1); return 0; }
    return member(w, first, path, depth);
}

static int profile(writer *w, int person, int meta, int full) {
    const char *path[6] = { "data", "attributes", "profile", "data", "attributes", NULL };
    int first = 1;
    strbuf_adds(w->out, "\"profile\":{\"data\":{\"attributes\":{");
    for (size_t i = 0; i < sizeof profile_keys / sizeof *profile_keys; i++) {
        if (!full && !profile_keys[i].identity) continue;
        int rc, key = profile_keys[i].key;
        if (!key) {                               /* meta */
            if (!meta || lua_isnil(w->L, meta)) continue;
            path[5] = "meta";
            lua_pushvalue(w->L, meta);
            rc = member(w, &first, path, 6);
        } else {
            path[5] = key_names[key];
            rc = field(w, person, key, &first, path, 6);
        }
        if (rc) return rc;
    }
    strbuf_adds(w->out, "},\"type\":\"profile\"}}");
    return 0;
}

int klaviyo_track_body(lua_State *L, int action, int person, int meta, int full, int backfill, strbuf *out,
                       json_memo *memo, char *err, size_t errlen) {
    action = lua_absindex(L, action);
    person = lua_absindex(L, person);
    if (meta) meta = lua_absindex(L, meta);
    int top = lua_gettop(L);
    luaL_checkstack(L, 8, "request body");
    writer w = { L, push_keys(L), out, memo, json_encode_limit(L, out->len), err, errlen };
    size_t mark = out->len;
    const char *path[6] = { "data", "attributes", NULL, "data", "attributes", "name" };
    int first = 1, rc = 0;
    strbuf_adds(out, "{\"data\":{\"attributes\":{");
    get(&w, action, K_BACKFILL);
    if (lua_toboolean(L, -1) || backfill) { strbuf_adds(out, "\"backfill\":true"); first = 0; }
    lua_pop(L, 1);

    if (!first) strbuf_addc(out, ',');
    strbuf_adds(out, "\"metric\":{\"data\":{\"attributes\":{");
    int nofirst = 1;
    path[2] = "metric";
    get(&w, action, K_METRIC);
    if ((rc = member(&w, &nofirst, path, 6))) goto fail;
    strbuf_adds(out, "},\"type\":\"metric\"}},");

    if ((rc = profile(&w, person, meta, full))) goto fail;
    first = 0;
    static const int tail[] = { K_PROPERTIES, K_TIME, K_UNIQUE_ID, K_VALUE };
    for (size_t i = 0; i < sizeof tail / sizeof *tail; i++) {
        path[2] = key_names[tail[i]];
        if ((rc = field(&w, action, tail[i], &first, path, 3))) goto fail;
    }
    /* the currency goes only with a value, and only when there is one (a false one is none) */
    int has_value = get(&w, action, K_VALUE) != LUA_TNIL;
    lua_pop(L, 1);
    if (has_value) {
        get(&w, action, K_CURRENCY);
        if (!lua_toboolean(L, -1)) lua_pop(L, 1);
        else {
            path[2] = "value_currency";
            if ((rc = member(&w, &first, path, 3))) goto fail;
        }
    }
    strbuf_adds(out, "},\"type\":\"event\"}}");
    lua_settop(L, top);
    return 0;
fail:
    out->len = mark;
    lua_settop(L, top);
    return rc;
}
