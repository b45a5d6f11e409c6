/*
 * klaviyo_limits.c: refuse, before anything is queued, what Klaviyo would refuse.
 *
 * Klaviyo rejects an event with more than 400 properties, an array over 4000
 * items, more than 10 levels of nesting, a string over 100 KB or a body over
 * 5 MB. A rejected event is a dead letter found days later; refused here it is
 * an error of the mapping, naming the limit and the property path. The limits
 * are checked by the encoder as it writes the body (json_rules), so what is
 * checked is exactly what would be sent. Nothing is ever truncated to fit: a
 * changed value is worse than a refused one.
 */
#include "klaviyo_limits.h"

#include <string.h>

const json_rules klaviyo_rules = {
    .owner = "Klaviyo's",
    .max_string = KLAVIYO_MAX_STRING,
    .max_array = KLAVIYO_MAX_ARRAY,
    .scope_key = "properties",
    .max_scope_keys = KLAVIYO_MAX_PROPERTIES,
    .max_scope_depth = KLAVIYO_MAX_DEPTH,
};

size_t klaviyo_body_limit(const char *path) {
    return path && strstr(path, "/profile-import") ? KLAVIYO_MAX_PROFILE_BODY : KLAVIYO_MAX_BODY;
}
