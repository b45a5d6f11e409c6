/*
 * klaviyo_endpoints.h: the only Klaviyo endpoints a mapped request may name.
 *
 * A script chooses what to send, never where: the host builds each request's method and path from
 * this fixed table, by action and key kind, and whatever holds a request after the mapping (the
 * parent of a mapping worker, delivery) checks it against the same table before it goes anywhere.
 * A path that is not here is refused, so no script-writable value can turn a request toward another
 * host (an "@host" or "//host" in a path) or another endpoint.
 */
#ifndef RF_KLAVIYO_ENDPOINTS_H
#define RF_KLAVIYO_ENDPOINTS_H

typedef enum klaviyo_action {
    KLAVIYO_TRACK,          /* one event (with the profile it upserts) */
    KLAVIYO_PROFILE,        /* a profile upsert on its own */
    KLAVIYO_SUBSCRIBE,      /* a profile subscribed to a list */
    KLAVIYO_ACTION_COUNT
} klaviyo_action;

/* The path of action for a key kind ("private" or NULL, or "public"). A public key's path carries
 * ?company_id=SITE_ID; site_id must then be a non-empty string of letters and digits, else NULL. */
const char *klaviyo_endpoint_path(klaviyo_action action, const char *key_kind, const char *site_id,
                                  char *buf, size_t buflen);

/* 1 when method and path are exactly one of the endpoints above for that key kind and site id. */
int klaviyo_endpoint_allowed(const char *method, const char *path, const char *key_kind, const char *site_id);

#endif
