/*
 * klaviyo_endpoints.c: the fixed table of endpoints a mapped request may use (see the header).
 *
 * Comparison is exact, byte for byte: no normalisation, no prefix match, so nothing a script wrote
 * can pass for an endpoint.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "klaviyo_endpoints.h"

static const char *const private_paths[KLAVIYO_ACTION_COUNT] = {
    [KLAVIYO_TRACK] = "/api/events",
    [KLAVIYO_PROFILE] = "/api/profile-import",
    [KLAVIYO_SUBSCRIBE] = "/api/profile-subscription-bulk-create-jobs",
};

static const char *const public_paths[KLAVIYO_ACTION_COUNT] = {
    [KLAVIYO_TRACK] = "/client/events",
    [KLAVIYO_PROFILE] = "/client/profiles",
    [KLAVIYO_SUBSCRIBE] = "/client/subscriptions",
};

static int is_public(const char *key_kind) { return key_kind && strcmp(key_kind, "public") == 0; }

/* A site id (Klaviyo's public key) is 6 letters and digits; accept 1..64 so a test id passes. */
static int site_id_ok(const char *s) {
    if (!s || !*s) return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return 0;
        if (n >= 64) return 0;
    }
    return 1;
}

const char *klaviyo_endpoint_path(klaviyo_action action, const char *key_kind, const char *site_id,
                                  char *buf, size_t buflen) {
    if ((unsigned)action >= KLAVIYO_ACTION_COUNT) return NULL;
    if (!is_public(key_kind)) return private_paths[action];
    if (!site_id_ok(site_id)) return NULL;
    int n = snprintf(buf, buflen, "%s?company_id=%s", public_paths[action], site_id);
    return n > 0 && (size_t)n < buflen ? buf : NULL;
}

int klaviyo_endpoint_allowed(const char *method, const char *path, const char *key_kind, const char *site_id) {
    if (!method || !path || strcmp(method, "POST") != 0) return 0;
    char buf[160];
    for (int a = 0; a < KLAVIYO_ACTION_COUNT; a++) {
        const char *p = klaviyo_endpoint_path((klaviyo_action)a, key_kind, site_id, buf, sizeof buf);
        if (p && strcmp(p, path) == 0) return 1;
    }
    return 0;
}
