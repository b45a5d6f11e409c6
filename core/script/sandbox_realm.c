/*
 * sandbox_realm.c: what a script can reach, built for each sandbox: the guarded library (print, pcall,
 * coroutines, load, rawset, setmetatable), read-only copies of returnflow's modules, the realms'
 * require, and each script file's own globals over its own copies of the allow-listed libraries.
 *
 * sandbox.c owns the state and its caps; this file owns the surface. The rule to keep: nothing a
 * script can reach hands out a host table, a registry value or a writable copy of what another file
 * or the runtime uses; every function here checks its arguments as if a script wrote them.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "embedded.h"
#include "emitter_native.h"
#include "json.h"
#include "loop_properties.h"
#include "lauxlib.h"
#include "lualib.h"
#include "sandbox.h"
#include "sandbox_internal.h"
#include "sandbox_lib.h"

/* ------------------------------- guarded API ----------------------------- */

/* print(...): one line on standard error, "file:line: " first, the values tab-separated, control
 * characters escaped and the line cut to SANDBOX_MESSAGE_MAX, so a script can neither forge log
 * lines nor drive a terminal nor flood the log with one call; and at most SANDBOX_PRINT_MAX bytes
 * a call (an event), then one "print output cut" note, so nor with many calls. */
static int sb_print(lua_State *L) {
    int n = lua_gettop(L);
    void *ud;
    sandbox *sb = lua_getallocf(L, &ud) == sandbox_capped_alloc ? ud : NULL;
    if (sb && sb->printed >= SANDBOX_PRINT_MAX) {
        if (sb->printed == SANDBOX_PRINT_MAX) {
            fprintf(stderr, "print output cut: over %d KiB printed in this event\n", SANDBOX_PRINT_MAX >> 10);
            sb->printed++;
        }
        return 0;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        if (luaL_bufflen(&b) + lua_rawlen(L, -1) > 2 * SANDBOX_MESSAGE_MAX) {   /* enough to cut from */
            size_t room = 2 * SANDBOX_MESSAGE_MAX - luaL_bufflen(&b);
            lua_pushlstring(L, lua_tostring(L, -1), room);
            lua_remove(L, -2);
            luaL_addvalue(&b);
            luaL_addstring(&b, " ... (cut)");
            break;
        }
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    sandbox_push_clean_message(L, -1);
    lua_Debug ar;
    int where = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar))
        where = fprintf(stderr, "%s:%d: ", ar.short_src, ar.currentline);
    size_t len;
    const char *line = lua_tolstring(L, -1, &len);
    if (sb) {   /* the place and the newline count too */
        sb->printed += (size_t)(where > 0 ? where : 0) + 1;
        size_t room = sb->printed < SANDBOX_PRINT_MAX ? SANDBOX_PRINT_MAX - sb->printed : 0;
        if (len > room) len = room;
        sb->printed += len;
        if (sb->printed > SANDBOX_PRINT_MAX) sb->printed = SANDBOX_PRINT_MAX;
    }
    fwrite(line, 1, len, stderr);
    fputc('\n', stderr);
    return 0;
}

/* After a cap broke, no new protected call may start: the error unwinds
 * through every pcall frame instead of being caught at the same one forever. */
static int finish_call(lua_State *L, int status, lua_KContext base) {
    (void)status;
    void *ud;
    lua_getallocf(L, &ud);
    sandbox *sb = ud;
    if (sb->soft_refused && sb->armed && !sb->broken) {
        /* the protected call ended on a refusal nobody retried (lauxlib's "not enough memory",
         * which pcall catches as a memory error): that was the cap, and it stays broken */
        sb->soft_refused = 0;
        sandbox_breach(sb, CAP_MEMORY);
        if (!sb->where[0]) memcpy(sb->where, sb->soft_where, sizeof sb->where);
        sandbox_cap_message(sb, L);
        return lua_error(L);
    }
    return lua_gettop(L) - (int)base;
}

