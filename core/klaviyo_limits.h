/*
 * klaviyo_limits.h: Klaviyo's documented limits on event and profile properties.
 */
#ifndef RF_KLAVIYO_LIMITS_H
#define RF_KLAVIYO_LIMITS_H

#include "lua.h"

#define KLAVIYO_MAX_PROPERTIES 400           /* keys of one properties object */
#define KLAVIYO_MAX_ARRAY 4000               /* items of one array */
#define KLAVIYO_MAX_DEPTH 10                 /* nesting levels inside properties */
#define KLAVIYO_MAX_STRING (100 * 1024)      /* bytes of one string */
#define KLAVIYO_MAX_BODY (5 * 1024 * 1024)   /* bytes of one request body */
#define KLAVIYO_MAX_PROFILE_BODY (100 * 1024) /* bytes of one profile-import body */

/* Checks the properties table at idx. Returns 0, or -1 with err holding the
 * path and the limit (".items[3]: 4001 items, over Klaviyo's limit of 4000"). */
int klaviyo_limits_check(lua_State *L, int idx, char *err, size_t errlen);

/* Lua binding: require "returnflow.limits" → { check = fn(t) → nil | message, MAX_* = n }. */
int klaviyo_limits_luaopen(lua_State *L);

#endif
