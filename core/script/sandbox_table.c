/*
 * sandbox_table.c: table.insert, table.remove and table.sort, bounded.
 *
 * Lua's own versions loop in C over a length the script chooses: `#t` of a table holding only the
 * keys 1, 2, 3, 4, 8, ..., 2^62 is near 2^62, and a proxy's __len says what it likes while its
 * __index/__newindex are C functions (type, rawequal), so no Lua instruction runs and nothing is
 * allocated: neither cap can fire. A sort of 3000 references to one 8 MB string does ~30,000
 * strcolls of 8 MB each, again in C.
 *
 * Invariant: a length over SANDBOX_TABLE_MAX elements is refused at once with a clear error (no
 * table the memory cap allows is that long); every shift loop checks the run-time cap every
 * CHECK_EVERY steps and the sort checks it at every comparison, so each ends at the time cap.
 * Otherwise each behaves exactly as Lua 5.4's (the sort is Lua's own algorithm, same pivots), so
 * results do not change.
 */
#include "sandbox_table.h"

#include <limits.h>
#include <string.h>
#include <time.h>

#include "lauxlib.h"
#include "sandbox_lib.h"

#define CHECK_EVERY 4096

/* Lua's checktab: a table, or a value with the metamethods the operation needs. */
#define TAB_R 1
#define TAB_W 2
#define TAB_L 4
#define TAB_RW (TAB_R | TAB_W)

static int checkfield(lua_State *L, const char *key, int n) {
    lua_pushstring(L, key);
    return lua_rawget(L, -n) != LUA_TNIL;
}

static void checktab(lua_State *L, int arg, int what) {
    if (lua_type(L, arg) != LUA_TTABLE) {
        int n = 1;
        if (lua_getmetatable(L, arg) && (!(what & TAB_R) || checkfield(L, "__index", ++n)) &&
            (!(what & TAB_W) || checkfield(L, "__newindex", ++n)) &&
            (!(what & TAB_L) || checkfield(L, "__len", ++n))) {
            lua_pop(L, n);
        } else luaL_checktype(L, arg, LUA_TTABLE);
    }
}

/* #t through __len, refused over the bound. */
static lua_Integer bounded_len(lua_State *L, int arg, int what, const char *fn) {
    checktab(L, arg, what | TAB_L);
    lua_Integer n = luaL_len(L, arg);
    if (n > SANDBOX_TABLE_MAX)
        return luaL_error(L, "%s: cap: the table's length %I is over the %I elements a table may hold here",
                          fn, n, (lua_Integer)SANDBOX_TABLE_MAX);
    return n;
}

