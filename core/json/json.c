/*
 * json.c: exact JSON -> Lua, the host's own, because the event path needs
 * what general libraries leave out.
 *
 * One pass validates everything (grammar, UTF-8, escapes, depth) and writes a
 * tape: one node per value, with member counts and subtree ends. So an error
 * never leaves a half-built value behind, and whoever builds from the tape can
 * presize every table. A writable decode (returnflow.decode, recalled memory)
 * builds plain tables from it at once; a read-only decode (the event a handler
 * receives) builds nothing yet: json_event.c reads the tape as fields are
 * asked for.
 *
 * The scan is one loop (scan_run) that keeps its position and the container it
 * is in in registers, and walks strings and whitespace 16 bytes at a time
 * (SSE2, x86-64's baseline; a byte loop elsewhere). On the 4.4 KB pretty-printed
 * return.created it costs about 6.4 instructions a byte (callgrind), against
 * about 1 for simdjson-class parsers (structural indexes of 64 bytes a step,
 * AVX2) and 5 for good scalar tapes: what is left is per token (a node written,
 * a dispatch), not per byte.
 *
 * Meaning is kept: null is one sentinel (a NULL light userdata, the same value
 * as cjson.null), integers that fit 64 bits stay integers, numbers that would
 * overflow a double are refused (and, to bound the work, any over 300
 * characters: no real payload carries one), [] and {} stay apart (decoded containers
 * carry an array or object marker), and of duplicate keys the last one wins
 * (as JSON.parse and cjson do).
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_tape.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "lauxlib.h"
#include "utf8.h"

static const char array_mt_key = 0, object_mt_key = 0;

#define SCAN_WINDOW 256                 /* a power of two */

/* ---- scratch space, one set per thread (workers decode concurrently) ---- */

static _Thread_local jnode *tape;
static _Thread_local size_t tape_cap;
static _Thread_local strbuf scratch;
/* returnflow.encode's text: an error raised inside the encoder (a memory cap, a table kept from an
 * earlier event) must leave nothing behind that no one owns. */
static _Thread_local strbuf encoded;
/* json_tape_keep's text: the tape describes it (NULL: the tape is no one's). */
static _Thread_local const char *kept_text;
static _Thread_local size_t kept_len, kept_n, kept_objects;

void json_thread_done(void) {
    free(tape);
    tape = NULL;
    tape_cap = 0;
    strbuf_free(&scratch);
    strbuf_free(&encoded);
    json_encode_thread_done();
}

/* ================================ scan =================================== */

typedef struct scan {
    const unsigned char *s, *end;
    const unsigned char *p;
    size_t n;                       /* nodes written */
    size_t objects;                 /* object nodes among them */
    int keep;                       /* 0: json_value_end, which wants the end alone: the nodes go
                                       round a window of SCAN_WINDOW (a big array of events was
                                       a tape the size of the file, built to be thrown away) */
    char *err;
    size_t errlen;
} scan;

static int scan_fail(scan *sc, const char *what) {
    size_t off = (size_t)(sc->p - sc->s);
    if (sc->p >= sc->end)
        snprintf(sc->err, sc->errlen, "byte %zu: unexpected end of input, %s", off, what);
    else if (*sc->p >= 0x20 && *sc->p < 0x7f)
        snprintf(sc->err, sc->errlen, "byte %zu: %s, found '%c'", off, what, *sc->p);
    else
        snprintf(sc->err, sc->errlen, "byte %zu: %s, found byte 0x%02x", off, what, *sc->p);
    return -1;
}

/* Whitespace: a table, and 16 bytes at a time for the indentation of pretty-printed text. */
static const unsigned char is_ws[256] = { [' '] = 1, ['\n'] = 1, ['\r'] = 1, ['\t'] = 1 };

/* The run of whitespace from p on, 16 bytes at a time (the indentation of pretty-printed text). */
static __attribute__((noinline)) const unsigned char *skip_ws_run(const unsigned char *p, const unsigned char *end) {
#if defined(__SSE2__)
    /* Pretty-printed text: a newline and spaces, or a space, before a token: two compares */
    if (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i ws = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\n')));
        unsigned other = ~(unsigned)_mm_movemask_epi8(ws) & 0xffffu;
        if (other) {
            const unsigned char *q = p + __builtin_ctz(other);
            if (*q > ' ') return q;
            p = q;                                  /* a tab, a return or no whitespace: in full */
        } else {
            p += 16;
        }
    }
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i ws = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))),
                                  _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))));
        unsigned other = ~(unsigned)_mm_movemask_epi8(ws) & 0xffffu;
        if (other) return p + __builtin_ctz(other);
        p += 16;
    }
