/*
 * json_encode.c: Lua values to JSON text, byte-exact and deterministic.
 *
 * Object keys are sorted bytewise, so the same value always gives the same
 * bytes: outputs can be compared, and a body stored today is the body sent
 * tomorrow. Nothing is truncated or guessed: NaN, infinities, invalid UTF-8,
 * holes in lists and keys that are not strings or integers are errors that
 * name the path ("properties.items[2]: ...").
 *
 * Rules (optional) carry limits the output must respect: the longest string,
 * the longest array, and for objects under one key ("properties") the most
 * keys at their top and the deepest nesting. Checking them here, in the one
 * pass that writes the bytes, means a limit can never be checked on a value
 * other than the one sent.
 *
 * A memo (optional) keeps the bytes of each scoped table it encoded, keyed by
 * the table's address: a properties table shared by several requests of one
 * event is encoded once, and a memory write holding it copies those bytes
 * (json_encode_reusing: rules only refuse, they never change a byte written,
 * so a table encoded under them reads the same without them). The owner
 * resets the memo between events, before any table it saw could be collected
 * and its address reused.
 */
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_simd.h"
#include "lauxlib.h"
#include "utf8.h"

typedef struct path_step {
    const char *key;            /* object key, or NULL for an array index */
    size_t keylen;              /* KEYLEN_UNKNOWN: key is a C string, measured if a message needs it */
    lua_Integer index;
} path_step;

#define KEYLEN_UNKNOWN SIZE_MAX

typedef struct encoder {
    lua_State *L;
    strbuf *out;
    const json_rules *rules;
    json_memo *memo;
    int memo_any;               /* json_encode_reusing: look every table up in the memo, add none */
    int depth;
    int scope_start;            /* path step of the scope key, 0 when outside a scope */
    path_step path[JSON_MAX_DEPTH + 2];
    char *err;
    size_t errlen;
    size_t limit;               /* out->len may not pass this (json_output_budget) */
    const void *marks[2];       /* json_kind_marked's: the array and object markers, once looked up */
} encoder;

size_t (*json_output_budget)(lua_State *L);

/* One member of an object: its key bytes and the stack slot of its value. */
typedef struct member {
    const char *key;
    size_t keylen;
    uint64_t prefix;            /* the key's first 8 bytes, big-endian, zero-padded: sorts most keys */
    int value_slot;
} member;

static _Thread_local member *members;
static _Thread_local size_t members_cap, members_used;

static _Thread_local struct encoder *member_encoder;     /* json_encode_member's, reused: 6 KB of path */

void json_encode_thread_done(void) {
    free(member_encoder);
    member_encoder = NULL;
    free(members);
    members = NULL;
    members_cap = members_used = 0;
}

/* ----------------------------------- memo --------------------------------- */

typedef struct memo_entry {
    const void *table;
    size_t off, len;
    int depth;                  /* where it was encoded: a copy no deeper cannot pass JSON_MAX_DEPTH */
} memo_entry;

struct json_memo {
    memo_entry *entries;
    size_t n, cap;
    strbuf bytes;
};

json_memo *json_memo_new(void) {
    json_memo *m = calloc(1, sizeof *m);
    if (!m) abort();
    return m;
}

void json_memo_reset(json_memo *m) {
    if (!m) return;
    m->n = 0;
    m->bytes.len = 0;
}

void json_memo_free(json_memo *m) {
    if (!m) return;
    free(m->entries);
    strbuf_free(&m->bytes);
    free(m);
}

static const memo_entry *memo_find(const json_memo *m, const void *table) {
    for (size_t i = 0; i < m->n; i++)
        if (m->entries[i].table == table) return &m->entries[i];
    return NULL;
}

static void memo_add(json_memo *m, const void *table, const char *bytes, size_t len, int depth) {
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->entries = realloc(m->entries, m->cap * sizeof *m->entries);
        if (!m->entries) abort();
    }
    m->entries[m->n++] = (memo_entry){ table, m->bytes.len, len, depth };
    strbuf_add(&m->bytes, bytes, len);
}

