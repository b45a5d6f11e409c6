/*
 * tool.c: commands written in Lua, run with the host's libraries.
 *
 * Some commands are mostly text and files (rendering an email, writing a
 * starter folder, a few calls to Klaviyo's API): Lua says them in a third of
 * the lines C would. They run in a plain, unsandboxed Lua state of their own:
 * they are returnflow's code, not a merchant's. Merchant scripts they touch
 * still go through returnflow.native's mapper, in its sandbox. The modules are
 * the embedded ones (core/embedded.h), so the binary needs no search path.
 */
#include "tool.h"

#include <stdio.h>
#include <string.h>

#include "embedded.h"
#include "json.h"
#include "lauxlib.h"
#include "lua_native.h"
#include "lualib.h"

/* package.searchers entry: returnflow's embedded modules. */
static int search_embedded(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    const embedded_file *f = embedded_host_find(name);
    if (!f) {
        lua_pushfstring(L, "no embedded module '%s'", name);
        return 1;
    }
    char chunkname[128];
    snprintf(chunkname, sizeof chunkname, "=[returnflow] %s", f->name);
    if (luaL_loadbufferx(L, f->source, f->len, chunkname, "t") != LUA_OK) return lua_error(L);
    lua_pushstring(L, name);
    return 2;
}

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

static int run(lua_State *L) {
    const char *module = lua_tostring(L, 1);
    int argc = (int)lua_tointeger(L, 2);
    char **argv = lua_touserdata(L, 3);
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_returnflow_native);
    lua_setfield(L, -2, "returnflow.native");
    /* returnflow.json is C (json.c), not an embedded file: the host's modules that the tools load
     * (returnflow.klaviyo for its REVISION) require it as the sandbox provides it. */
    json_open(L);
    lua_pushcfunction(L, json_luaopen);
    lua_setfield(L, -2, "returnflow.json");
    lua_pop(L, 1);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_pushcfunction(L, search_embedded);
    lua_rawseti(L, -2, 2);                         /* before the path searchers: ours win */
    lua_pop(L, 2);
    lua_getglobal(L, "require");
    lua_pushstring(L, module);
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);                    /* args[0] is the command's name */
    }
    lua_call(L, 1, 1);
    return 1;
}

int tool_run(const char *module, int argc, char **argv) {
    lua_State *L = luaL_newstate();
    if (!L) { fprintf(stderr, "returnflow: out of memory\n"); return 1; }
    lua_pushcfunction(L, traceback);
    lua_pushcfunction(L, run);
    lua_pushstring(L, module);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status;
    if (lua_pcall(L, 3, 1, 1) != LUA_OK) {
        fprintf(stderr, "returnflow: internal error: %s\n", lua_tostring(L, -1));
        status = 1;
    } else {
        status = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    }
    lua_close(L);
    return status;
}