#endif
    while (p < end && is_ws[*p]) p++;
    return p;
}

/* Most places have no whitespace, or one space (after a ':' of pretty-printed text): those are
 * decided here in a compare or two; a longer run goes to skip_ws_run. Any byte over ' ' is not
 * whitespace. */
static inline void skip_ws(scan *sc) {
    const unsigned char *p = sc->p, *end = sc->end;
    if (__builtin_expect(p < end && *p > ' ', 1)) return;
    if (end - p >= 2 && *p == ' ' && p[1] > ' ') { sc->p = p + 1; return; }
    sc->p = skip_ws_run(p, end);
}

static int grow_tape(scan *sc) {
    size_t cap = tape_cap ? tape_cap * 2 : 256;
    jnode *t = realloc(tape, cap * sizeof *t);
    if (!t) return scan_fail(sc, "out of memory");
    tape = t;
    tape_cap = cap;
    return 0;
}

/* Appends a node for the value starting at sc->p; returns its index or -1. (The input's size was
 * checked against 4 GiB before the scan, so every offset fits a node.) */
static inline long new_node(scan *sc, int type) {
    size_t i = sc->n;
    if (!sc->keep) i &= SCAN_WINDOW - 1;          /* validating only: the nodes are never read */
    else if (__builtin_expect(i == tape_cap, 0) && grow_tape(sc)) return -1;
    jnode *node = &tape[i];
    node->pos = (uint32_t)(sc->p - sc->s);
    node->len = 0;
    node->type = (uint8_t)type;
    node->escaped = 0;
    node->end = (uint32_t)(sc->n + 1);
    sc->n++;
    return (long)i;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(const unsigned char *p, const unsigned char *end) {
    if (end - p < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Bytes a string may hold as they are: printable ASCII but '"' and '\'. */
static const unsigned char string_plain[256] = {
    ['\x20'] = 1, ['!'] = 1, ['#' ... '['] = 1, [']' ... '~'] = 1,
};

/* The rest of a string from an escape or a byte over 0x7f on (sc->p): validates it and returns
 * 0 with sc->p on the closing quote, or -1. Kept apart so the common string stays a tight loop. */
static __attribute__((noinline)) int scan_string_slow(scan *sc, long i) {
    for (;;) {
        while (sc->p < sc->end && string_plain[*sc->p]) sc->p++;
        if (sc->p >= sc->end) return scan_fail(sc, "unterminated string");
        unsigned c = *sc->p;
        if (c == '"') return 0;
        if (c < 0x20) return scan_fail(sc, "control character in string (escape it)");
        if (c == '\\') {
            tape[i].escaped = 1;
            if (sc->end - sc->p < 2) { sc->p = sc->end; return scan_fail(sc, "unterminated escape"); }
            unsigned e = sc->p[1];
            if (e == 'u') {
                int u = read_hex4(sc->p + 2, sc->end);
                if (u < 0) { sc->p++; return scan_fail(sc, "\\u needs four hex digits"); }
                if (u >= 0xdc00 && u <= 0xdfff) return scan_fail(sc, "lone low surrogate in \\u escape");
                if (u >= 0xd800 && u <= 0xdbff) {
                    int lo = (sc->end - sc->p >= 12 && sc->p[6] == '\\' && sc->p[7] == 'u')
                                 ? read_hex4(sc->p + 8, sc->end) : -1;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return scan_fail(sc, "high surrogate not followed by a low one in \\u escape");
                    sc->p += 12;
                } else {
                    sc->p += 6;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", (int)e) || e == 0) { sc->p++; return scan_fail(sc, "invalid escape"); }
            sc->p += 2;
            continue;
        }
        if (c < 0x80) { sc->p++; continue; }
        int n = utf8_len(sc->p, sc->end);
        if (!n) return scan_fail(sc, "invalid UTF-8 in string");
        sc->p += n;
    }
}

static int scan_number(scan *sc) {
    long i = new_node(sc, JN_NUMBER);
    if (i < 0) return -1;
    const unsigned char *p = sc->p;
    if (*p == '-') p++;
    if (p >= sc->end || *p < '0' || *p > '9') { sc->p = p; return scan_fail(sc, "invalid number"); }
    if (*p == '0') p++;
    else while (p < sc->end && *p >= '0' && *p <= '9') p++;
    if (p < sc->end && *p == '.') {
        p++;
        if (p >= sc->end || *p < '0' || *p > '9') { sc->p = p; return scan_fail(sc, "digit expected after '.'"); }
        while (p < sc->end && *p >= '0' && *p <= '9') p++;
    }
    int has_exponent = p < sc->end && (*p == 'e' || *p == 'E');
    if (has_exponent) {
        p++;
        if (p < sc->end && (*p == '+' || *p == '-')) p++;
        if (p >= sc->end || *p < '0' || *p > '9') { sc->p = p; return scan_fail(sc, "digit expected in exponent"); }
        while (p < sc->end && *p >= '0' && *p <= '9') p++;
    }
    size_t n = (size_t)(p - sc->p);
    if (n > JSON_MAX_NUMBER) {
        char what[64];
        snprintf(what, sizeof what, "number longer than %d characters", JSON_MAX_NUMBER);
        return scan_fail(sc, what);
    }
    if (has_exponent) {                          /* 1e400 would become infinity: refuse it */
        char buf[JSON_MAX_NUMBER + 1];           /* without an exponent, so few digits cannot overflow */
        memcpy(buf, sc->p, n);
        buf[n] = 0;
        if (isinf(strtod(buf, NULL))) return scan_fail(sc, "number out of range");
    }
    tape[i].len = (uint32_t)n;
    sc->p = p;
    return 0;
}

/* Where the plain run of a string's content from p ends: at its closing quote, or at the first byte
 * that needs a closer look (a backslash, a control character, a byte over 0x7f), or at end. */
static inline __attribute__((always_inline)) const unsigned char *plain_run(const unsigned char *p,
                                                                            const unsigned char *end) {
#if defined(__SSE2__)
    /* 16 bytes at a time while they are all plain: no '"', no '\\', nothing under 0x20 and nothing
     * over 0x7f (signed, those are negative, so one compare takes both). */
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i odd = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                                   _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
        unsigned mask = (unsigned)_mm_movemask_epi8(odd);
        if (mask) return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (p < end && string_plain[*p]) p++;
    return p;
}

/* Whitespace before a token: none, one space (after a ':' of pretty-printed text), or a run (out of
 * line). Any byte over ' ' is no whitespace. */
static inline __attribute__((always_inline)) const unsigned char *ws(const unsigned char *p, const unsigned char *end) {
    if (__builtin_expect(p < end && *p > ' ', 1)) return p;
    if (end - p >= 2 && *p == ' ' && p[1] > ' ') return p + 1;
    return skip_ws_run(p, end);
}

/* The scan of one value, whole documents included, as one loop over local variables: the container
 * being read is in registers (its node, its member count, object or array), the ones around it on
 * a stack, pushed when a container opens and popped where its bracket closes it. (A descent of one
 * call a value kept the position in memory, loaded and stored at every step.) A key has its own
 * path to its ':', so a string needs no test of what it is. keep is a constant at each call, so
 * each use gets its own copy with the window's mask or the tape's growth compiled in. */
static inline __attribute__((always_inline)) int scan_run(scan *sc, const int keep) {
    const unsigned char *const s = sc->s, *const end = sc->end;
    const unsigned char *p = sc->p;
    size_t n = 0, objects = 0;
    struct { uint32_t node, members; int is_object; } outer[JSON_MAX_DEPTH];
    int depth = 0;                                  /* containers open */
    uint32_t cur_node = 0, cur_members = 0;
    int cur_object = 0;
    long i;

/* The next node's slot (its index on the tape, or in the window), or a failed growth. */
#define NEXT_SLOT()                                                                               \
    do {                                                                                          \
        if (keep) {                                                                               \
            if (__builtin_expect(n == tape_cap, 0)) { sc->p = p; sc->n = n; if (grow_tape(sc)) return -1; } \
            i = (long)n;                                                                          \
        } else {                                                                                  \
            i = (long)(n & (SCAN_WINDOW - 1));                                                    \
        }                                                                                         \
    } while (0)

/* A string from its opening quote at p: its node written, p past its closing quote. */
#define STRING()                                                                                  \
    do {                                                                                          \
        NEXT_SLOT();                                                                              \
        const unsigned char *content = p + 1;                                                     \
        p = plain_run(content, end);                                                              \
        tape[i].escaped = 0;                                                                      \
        if (__builtin_expect(p >= end || *p != '"', 0)) {                                         \
            sc->p = p;                                                                            \
            sc->n = n;                                                                            \
            if (scan_string_slow(sc, i)) return -1;                                               \
            p = sc->p;                                                                            \
        }                                                                                         \
        tape[i].pos = (uint32_t)(content - s);                                                    \
        tape[i].len = (uint32_t)(p - content);                                                    \
        tape[i].end = (uint32_t)(n + 1);                                                          \
        tape[i].type = JN_STRING;                                                                 \
        n++;                                                                                      \
        p++;                                                                                      \
    } while (0)

value:
    p = ws(p, end);
    if (__builtin_expect(p >= end, 0)) goto fail_value;
    switch (*p) {
    case '"':
        STRING();
        goto next;
    case '{': case '[': {
        if (depth >= JSON_MAX_DEPTH) {
            char what[64];
            snprintf(what, sizeof what, "nesting deeper than %d levels", JSON_MAX_DEPTH);
            sc->p = p;
            return scan_fail(sc, what);
        }
        NEXT_SLOT();
        int obj = *p == '{';
        objects += (size_t)obj;
        tape[i] = (jnode){ .pos = (uint32_t)(p - s), .type = (uint8_t)(obj ? JN_OBJECT : JN_ARRAY) };
        outer[depth].node = cur_node;
        outer[depth].members = cur_members;
        outer[depth].is_object = cur_object;
        depth++;
        cur_node = (uint32_t)i;
        cur_members = 0;
        cur_object = obj;
        n++;
        p = ws(p + 1, end);
        if (p < end && *p == (obj ? '}' : ']')) { p++; goto close; }
        if (obj) goto key;
        goto value;
    }
    case 't': case 'f': case 'n': {
        int type = *p == 't' ? JN_TRUE : *p == 'f' ? JN_FALSE : JN_NULL;
        const char *word = type == JN_TRUE ? "true" : type == JN_FALSE ? "false" : "null";
        size_t wn = type == JN_FALSE ? 5 : 4;
        if ((size_t)(end - p) < wn || memcmp(p, word, wn) != 0) goto fail_value;
        NEXT_SLOT();
        tape[i] = (jnode){ .pos = (uint32_t)(p - s), .end = (uint32_t)(n + 1), .type = (uint8_t)type };
        n++;
        p += wn;
        goto next;
    }
    default:
        if (*p == '-' || (*p >= '0' && *p <= '9')) {
            sc->p = p;
            sc->n = n;
            if (scan_number(sc)) return -1;
            p = sc->p;
            n = sc->n;
            goto next;
        }
        goto fail_value;
    }

key:                                                /* whitespace skipped */
    if (__builtin_expect(p >= end || *p != '"', 0)) { sc->p = p; return scan_fail(sc, "expected a string key"); }
    STRING();
    if (__builtin_expect(p >= end || *p != ':', 0)) {
        p = ws(p, end);
        if (p >= end || *p != ':') { sc->p = p; return scan_fail(sc, "expected ':' after object key"); }
    }
    p++;
    goto value;

next:                                               /* after a value: its container goes on or closes */
    if (!depth) goto done;
    cur_members++;
    p = ws(p, end);
    if (p < end && *p == ',') {
        p++;
        if (cur_object) {
            p = ws(p, end);
            goto key;
        }
        goto value;
    }
    if (p < end && *p == (cur_object ? '}' : ']')) { p++; goto close; }
    sc->p = p;
    return scan_fail(sc, cur_object ? "expected ',' or '}'" : "expected ',' or ']'");

close:                                              /* the container being read ends at p */
    tape[cur_node].len = cur_members;
    tape[cur_node].end = (uint32_t)n;
    depth--;
    cur_node = outer[depth].node;
    cur_members = outer[depth].members;
    cur_object = outer[depth].is_object;
    goto next;

fail_value:
    sc->p = p;
    return scan_fail(sc, "expected a value");

done:
    sc->p = p;
    sc->n = n;
    sc->objects = objects;
    return 0;
#undef STRING
#undef NEXT_SLOT
}

static void scan_start(scan *sc, const char *text, size_t len, char *err, size_t errlen) {
    kept_text = NULL;                               /* the tape (or its window) is written again */
    sc->s = sc->p = (const unsigned char *)text;
    sc->end = sc->s + len;
    sc->n = 0;
    sc->keep = 0;
    sc->err = err;
    sc->errlen = errlen;
    skip_ws(sc);
    if ((size_t)(sc->end - sc->p) >= 3 && memcmp(sc->p, "\xef\xbb\xbf", 3) == 0) sc->p += 3; /* a BOM */
}

int json_value_end(const char *text, size_t len, size_t *end, char *err, size_t errlen) {
    scan sc;
    scan_start(&sc, text, len, err, errlen);
    while (tape_cap < SCAN_WINDOW)
        if (grow_tape(&sc)) return -1;
    if (scan_run(&sc, 0)) return -1;
    *end = (size_t)(sc.p - sc.s);
    return 0;
}

int json_tape_scan(const char *text, size_t len, const jnode **nodes, size_t *n, size_t *objects, char *err,
                   size_t errlen) {
    scan sc;
    scan_start(&sc, text, len, err, errlen);
    sc.keep = 1;
    if (len > UINT32_MAX - 8) return scan_fail(&sc, "input over 4 GiB");
    if (scan_run(&sc, 1)) return -1;
    skip_ws(&sc);
    if (sc.p != sc.end) return scan_fail(&sc, "unexpected data after the JSON value");
    *nodes = tape;
    *n = sc.n;
    if (objects) *objects = sc.objects;
    return 0;
}

/* ================================ build ================================== */

static void put_utf8(strbuf *out, unsigned cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xc0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
    }
    strbuf_add(out, u, n);
}

/* Pushes a validated string's content with its escapes decoded. */
static void push_unescaped(lua_State *L, const unsigned char *p, size_t len) {
    const unsigned char *end = p + len;
    scratch.len = 0;
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && *p != '\\') p++;
        strbuf_add(&scratch, (const char *)run, (size_t)(p - run));
        if (p == end) break;
        unsigned char e = p[1];
        p += 2;
        switch (e) {
        case 'b': strbuf_addc(&scratch, '\b'); break;
        case 'f': strbuf_addc(&scratch, '\f'); break;
        case 'n': strbuf_addc(&scratch, '\n'); break;
        case 'r': strbuf_addc(&scratch, '\r'); break;
        case 't': strbuf_addc(&scratch, '\t'); break;
        case 'u': {
            unsigned cp = (unsigned)read_hex4(p, p + 4);
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {      /* the scan proved a low surrogate follows */
                unsigned lo = (unsigned)read_hex4(p + 2, p + 6);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            put_utf8(&scratch, cp);
            break;
        }
        default: strbuf_addc(&scratch, (char)e); break; /* " \ / */
        }
    }
    lua_pushlstring(L, scratch.data ? scratch.data : "", scratch.len);
}

static void push_number(lua_State *L, const unsigned char *p, size_t len) {
    const unsigned char *start = p, *end = p + len;
    int neg = 0;
    if (*p == '-') { neg = 1; p++; }
    uint64_t v = 0;
    int overflow = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) overflow = 1;
        else v = v * 10 + d;
        p++;
    }
    if (p == end && !overflow && v <= (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) {
        /* Negate in unsigned arithmetic: -(2^63) has no positive int64. */
        lua_pushinteger(L, (lua_Integer)(neg ? (0 - v) : v));
        return;
    }
    char buf[JSON_MAX_NUMBER + 1];                  /* the scan bounded a number's length */
    size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
    memcpy(buf, start, n);
    buf[n] = 0;
    lua_pushnumber(L, strtod(buf, NULL));
}

void json_tape_push_scalar(lua_State *L, const char *text, const jnode *node) {
    const unsigned char *p = (const unsigned char *)text + node->pos;
    switch (node->type) {
    case JN_NULL: lua_pushlightuserdata(L, NULL); break;
    case JN_FALSE: lua_pushboolean(L, 0); break;
    case JN_TRUE: lua_pushboolean(L, 1); break;
    case JN_NUMBER: push_number(L, p, node->len); break;
    case JN_STRING:
        if (node->escaped) push_unescaped(L, p, node->len);
        else lua_pushlstring(L, (const char *)p, node->len);
        break;
    default: lua_pushnil(L); break;
    }
}

/* Builds writable tables for the value at nodes[i]; returns the next index. */
static size_t build_node(lua_State *L, const char *text, const jnode *nodes, size_t i) {
    const jnode *node = &nodes[i];
    if (node->type != JN_ARRAY && node->type != JN_OBJECT) {
        json_tape_push_scalar(L, text, node);
        return i + 1;
    }
    luaL_checkstack(L, 4, "JSON nesting");
    int is_object = node->type == JN_OBJECT;
    if (is_object) lua_createtable(L, 0, (int)node->len);
    else lua_createtable(L, (int)node->len, 0);
    size_t j = i + 1;
    for (lua_Integer k = 1; k <= (lua_Integer)node->len; k++) {
        if (is_object) {
            json_tape_push_scalar(L, text, &nodes[j]);
            j = build_node(L, text, nodes, j + 1);
            lua_rawset(L, -3);
        } else {
            j = build_node(L, text, nodes, j);
            lua_rawseti(L, -2, k);
        }
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, is_object ? &object_mt_key : &array_mt_key);
    lua_setmetatable(L, -2);
    return node->end;
}

int json_decode(lua_State *L, const char *text, size_t len, int mode, char *err, size_t errlen) {
    const jnode *nodes;
    size_t n, objects;
    if (json_tape_scan(text, len, &nodes, &n, &objects, err, errlen)) return -1;
    if (mode == JSON_READONLY) json_event_push(L, text, len, nodes, n, objects);
    else build_node(L, text, nodes, 0);
    return 0;
}

int json_tape_keep(const char *text, size_t len) {
    const jnode *nodes;
    size_t n, objects;
    char err[8];
    if (json_tape_scan(text, len, &nodes, &n, &objects, err, sizeof err)) return -1;
    kept_text = text;
    kept_len = len;
    kept_n = n;
    kept_objects = objects;
    return 0;
}

int json_decode_event(lua_State *L, const char *text, size_t len, char *err, size_t errlen) {
    const jnode *nodes = tape;
    size_t n = kept_n, objects = kept_objects;
    if (!(kept_text == text && kept_len == len && text) &&
        json_tape_scan(text, len, &nodes, &n, &objects, err, errlen))
        return -1;
    kept_text = NULL;                               /* used once */
    json_event_push_pooled(L, text, len, nodes, n, objects);
    return 0;
}

/* ============================ kinds of table ============================= */

static int kind_of(lua_State *L, int idx, int whole) {
    idx = lua_absindex(L, idx);
    if (!lua_getmetatable(L, idx)) {             /* the common case: a plain table */
        lua_pushvalue(L, idx);
        return JSON_KIND_PLAIN;
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    if (lua_rawequal(L, -1, -2)) { lua_pop(L, 2); lua_pushvalue(L, idx); return JSON_KIND_ARRAY; }
    lua_pop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &object_mt_key);
    if (lua_rawequal(L, -1, -2)) { lua_pop(L, 2); lua_pushvalue(L, idx); return JSON_KIND_OBJECT; }
    lua_pop(L, 2);
    int kind = json_event_kind(L, idx, whole);
    if (kind >= 0) return kind;
    lua_pushvalue(L, idx);
    return JSON_KIND_PLAIN;
}

int json_kind(lua_State *L, int idx) { return kind_of(L, idx, 1); }

int json_kind_marked(lua_State *L, int idx, const void *marks[2]) {
    idx = lua_absindex(L, idx);
    if (!lua_getmetatable(L, idx)) {
        lua_pushvalue(L, idx);
        return JSON_KIND_PLAIN;
    }
    if (!marks[0]) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &object_mt_key);
        marks[0] = lua_topointer(L, -2);
        marks[1] = lua_topointer(L, -1);
        lua_pop(L, 2);
    }
    const void *mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    if (mt && mt == marks[0]) { lua_pushvalue(L, idx); return JSON_KIND_ARRAY; }
    if (mt && mt == marks[1]) { lua_pushvalue(L, idx); return JSON_KIND_OBJECT; }
    int kind = json_event_kind(L, idx, 1);
    if (kind >= 0) return kind;
    lua_pushvalue(L, idx);
    return JSON_KIND_PLAIN;
}