/* ---------------------------------- errors -------------------------------- */

static int enc_fail(encoder *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int enc_fail(encoder *e, const char *fmt, ...) {
    strbuf path = {0};
    for (int i = e->scope_start ? e->scope_start : 1; i <= e->depth; i++) {
        if (e->path[i].key) {
            if (path.len) strbuf_addc(&path, '.');
            size_t keylen = e->path[i].keylen;
            strbuf_add(&path, e->path[i].key, keylen == KEYLEN_UNKNOWN ? strlen(e->path[i].key) : keylen);
        } else {
            char ix[32];
            snprintf(ix, sizeof ix, "[%lld]", (long long)e->path[i].index);
            strbuf_adds(&path, ix);
        }
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(e->err, e->errlen, "%.*s%s%s", (int)(path.len > 200 ? 200 : path.len),
             path.data ? path.data : "", path.len ? ": " : "", msg);
    strbuf_free(&path);
    return -1;
}

static const char *limit_owner(const encoder *e) {
    return e->rules && e->rules->owner ? e->rules->owner : "the";
}

/* --------------------------------- scalars -------------------------------- */

static const char hexdigits[] = "0123456789abcdef";

/* Bytes that can be copied as they are: printable ASCII but '"' and '\'. */
static const unsigned char plain_byte[256] = {
    ['\x20'] = 1, ['!'] = 1, ['#' ... '['] = 1, [']' ... '~'] = 1,
};

/* The end of the run of plain bytes from p: 16 bytes a step while they are all plain (no '"',
 * '\\', DEL, nothing under 0x20 and nothing over 0x7f: signed, those are negative, so one compare
 * takes both), then byte by byte. Strings are most of every body's bytes. */
#if defined(__SSE2__)
static inline unsigned not_plain_bits(__m128i v) {
    __m128i odd = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                            _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                               _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                                            _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f))));
    return (unsigned)_mm_movemask_epi8(odd);
}

static inline unsigned not_plain_mask(const unsigned char *p) {
    return not_plain_bits(_mm_loadu_si128((const __m128i *)p));
}
#endif

static inline const unsigned char *plain_run_end(const unsigned char *p, const unsigned char *end) {
#if defined(__SSE2__)
    while (end - p >= 16) {
        unsigned mask = not_plain_mask(p);
        if (mask) return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
#if JSON_TAIL_LOADS
    if (p < end && json_tail_fits(p)) return p + __builtin_ctz(not_plain_mask(p) | json_past_end(p, end));
#endif
    while (p < end && plain_byte[*p]) p++;
    return p;
}

/* A string of at most 32 bytes with nothing to escape (every key, most values), quoted in one or two
 * 16-byte moves: returns 0, or -1 (then the general way). From 16 bytes on, the two loads (its first
 * and last 16) lie inside it; under 16, the one load is a tail load (json_simd.h) whose bytes past
 * the end are masked off, and stored past the closing quote's place, where the quote and later
 * bytes overwrite them (out->len never counts them). */
static inline int short_plain(strbuf *o, const unsigned char *p, size_t n) {
#if defined(__SSE2__)
    if (n > 32) return -1;
    if (n >= 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)p), b = _mm_loadu_si128((const __m128i *)(p + n - 16));
        if (not_plain_bits(a) | not_plain_bits(b)) return -1;
        strbuf_reserve(o, n + 2);
        char *d = o->data + o->len;
        d[0] = '"';
        _mm_storeu_si128((__m128i *)(d + 1), a);
        _mm_storeu_si128((__m128i *)(d + 1 + n - 16), b);
        d[n + 1] = '"';
        o->len += n + 2;
        return 0;
    }
#if JSON_TAIL_LOADS
    if (!json_tail_fits(p)) return -1;
    __m128i a = _mm_loadu_si128((const __m128i *)p);
    if (not_plain_bits(a) & ~json_past_end(p, p + n) & 0xffffu) return -1;
    strbuf_reserve(o, 16 + 2);
    char *d = o->data + o->len;
    d[0] = '"';
    _mm_storeu_si128((__m128i *)(d + 1), a);
    d[n + 1] = '"';
    o->len += n + 2;
    return 0;
