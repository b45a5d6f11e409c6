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

#include <string.h>

#include "klaviyo_limits.h"

/* The profile's attributes, in bytewise order; identity ones go on every event, the rest only on
 * the request that carries the profile (a track, not a scheduled one). */
static const struct { const char *key; int identity; } profile_keys[] = {
    { "email", 1 }, { "external_id", 1 }, { "first_name", 0 }, { "image", 0 }, { "last_name", 0 },
    { "locale", 0 }, { "location", 0 }, { "meta", 0 }, { "organization", 0 }, { "phone_number", 1 },
    { "properties", 0 }, { "title", 0 },
};

typedef struct writer {
    lua_State *L;
    strbuf *out;
    json_memo *memo;
    size_t limit;
    char *err;
    size_t errlen;
} writer;

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

/* The field of the table at t, as a member at path, unless it is nil. */
static int field(writer *w, int t, int *first, const char *const *path, int depth) {
    if (lua_getfield(w->L, t, path[depth - 1]) == LUA_TNIL) { lua_pop(w->L, 1); return 0; }
    return member(w, first, path, depth);
}

static int profile(writer *w, int person, int meta, int full) {
    const char *path[6] = { "data", "attributes", "profile", "data", "attributes", NULL };
    int first = 1;
    strbuf_adds(w->out, "\"profile\":{\"data\":{\"attributes\":{");
    for (size_t i = 0; i < sizeof profile_keys / sizeof *profile_keys; i++) {
        if (!full && !profile_keys[i].identity) continue;
        path[5] = profile_keys[i].key;
        int rc;
        if (strcmp(path[5], "meta") == 0) {
            if (!meta || lua_isnil(w->L, meta)) continue;
            lua_pushvalue(w->L, meta);
            rc = member(w, &first, path, 6);
        } else {
            rc = field(w, person, &first, path, 6);
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
    writer w = { L, out, memo, json_encode_limit(L, out->len), err, errlen };
    size_t mark = out->len;
    const char *path[6] = { "data", "attributes", NULL, "data", "attributes", "name" };
    int first = 1, rc = 0;
    strbuf_adds(out, "{\"data\":{\"attributes\":{");
    lua_getfield(L, action, "backfill");
    if (lua_toboolean(L, -1) || backfill) { strbuf_adds(out, "\"backfill\":true"); first = 0; }
    lua_pop(L, 1);

    if (!first) strbuf_addc(out, ',');
    strbuf_adds(out, "\"metric\":{\"data\":{\"attributes\":{");
    int nofirst = 1;
    path[2] = "metric";
    lua_getfield(L, action, "metric");
    if ((rc = member(&w, &nofirst, path, 6))) goto fail;
    strbuf_adds(out, "},\"type\":\"metric\"}},");

    if ((rc = profile(&w, person, meta, full))) goto fail;
    first = 0;
    static const char *const tail[] = { "properties", "time", "unique_id", "value" };
    for (size_t i = 0; i < sizeof tail / sizeof *tail; i++) {
        path[2] = tail[i];
        if ((rc = field(&w, action, &first, path, 3))) goto fail;
    }
    /* the currency goes only with a value, and only when there is one (a false one is none) */
    int has_value = lua_getfield(L, action, "value") != LUA_TNIL;
    lua_pop(L, 1);
    if (has_value) {
        lua_getfield(L, action, "currency");
        if (!lua_toboolean(L, -1)) lua_pop(L, 1);
        else {
            path[2] = "value_currency";
            if ((rc = member(&w, &first, path, 3))) goto fail;
        }
    }
    strbuf_adds(out, "},\"type\":\"event\"}}");
    return 0;
fail:
    out->len = mark;
    return rc;
}
