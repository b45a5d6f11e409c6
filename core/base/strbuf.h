/*
 * strbuf.h: a growable byte buffer, the one output type of the encoder.
 *
 * Why its own header: the JSON encoder, the request printer and (later) the
 * outbox all append bytes and hand the result on without copying. A failed
 * allocation aborts the process: every caller would have to drop the event
 * anyway, and a half-written body must never look complete.
 */
#ifndef RF_STRBUF_H
#define RF_STRBUF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct strbuf {
    char *data;
    size_t len, cap;
} strbuf;

static inline void strbuf_reserve(strbuf *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) { fputs("returnflow: out of memory\n", stderr); abort(); }
    b->data = p;
    b->cap = cap;
}

static inline void strbuf_add(strbuf *b, const char *s, size_t n) {
    if (n == 0) return;
    strbuf_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static inline void strbuf_addc(strbuf *b, char c) {
    if (b->len == b->cap) strbuf_reserve(b, 1);
    b->data[b->len++] = c;
}

static inline void strbuf_adds(strbuf *b, const char *s) { strbuf_add(b, s, strlen(s)); }

static inline void strbuf_free(strbuf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