#endif
#endif
    (void)o; (void)p; (void)n;
    return -1;
}

static int enc_string(encoder *e, const char *s, size_t n) {
    if (e->rules && e->rules->max_string && n > e->rules->max_string)
        return enc_fail(e, "string of %zu bytes, over %s limit of %zu", n, limit_owner(e), e->rules->max_string);
    strbuf *o = e->out;
    if (short_plain(o, (const unsigned char *)s, n) == 0) return 0;
    strbuf_reserve(o, n + 2);
    o->data[o->len++] = '"';
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        const unsigned char *run = p;
        p = plain_run_end(p, end);
        if (p > run) strbuf_add(o, (const char *)run, (size_t)(p - run));
        if (p == end) break;
        unsigned char c = *p;
        if (c >= 0x80) {
            int len = utf8_len(p, end);
            if (!len) return enc_fail(e, "string is not valid UTF-8 (byte 0x%02x at %zu)", c, (size_t)(p - (const unsigned char *)s));
            strbuf_add(o, (const char *)p, (size_t)len);
            p += len;
            continue;
        }
        char esc[2] = { '\\', 0 };
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default: {
            char u[6] = { '\\', 'u', '0', '0', hexdigits[c >> 4], hexdigits[c & 15] };
            strbuf_add(o, u, 6);
            p++;
            continue;
        }
        }
        strbuf_add(o, esc, 2);
        p++;
    }
    strbuf_addc(o, '"');
    return 0;
}

static void enc_integer(strbuf *out, lua_Integer v) {
    char buf[24], *p = buf + sizeof buf;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) *--p = '-';
    strbuf_add(out, p, (size_t)(buf + sizeof buf - p));
}

/* The text enc_number writes for d when d is a decimal of at most 15 significant digits and 9
 * places, from 0.0001 to under 1e15 (money, mostly): its digits, found by integer arithmetic instead
 * of three snprintf and strtod. Returns the length, or 0 (then the general way below).
 *
 * Exact: r / 10^k is correctly rounded in IEEE arithmetic (r < 2^53 and 10^k exact), as strtod rounds
 * the text "r / 10^k", so the text reads back as d. %.15g of d is that same text: d lies within half
 * an ulp (< 1.2e-16 d) of r / 10^k, a value on the 15-significant-digit grid (spacing > 1e-15 d), so
 * it rounds to it; from 1e-4 to under 1e15, %g writes it in fixed notation, trailing zeros dropped,
 * and the smallest k has none. */
static size_t short_decimal(double d, char *num) {
    static const double pow10[] = { 1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9 };
    double a = d < 0 ? -d : d;
    if (!(a >= 1e-4 && a < 1e15)) return 0;
    for (int k = 0; k < 10; k++) {
        double scaled = a * pow10[k];
        if (scaled >= 1e15) return 0;
        uint64_t r = (uint64_t)(scaled + 0.5);
        if ((double)r / pow10[k] != a) continue;
        char digits[24];
        int n = 0;
        do { digits[n++] = (char)('0' + r % 10); r /= 10; } while (r);
        size_t len = 0;
        if (d < 0) num[len++] = '-';
        if (n <= k) {                               /* 0.000ddd */
            num[len++] = '0';
            num[len++] = '.';
            for (int z = 0; z < k - n; z++) num[len++] = '0';
        }
        for (int i = n - 1; i >= 0; i--) {
            num[len++] = digits[i];
            if (i == k && k > 0 && n > k) num[len++] = '.';
        }
        if (k == 0) { num[len++] = '.'; num[len++] = '0'; }
        return len;
    }
    return 0;
}