int json_is_array(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    int kind = kind_of(L, idx, 0);
    int t = lua_gettop(L);
    int verdict;
    if (kind == JSON_KIND_ARRAY || kind == JSON_KIND_READONLY_ARRAY) verdict = 1;
    else if (kind != JSON_KIND_PLAIN) verdict = 0;
    else {                                       /* exactly the keys 1..n, n >= 1 */
        lua_Integer n = (lua_Integer)lua_rawlen(L, t), count = 0;
        verdict = n > 0;
        lua_pushnil(L);
        while (verdict && lua_next(L, t)) {
            lua_pop(L, 1);
            lua_Integer k = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
            if (k < 1 || k > n) { verdict = 0; lua_pop(L, 1); break; }
            count++;
        }
        if (verdict) verdict = count == n;
    }
    lua_settop(L, t - 1);
    return verdict;
}

/* ============================== Lua binding ============================== */

void json_open(lua_State *L) {
    /* getmetatable on a marked table gives the marker's name, never the shared metatable, so no
     * script can plant an __index or a finalizer in every marked table after it. */
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "object");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "object");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &object_mt_key);
}

static int l_decode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char err[256];
    if (json_output_budget) {
        /* The tape takes one node a value, outside the Lua allocator: every value but the first
         * follows a '[', '{', ':' or ',', so their count bounds it; it must fit the cap. */
        size_t values = 1;
        for (size_t i = 0; i < n; i++) values += s[i] == ',' || s[i] == ':' || s[i] == '[' || s[i] == '{';
        size_t left = json_output_budget(L);
        if (left != SIZE_MAX && values > left / sizeof(jnode))
            return luaL_error(L, "decode: cap: memory exceeded (%I values would not fit the %I KiB the cap "
                                 "leaves)", (lua_Integer)values, (lua_Integer)(left >> 10));
    }
    if (json_decode(L, s, n, lua_toboolean(L, 2) ? JSON_READONLY : JSON_WRITABLE, err, sizeof err)) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid JSON: %s", err);
        return 2;
    }
    return 1;
}