static int guarded_insert(lua_State *L) {
    lua_Integer pos;
    lua_Integer e = bounded_len(L, 1, TAB_RW, "table.insert");
    e = e + 1; /* first empty element */
    switch (lua_gettop(L)) {
    case 2: pos = e; break;
    case 3: {
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        for (lua_Integer i = e; i > pos; i--) {
            if (((e - i) & (CHECK_EVERY - 1)) == 0) sandbox_check_broken(L);
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    }
    default: return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int guarded_remove(lua_State *L) {
    lua_Integer size = bounded_len(L, 1, TAB_RW, "table.remove");
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        if ((pos & (CHECK_EVERY - 1)) == 0) sandbox_check_broken(L);
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

/* table.concat(t [, sep [, i [, j]]]): the range is bounded like a length, and the loop checks the
 * time cap (a proxy's C __index can hand out short strings for ever). */
static int guarded_concat(lua_State *L) {
    luaL_Buffer b;
    checktab(L, 1, TAB_R | TAB_L);
    size_t lsep;
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    lua_Integer last = lua_isnoneornil(L, 4) ? luaL_len(L, 1) : luaL_checkinteger(L, 4);
    if (i <= last && (lua_Unsigned)last - (lua_Unsigned)i >= (lua_Unsigned)SANDBOX_TABLE_MAX)
        return luaL_error(L, "table.concat: cap: a range of over %I elements", (lua_Integer)SANDBOX_TABLE_MAX);
    luaL_buffinit(L, &b);
    for (lua_Integer k = 0; i <= last; i++, k++) {
        if ((k & (CHECK_EVERY - 1)) == 0) sandbox_check_broken(L);
        lua_geti(L, 1, i);
        if (!lua_isstring(L, -1))
            return luaL_error(L, "invalid value (at index %I) in table for 'concat'", i);
        luaL_addvalue(&b);
        if (i < last) luaL_addlstring(&b, sep, lsep);
        if (i == last) break;   /* last may be maxinteger */
    }
    luaL_pushresult(&b);
    return 1;
}

/* ---- Lua 5.4's sort (ltablib.c, MIT licence), with the cap checked at every comparison ---- */

typedef unsigned int IdxT;

#define RANLIMIT 100u

static unsigned int l_randomizePivot(void) {
    clock_t c = clock();
    time_t t = time(NULL);
    unsigned int buff[(sizeof(c) + sizeof(t)) / sizeof(unsigned int)];
    unsigned int i, rnd = 0;
    memcpy(buff, &c, sizeof(c) / sizeof(unsigned int) * sizeof(unsigned int));
    memcpy(buff + sizeof(c) / sizeof(unsigned int), &t, sizeof(t) / sizeof(unsigned int) * sizeof(unsigned int));
    for (i = 0; i < sizeof(buff) / sizeof(buff[0]); i++) rnd += buff[i];
    return rnd;
}

static void set2(lua_State *L, IdxT i, IdxT j) {
    lua_seti(L, 1, i);
    lua_seti(L, 1, j);
}

static int sort_comp(lua_State *L, int a, int b) {
    sandbox_check_broken(L);
    if (lua_isnil(L, 2)) return lua_compare(L, a, b, LUA_OPLT);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, a - 1);
    lua_pushvalue(L, b - 2);
    lua_call(L, 2, 1);
    int res = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return res;
}

static IdxT partition(lua_State *L, IdxT lo, IdxT up) {
    IdxT i = lo, j = up - 1;
    for (;;) {
        while (lua_geti(L, 1, ++i), sort_comp(L, -1, -2)) {
            if (i == up - 1) luaL_error(L, "invalid order function for sorting");
            lua_pop(L, 1);
        }
        while (lua_geti(L, 1, --j), sort_comp(L, -3, -1)) {
            if (j < i) luaL_error(L, "invalid order function for sorting");
            lua_pop(L, 1);
        }
        if (j < i) {
            lua_pop(L, 1);
            set2(L, up - 1, i);
            return i;
        }
        set2(L, i, j);
    }
}

static IdxT choosePivot(IdxT lo, IdxT up, unsigned int rnd) {
    IdxT r4 = (up - lo) / 4;
    return rnd % (r4 * 2) + (lo + r4);
}

static void auxsort(lua_State *L, IdxT lo, IdxT up, unsigned int rnd) {
    while (lo < up) {
        IdxT p, n;
        lua_geti(L, 1, lo);
        lua_geti(L, 1, up);
        if (sort_comp(L, -1, -2)) set2(L, lo, up);
        else lua_pop(L, 2);
        if (up - lo == 1) break;
        if (up - lo < RANLIMIT || rnd == 0) p = (lo + up) / 2;
        else p = choosePivot(lo, up, rnd);
        lua_geti(L, 1, p);
        lua_geti(L, 1, lo);
        if (sort_comp(L, -2, -1)) set2(L, p, lo);
        else {
            lua_pop(L, 1);
            lua_geti(L, 1, up);
            if (sort_comp(L, -1, -2)) set2(L, p, up);
            else lua_pop(L, 2);
        }
        if (up - lo == 2) break;
        lua_geti(L, 1, p);
        lua_pushvalue(L, -1);
        lua_geti(L, 1, up - 1);
        set2(L, p, up - 1);
        p = partition(L, lo, up);
        if (p - lo < up - p) {
            auxsort(L, lo, p - 1, rnd);
            n = p - lo;
            lo = p + 1;
        } else {
            auxsort(L, p + 1, up, rnd);
            n = up - p;
            up = p - 1;
        }
        if ((up - lo) / 128 > n) rnd = l_randomizePivot();
    }
}

static int guarded_sort(lua_State *L) {
    lua_Integer n = bounded_len(L, 1, TAB_RW, "table.sort");
    if (n > 1) {
        luaL_argcheck(L, n < INT_MAX, 1, "array too big");
        if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_settop(L, 2);
        auxsort(L, 1, (IdxT)n, 0);
    }
    return 0;
}

void sandbox_table_open(lua_State *L) {
    lua_getglobal(L, "table");
    static const luaL_Reg fns[] = {
        { "insert", guarded_insert }, { "remove", guarded_remove }, { "sort", guarded_sort },
        { "concat", guarded_concat }, { NULL, NULL },
    };
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
}
