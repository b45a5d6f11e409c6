/*
 * json.c: exact JSON <-> Lua, the host's own, because the event path needs
 * what general libraries leave out.
 *
 * Decoding is two passes over the text. The first validates everything
 * (grammar, UTF-8, escapes, depth) and counts the members of each container;
 * the second builds Lua tables presized from those counts and trusts the text.
 * So an error never leaves a half-built value behind, and no table rehashes.
 *
 * Meaning is kept: null is one sentinel (a NULL light userdata, the same value
 * as cjson.null), integers that fit 64 bits stay integers, [] and {} stay apart
 * (decoded containers carry an array or object marker), duplicate keys keep
 * the last value (as JSON.parse and cjson do).
 *
 * A read-only decode wraps every container in an empty proxy whose metatable
 * reads through to the data table and refuses writes. The proxy's metatable
 * is protected, so a script can neither see nor remove it. The data table
 * holds proxies of its children, never the children themselves.
 *
 * Encoding sorts object keys bytewise: the same value always gives the same
 * bytes, which is what lets outputs be compared and deduplicated. Nothing is
 * truncated or guessed: NaN, infinities, invalid UTF-8 and unsupported key or
 * value types are errors that name the path.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "utf8.h"

static const char array_mt_key = 0, object_mt_key = 0;
static const char readonly_tag[] = "read-only";

/* ---- scratch space, one set per thread (workers decode concurrently) ---- */

static _Thread_local uint32_t *counts;
static _Thread_local size_t counts_cap;
static _Thread_local strbuf scratch;

/* =========================== pass 1: validate ============================ */