static int guarded_call(lua_State *L, const char *real) {
    void *ud;
    lua_getallocf(L, &ud);
    sandbox *sb = ud;
    if (sb->broken) {
        sandbox_remember_where(sb, L);
        sandbox_cap_message(sb, L);
        return lua_error(L);
    }
    int base = 0;
    lua_getglobal(L, real);               /* the host's own, never reachable by scripts */
    lua_insert(L, 1);
    lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, base, finish_call);
    return finish_call(L, LUA_OK, base);
}

static int sb_pcall(lua_State *L) { return guarded_call(L, "pcall"); }
static int sb_xpcall(lua_State *L) { return guarded_call(L, "xpcall"); }

/* Resumes co from L, keeping sb->running on the innermost coroutine so a
 * sandbox_breach can set its hook there. Returns the number of results moved to L,
 * or -1 with the error value on L (as lcorolib's auxresume). */
static int resume_tracked(lua_State *L, lua_State *co, int narg) {
    void *ud;
    lua_getallocf(L, &ud);
    sandbox *sb = ud;
    if (sb->broken) { sandbox_remember_where(sb, L); sandbox_cap_message(sb, L); return lua_error(L); }
    if (!lua_checkstack(co, narg)) { lua_pushliteral(L, "too many arguments to resume"); return -1; }
    lua_xmove(L, co, narg);
    lua_State *outer = sb->running;
    sb->running = co;
    int nres, status = lua_resume(co, L, narg, &nres);
    sb->running = outer;
    if (sb->broken) {                 /* the cap broke inside: the caller stops too, hooked or not */
        lua_sethook(L, sandbox_budget_hook, LUA_MASKCOUNT, 1);
        sandbox_remember_where(sb, L);
        sandbox_cap_message(sb, L);
        return lua_error(L);
    }
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
}

static int sb_resume(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    int n = resume_tracked(L, co, lua_gettop(L) - 1);
    if (n < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(n + 1));
    return n + 1;
}

static int wrapped(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int n = resume_tracked(L, co, lua_gettop(L));
    if (n < 0) return lua_error(L);
    return n;
}

static int sb_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, wrapped, 1);
    return 1;
}

/* coroutine.close(co): the __close handlers it runs execute in co, so co is the running thread
 * the cap's hook is set on; after a sandbox_breach no coroutine is closed (its handlers would run). */
static int sb_close(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    void *ud;
    lua_getallocf(L, &ud);
    sandbox *sb = ud;
    if (sb->broken) { sandbox_remember_where(sb, L); sandbox_cap_message(sb, L); return lua_error(L); }
    lua_settop(L, 1);
    lua_getglobal(L, "coroutine");               /* the host's own table, never a script's */
    lua_getfield(L, -1, "close");
    lua_remove(L, -2);
    lua_insert(L, 1);
    lua_State *outer = sb->running;
    sb->running = co;
    int rc = lua_pcall(L, 1, LUA_MULTRET, 0);
    sb->running = outer;
    if (sb->broken) {
        lua_sethook(L, sandbox_budget_hook, LUA_MASKCOUNT, 1);
        sandbox_remember_where(sb, L);
        sandbox_cap_message(sb, L);
        return lua_error(L);
    }
    if (rc != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

static int sb_rawset(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    json_unwrap(L, 1);
    if (!lua_rawequal(L, -1, 1)) return luaL_error(L, "event is read-only: rawset cannot change it");
    /* Every host object a script holds (returnflow's modules, the emitter, drop values) has a
     * protected metatable: rawset would write past its guard, so it is refused too. */
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "rawset: the table is read-only (its metatable is protected)");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

static int sb_setmetatable(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) {
        /* A script's own table marked array/object (a decoded or recalled value) may get another
         * metatable; every other protected one (the event, modules, the emitter) may not. */
        const char *guard = lua_tostring(L, -1);
        if (!guard || (strcmp(guard, "array") != 0 && strcmp(guard, "object") != 0))
            return luaL_error(L, "setmetatable: the table's metatable is protected (the event is read-only)");
        lua_pop(L, 1);
    }
    lua_pushliteral(L, "__gc");
    if (lua_istable(L, 2) && lua_rawget(L, 2) != LUA_TNIL)
        return luaL_error(L, "setmetatable: __gc finalizers are not allowed in scripts");
    luaL_argexpected(L, lua_type(L, 2) == LUA_TNIL || lua_type(L, 2) == LUA_TTABLE, 2, "nil or table");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);           /* the checks above are the real setmetatable's, and ours */
    return 1;
}