static int l_encode(lua_State *L) {
    luaL_checkany(L, 1);
    char err[320];
    encoded.len = 0;
    if (json_encode(L, 1, &encoded, err, sizeof err)) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot encode: %s", err);
        return 2;
    }
    lua_pushlstring(L, encoded.data ? encoded.data : "", encoded.len);
    if (encoded.cap > 65536) strbuf_free(&encoded);   /* a large one is not kept */
    return 1;
}

/* returnflow.array(t) / returnflow.object(t): mark t (or a new table) with the marker `which` of
 * the function's upvalues (1 the array marker, 2 the object marker: json_luaopen's, so no registry
 * read a call). Only a table with no metatable, or one already marked, may be marked:
 * lua_setmetatable would otherwise replace a protected metatable (the read-only event's) and make
 * it writable. */
/* Array slots a new empty rf.array() starts with: one is made to be filled (a return's items, its
 * reasons), and growing from none to four resized it three times. */
#define ARRAY_ROOM 4

static int mark(lua_State *L, int which) {
    if (lua_isnoneornil(L, 1)) lua_createtable(L, which == 1 ? ARRAY_ROOM : 0, 0);
    else luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (lua_getmetatable(L, 1)) {
        int marked = lua_rawequal(L, -1, lua_upvalueindex(1)) || lua_rawequal(L, -1, lua_upvalueindex(2));
        lua_pop(L, 1);
        if (!marked) return luaL_argerror(L, 1, "a table with a metatable of its own cannot be marked "
                                                "(the event is read-only)");
    }
    lua_pushvalue(L, lua_upvalueindex(which));
    lua_setmetatable(L, 1);
    return 1;
}
static int l_array(lua_State *L) { return mark(L, 1); }