static int enc_number(encoder *e, int idx) {
    if (lua_isinteger(e->L, idx)) {
        enc_integer(e->out, lua_tointeger(e->L, idx));
        return 0;
    }
    double d = lua_tonumber(e->L, idx);
    if (!isfinite(d)) return enc_fail(e, "number is NaN or infinite, which JSON cannot carry");
    char num[40];
    size_t quick = short_decimal(d, num);
    if (quick) {
        strbuf_add(e->out, num, quick);
        return 0;
    }
    /* Shortest of %.15g/%.16g/%.17g that reads back exactly. */
    int n = snprintf(num, sizeof num, "%.15g", d);
    if (strtod(num, NULL) != d) n = snprintf(num, sizeof num, "%.16g", d);
    if (strtod(num, NULL) != d) n = snprintf(num, sizeof num, "%.17g", d);
    /* Keep a float a float: 3.0 prints as 3.0, so it decodes back as one. */
    if (!strpbrk(num, ".eEn")) { num[n++] = '.'; num[n++] = '0'; num[n] = 0; }
    strbuf_add(e->out, num, (size_t)n);
    return 0;
}

/* --------------------------------- tables --------------------------------- */

static int member_cmp(const void *a, const void *b) {
    const member *x = a, *y = b;
    if (x->prefix != y->prefix) return x->prefix < y->prefix ? -1 : 1;
    size_t n = x->keylen < y->keylen ? x->keylen : y->keylen;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return (x->keylen > y->keylen) - (x->keylen < y->keylen);
}

/* Orders like the bytes themselves: where two prefixes differ, so do the keys, the same way (a
 * shorter key's padding is a 0 that only a longer key with a real byte there can pass). Equal
 * prefixes fall back to the whole keys. */
static uint64_t key_prefix(const char *key, size_t len) {
    uint64_t v = 0;
    if (len >= 8) {                              /* one load; big-endian, so bytes order as numbers */
        memcpy(&v, key, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        v = __builtin_bswap64(v);
#endif
        return v;
    }
#if JSON_TAIL_LOADS
    if (json_tail_fits((const unsigned char *)key)) {   /* one load, the bytes past the key masked off */
        memcpy(&v, key, 8);
        v &= len ? ~(uint64_t)0 >> (8 * (8 - len)) : 0;
        return __builtin_bswap64(v);
    }
#endif
    for (size_t i = 0; i < 8; i++) v = v << 8 | (i < len ? (unsigned char)key[i] : 0);
    return v;
}

/* The order of the last object of ORDER_FROM to ORDER_MAX members sorted on this thread, by the
 * addresses of its keys as lua_next gave them: a table built the same way each event (loop.properties,
 * some thirty keys) comes with the same key strings in the same order, and its order is tried
 * first. It is kept only where the keys then stand in strictly increasing order, checked key by key
 * (an address may since belong to another string; a key twice fails the check and is sorted, and
 * found, below). */
#define ORDER_FROM 12
#define ORDER_MAX 64
static _Thread_local struct {
    int n;
    const char *keys[ORDER_MAX];
    unsigned char from[ORDER_MAX];              /* the i-th in order is the from[i]-th lua_next gave */
} last_order;

static int reuse_order(member *m, int n) {
    if (last_order.n != n) return 0;
    for (int i = 0; i < n; i++)
        if (m[i].key != last_order.keys[i]) return 0;
    member sorted[ORDER_MAX];
    for (int i = 0; i < n; i++) sorted[i] = m[last_order.from[i]];
    for (int i = 1; i < n; i++)
        if (member_cmp(&sorted[i - 1], &sorted[i]) >= 0) return 0;
    memcpy(m, sorted, (size_t)n * sizeof *m);
    return 1;
}

static void sort_members(member *m, int n) {
    for (int i = 0; i < n; i++) m[i].prefix = key_prefix(m[i].key, m[i].keylen);
    if (n > ORDER_MAX) { qsort(m, (size_t)n, sizeof *m, member_cmp); return; }
    int remember = n >= ORDER_FROM;
    if (remember && reuse_order(m, n)) return;
    if (remember) {
        last_order.n = 0;
        for (int i = 0; i < n; i++) last_order.keys[i] = m[i].key;
    }
    int first_slot = n ? m[0].value_slot : 0;   /* a member's value slot tells its place: 2 a member */
    for (int i = 1; i < n; i++) {                /* insertion sort: objects are small */
        member x = m[i];
        int j = i - 1;
        while (j >= 0 && member_cmp(&m[j], &x) > 0) { m[j + 1] = m[j]; j--; }
        m[j + 1] = x;
    }
    if (remember) {
        for (int i = 0; i < n; i++) last_order.from[i] = (unsigned char)((m[i].value_slot - first_slot) / 2);
        last_order.n = n;
    }
}

static int enc_value(encoder *e, int idx);

/* The items of an array, 1..n, each from the data table t. */
static int enc_items(encoder *e, int t, lua_Integer n) {
    lua_State *L = e->L;
    if (e->rules && e->rules->max_array && (size_t)n > e->rules->max_array)
        return enc_fail(e, "%lld items, over %s limit of %zu per array", (long long)n, limit_owner(e),
                        e->rules->max_array);
    strbuf_addc(e->out, '[');
    e->depth++;
    path_step *ps = &e->path[e->depth];
    ps->key = NULL;
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) strbuf_addc(e->out, ',');
        ps->index = i;
        lua_rawgeti(L, t, i);
        int rc = enc_value(e, lua_gettop(L));
        lua_pop(L, 1);
        if (rc) return rc;
    }
    e->depth--;
    strbuf_addc(e->out, ']');
    return 0;
}