typedef struct scan {
    const unsigned char *s, *end;
    const unsigned char *p;
    size_t ncontainers;
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

static inline void skip_ws(scan *sc) {
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\n' || *sc->p == '\r' || *sc->p == '\t'))
        sc->p++;
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

static int scan_string(scan *sc) {
    sc->p++; /* opening quote */
    for (;;) {
        while (sc->p < sc->end && string_plain[*sc->p]) sc->p++;
        if (sc->p >= sc->end) return scan_fail(sc, "unterminated string");
        unsigned c = *sc->p;
        if (c == '"') { sc->p++; return 0; }
        if (c < 0x20) return scan_fail(sc, "control character in string (escape it)");
        if (c == '\\') {
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
    if (has_exponent || p - sc->p > 300) {       /* 1e400 would become infinity: refuse it */
        char buf[64];
        size_t n = (size_t)(p - sc->p) < sizeof buf - 1 ? (size_t)(p - sc->p) : sizeof buf - 1;
        memcpy(buf, sc->p, n);
        buf[n] = 0;
        if (n == sizeof buf - 1 || isinf(strtod(buf, NULL))) return scan_fail(sc, "number out of range");
    }
    sc->p = p;
    return 0;
}

static int scan_literal(scan *sc, const char *word, size_t n) {
    if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0)
        return scan_fail(sc, "expected a value");
    sc->p += n;
    return 0;
}

static int count_slot(scan *sc, size_t *slot) {
    if (sc->ncontainers == counts_cap) {
        size_t cap = counts_cap ? counts_cap * 2 : 64;
        uint32_t *c = realloc(counts, cap * sizeof *c);
        if (!c) return scan_fail(sc, "out of memory");
        counts = c;
        counts_cap = cap;
    }
    *slot = sc->ncontainers++;
    counts[*slot] = 0;
    return 0;
}

static int scan_value(scan *sc, int depth);

static int scan_container(scan *sc, int depth, int is_object) {
    if (depth >= JSON_MAX_DEPTH) {
        char what[64];
        snprintf(what, sizeof what, "nesting deeper than %d levels", JSON_MAX_DEPTH);
        return scan_fail(sc, what);
    }
    size_t slot = 0;
    if (count_slot(sc, &slot)) return -1;
    unsigned char close = is_object ? '}' : ']';
    sc->p++;
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == close) { sc->p++; return 0; }
    uint32_t n = 0;
    for (;;) {
        if (is_object) {
            skip_ws(sc);
            if (sc->p >= sc->end || *sc->p != '"') return scan_fail(sc, "expected a string key");
            if (scan_string(sc)) return -1;
            skip_ws(sc);
            if (sc->p >= sc->end || *sc->p != ':') return scan_fail(sc, "expected ':' after object key");
            sc->p++;
        }
        if (scan_value(sc, depth + 1)) return -1;
        n++;
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == ',') { sc->p++; continue; }
        if (sc->p < sc->end && *sc->p == close) { sc->p++; break; }
        return scan_fail(sc, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    counts[slot] = n;
    return 0;
}

static int scan_value(scan *sc, int depth) {
    skip_ws(sc);
    if (sc->p >= sc->end) return scan_fail(sc, "expected a value");
    switch (*sc->p) {
    case '{': return scan_container(sc, depth, 1);
    case '[': return scan_container(sc, depth, 0);
    case '"': return scan_string(sc);
    case 't': return scan_literal(sc, "true", 4);
    case 'f': return scan_literal(sc, "false", 5);
    case 'n': return scan_literal(sc, "null", 4);
    default:
        if (*sc->p == '-' || (*sc->p >= '0' && *sc->p <= '9')) return scan_number(sc);
        return scan_fail(sc, "expected a value");
    }
}

int json_value_end(const char *text, size_t len, size_t *end, char *err, size_t errlen) {
    scan sc = { (const unsigned char *)text, (const unsigned char *)text + len,
                (const unsigned char *)text, 0, err, errlen };
    skip_ws(&sc);
    if (len - (size_t)(sc.p - sc.s) >= 3 && memcmp(sc.p, "\xef\xbb\xbf", 3) == 0) sc.p += 3;
    if (scan_value(&sc, 0)) return -1;
    *end = (size_t)(sc.p - sc.s);
    return 0;
}

/* ============================ pass 2: build ============================== */

typedef struct build {
    lua_State *L;
    const unsigned char *p;
    size_t next_container;
    int readonly;
} build;

static void build_value(build *b);

static inline void build_ws(build *b) {
    while (*b->p == ' ' || *b->p == '\n' || *b->p == '\r' || *b->p == '\t') b->p++;
}

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

static void build_string(build *b) {
    const unsigned char *start = ++b->p;
    while (string_plain[*b->p] || *b->p >= 0x80) b->p++;
    if (*b->p == '"') {
        lua_pushlstring(b->L, (const char *)start, (size_t)(b->p - start));
        b->p++;
        return;
    }
    scratch.len = 0;
    strbuf_add(&scratch, (const char *)start, (size_t)(b->p - start));
    for (;;) {
        unsigned char c = *b->p;
        if (c == '"') { b->p++; break; }
        if (c != '\\') { strbuf_addc(&scratch, (char)c); b->p++; continue; }
        unsigned char e = b->p[1];
        b->p += 2;
        switch (e) {
        case 'b': strbuf_addc(&scratch, '\b'); break;
        case 'f': strbuf_addc(&scratch, '\f'); break;
        case 'n': strbuf_addc(&scratch, '\n'); break;
        case 'r': strbuf_addc(&scratch, '\r'); break;
        case 't': strbuf_addc(&scratch, '\t'); break;
        case 'u': {
            unsigned cp = (unsigned)read_hex4(b->p, b->p + 4);
            b->p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo = (unsigned)read_hex4(b->p + 2, b->p + 6);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                b->p += 6;
            }
            put_utf8(&scratch, cp);
            break;
        }
        default: strbuf_addc(&scratch, (char)e); break; /* " \ / */
        }
    }
    lua_pushlstring(b->L, scratch.data, scratch.len);
}

static void build_number(build *b) {
    const unsigned char *start = b->p, *p = b->p;
    int neg = 0;
    if (*p == '-') { neg = 1; p++; }
    uint64_t v = 0;
    int overflow = 0;
    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) overflow = 1;
        else v = v * 10 + d;
        p++;
    }
    if (*p != '.' && *p != 'e' && *p != 'E' && !overflow &&
        v <= (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) {
        /* Negate in unsigned arithmetic: -(2^63) has no positive int64. */
        lua_pushinteger(b->L, (lua_Integer)(neg ? (0 - v) : v));
        b->p = p;
        return;
    }
    char *endp;
    double d = strtod((const char *)start, &endp);
    lua_pushnumber(b->L, d);
    b->p = (const unsigned char *)endp;
}

/* Wraps the data table on top of the stack in a read-only proxy, replacing it. */
static int ro_newindex(lua_State *L);
static int ro_len(lua_State *L);
static int ro_pairs(lua_State *L);

static void make_proxy(lua_State *L, int is_array) {
    lua_createtable(L, 0, 0);                     /* data proxy */
    lua_createtable(L, 0, 5);                     /* data proxy mt */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, ro_pairs);
    lua_setfield(L, -2, "__pairs");
    if (is_array) {                               /* __len marks an array proxy */
        lua_pushcfunction(L, ro_len);
        lua_setfield(L, -2, "__len");
    }
    lua_pushstring(L, readonly_tag);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);                      /* data proxy */
    lua_remove(L, -2);                            /* proxy */
}