/* load(chunk [, name [, mode [, env]]]): text only; by default the chunk gets globals of its own
 * over a fresh copy of the allow-list, so a loaded chunk can change no table another file sees. */
static int sb_load(lua_State *L) {
    int has_env = !lua_isnone(L, 4);
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t") != 0) return luaL_error(L, "load: only text chunks are allowed (mode 't')");
    lua_settop(L, 4);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    if (!has_env) {
        lua_createtable(L, 0, 0);
        lua_createtable(L, 0, 1);
        sandbox_push_allowlist(L, REALM_SCRIPT_FILE);
        lua_setfield(L, -2, "__index");
        lua_setmetatable(L, -2);
        lua_replace(L, 4);
    }
    lua_getglobal(L, "load");
    lua_insert(L, 1);
    lua_call(L, 4, 2);                  /* chunk, nil  or  nil, message */
    if (lua_isnil(L, 1)) return 2;
    lua_settop(L, 1);
    return 1;
}

static int valid_module_name(const char *name) {
    if (!*name || *name == '.') return 0;
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return 0;
        if (p[0] == '.' && p[1] == '.') return 0;
    }
    return 1;
}

/* The modules a script file may require by name (docs/mapping-api.md); the modules they require
 * in turn (the runtime, the emitter) are loaded for them, but never handed to a script. */
static int documented_module(const char *name) {
    static const char *const names[] = { "returnflow", "returnflow.loop", "returnflow.json",
                                         "returnflow.defaults", "cjson", NULL };
    for (const char *const *n = names; *n; n++)
        if (strcmp(*n, name) == 0) return 1;
    return 0;
}

/* Loads an embedded returnflow module with env as its globals and runs it. */
static int load_embedded(lua_State *L, const embedded_file *f, int env) {
    char chunkname[128];
    snprintf(chunkname, sizeof chunkname, "=[returnflow] %s", f->name);
    if (luaL_loadbufferx(L, f->source, f->len, chunkname, "t") != LUA_OK) return lua_error(L);
    lua_pushvalue(L, env);
    lua_setupvalue(L, -2, 1);
    lua_pushstring(L, f->name);
    lua_call(L, 1, 1);
    return 1;
}

/* ------------------------------ read-only copies ---------------------------- */

/* A module as a script sees it: an empty proxy over a copy of its fields, nested tables copied and
 * proxied the same way, with a protected metatable. Writes raise; pairs walks the copy; nothing
 * reaches the module's own tables, which the runtime's instances never share anyway. */
static int frozen_newindex(lua_State *L) {
    return luaL_error(L, "returnflow's modules are read-only: cannot set '%s'",
                      lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "a field");
}

static int frozen_next(lua_State *L) {
    if (!lua_rawequal(L, 1, lua_upvalueindex(2)))
        return luaL_argerror(L, 1, "the module this iterator came from expected");
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1))) return 2;
    lua_pushnil(L);
    return 1;
}