/* The items of a list in the one walk of lua_next that checks its keys (list_length, then enc_items,
 * walked it twice): 0 when its keys came as exactly 1..n in order and every item encoded; else -1
 * with nothing written, and then list_length and enc_items decide, with their own error (keys out
 * of order, in the hash part, or a hole, or an item refused, which they report as they always did,
 * a hole before a bad item included). */
static int walk_items(encoder *e, int t, lua_Integer n) {
    lua_State *L = e->L;
    if (n <= 0 || (e->rules && e->rules->max_array && (size_t)n > e->rules->max_array)) return -1;
    size_t mark = e->out->len;
    int depth = e->depth, scope = e->scope_start, top = lua_gettop(L);   /* a failed item leaves a scope */
    strbuf_addc(e->out, '[');
    e->depth++;
    path_step *ps = &e->path[e->depth];
    ps->key = NULL;
    lua_Integer i = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) != ++i || i > n) break;
        if (i > 1) strbuf_addc(e->out, ',');
        ps->index = i;
        if (enc_value(e, lua_gettop(L))) break;
        lua_pop(L, 1);
        if (i == n) {
            if (lua_next(L, t)) break;            /* a key past n */
            e->depth--;
            strbuf_addc(e->out, ']');
            return 0;
        }
    }
    lua_settop(L, top);
    e->depth = depth;
    e->scope_start = scope;
    e->out->len = mark;
    return -1;
}

/* n if the table's keys are exactly 1..n, else -1 (0 for an empty table). */
static lua_Integer list_length(lua_State *L, int t) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, t), count = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        lua_Integer k = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
        if (k < 1 || k > n) { lua_pop(L, 1); return -1; }
        count++;
    }
    return count == n ? n : -1;
}

static int is_scope_key(const encoder *e, const char *key, size_t len) {
    if (e->scope_start || !e->rules) return 0;
    const char *scope = e->rules->scope_key;
    return scope && scope[0] == key[0] && strlen(scope) == len && memcmp(scope, key, len) == 0;
}

