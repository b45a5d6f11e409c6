/*
 * loop_properties.h: loop.properties read from the event's tape (loop_properties.c).
 */
#ifndef RF_LOOP_PROPERTIES_H
#define RF_LOOP_PROPERTIES_H

#include "lua.h"

/* Pushes the module `returnflow.loop_native`: properties(ev) and profile(ev) return the table
 * returnflow.loop's M.properties (but for return_by) and M.profile build, email(ev) true and what
 * M.email returns; each returns nothing when ev is not a read-only event of the common shape
 * (loop.lua then does the work itself). */
int loop_properties_luaopen(lua_State *L);

#endif