static int frozen_pairs(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_getmetatable(L, 1)) return luaL_argerror(L, 1, "read-only module expected");
    lua_getfield(L, -1, "__index");                    /* raw: the metatable has no metatable */
    if (!lua_istable(L, -1)) return luaL_argerror(L, 1, "read-only module expected");
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, frozen_next, 2);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int frozen_len(lua_State *L) {
    if (!lua_getmetatable(L, 1)) return 0;
    lua_getfield(L, -1, "__index");
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

/* Replaces the table at the top with its read-only proxy (seen: index of the copies made). */
static void freeze_top(lua_State *L, int seen, int depth) {
    int t = lua_gettop(L);
    luaL_checkstack(L, 8, "freezing a module");
    lua_pushvalue(L, t);
    if (lua_rawget(L, seen) != LUA_TNIL) { lua_replace(L, t); return; }
    lua_pop(L, 1);
    lua_createtable(L, 0, 0);                          /* t P */
    lua_pushvalue(L, t);
    lua_pushvalue(L, -2);
    lua_rawset(L, seen);                               /* seen[t] = P (cycles) */
    lua_createtable(L, 0, 0);                          /* t P D */
    lua_pushnil(L);
    while (lua_next(L, t)) {                           /* t P D k v */
        if (lua_type(L, -1) == LUA_TTABLE && depth < 16) freeze_top(L, seen, depth + 1);
        else if (lua_type(L, -1) == LUA_TTABLE) { lua_pop(L, 1); lua_pushnil(L); }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_createtable(L, 0, 5);                          /* t P D M */
    lua_insert(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, frozen_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, frozen_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushcfunction(L, frozen_len);
    lua_setfield(L, -2, "__len");
    lua_pushliteral(L, "read-only module");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);                           /* t P */
    lua_replace(L, t);
}

static void freeze(lua_State *L) {
    if (!lua_istable(L, -1)) return;
    lua_createtable(L, 0, 8);
    lua_insert(L, -2);
    freeze_top(L, lua_gettop(L) - 1, 0);
    lua_remove(L, -2);
}

/* --------------------------------- require --------------------------------- */

/* require in one realm. Upvalues: 1 the realm's loaded table, 2 the env its embedded modules get,
 * 3 true for a script file's require (documented modules only, read-only copies, files of the
 * scripts folder), false for the require of returnflow's own modules inside that realm.
 *
 * Realms: the host's (the runtime, emitter and request builder the host calls) and the scripts'
 * (separate instances of the same modules, for scripts). Nothing of the host realm is reachable
 * from a script, so no script can replace a function the host calls. */
static int realm_require(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    int loaded = lua_upvalueindex(1), env = lua_upvalueindex(2);
    int for_script = lua_toboolean(L, lua_upvalueindex(3));
    lua_settop(L, 1);
    if (lua_getfield(L, loaded, name) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    int ours = strcmp(name, "cjson") == 0 || strcmp(name, "returnflow") == 0 || strncmp(name, "returnflow.", 11) == 0;
    if (for_script && ours && !documented_module(name))
        return luaL_error(L, "require: '%s' is not a module scripts may use (returnflow, returnflow.loop, "
                             "returnflow.json, returnflow.defaults, cjson and files of the scripts folder)", name);
    if (for_script && ours) {
        /* The realm's own instance, through the realm's inner require, then a read-only copy. */
        lua_rawgetp(L, LUA_REGISTRYINDEX, &sandbox_script_require_key);
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        freeze(L);
    } else if (strcmp(name, "cjson") == 0) {
        sandbox_push_cjson(L);
    } else if (strcmp(name, "returnflow.json") == 0) {
        json_luaopen(L);
    } else if (strcmp(name, "returnflow.loop_native") == 0) {
        loop_properties_luaopen(L);               /* returnflow.loop's reader of the tape */
    } else if (strcmp(name, "returnflow.emitter_native") == 0) {
        emitter_native_luaopen(L);                /* returnflow.emitter's track action */
    } else if (ours) {
        const embedded_file *f = embedded_find(name);
        if (!f) return luaL_error(L, "require: no module '%s' in returnflow", name);
        load_embedded(L, f, env);
    } else if (for_script) {
        if (!valid_module_name(name))
            return luaL_error(L, "require: '%s' is not allowed in the sandbox (only returnflow.*, cjson "
                                 "and files of the scripts folder)", name);
        void *ud;
        lua_getallocf(L, &ud);
        sandbox *sb = ud;
        char path[1024];
        int n = snprintf(path, sizeof path, "%s/", sb->scripts_dir);
        for (const char *p = name; *p && n < (int)sizeof path - 5; p++) path[n++] = *p == '.' ? '/' : *p;
        snprintf(path + n, sizeof path - (size_t)n, ".lua");
        struct stat st;
        if (lstat(path, &st) != 0)
            return luaL_error(L, "require: '%s' is not allowed in the sandbox (only returnflow.*, cjson "
                                 "and files of the scripts folder; no %s)", name, path);
        if (sandbox_load_file(sb, path) != LUA_OK) return lua_error(L);
        lua_pushstring(L, name);
        lua_call(L, 1, 1);
    } else {
        return luaL_error(L, "require: '%s' is not one of returnflow's modules", name);
    }
    if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); }
    lua_pushvalue(L, -1);
    lua_setfield(L, loaded, name);
    return 1;
}

/* ------------------------------ environment ------------------------------ */

static void copy_table_from_global(lua_State *L, const char *lib, const char *const *skip) {
    lua_getglobal(L, lib);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        int skipped = 0;
        for (const char *const *s = skip; s && *s; s++)
            if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), *s) == 0) skipped = 1;
        if (skipped) { lua_pop(L, 1); continue; }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_remove(L, -2);
}