/* declared: the table is marked as an object, so integer keys alone are fine. */
static int enc_object(encoder *e, int t, int declared) {
    lua_State *L = e->L;
    int top = lua_gettop(L);
    size_t base = members_used;
    int n = 0, all_int = 1;
    lua_pushnil(L);
    while (lua_next(L, t)) {                     /* keep key, value; iterate on a copy of the key */
        if ((n & 15) == 0) luaL_checkstack(L, 2 * 16 + 2, "JSON encode");   /* room for 16 more */
        if (base + (size_t)n == members_cap) {
            members_cap = members_cap ? members_cap * 2 : 64;
            members = realloc(members, members_cap * sizeof *members);
            if (!members) abort();
        }
        int kt = lua_type(L, -2);
        if (kt == LUA_TSTRING) all_int = 0;
        else if (!lua_isinteger(L, -2)) {
            lua_settop(L, top);
            return enc_fail(e, "a table key of type %s cannot be a JSON key", lua_typename(L, kt));
        }
        member *m = &members[base + (size_t)n++];
        m->value_slot = lua_gettop(L);
        lua_pushvalue(L, -2);
    }
    if (n > 0 && all_int && !declared) {
        lua_settop(L, top);
        return enc_fail(e, "a list with holes or keys outside 1..n cannot be a JSON array");
    }
    member *m = members ? members + base : NULL;   /* none yet on this thread (n is 0): NULL + 0 is UB */
    for (int i = 0; i < n; i++) m[i].key = lua_tolstring(L, m[i].value_slot - 1, &m[i].keylen);
    if (e->scope_start && e->depth == e->scope_start && e->rules->max_scope_keys &&
        (size_t)n > e->rules->max_scope_keys) {
        lua_settop(L, top);
        return enc_fail(e, "%d properties, over %s limit of %zu", n, limit_owner(e), e->rules->max_scope_keys);
    }
    sort_members(m, n);
    for (int i = 1; i < n; i++)                  /* {[1] = x, ["1"] = y} would print "1" twice */
        if (m[i].keylen == m[i - 1].keylen && memcmp(m[i].key, m[i - 1].key, m[i].keylen) == 0) {
            lua_settop(L, top);
            return enc_fail(e, "key '%.*s' appears twice (once as a number, once as a string)",
                            (int)(m[i].keylen > 60 ? 60 : m[i].keylen), m[i].key);
        }
    members_used = base + (size_t)n;
    strbuf_addc(e->out, '{');
    e->depth++;
    path_step *ps = &e->path[e->depth];
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        m = members + base;                      /* a child may have grown (moved) the array */
        if (i) strbuf_addc(e->out, ',');
        ps->key = m[i].key;
        ps->keylen = m[i].keylen;
        if ((rc = enc_string(e, m[i].key, m[i].keylen))) break;
        strbuf_addc(e->out, ':');
        if (is_scope_key(e, m[i].key, m[i].keylen) && lua_type(L, m[i].value_slot) == LUA_TTABLE) {
            e->scope_start = e->depth;
            rc = enc_value(e, m[i].value_slot);
            e->scope_start = rc ? e->scope_start : 0;
        } else {
            rc = enc_value(e, m[i].value_slot);
        }
    }
    if (rc == 0) {
        e->depth--;
        strbuf_addc(e->out, '}');
    }
    members_used = base;
    lua_settop(L, top);
    return rc;
}

static int enc_table(encoder *e, int idx) {
    lua_State *L = e->L;
    if (e->depth >= JSON_MAX_DEPTH) return enc_fail(e, "nesting deeper than %d levels (a cycle?)", JSON_MAX_DEPTH);
    if (e->scope_start && e->rules->max_scope_depth && e->depth - e->scope_start + 1 > e->rules->max_scope_depth)
        return enc_fail(e, "nested %d levels deep, over %s limit of %d", e->depth - e->scope_start + 1,
                        limit_owner(e), e->rules->max_scope_depth);
    /* A scoped table seen before in this memo: its bytes, not a second encoding. */
    int memoize = e->memo && !e->memo_any && e->scope_start && e->scope_start == e->depth;
    const void *address = memoize || e->memo_any ? lua_topointer(L, idx) : NULL;
    if (address) {
        const memo_entry *hit = memo_find(e->memo, address);
        if (hit && e->depth <= hit->depth) {
            strbuf_add(e->out, e->memo->bytes.data + hit->off, hit->len);
            /* a copy skips the per-value check of enc_value: the cap is checked on the whole */
            if (e->memo_any && e->out->len > e->limit)
                return enc_fail(e, "cap: memory exceeded (the JSON text would be over the %zu KiB the cap leaves)",
                                e->limit >> 10);
            return 0;
        }
    }
    size_t start = e->out->len;
    luaL_checkstack(L, 4, "JSON encode");
    int kind = json_kind_marked(L, idx, e->marks);
    int t = lua_gettop(L);
    int rc;
    if (kind == JSON_KIND_READONLY_ARRAY) {
        rc = enc_items(e, t, (lua_Integer)lua_rawlen(L, t));
    } else if (kind == JSON_KIND_OBJECT || kind == JSON_KIND_READONLY_OBJECT) {
        rc = enc_object(e, t, 1);
    } else {
        if (kind == JSON_KIND_ARRAY && walk_items(e, t, (lua_Integer)lua_rawlen(L, t)) == 0) {
            lua_settop(L, t - 1);
            if (memoize) memo_add(e->memo, address, e->out->data + start, e->out->len - start, e->depth);
            return 0;
        }
        lua_Integer n = list_length(L, t);
        if (kind == JSON_KIND_ARRAY) {
            rc = n < 0 ? enc_fail(e, "a list with holes or keys outside 1..n cannot be a JSON array")
                       : enc_items(e, t, n);
        } else {
            rc = n > 0 ? enc_items(e, t, n) : enc_object(e, t, 0);
        }
    }
    lua_settop(L, t - 1);
    if (rc == 0 && memoize) memo_add(e->memo, address, e->out->data + start, e->out->len - start, e->depth);
    return rc;
}

