/*
 * mapworker_proto.h: the frames between serve (the parent) and a mapping worker (the child).
 *
 * One stream socket (a socketpair), frames of { u32 type, u32 length, payload } in host byte order
 * (both ends are the same binary). Strings are { u32 length, bytes }. The vocabulary is small on
 * purpose, as OpenSSH's monitor's is:
 *
 *   parent -> child   LOAD     the tenant's mapper_config (caps, strings); once, first
 *                     BATCH    flags (WANT_DOC, FORGET), count, then count events { label, body }
 *                     RECALLED the answer to the child's last RECALL: found (u8), JSON text
 *   child -> parent   LOADED   ok (u8), files, handlers, problems text
 *                     RESULT   its CPU time (ms), then one event's map_result (and its document
 *                              when asked), in order
 *                     RECALL   a key out:recall missed in the child's own cache
 *
 * Invariant: the parent trusts nothing it reads. Every length is checked against the bytes that
 * are there and against the limits below before anything is copied; a frame that breaks one is a
 * protocol violation and the child is killed. The child reads only the parent, which it trusts.
 */
#ifndef RF_MAPWORKER_PROTO_H
#define RF_MAPWORKER_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "map_limits.h"
#include "strbuf.h"

enum mapworker_frame {
    MW_LOAD = 1, MW_BATCH, MW_RECALLED,            /* parent -> child */
    MW_LOADED = 64, MW_RESULT, MW_RECALL,          /* child -> parent */
};

#define MW_FD 3                                    /* the child's end of the socketpair */
#define MW_BATCH_WANT_DOC 1u                       /* send each event's document with its result */
#define MW_BATCH_FORGET 2u                         /* drop the recall cache first: other workers of the
                                                      tenant may have changed its memory meanwhile */

/* What the parent accepts from a child (a child past any of them is killed). */
#define MW_MAX_FRAME (64u << 20)                   /* one frame: one event's whole result */
#define MW_MAX_PROBLEMS (256u << 10)               /* LOADED's problems text */
#define MW_MAX_REQUESTS MAP_MAX_REQUESTS           /* the mapper's own limits (map_limits.h) */
#define MW_MAX_CANCELS MAP_MAX_CANCELS
#define MW_MAX_MEMORY MAP_MAX_MEMORY
#define MW_MAX_KEY MAP_MAX_KEY
#define MW_MAX_MEMORY_VALUE MAP_MAX_MEMORY_VALUE
#define MW_MAX_REASON 2000                         /* longer reasons are cut, not refused */
#define MW_MAX_RECALLS 100000                      /* RECALLs in one event (the watchdog bounds them first) */
#define MW_MAX_BATCH_BYTES (16u << 20)             /* the parent's own batches */

static inline void mw_put_u32(strbuf *b, uint32_t v) { strbuf_add(b, (const char *)&v, 4); }

static inline void mw_put_str(strbuf *b, const char *s, size_t n) {
    mw_put_u32(b, (uint32_t)n);
    strbuf_add(b, s ? s : "", n);
}

static inline void mw_put_cstr(strbuf *b, const char *s) { mw_put_str(b, s, s ? strlen(s) : 0); }

/* Starts a frame of type t in b; mw_end_frame fills in its length. Returns the frame's offset. */
static inline size_t mw_begin_frame(strbuf *b, uint32_t t) {
    size_t at = b->len;
    mw_put_u32(b, t);
    mw_put_u32(b, 0);
    return at;
}

static inline void mw_end_frame(strbuf *b, size_t at) {
    uint32_t n = (uint32_t)(b->len - at - 8);
    memcpy(b->data + at + 4, &n, 4);
}

/* A bounds-checked reader over one frame's payload: any read past the end sets bad and returns
 * zeroes, so a decoder checks bad once at the end. */
typedef struct mw_reader {
    const char *p, *end;
    int bad;
} mw_reader;

static inline uint32_t mw_get_u32(mw_reader *r) {
    uint32_t v = 0;
    if (r->end - r->p < 4) { r->bad = 1; r->p = r->end; return 0; }
    memcpy(&v, r->p, 4);
    r->p += 4;
    return v;
}

static inline const char *mw_get_str(mw_reader *r, size_t *len) {
    uint32_t n = mw_get_u32(r);
    if (r->bad || (size_t)(r->end - r->p) < n) { r->bad = 1; r->p = r->end; *len = 0; return ""; }
    const char *s = r->p;
    r->p += n;
    *len = n;
    return s;
}

#endif