void json_push_array(lua_State *L, int narr) {
    lua_createtable(L, narr, 0);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    lua_setmetatable(L, -2);
}

void json_push_array_marker(lua_State *L) { lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key); }

void json_push_array_marked(lua_State *L, int narr, int marker) {
    marker = lua_absindex(L, marker);
    lua_createtable(L, narr, 0);
    lua_pushvalue(L, marker);
    lua_setmetatable(L, -2);
}
static int l_object(lua_State *L) { return mark(L, 2); }

static int l_is_array(lua_State *L) {
    lua_pushboolean(L, json_is_array(L, 1));
    return 1;
}

int json_luaopen(lua_State *L) {
    static const luaL_Reg fns[] = {
        { "decode", l_decode }, { "encode", l_encode }, { "array", l_array },
        { "object", l_object }, { "is_array", l_is_array }, { NULL, NULL },
    };
    /* every function gets the markers as upvalues 1 and 2 (mark's); json_open made them */
    luaL_newlibtable(L, fns);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &object_mt_key);
    if (!lua_istable(L, -1) || !lua_istable(L, -2)) luaL_error(L, "returnflow.json: json_open was not called");
    luaL_setfuncs(L, fns, 2);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}

/* ------------------------- members without decoding ------------------------ */

static const char *skip_blank(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

int json_each_member(const char *text, size_t len,
                     int (*found)(void *ud, const char *key, size_t klen, const char *value, size_t vlen), void *ud) {
    const char *end = text + len, *p = skip_blank(text, end);
    if (p == end || *p != '{') return -1;
    p = skip_blank(p + 1, end);
    if (p < end && *p == '}') return 0;
    while (p < end) {
        size_t klen, vlen;
        char err[64];
        if (*p != '"' || json_value_end(p, (size_t)(end - p), &klen, err, sizeof err) != 0) return -1;
        const char *key = p + 1;
        p = skip_blank(p + klen, end);
        if (p == end || *p != ':') return -1;
        p = skip_blank(p + 1, end);
        if (json_value_end(p, (size_t)(end - p), &vlen, err, sizeof err) != 0) return -1;
        if (found(ud, key, klen - 2, p, vlen)) return 1;
        p = skip_blank(p + vlen, end);
        if (p < end && *p == ',') { p = skip_blank(p + 1, end); continue; }
        return p < end && *p == '}' ? 0 : -1;
    }
    return -1;
}

typedef struct lookup { const char *name; size_t nlen; const char **value; size_t *vlen; } lookup;

static int find_member(void *ud, const char *key, size_t klen, const char *value, size_t vlen) {
    lookup *l = ud;
    if (klen != l->nlen || memcmp(key, l->name, klen) != 0) return 0;
    *l->value = value;
    *l->vlen = vlen;
    return 1;
}

int json_member(const char *text, size_t len, const char *name, const char **value, size_t *vlen) {
    lookup l = { name, strlen(name), value, vlen };
    return json_each_member(text, len, find_member, &l) == 1 ? 0 : -1;
}

/* As json_member, but the walk stops at the name: the members before it are checked and skipped,
 * its own value is not looked at, so a caller that reads inside it does not scan it twice. */
int json_member_start(const char *text, size_t len, const char *name, const char **value) {
    const char *end = text + len, *p = skip_blank(text, end);
    size_t nlen = strlen(name);
    if (p == end || *p != '{') return -1;
    p = skip_blank(p + 1, end);
    while (p < end && *p == '"') {
        size_t klen, vlen;
        char err[64];
        if (json_value_end(p, (size_t)(end - p), &klen, err, sizeof err) != 0) return -1;
        int named = klen - 2 == nlen && memcmp(p + 1, name, nlen) == 0;
        p = skip_blank(p + klen, end);
        if (p == end || *p != ':') return -1;
        p = skip_blank(p + 1, end);
        if (named) {
            *value = p;
            return p < end ? 0 : -1;
        }
        if (json_value_end(p, (size_t)(end - p), &vlen, err, sizeof err) != 0) return -1;
        p = skip_blank(p + vlen, end);
        if (p == end || *p != ',') return -1;
        p = skip_blank(p + 1, end);
    }
    return -1;
}