static int enc_value(encoder *e, int idx) {
    lua_State *L = e->L;
    /* Checked before every value: past the limit by at most one value's bytes, and a graph of
     * shared tables (2^40 bytes of text) stops here instead of in the allocator. */
    if (e->out->len > e->limit)
        return enc_fail(e, "cap: memory exceeded (the JSON text would be over the %zu KiB the cap leaves)",
                        e->limit >> 10);
    switch (lua_type(L, idx)) {
    case LUA_TNIL: strbuf_add(e->out, "null", 4); return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) strbuf_add(e->out, "true", 4);
        else strbuf_add(e->out, "false", 5);
        return 0;
    case LUA_TNUMBER: return enc_number(e, idx);
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return enc_string(e, s, n);
    }
    case LUA_TTABLE: return enc_table(e, idx);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { strbuf_add(e->out, "null", 4); return 0; }
        /* fallthrough */
    default:
        return enc_fail(e, "a %s cannot be encoded as JSON", luaL_typename(L, idx));
    }
}

/* The encoders of json_encode_with and json_encode_reusing live on the C stack (6 KB of path): a Lua
 * error raised while encoding (the memory cap met by a number key's conversion, say) unwinds past
 * them, and a heap encoder was leaked each time, host memory no cap counts. */
int json_encode_with(lua_State *L, int idx, strbuf *out, const json_rules *rules, json_memo *memo,
                     char *err, size_t errlen) {
    encoder stack_encoder, *e = &stack_encoder;
    e->L = L; e->out = out; e->rules = rules; e->memo = memo; e->memo_any = 0;
    e->depth = 0; e->scope_start = 0; e->err = err; e->errlen = errlen;
    e->marks[0] = e->marks[1] = NULL;
    size_t mark = out->len;
    size_t budget = json_output_budget ? json_output_budget(L) : SIZE_MAX;
    e->limit = budget > SIZE_MAX - mark ? SIZE_MAX : mark + budget;
    int top = lua_gettop(L);
    int rc = enc_value(e, lua_absindex(L, idx));
    if (rc) { out->len = mark; lua_settop(L, top); }
    return rc;
}

size_t json_encode_limit(lua_State *L, size_t mark) {
    size_t budget = json_output_budget ? json_output_budget(L) : SIZE_MAX;
    return budget > SIZE_MAX - mark ? SIZE_MAX : mark + budget;
}

