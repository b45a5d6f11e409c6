/*
 * sandbox_lib.c: library functions whose work a script could make unbounded, made bounded.
 *
 * The caps stop a script at its next Lua instruction (time) or its next allocation (memory). A C
 * library call that loops without doing either is invisible to both: string.rep("", maxinteger)
 * copies nothing maxinteger times, table.move over a huge empty range assigns nil to nil, and a
 * JSON encoder fed a graph of shared references writes exponentially many bytes into a buffer the
 * Lua allocator never sees. Each such function is replaced here, in the host's own library tables
 * (which every allow-list copy and the string metatable read from), by one whose loop is bounded
 * by what it allocates or by the run-time cap, checked every few thousand steps.
 *
 * Invariant: every loop here either allocates in proportion to its steps (so the memory cap bounds
 * it) or calls sandbox_check_broken at least every CHECK_EVERY steps (so the time cap does).
 *
 * Patterns (string.find/match/gmatch/gsub) go to lua_pattern.c, a matcher that checks the cap as it
 * backtracks; a plain find is memmem, linear.
 */
#include "sandbox_lib.h"

#include <stdint.h>
#include <string.h>

#include "json.h"
#include "lauxlib.h"
#include "lua-cjson.h"
#include "lua_pattern.h"
#include "sandbox_table.h"

#define CHECK_EVERY 4096

static const char cjson_encode_key = 0, cjson_table_key = 0;

/* string.rep(s, n [, sep]): an empty result is returned at once (the real one would loop n times
 * copying nothing); any other result is allocated whole before the copy loop, so the memory cap
 * bounds the loop. */
static int guarded_rep(lua_State *L) {
    size_t l, lsep = 0;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || (l == 0 && (lsep == 0 || n == 1))) { lua_pushliteral(L, ""); return 1; }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Lua's test for a pattern with no magic character: string.find then searches it as plain text. */
static int no_specials(const char *p, size_t l) {
    for (size_t i = 0; i < l; i++)
        if (strchr("^$*+?.([%-", p[i]) && p[i]) return 0;
    return 1;
}

/* string.find(s, p [, init [, plain]]): a plain search (plain, or a pattern with no magic
 * character) is memmem, linear in the subject (Lua's own is quadratic at worst: a 4 MB needle of
 * "a"s then "b" in 8 MB of "a"s is a C loop of 10^13 steps); a pattern goes to the bounded
 * matcher. */
static int guarded_find(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    lua_Integer init = luaL_optinteger(L, 3, 1);
    if (!(lua_toboolean(L, 4) || no_specials(p, lp))) return lua_pattern_find(L);
    if (init < 0) init = (lua_Integer)ls + init + 1 > 0 ? (lua_Integer)ls + init + 1 : 1;
    else if (init == 0) init = 1;
    if (init > (lua_Integer)ls + 1) { lua_pushnil(L); return 1; }
    size_t from = (size_t)init - 1;
    const char *hit = lp == 0 ? s + from : memmem(s + from, ls - from, p, lp);
    if (!hit) { lua_pushnil(L); return 1; }
    lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
    lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
    return 2;
}

/* table.move(a1, f, e, t [, a2]), as Lua's, checking the run-time cap as it goes. */
static int guarded_move(lua_State *L) {
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3), t = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, tt, LUA_TTABLE);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        luaL_argcheck(L, t <= LUA_MAXINTEGER - (e - f) || t < f, 4, "destination wrap around");
        lua_Integer n = e - f;
        if (t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
            for (lua_Integer i = 0; i <= n; i++) {
                if ((i & (CHECK_EVERY - 1)) == 0) sandbox_check_broken(L);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        } else {
            for (lua_Integer i = n; i >= 0; i--) {
                if ((i & (CHECK_EVERY - 1)) == 0) sandbox_check_broken(L);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        }
    }
    lua_pushvalue(L, tt);
    return 1;
}

/* An upper bound of cjson's text for the value at idx, counting shared tables each time they are
 * reached (as the encoder will); stops as soon as it passes limit. */
