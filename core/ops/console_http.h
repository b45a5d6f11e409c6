/*
 * console_http.h: what the console's routes (console_api.c) see of a request and give back; the
 * connection handling is console.c's.
 */
#ifndef RF_CONSOLE_HTTP_H
#define RF_CONSOLE_HTTP_H

#include "store_db.h"
#include "strbuf.h"

typedef struct console_request {
    const char *method;           /* "GET", "POST", ... */
    const char *path;             /* without the query */
    const char *query;            /* after '?', or "" */
    const char *cookie, *csrf, *origin, *host, *content_type;   /* headers, "" when absent */
    const char *body;
    size_t body_len;
} console_request;

typedef struct console_response {
    int status;
    const char *content_type;
    strbuf body;
    char set_cookie[200];         /* a Set-Cookie header's value, or "" */
    int event_stream;             /* 1: keep the connection for server-sent events (the live tail) */
} console_response;

typedef struct console_state console_state;   /* sessions, the store connection: console_api.c */

console_state *console_state_new(const char *token, const char *store, const char *data_dir,
                                  void (*counters)(void *ud, strbuf *out), void *ud);
void console_state_free(console_state *s);

/* Answers one request. */
void console_route(console_state *s, const console_request *rq, console_response *rs);

/* The live tail's next server-sent events after seq (appended to out); returns the new last seq. */
unsigned long long console_tail(unsigned long long after, strbuf *out);

#endif