int json_encode_member(lua_State *L, int idx, strbuf *out, const json_rules *rules, json_memo *memo,
                       const char *const *path, int depth, size_t limit, char *err, size_t errlen) {
    if (!member_encoder && !(member_encoder = malloc(sizeof *member_encoder))) abort();
    encoder *e = member_encoder;
    e->L = L; e->out = out; e->rules = rules; e->memo = memo; e->memo_any = 0;
    e->err = err; e->errlen = errlen; e->limit = limit;
    e->scope_start = 0;
    e->marks[0] = e->marks[1] = NULL;
    /* the steps' lengths only when an error words the path (a body's members are 6 steps deep) */
    for (int i = 0; i < depth; i++) {
        e->path[i + 1].key = path[i];
        e->path[i + 1].keylen = KEYLEN_UNKNOWN;
    }
    e->depth = depth;
    idx = lua_absindex(L, idx);
    /* the value of the scope key is scoped, as enc_object would make it */
    if (depth && is_scope_key(e, path[depth - 1], strlen(path[depth - 1])) && lua_type(L, idx) == LUA_TTABLE)
        e->scope_start = depth;
    size_t mark = out->len;
    int top = lua_gettop(L);
    int rc = enc_value(e, idx);
    if (rc) { out->len = mark; lua_settop(L, top); }
    return rc;
}

int json_encode(lua_State *L, int idx, strbuf *out, char *err, size_t errlen) {
    return json_encode_with(L, idx, out, NULL, NULL, err, errlen);
}

int json_encode_reusing(lua_State *L, int idx, strbuf *out, const json_memo *memo, char *err, size_t errlen) {
    if (!memo) return json_encode(L, idx, out, err, errlen);
    encoder stack_encoder, *e = &stack_encoder;
    e->L = L; e->out = out; e->rules = NULL; e->memo = (json_memo *)memo; e->memo_any = 1;
    e->depth = 0; e->scope_start = 0; e->err = err; e->errlen = errlen;
    e->marks[0] = e->marks[1] = NULL;
    size_t mark = out->len;
    e->limit = json_encode_limit(L, mark);
    int top = lua_gettop(L);
    int rc = enc_value(e, lua_absindex(L, idx));
    if (rc) { out->len = mark; lua_settop(L, top); }
    return rc;
}

/* ------------------------------- for people ------------------------------- */

void json_append_string(strbuf *out, const char *s, size_t n) {
    encoder e;
    char err[8];
    e.out = out; e.rules = NULL; e.depth = 0; e.scope_start = 0; e.err = err; e.errlen = sizeof err;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    int step;
    while (p < end && (step = utf8_len(p, end)) > 0) p += step;
    if (p == end) {                            /* valid UTF-8 (nearly always): as it is */
        enc_string(&e, n ? s : "", n);
        return;
    }
    strbuf clean = {0};
    p = (const unsigned char *)s;
    while (p < end) {                          /* invalid UTF-8 becomes U+FFFD */
        int len = utf8_len(p, end);
        if (len) { strbuf_add(&clean, (const char *)p, (size_t)len); p += len; }
        else { strbuf_add(&clean, "\xef\xbf\xbd", 3); p++; }
    }
    enc_string(&e, clean.data ? clean.data : "", clean.len);
    strbuf_free(&clean);
}

static void newline(strbuf *out, int depth) {
    strbuf_addc(out, '\n');
    for (int d = 0; d < depth; d++) strbuf_add(out, "  ", 2);
}

void json_pretty(const char *s, size_t n, strbuf *out) {
    int depth = 0, in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            strbuf_addc(out, c);
            if (c == '\\' && i + 1 < n) strbuf_addc(out, s[++i]);
            else if (c == '"') in_string = 0;
            continue;
        }
        switch (c) {
        case '"': in_string = 1; strbuf_addc(out, c); break;
        case '{': case '[':
            strbuf_addc(out, c);
            if (i + 1 < n && (s[i + 1] == '}' || s[i + 1] == ']')) { strbuf_addc(out, s[++i]); break; }
            newline(out, ++depth);
            break;
        case '}': case ']': newline(out, --depth); strbuf_addc(out, c); break;
        case ',': strbuf_addc(out, c); newline(out, depth); break;
        case ':': strbuf_add(out, ": ", 2); break;
        default: strbuf_addc(out, c);
        }
    }
}
