/*
 * klaviyo_body.h: a Klaviyo event body written by the host from a track action.
 */
#ifndef RF_KLAVIYO_BODY_H
#define RF_KLAVIYO_BODY_H

#include "json.h"

/* Appends to out the create-event body of the track action at index `action` (metric, properties,
 * value, currency, time, unique_id, backfill) for the profile table at `person`: its identifiers,
 * and with `full` its other attributes and custom properties, plus the value at `meta` (0 for none)
 * as the profile's meta. backfill marks it backfill whatever the action says. Encoded under
 * Klaviyo's rules with memo. Returns 0, or -1 with err filled (the path named) and out as it was. */
int klaviyo_track_body(lua_State *L, int action, int person, int meta, int full, int backfill, strbuf *out,
                       json_memo *memo, char *err, size_t errlen);

#endif
