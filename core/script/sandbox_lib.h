/*
 * sandbox_lib.h: the library functions a sandbox replaces with bounded versions.
 */
#ifndef RF_SANDBOX_LIB_H
#define RF_SANDBOX_LIB_H

#include <stddef.h>
#include "lua.h"

/* Replaces, in the state's own (host) library tables, the functions whose C loops a script could
 * make run long without allocating or running Lua (string.rep, table.move), loads and configures
 * cjson, and hooks the JSON encoder's output budget. Call once, before any allow-list is copied. */
void sandbox_lib_open(lua_State *L);

/* Pushes cjson as scripts get it: encode (bounded by the memory cap), decode and null; none of
 * cjson's setters (its configuration is the host's, fixed at load). */
void sandbox_push_cjson(lua_State *L);

/* Bytes the sandbox of L may still take (its memory cap less what its state and the host's buffers
 * for the current call hold); SIZE_MAX for a state that is not a sandbox or has no cap. */
size_t sandbox_bytes_left(lua_State *L);

/* Counts n more bytes of host buffers against the current call's cap (0 with L's cap message
 * pushed... see sandbox.c); returns 0, or -1 when they do not fit. */
int sandbox_charge(lua_State *L, size_t n);

/* Raises the cap error if L's sandbox broke a cap (for long C loops: check every few thousand steps). */
void sandbox_check_broken(lua_State *L);

#endif