static void build_container(build *b, int is_object) {
    lua_State *L = b->L;
    uint32_t n = counts[b->next_container++];
    luaL_checkstack(L, 4, "JSON nesting");
    if (is_object) lua_createtable(L, 0, (int)n);
    else lua_createtable(L, (int)n, 0);
    b->p++;
    build_ws(b);
    lua_Integer i = 1;
    while (*b->p != (is_object ? '}' : ']')) {
        if (is_object) {
            build_string(b);
            build_ws(b);
            b->p++; /* ':' */
            build_value(b);
            lua_rawset(L, -3);
        } else {
            build_value(b);
            lua_rawseti(L, -2, i++);
        }
        build_ws(b);
        if (*b->p == ',') { b->p++; build_ws(b); }
    }
    b->p++;
    if (b->readonly) {
        make_proxy(L, !is_object);
    } else {
        lua_rawgetp(L, LUA_REGISTRYINDEX, is_object ? &object_mt_key : &array_mt_key);
        lua_setmetatable(L, -2);
    }
}

static void build_value(build *b) {
    build_ws(b);
    switch (*b->p) {
    case '{': build_container(b, 1); return;
    case '[': build_container(b, 0); return;
    case '"': build_string(b); return;
    case 't': lua_pushboolean(b->L, 1); b->p += 4; return;
    case 'f': lua_pushboolean(b->L, 0); b->p += 5; return;
    case 'n': lua_pushlightuserdata(b->L, NULL); b->p += 4; return;
    default: build_number(b); return;
    }
}

int json_decode(lua_State *L, const char *text, size_t len, int mode, char *err, size_t errlen) {
    scan sc = { (const unsigned char *)text, (const unsigned char *)text + len,
                (const unsigned char *)text, 0, err, errlen };
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) sc.p += 3; /* tolerate a BOM */
    if (scan_value(&sc, 0)) return -1;
    skip_ws(&sc);
    if (sc.p != sc.end) return scan_fail(&sc, "unexpected data after the JSON value");
    /* The build pass reads until delimiters; the scan proved they are there. */
    build b = { L, (const unsigned char *)text, 0, mode == JSON_READONLY };
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) b.p += 3;
    build_value(&b);
    return 0;
}

/* ======================= read-only proxy metamethods ===================== */

/* Finds the proxy's data table: the __index of its metatable, if that
 * metatable is one of ours (its __newindex is ro_newindex). */
static int push_proxy_data(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx)) return 0;
    lua_pushliteral(L, "__newindex");
    lua_rawget(L, -2);
    int ours = lua_tocfunction(L, -1) == ro_newindex;
    lua_pop(L, 1);
    if (!ours) { lua_pop(L, 1); return 0; }
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);
    lua_remove(L, -2);
    return 1;
}

void json_unwrap(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TTABLE && push_proxy_data(L, idx)) return;
    lua_pushvalue(L, idx);
}

static const char event_root_key = 0;

static int ro_newindex(lua_State *L) {
    /* Word the path from the event root when the runtime registered one. */
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &event_root_key);
    const char *where = NULL;
    if (lua_istable(L, -1)) {
        json_push_path(L, lua_gettop(L), 1);
        where = lua_tostring(L, -1);
    }
    if (key)
        return luaL_error(L, "event is read-only: cannot set field '%s%s%s'",
                          where && *where ? where : "", where && *where ? "." : "", key);
    if (lua_isinteger(L, 2))
        return luaL_error(L, "event is read-only: cannot set field '%s[%d]'",
                          where ? where : "", (int)lua_tointeger(L, 2));
    return luaL_error(L, "event is read-only: cannot set a field of %s",
                      where && *where ? where : "the event");
}

