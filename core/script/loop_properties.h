/*
 * loop_properties.h: loop.properties read from the event's tape (loop_properties.c).
 */
#ifndef RF_LOOP_PROPERTIES_H
#define RF_LOOP_PROPERTIES_H

#include "lua.h"

/* Pushes the module `returnflow.loop_native` ({ properties = fn }): fn(ret) returns the table
 * returnflow.loop's M.properties builds, but for return_by, or nothing when ret is not a read-only
 * event of the common shape (loop.lua then builds it itself). */
int loop_properties_luaopen(lua_State *L);

#endif
