/*
 * answer.h: what Klaviyo's answer means, one classifier for single requests and bulk jobs alike;
 * pure functions of the answer (a test gives them status, headers and body, no network).
 */
#ifndef RF_ANSWER_H
#define RF_ANSWER_H

#include <stddef.h>

typedef enum answer_kind {
    ANSWER_DELIVERED,             /* 2xx */
    ANSWER_KEY_REFUSED,           /* 401, or a 403 that is not a challenge: pause the tenant, keep its queue */
    ANSWER_RETRY,                 /* 408, 429, 5xx, no answer, a text/html 403 (a Cloudflare challenge) */
    ANSWER_REFUSED,               /* any other status: a dead letter (or, in a bulk job, the items it blames) */
} answer_kind;

/* transport_ok: the request got an answer (curl's result was OK). */
answer_kind answer_classify(int transport_ok, long status, const char *content_type);

/* Full-jitter exponential backoff, the one wait of every retry (a single request, a bulk job's rows,
 * a 429's cool-down): a wait in [0.2, min(2^attempts, cap_s)] s, attempts being those the row has
 * already had; unit is a random number in [0, 1] (the caller's, so a test chooses it). */
double answer_backoff_s(int attempts, double unit, double cap_s);

/* Seconds a 429 asks to wait: Retry-After, else "Expected available in N second(s)" in the body,
 * else 0. Either may be NULL or empty. */
double answer_wait_asked(const char *retry_after, const char *body);

/* Klaviyo's first error, readably: "its detail (at its pointer)"; else the start of the body. A dead
 * letter's reason starts with it, so the same refusal groups as one reason. */
void answer_klaviyo_said(const char *body, char *out, size_t len);

/* Each error of a refused body that points at an item ("/data/attributes/events/data/3/..."), with
 * the detail Klaviyo wrote before it; cb returns nothing. Returns how many pointers. */
int answer_pointers(const char *body, void (*cb)(void *ud, const char *pointer, const char *detail), void *ud);

#endif
