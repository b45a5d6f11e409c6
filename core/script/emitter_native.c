/*
 * emitter_native.c: out:track's and out:schedule's action, checked and built in C when the call is
 * the common one.
 *
 * Why: the emitter's track action (core/lua/returnflow/emitter.lua, track_action) is a dozen checks,
 * each a call from Lua into C (type, pairs, next, the event's fields, loop.time, loop.epoch): about
 * 12,000 instructions a track, three tracks an event for the default scripts. Here the same checks
 * are one call. The default unique_id's event part (klaviyo.lua's unique_id_prefix) likewise, its
 * fields read from the event's tape where it can (json_event_view), as loop_properties.c reads.
 *
 * Invariant: this answers only where emitter.lua's own code would return an action, and then with
 * the same action, field for field; anywhere else (a value of the wrong type, an unknown option, a
 * time it refuses or that is not of the common ISO 8601 shapes, an options table with a metatable,
 * whose pairs and fields a script decides) it returns nothing and emitter.lua's code runs, raising
 * its own error at the script's line. Nothing here raises, reads a script's table other than raw,
 * or keeps anything between calls.
 */
#include "emitter_native.h"

#include <string.h>

#include "json.h"
#include "json_tape.h"
#include "lauxlib.h"

/* loop.missing: nil or JSON null (a NULL light userdata). */
static int missing(lua_State *L, int idx) {
    int t = lua_type(L, idx);
    return t == LUA_TNIL || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL);
}

static int is_string(lua_State *L, int idx, const char *s) {
    size_t n;
    if (lua_type(L, idx) != LUA_TSTRING) return 0;
    const char *v = lua_tolstring(L, idx, &n);
    return n == strlen(s) && memcmp(v, s, n) == 0;
}

/* Pushes loop.time(ev): the moment the event describes, or nil. ev is the read-only event, read
 * through its own metamethods as loop.lua reads it. */
