/*
 * klaviyo_limits.h: Klaviyo's documented limits on what one request may carry.
 */
#ifndef RF_KLAVIYO_LIMITS_H
#define RF_KLAVIYO_LIMITS_H

#include "json.h"

#define KLAVIYO_MAX_PROPERTIES 400            /* keys of one properties object */
#define KLAVIYO_MAX_ARRAY 4000                /* items of one array */
#define KLAVIYO_MAX_DEPTH 10                  /* nesting levels of properties, their own included */
#define KLAVIYO_MAX_STRING (100 * 1024)       /* bytes of one string */
#define KLAVIYO_MAX_BODY (5 * 1024 * 1024)    /* bytes of one request body */
#define KLAVIYO_MAX_PROFILE_BODY (100 * 1024) /* bytes of one profile-import body */

/* The encoding rules every request body is written under. */
extern const json_rules klaviyo_rules;

/* The body limit of a request to path: 100 KB for a profile import, else 5 MB. */
size_t klaviyo_body_limit(const char *path);

#endif