/* Pushes a new table holding the allow-listed globals: its own copies of the library tables, so
 * each file (and each realm) changes only its own. `require` is the realm's. */
void sandbox_push_allowlist(lua_State *L, int realm) {
    static const char *const plain[] = {
        "assert", "error", "ipairs", "next", "pairs", "rawequal", "rawget", "rawlen",
        "select", "tonumber", "tostring", "type", "getmetatable", "_VERSION", NULL,
    };
    static const char *const no_dump[] = { "dump", NULL };
    lua_newtable(L);
    for (const char *const *g = plain; *g; g++) {
        lua_getglobal(L, *g);
        lua_setfield(L, -2, *g);
    }
    static const luaL_Reg guarded[] = {
        { "print", sb_print }, { "rawset", sb_rawset }, { "setmetatable", sb_setmetatable },
        { "load", sb_load }, { "pcall", sb_pcall }, { "xpcall", sb_xpcall }, { NULL, NULL },
    };
    luaL_setfuncs(L, guarded, 0);
    static const void *const require_keys[] = { &sandbox_host_require_key, &sandbox_script_require_key, &sandbox_file_require_key };
    lua_rawgetp(L, LUA_REGISTRYINDEX, require_keys[realm]);
    lua_setfield(L, -2, "require");
    copy_table_from_global(L, "string", no_dump);
    lua_setfield(L, -2, "string");
    copy_table_from_global(L, "table", NULL);
    lua_setfield(L, -2, "table");
    copy_table_from_global(L, "math", NULL);
    lua_setfield(L, -2, "math");
    copy_table_from_global(L, "utf8", NULL);
    lua_setfield(L, -2, "utf8");
    copy_table_from_global(L, "coroutine", NULL);
    lua_pushcfunction(L, sb_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, sb_wrap);
    lua_setfield(L, -2, "wrap");
    lua_pushcfunction(L, sb_close);
    lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "coroutine");
    lua_newtable(L);
    static const char *const os_allowed[] = { "time", "date", "clock", NULL };
    lua_getglobal(L, "os");
    for (const char *const *f = os_allowed; *f; f++) {
        lua_getfield(L, -1, *f);
        lua_setfield(L, -3, *f);
    }
    lua_pop(L, 1);
    lua_setfield(L, -2, "os");
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
}

/* Makes one realm: its loaded table, its modules' env, and its require functions. */
void sandbox_make_realm(lua_State *L, const void *inner_key, const void *file_key) {
    lua_newtable(L);                                     /* loaded, shared by the realm's requires */
    int loaded = lua_gettop(L);
    lua_newtable(L);                                     /* the env its modules get (filled below) */
    int env = lua_gettop(L);
    lua_pushvalue(L, loaded);
    lua_pushvalue(L, env);
    lua_pushboolean(L, 0);
    lua_pushcclosure(L, realm_require, 3);
    lua_rawsetp(L, LUA_REGISTRYINDEX, inner_key);
    if (file_key) {
        lua_newtable(L);                                 /* what script files got: read-only copies */
        lua_pushvalue(L, env);
        lua_pushboolean(L, 1);
        lua_pushcclosure(L, realm_require, 3);
        lua_rawsetp(L, LUA_REGISTRYINDEX, file_key);
    }
    sandbox_push_allowlist(L, inner_key == &sandbox_host_require_key ? REALM_HOST : REALM_SCRIPT_MODULE);
    lua_pushnil(L);                                      /* env = a copy of the allow-list */
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, env);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    lua_pop(L, 2);
}