static int ro_len(lua_State *L) {
    push_proxy_data(L, 1);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

static int ro_next(lua_State *L) {
    lua_settop(L, 2);
    if (lua_next(L, 1)) return 2;
    lua_pushnil(L);
    return 1;
}

static int ro_pairs(lua_State *L) {
    lua_pushcfunction(L, ro_next);
    push_proxy_data(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Depth-first search for target under root; builds the path on success. */
static int find_path(lua_State *L, int node, int target, strbuf *path, int depth) {
    if (depth > JSON_MAX_DEPTH) return 0;
    if (lua_rawequal(L, node, target)) return 1;
    luaL_checkstack(L, 4, "path search");
    json_unwrap(L, node);
    int data = lua_gettop(L);
    if (lua_type(L, data) != LUA_TTABLE) { lua_pop(L, 1); return 0; }
    lua_pushnil(L);
    while (lua_next(L, data)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            size_t mark = path->len;
            if (lua_type(L, -2) == LUA_TSTRING) {
                if (path->len) strbuf_addc(path, '.');
                strbuf_adds(path, lua_tostring(L, -2));
            } else if (lua_isinteger(L, -2)) {
                char ix[32];
                snprintf(ix, sizeof ix, "[%lld]", (long long)lua_tointeger(L, -2));
                strbuf_adds(path, ix);
            }
            if (find_path(L, lua_gettop(L), target, path, depth + 1)) { lua_pop(L, 3); return 1; }
            path->len = mark;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

void json_push_path(lua_State *L, int root_idx, int target_idx) {
    root_idx = lua_absindex(L, root_idx);
    target_idx = lua_absindex(L, target_idx);
    strbuf path = {0};
    if (find_path(L, root_idx, target_idx, &path, 0)) lua_pushlstring(L, path.data ? path.data : "", path.len);
    else lua_pushnil(L);
    strbuf_free(&path);
}

void json_set_event_root(lua_State *L, int idx) {
    if (idx) lua_pushvalue(L, idx);
    else lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &event_root_key);
}

/* ============================ kinds of table ============================= */

int json_kind(lua_State *L, int idx) {
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
    lua_pop(L, 1);
    lua_pushliteral(L, "__newindex");
    lua_rawget(L, -2);
    int ours = lua_tocfunction(L, -1) == ro_newindex;
    lua_pop(L, 1);
    if (!ours) { lua_pop(L, 1); lua_pushvalue(L, idx); return JSON_KIND_PLAIN; }
    lua_pushliteral(L, "__len");
    int is_array = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 1);
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);
    lua_remove(L, -2);
    return is_array ? JSON_KIND_READONLY_ARRAY : JSON_KIND_READONLY_OBJECT;
}

int json_is_array(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    int kind = json_kind(L, idx);
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
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "object");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &object_mt_key);
}

static int l_decode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char err[256];
    if (json_decode(L, s, n, lua_toboolean(L, 2) ? JSON_READONLY : JSON_WRITABLE, err, sizeof err)) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid JSON: %s", err);
        return 2;
    }
    return 1;
}

static int l_encode(lua_State *L) {
    luaL_checkany(L, 1);
    strbuf out = {0};
    char err[320];
    if (json_encode(L, 1, &out, err, sizeof err)) {
        strbuf_free(&out);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot encode: %s", err);
        return 2;
    }
    lua_pushlstring(L, out.data ? out.data : "", out.len);
    strbuf_free(&out);
    return 1;
}

/* returnflow.array(t) / returnflow.object(t): mark t (or a new table). */
static int mark(lua_State *L, const void *key) {
    if (lua_isnoneornil(L, 1)) lua_newtable(L);
    else luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    lua_setmetatable(L, 1);
    return 1;
}
static int l_array(lua_State *L) { return mark(L, &array_mt_key); }
static int l_object(lua_State *L) { return mark(L, &object_mt_key); }

static int l_is_array(lua_State *L) {
    lua_pushboolean(L, json_is_array(L, 1));
    return 1;
}

int json_luaopen(lua_State *L) {
    static const luaL_Reg fns[] = {
        { "decode", l_decode }, { "encode", l_encode }, { "array", l_array },
        { "object", l_object }, { "is_array", l_is_array }, { NULL, NULL },
    };
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