static void push_loop_time(lua_State *L, int ev) {
    lua_getfield(L, ev, "topic");
    int label = is_string(L, -1, "label");
    lua_pop(L, 1);
    if (label) lua_getfield(L, ev, "label_updated_at");
    else {
        lua_getfield(L, ev, "trigger");
        int created = is_string(L, -1, "return.created");
        lua_pop(L, 1);
        lua_getfield(L, ev, created ? "created_at" : "edited_at");
    }
    if (missing(L, -1)) {
        lua_pop(L, 1);
        lua_getfield(L, ev, "created_at");
    }
    if (missing(L, -1)) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

static lua_Integer floor_div(lua_Integer a, lua_Integer b) {
    lua_Integer q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* loop.lua's days_from_civil (Howard Hinnant's algorithm), in Lua's floor division. */
static lua_Integer days_from_civil(lua_Integer y, lua_Integer m, lua_Integer d) {
    y = m <= 2 ? y - 1 : y;
    lua_Integer era = floor_div(y >= 0 ? y : y - 399, 400);
    lua_Integer yoe = y - era * 400;
    lua_Integer doy = floor_div(153 * (m + (m > 2 ? -3 : 9)) + 2, 5) + d - 1;
    lua_Integer doe = yoe * 365 + floor_div(yoe, 4) - floor_div(yoe, 100) + doy;
    return era * 146097 + doe - 719468;
}

/* n ASCII digits at p as a number, or -1 (what Lua's %d matches: the C locale's isdigit). */
static int digits(const char *p, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* loop.epoch of s, for the shapes loop.lua's parse_epoch takes: "YYYY-MM-DD", or that and
 * "[T ]hh:mm:ss", an optional '.', digits, and a zone of "", "Z" or "[+-]hh[:]mm". Returns 0 and
 * the epoch, or -1 where parse_epoch gives nil. */
static int parse_epoch(const char *s, size_t n, lua_Integer *epoch) {
    if (n < 10 || s[4] != '-' || s[7] != '-') return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = 0, mi = 0, sec = 0;
    if (y < 0 || mo < 0 || d < 0) return -1;
    lua_Integer offset = 0;
    if (n > 10) {
        if ((s[10] != 'T' && s[10] != ' ') || n < 19 || s[13] != ':' || s[16] != ':') return -1;
        h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
        if (h < 0 || mi < 0 || sec < 0) return -1;
        size_t i = 19;
        if (i < n && s[i] == '.') i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        const char *zone = s + i;
        size_t zn = n - i;
        if (zn == 1 && zone[0] == 'Z') zn = 0;
        if (zn) {
            if (zone[0] != '+' && zone[0] != '-') return -1;
            size_t colon = zn == 6 && zone[3] == ':';
            if (zn != 5 + colon) return -1;
            int oh = digits(zone + 1, 2), om = digits(zone + 3 + colon, 2);
            if (oh < 0 || om < 0) return -1;
            offset = ((lua_Integer)oh * 60 + om) * 60;
            if (zone[0] == '-') offset = -offset;
        }
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
    *epoch = days_from_civil(y, mo, d) * 86400 + (lua_Integer)h * 3600 + mi * 60 + sec - offset;
    return 0;
}

/* emitter.lua's check_time: nil, or a time from 1990 to a year after now. */
static int time_ok(lua_State *L, int idx, lua_Integer now) {
    if (lua_isnil(L, idx)) return 1;
    if (lua_type(L, idx) != LUA_TSTRING) return 0;
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    lua_Integer epoch;
    return parse_epoch(s, n, &epoch) == 0 && epoch >= 631152000 && epoch <= now + 366 * 86400;
}

/* Which of track's options a key names, or -1. */
enum { OPT_VALUE, OPT_CURRENCY, OPT_VALUE_CURRENCY, OPT_TIME, OPT_UNIQUE_ID, OPT_BACKFILL, OPT_COUNT };
static int option_index(lua_State *L, int key) {
    static const char *const names[OPT_COUNT] = { "value", "currency", "value_currency", "time", "unique_id",
                                                  "backfill" };
    if (lua_type(L, key) != LUA_TSTRING) return -1;
    size_t n;
    const char *k = lua_tolstring(L, key, &n);
    for (int i = 0; i < OPT_COUNT; i++)
        if (strlen(names[i]) == n && memcmp(names[i], k, n) == 0) return i;
    return -1;
}

/* The action's field names (and "track"), track_action's upvalues in this order, from 1. */
enum { FIELD_KIND = 1, FIELD_TRACK, FIELD_METRIC, FIELD_PROPERTIES, FIELD_VALUE, FIELD_CURRENCY, FIELD_TIME,
       FIELD_UNIQUE_ID, FIELD_BACKFILL, FIELD_COUNT = FIELD_BACKFILL };
static const char *const field_names[FIELD_COUNT] = { "kind", "track", "metric", "properties", "value", "currency",
                                                      "time", "unique_id", "backfill" };

/* track_action(ev, now, metric, properties, opts [, default_time]) -> the action, or nothing.
 * default_time (schedule's due time) stands where opts.time is nil, as schedule's copy of opts
 * has it. */
static int track_action(lua_State *L) {
    lua_settop(L, 6);
    enum { EV = 1, NOW, METRIC, PROPS, OPTS, DEFAULT_TIME, FIRST_OPT };
    int isnum;
    lua_Integer now = lua_tointegerx(L, NOW, &isnum);
    if (!isnum || lua_type(L, EV) != LUA_TTABLE) return 0;
    size_t mlen;
    if (lua_type(L, METRIC) != LUA_TSTRING || (lua_tolstring(L, METRIC, &mlen), mlen == 0 || mlen >= 128)) return 0;
    if (lua_type(L, PROPS) != LUA_TTABLE) return 0;             /* nil (a new object) or a mistake: Lua's */
    int opts_type = lua_type(L, OPTS);
    if (opts_type != LUA_TNIL && opts_type != LUA_TTABLE) return 0;
    luaL_checkstack(L, OPT_COUNT + 8, "track");
    for (int i = 0; i < OPT_COUNT; i++) lua_pushnil(L);          /* FIRST_OPT + i: the options given */
    if (opts_type == LUA_TTABLE) {
        if (lua_getmetatable(L, OPTS)) return 0;                 /* its pairs and fields are the script's */
        lua_pushnil(L);
        while (lua_next(L, OPTS)) {
            int i = option_index(L, -2);
            if (i < 0) return 0;                                 /* unknown option: Lua's message */
            lua_replace(L, FIRST_OPT + i);
        }
    }
    int value = FIRST_OPT + OPT_VALUE, unique_id = FIRST_OPT + OPT_UNIQUE_ID;
    if (!lua_isnil(L, value) && lua_type(L, value) != LUA_TNUMBER) return 0;
    if (!lua_isnil(L, unique_id) && (lua_type(L, unique_id) != LUA_TSTRING || lua_rawlen(L, unique_id) == 0))
        return 0;
    /* currency = opts.currency or opts.value_currency, else the event's where there is a value */
    int currency = FIRST_OPT + OPT_CURRENCY;
    if (!lua_toboolean(L, currency)) {
        lua_pushvalue(L, FIRST_OPT + OPT_VALUE_CURRENCY);
        lua_replace(L, currency);
    }
    if (!lua_isnil(L, value) && lua_isnil(L, currency)) {
        lua_getfield(L, EV, "currency");
        if (missing(L, -1)) lua_pop(L, 1);
        else lua_replace(L, currency);
    }
    /* t = opts.time (schedule: its due time where nil) or loop.time(ev) */
    int time = FIRST_OPT + OPT_TIME;
    if (lua_isnil(L, time)) {
        lua_pushvalue(L, DEFAULT_TIME);
        lua_replace(L, time);
    }
    if (!lua_toboolean(L, time)) {
        push_loop_time(L, EV);
        lua_replace(L, time);
    }
    if (!time_ok(L, time, now)) return 0;

    /* the action, keyed by the strings kept as upvalues (no string made per field) */
    lua_createtable(L, 0, 8);
    lua_pushvalue(L, lua_upvalueindex(FIELD_KIND));
    lua_pushvalue(L, lua_upvalueindex(FIELD_TRACK));
    lua_rawset(L, -3);
    lua_pushvalue(L, lua_upvalueindex(FIELD_METRIC));
    lua_pushvalue(L, METRIC);
    lua_rawset(L, -3);
    lua_pushvalue(L, lua_upvalueindex(FIELD_PROPERTIES));
    lua_pushvalue(L, PROPS);
    lua_rawset(L, -3);
    static const struct { int opt, field; } fields[] = {
        { OPT_VALUE, FIELD_VALUE }, { OPT_CURRENCY, FIELD_CURRENCY }, { OPT_TIME, FIELD_TIME },
        { OPT_UNIQUE_ID, FIELD_UNIQUE_ID }, { OPT_BACKFILL, FIELD_BACKFILL },
    };
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        if (lua_isnil(L, FIRST_OPT + fields[i].opt)) continue;
        lua_pushvalue(L, lua_upvalueindex(fields[i].field));
        lua_pushvalue(L, FIRST_OPT + fields[i].opt);
        lua_rawset(L, -3);
    }
    return 1;
}

/* Adds loop.id(v) of the value on top (popped) to b; returns 0 where loop.id gives nil. */
static int add_id(lua_State *L, luaL_Buffer *b) {
    char num[400];
    int t = lua_type(L, -1);
    if (t == LUA_TSTRING) { luaL_addvalue(b); return 1; }
    if (t == LUA_TNUMBER) {
        if (lua_isinteger(L, -1)) snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, -1));
        else snprintf(num, sizeof num, "%.0f", (double)lua_tonumber(L, -1));
        lua_pop(L, 1);
        luaL_addstring(b, num);
        return 1;
    }
    lua_pop(L, 1);
    return 0;
}