static size_t estimate(lua_State *L, int idx, size_t limit, int depth, size_t *steps) {
    if (++*steps % CHECK_EVERY == 0) sandbox_check_broken(L);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: return 2 + 6 * lua_rawlen(L, idx);          /* every byte escaped at worst */
    case LUA_TTABLE: break;
    default: return 32;
    }
    if (depth > 1000) return limit + 1;                           /* cjson refuses it anyway */
    luaL_checkstack(L, 4, "cjson.encode");
    size_t total = 2;
    lua_Integer max_index = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_isinteger(L, -2) && lua_tointeger(L, -2) > max_index) max_index = lua_tointeger(L, -2);
        total += estimate(L, lua_absindex(L, -2), limit, depth + 1, steps) +
                 estimate(L, lua_absindex(L, -1), limit, depth + 1, steps) + 2;
        lua_pop(L, 1);
        if (total > limit) { lua_pop(L, 1); return limit + 1; }
    }
    /* a sparse array cjson would fill with nulls ("null," each) */
    if (max_index > 0 && (uint64_t)max_index > (limit - total) / 5) return limit + 1;
    total += 5 * (size_t)max_index;
    return total;
}

static int guarded_cjson_encode(lua_State *L) {
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    size_t left = sandbox_bytes_left(L), steps = 0;
    if (left != SIZE_MAX && estimate(L, 1, left, 0, &steps) > left)
        return luaL_error(L, "cjson.encode: cap: the memory cap would be exceeded by the JSON text "
                             "(%d KiB left)", (int)(left >> 10));
    lua_rawgetp(L, LUA_REGISTRYINDEX, &cjson_encode_key);
    lua_insert(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

/* The JSON encoder's budget hook: what the sandbox may still take. */
static size_t output_budget(lua_State *L) { return sandbox_bytes_left(L); }

void sandbox_lib_open(lua_State *L) {
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "rep");
    lua_pushcclosure(L, guarded_rep, 1);
    lua_setfield(L, -2, "rep");
    static const luaL_Reg patterns[] = {
        { "find", guarded_find }, { "match", lua_pattern_match }, { "gmatch", lua_pattern_gmatch },
        { "gsub", lua_pattern_gsub }, { NULL, NULL },
    };
    luaL_setfuncs(L, patterns, 0);
    lua_pop(L, 1);
    lua_getglobal(L, "table");
    lua_pushcfunction(L, guarded_move);
    lua_setfield(L, -2, "move");
    lua_pop(L, 1);
    sandbox_table_open(L);

    /* cjson, configured once by the host; scripts get encode, decode and null only. */
    luaL_requiref(L, "cjson", luaopen_cjson, 0);
    int cj = lua_gettop(L);
    static const struct { const char *name; int arg; } settings[] = {
        { "encode_max_depth", 256 }, { "decode_max_depth", 256 }, { "encode_keep_buffer", 0 },
        { "encode_invalid_numbers", 0 }, { "decode_invalid_numbers", 0 },
    };
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++) {
        if (lua_getfield(L, cj, settings[i].name) != LUA_TFUNCTION) { lua_pop(L, 1); continue; }
        if (settings[i].arg > 1) lua_pushinteger(L, settings[i].arg);
        else lua_pushboolean(L, settings[i].arg);
        lua_call(L, 1, 0);
    }
    if (lua_getfield(L, cj, "encode_sparse_array") == LUA_TFUNCTION) {
        lua_pushboolean(L, 0);
        lua_pushinteger(L, 2);
        lua_pushinteger(L, 10);
        lua_call(L, 3, 0);
    } else lua_pop(L, 1);
    lua_getfield(L, cj, "encode");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cjson_encode_key);
    lua_createtable(L, 0, 4);
    lua_pushcfunction(L, guarded_cjson_encode);
    lua_setfield(L, -2, "encode");
    lua_getfield(L, cj, "decode");
    lua_setfield(L, -2, "decode");
    lua_getfield(L, cj, "null");
    lua_setfield(L, -2, "null");
    lua_getfield(L, cj, "_VERSION");
    lua_setfield(L, -2, "_VERSION");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cjson_table_key);
    lua_pop(L, 1);
    /* the real cjson stays out of every table a script reaches */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setfield(L, -2, "cjson");
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setglobal(L, "cjson");
    json_output_budget = output_budget;
}

void sandbox_push_cjson(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &cjson_table_key);
}
