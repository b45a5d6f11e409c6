/*
 * emitter_native.h: the emitter's track action built in C for the common call (emitter_native.c).
 */
#ifndef RF_EMITTER_NATIVE_H
#define RF_EMITTER_NATIVE_H

#include "lua.h"

/* Pushes the module `returnflow.emitter_native` (the host realm's only): track_action(ev, now,
 * metric, properties, opts [, default_time]) returns the action returnflow.emitter's track_action
 * builds, or nothing where that code would raise or where a script's table could decide (its own
 * code then runs). */
int emitter_native_luaopen(lua_State *L);

#endif