/* Pushes ev[name] for unique_id_prefix and returns its type: read from the event's tape when the view
 * v is given (the same value a read of the event gives, without building it into the event: no
 * metamethod call for a field no handler read), else, or for a table (the event's own proxy, whose
 * text tostring gives), through the event at index 1 as loop.lua reads it. */
static int get_field(lua_State *L, const json_view *v, const char *name) {
    if (v) {
        uint32_t n = json_view_member(L, v, v->node, name);
        if (!n) {
            lua_pushnil(L);
            return LUA_TNIL;
        }
        if (v->nodes[n].type != JN_ARRAY && v->nodes[n].type != JN_OBJECT) {
            json_view_push(L, v, n);
            return lua_type(L, -1);
        }
    }
    return lua_getfield(L, 1, name);
}

/* unique_id_prefix(ev, tenant) -> returnflow.klaviyo's unique_id_prefix: "tenant:return_id:trigger:
 * state:", the event read as loop.return_id and klaviyo.lua read it; nothing for a tenant that is not
 * a string (klaviyo.lua's code then). Upvalue: the state's string cache (json_view's). */
static int unique_id_prefix(lua_State *L) {
    lua_settop(L, 2);
    if (lua_type(L, 1) != LUA_TTABLE || lua_type(L, 2) != LUA_TSTRING) return 0;
    json_view view, *v = NULL;
    if (json_event_view(L, 1, &view) == 0) {
        view.cache = lua_upvalueindex(1);
        v = &view;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);                          /* b's own slot sits at 3 from here on */
    lua_pushvalue(L, 2);
    luaL_addvalue(&b);
    luaL_addchar(&b, ':');
    /* loop.return_id: `id` for return and label events, else `return_id`, else `id` */
    get_field(L, v, "topic");
    int own = is_string(L, -1, "return") || is_string(L, -1, "label");
    lua_pop(L, 1);
    int found = 0;
    if (!own) {
        get_field(L, v, "return_id");
        found = add_id(L, &b);
    }
    if (!found) {
        get_field(L, v, "id");
        add_id(L, &b);
    }
    luaL_addchar(&b, ':');
    get_field(L, v, "trigger");
    if (lua_toboolean(L, -1)) luaL_tolstring(L, -1, NULL), lua_remove(L, -2);   /* ev.trigger or "" */
    else lua_pop(L, 1), lua_pushliteral(L, "");
    luaL_addvalue(&b);
    luaL_addchar(&b, ':');
    get_field(L, v, "state");
    if (missing(L, -1)) { lua_pop(L, 1); get_field(L, v, "label_status"); }
    if (missing(L, -1)) { lua_pop(L, 1); lua_pushliteral(L, ""); }
    luaL_tolstring(L, -1, NULL);                   /* tostring(state) */
    lua_remove(L, -2);
    luaL_addvalue(&b);
    luaL_addchar(&b, ':');
    luaL_pushresult(&b);
    return 1;
}

int emitter_native_luaopen(lua_State *L) {
    lua_createtable(L, 0, 1);
    for (int i = 0; i < FIELD_COUNT; i++) lua_pushstring(L, field_names[i]);
    lua_pushcclosure(L, track_action, FIELD_COUNT);
    lua_setfield(L, -2, "track_action");
    json_push_string_cache(L);
    lua_pushcclosure(L, unique_id_prefix, 1);
    lua_setfield(L, -2, "unique_id_prefix");
    return 1;
}
