/*
 * answer.c: see answer.h. Klaviyo answers in JSON:API ({"errors":[{"detail":..., "source":
 * {"pointer":...}}]}); the body is read as text, leniently (any spacing, escapes reduced), because
 * a refusal must turn into a readable reason even when the body is cut at 64 KiB or is not JSON.
 */
#include "answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

answer_kind answer_classify(int transport_ok, long status, const char *content_type) {
    int challenge = status == 403 && content_type && strncasecmp(content_type, "text/html", 9) == 0;
    int retry = !transport_ok || status == 408 || status == 429 || status >= 500 || challenge;
    if (transport_ok && status >= 200 && status < 300) return ANSWER_DELIVERED;
    if ((status == 401 || status == 403) && !challenge) return ANSWER_KEY_REFUSED;
    return retry ? ANSWER_RETRY : ANSWER_REFUSED;
}

double answer_backoff_s(int attempts, double unit, double cap_s) {
    double cap = 1.0;
    for (int i = 0; i < attempts && cap < cap_s; i++) cap *= 2;
    if (cap > cap_s) cap = cap_s;
    double jitter = unit * cap;                           /* full jitter */
    double floor = cap_s < 0.2 ? cap_s : 0.2;
    return jitter < floor ? floor : jitter;
}

double answer_wait_asked(const char *retry_after, const char *body) {
    if (retry_after && retry_after[0]) return atof(retry_after);
    const char *p = body ? strstr(body, "Expected available in ") : NULL;
    if (p) return atof(p + 22);
    return 0;
}

/* The next `"key": "` in an error body from p on (any spacing); *value is just after the value's
 * opening quote. NULL when there is none. */
static const char *find_key(const char *p, const char *key, const char **value) {
    size_t klen = strlen(key);
    while ((p = strchr(p, '"'))) {
        if (strncmp(p + 1, key, klen) == 0 && p[klen + 1] == '"') {
            const char *v = p + klen + 2;
            while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') v++;
            if (*v == ':') {
                v++;
                while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') v++;
                if (*v == '"') { *value = v + 1; return p; }
            }
        }
        p++;
    }
    return NULL;
}

/* One JSON string value starting at p (just after its opening quote), unescaped into out. */
static const char *read_string(const char *p, char *out, size_t len) {
    size_t n = 0;
    while (*p && *p != '"') {
        char c = *p++;
        if (c == '\\' && *p) {
            c = *p++;
            if (c == 'n') c = ' ';
            else if (c == 'u') { p += *p ? 4 : 0; c = '?'; }
        }
        if (n + 1 < len) out[n++] = c;
    }
    out[n] = 0;
    return p;
}

void answer_klaviyo_said(const char *body, char *out, size_t len) {
    const char *value;
    char detail[800] = "", pointer[300] = "";
    if (body && find_key(body, "detail", &value)) read_string(value, detail, sizeof detail);
    if (body && find_key(body, "pointer", &value)) read_string(value, pointer, sizeof pointer);
    if (detail[0] && pointer[0]) snprintf(out, len, "%s (at %s)", detail, pointer);
    else if (detail[0]) snprintf(out, len, "%s", detail);
    else snprintf(out, len, "%.200s", body ? body : "");
}

int answer_pointers(const char *body, void (*cb)(void *ud, const char *pointer, const char *detail), void *ud) {
    int n = 0;
    const char *p = body, *value;
    while ((p = find_key(p, "pointer", &value))) {
        char pointer[512], detail[1024] = "";
        const char *at = p;
        p = read_string(value, pointer, sizeof pointer);
        /* Klaviyo writes an error's detail before its source: the last detail before this pointer. */
        const char *dt = NULL, *q = body, *dv = NULL, *v;
        while ((q = find_key(q, "detail", &v)) && q < at) { dt = q; dv = v; q++; }
        if (dt) read_string(dv, detail, sizeof detail);
        cb(ud, pointer, detail);
        n++;
    }
    return n;
}
