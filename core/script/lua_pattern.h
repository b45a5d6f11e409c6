/*
 * lua_pattern.h: Lua 5.4's string patterns, with their work bounded by the run-time cap.
 */
#ifndef RF_LUA_PATTERN_H
#define RF_LUA_PATTERN_H

#include "lua.h"

/* string.find (patterns only: plain searches are the caller's), string.match, string.gmatch and
 * string.gsub, with Lua 5.4's semantics; every few thousand matching steps they call
 * sandbox_check_broken, so a backtracking pattern ends at the cap like any Lua loop. */
int lua_pattern_find(lua_State *L);
int lua_pattern_match(lua_State *L);
int lua_pattern_gmatch(lua_State *L);
int lua_pattern_gsub(lua_State *L);

#endif
