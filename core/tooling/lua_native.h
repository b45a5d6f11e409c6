/*
 * lua_native.h: `returnflow.native`, the host's mapper, JSON, HTTP client and Loop
 * signature for Lua tooling
 * (the busted testing module under lua5.4, the binary's templates and test commands).
 */
#ifndef RF_LUA_NATIVE_H
#define RF_LUA_NATIVE_H

#include "lua.h"

/* Pushes the library table (the name makes it loadable by require from a shared object). */
int luaopen_returnflow_native(lua_State *L);

/* Adds native.http to the table on top of the stack (lua_http.c). */
void lua_native_add_http(lua_State *L);

#endif
