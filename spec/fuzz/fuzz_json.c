/*
 * fuzz_json.c: libFuzzer target for core/json (json.c, json_event.c, json_encode.c).
 *
 * Why: every webhook body, every recalled memory and every Klaviyo answer goes through this parser
 * first, and the event path trusts what it decoded. So for any bytes:
 *
 *   1. nothing crashes, leaks or hits undefined behaviour (the build is ASan+UBSan);
 *   2. the scan accepts exactly what a reference accepts: lua-cjson, set strict (no NaN, infinity
 *      or hex numbers; 256 levels, our JSON_MAX_DEPTH), and where the two differ on purpose the
 *      difference is checked, not assumed:
 *        - invalid UTF-8: cjson passes it through, we refuse it: Lua's own strict utf8.len must
 *          refuse the bytes where we stopped;
 *        - a raw control character in a string: cjson keeps it, we refuse it: the byte where we
 *          stopped must be below 0x20;
 *        - a number that overflows a double: cjson gives inf, we refuse it: strtod must give inf
 *          where we stopped; and a number over JSON_MAX_NUMBER (300) characters, refused outright;
 *        - numbers cjson's strtod completes ("1.", "-.5", "1.e5"): our refusal must be a number
 *          error right after a '.' or a '-';
 *        - a NUL byte: cjson stops reading at it, we never accept one (checked, then skipped);
 *        - a UTF-8 byte order mark at the start: we skip it, so cjson is given the text without it;
 *   3. what is accepted decodes to cjson's value (numbers compared as doubles: our integers are
 *      exact where cjson rounds; duplicate keys: the last one wins in both);
 *   4. encoding is canonical: decode(encode(v)) is v (integers stay integers, [] stays apart from
 *      {}) and encodes to the same bytes; json_pretty of those bytes decodes to v too;
 *   5. the read-only event, read partly first in an order the input chooses, has the same values
 *      and encodes to the same bytes as the writable decode; a write to it is refused;
 *      encoding under (small) limits gives the same bytes or fails naming a limit;
 *   6. json_value_end and json_each_member agree with the scan;
 *   7. json_append_string of any bytes is a JSON string literal that decodes.
 * A broken invariant aborts with what broke, so libFuzzer saves the input.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_tape.h"
#include "lauxlib.h"
#include "lua-cjson.h"
#include "lualib.h"
#include "strbuf.h"

static lua_State *L;
static int cjson_decode_ref, utf8_len_ref, kept_event_ref;

__attribute__((noreturn, format(printf, 1, 2))) static void broke(const char *fmt, ...);

static void broke(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_json: invariant broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    L = luaL_newstate();
    luaL_openlibs(L);
    json_open(L);
    luaL_requiref(L, "cjson", luaopen_cjson, 0);
    lua_getfield(L, -1, "decode_invalid_numbers");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode_max_depth");
    lua_pushinteger(L, JSON_MAX_DEPTH);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode");
    cjson_decode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    lua_getglobal(L, "utf8");
    lua_getfield(L, -1, "len");
    utf8_len_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 0);
    kept_event_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    return 0;
}

/* ------------------------------ comparing ------------------------------- */

/* Are the values at a and b the same? strict: numbers must also agree on integer or float, and
 * tables on array or object (both ours); else b is cjson's, whose numbers are all doubles and
 * whose tables carry no kind. */
static int same(int a, int b, int strict, int depth) {
    int ta = lua_type(L, a), tb = lua_type(L, b);
    if (ta != tb) return 0;
    switch (ta) {
    case LUA_TNUMBER: {
        if (strict && lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
        if (strict && lua_isinteger(L, a)) return lua_tointeger(L, a) == lua_tointeger(L, b);
        double x = lua_isinteger(L, a) ? (double)lua_tointeger(L, a) : lua_tonumber(L, a);
        double y = lua_isinteger(L, b) ? (double)lua_tointeger(L, b) : lua_tonumber(L, b);
        return x == y;
    }
    case LUA_TTABLE: break;
    default: return lua_rawequal(L, a, b);
    }
    if (depth > JSON_MAX_DEPTH + 1) return 0;
    luaL_checkstack(L, 6, "compare");
    if (strict) {
        int ka = json_kind(L, a), kb = json_kind(L, b);
        lua_pop(L, 2);
        if (ka != kb) return 0;
    }
    lua_Integer na = 0, nb = 0;
    lua_pushnil(L);
    while (lua_next(L, a)) {
        na++;
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        int ok = same(lua_gettop(L) - 1, lua_gettop(L), strict, depth + 1);
        lua_pop(L, 2);
        if (!ok) { lua_pop(L, 1); return 0; }
    }
    lua_pushnil(L);
    while (lua_next(L, b)) { nb++; lua_pop(L, 1); }
    return na == nb;
}

/* Reads every member of the table at 1, nested ones too, 2: the depth (pairs: a stale one raises). */
static int read_all(lua_State *l) {
    luaL_checkstack(l, 8, "read_all");
    lua_Integer depth = lua_tointeger(l, 2);
    if (depth > 32) return 0;
    lua_settop(l, 1);
    lua_getglobal(l, "pairs");
    lua_pushvalue(l, 1);
    lua_call(l, 1, 3);
    for (;;) {
        lua_pushvalue(l, -3);
        lua_pushvalue(l, -3);
        lua_pushvalue(l, -3);
        lua_call(l, 2, 2);
        if (lua_isnil(l, -2)) { lua_pop(l, 2); break; }
        if (lua_type(l, -1) == LUA_TTABLE) {
            lua_pushcfunction(l, read_all);
            lua_pushvalue(l, -2);
            lua_pushinteger(l, depth + 1);
            lua_call(l, 2, 0);
        }
        lua_pop(l, 1);
        lua_replace(l, -2);                       /* the key is the next control value */
    }
    lua_pop(l, 3);
    return 0;
}

/* -------------------------------- steps --------------------------------- */

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static int blank_from(const char *text, size_t from, size_t len) {
    for (size_t i = from; i < len; i++)
        if (!is_blank(text[i])) return 0;
    return 1;
}

/* Pushes cjson's decoding of text and returns 1, or pushes its error and returns 0. */
static int cjson_decode(const char *text, size_t len) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, cjson_decode_ref);
    lua_pushlstring(L, text, len);
    return lua_pcall(L, 1, 1, 0) == 0;
}

/* Encodes the value at idx, which must succeed; returns the bytes (malloc'd, *n long). */
static char *encode(int idx, size_t *n, const char *what) {
    strbuf out = {0};
    char err[320];
    if (json_encode(L, idx, &out, err, sizeof err)) broke("%s does not encode: %s", what, err);
    strbuf_addc(&out, 0);
    *n = out.len - 1;
    return out.data;
}

/* Reads some fields of the read-only value ro (from the writable twin w, same shape) before any
 * whole walk, chosen by the input's bits: the lazy fill must give what the eager build gave. */
static void poke(int ro, int w, const uint8_t *bits, size_t nbits, size_t *at, int depth) {
    if (lua_type(L, w) != LUA_TTABLE || depth > 8) return;
    luaL_checkstack(L, 6, "poke");
    lua_len(L, ro);                               /* __len of an array proxy; 0 for an object proxy */
    lua_Integer rolen = lua_tointeger(L, -1);
    lua_pop(L, 1);
    int warray = json_kind(L, w) == JSON_KIND_ARRAY;
    lua_pop(L, 1);
    if (warray && rolen != (lua_Integer)lua_rawlen(L, w)) broke("#event is %lld, the array has %zu items",
                                                                (long long)rolen, (size_t)lua_rawlen(L, w));
    lua_pushnil(L);
    while (lua_next(L, w)) {
        size_t i = (*at)++;
        int pick = nbits ? (bits[(i / 8) % nbits] >> (i % 8)) & 1 : 1;
        if (pick) {
            int wv = lua_gettop(L);
            lua_pushvalue(L, -2);
            lua_gettable(L, ro);                  /* through __index: the lazy path */
            int rv = lua_gettop(L);
            if (lua_type(L, rv) == LUA_TTABLE) poke(rv, wv, bits, nbits, at, depth + 1);
            else if (!same(rv, wv, 1, 0)) broke("a field of the read-only event differs from the decoded one");
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pushliteral(L, "\x01no such key");       /* a missing key reads as nil */
    int absent = lua_rawget(L, w) == LUA_TNIL;
    lua_pop(L, 1);
    if (absent) {
        lua_pushliteral(L, "\x01no such key");
        if (lua_gettable(L, ro) != LUA_TNIL) broke("a key absent from the event reads as a value");
        lua_pop(L, 1);
    }
}

/* Limits small enough that fuzzed values cross them (the shape of Klaviyo's, klaviyo_limits.c). */
static const json_rules tight = {
    .owner = "the fuzz", .max_string = 24, .max_array = 6, .scope_key = "properties",
    .max_scope_keys = 4, .max_scope_depth = 3,
};

/* With limits and a memo the bytes are the same, or the encoding fails naming a limit; a second
 * encoding with the same memo gives the same bytes again. */
static void check_rules(int idx, const char *enc1, size_t n1) {
    json_memo *memo = json_memo_new();
    char err[320];
    for (int round = 0; round < 2; round++) {
        strbuf out = {0};
        if (json_encode_with(L, idx, &out, &tight, memo, err, sizeof err) == 0) {
            if (out.len != n1 || memcmp(out.data, enc1, n1) != 0) broke("limits changed the bytes: %s", enc1);
        } else if (!strstr(err, "the fuzz")) {
            broke("an encoding under limits failed for another reason: %s", err);
        }
        strbuf_free(&out);
    }
    json_memo_free(memo);
}

static int write_field(lua_State *L1) {
    lua_settable(L1, 1);              /* (t, k, v): t[k] = v through __newindex */
    return 0;
}

/* A write to the read-only event at idx (or a table inside it) is refused, naming where. */
static void check_refused_write(int idx, int root) {
    json_set_event_root(L, root);
    for (int kind = 0; kind < 2; kind++) {
        lua_pushcfunction(L, write_field);
        lua_pushvalue(L, idx);
        if (kind) lua_pushinteger(L, 1);
        else lua_pushliteral(L, "x");
        lua_pushboolean(L, 1);
        if (lua_pcall(L, 3, 0, 0) == LUA_OK) broke("a write to the read-only event was allowed");
        if (!strstr(lua_tostring(L, -1), "event is read-only")) broke("a refused write says %s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    json_set_event_root(L, 0);
}

static int count_member(void *ud, const char *key, size_t klen, const char *value, size_t vlen) {
    (void)key, (void)klen, (void)value, (void)vlen;
    ++*(size_t *)ud;
    return 0;
}

/* Everything that holds once text is accepted; ours is the writable decode at index 1. */
static void check_accepted(const char *text, size_t len, int has_bom, const uint8_t *data, size_t size) {
    size_t n1, n2, n3;
    char *enc1 = encode(1, &n1, "a decoded value");
    char err[256];

    /* 4. canonical round trip */
    if (json_decode(L, enc1, n1, JSON_WRITABLE, err, sizeof err)) broke("encode's output does not decode: %s", err);
    if (!same(1, lua_gettop(L), 1, 0)) broke("decode(encode(v)) differs from v: %s", enc1);
    char *enc2 = encode(lua_gettop(L), &n2, "a re-decoded value");
    if (n1 != n2 || memcmp(enc1, enc2, n1) != 0) broke("encoding is not a fixed point: %s then %s", enc1, enc2);
    lua_pop(L, 1);
    strbuf pretty = {0};
    json_pretty(enc1, n1, &pretty);
    strbuf_addc(&pretty, 0);
    if (json_decode(L, pretty.data, pretty.len - 1, JSON_WRITABLE, err, sizeof err))
        broke("json_pretty's output does not decode: %s", err);
    if (!same(1, lua_gettop(L), 1, 0)) broke("json_pretty changed the value: %s", pretty.data);
    lua_pop(L, 1);
    strbuf_free(&pretty);

    check_rules(1, enc1, n1);

    /* 5. the read-only event */
    if (json_decode(L, text, len, JSON_READONLY, err, sizeof err)) broke("read-only decode refused: %s", err);
    int ro = lua_gettop(L);
    size_t at = 0;
    if (lua_type(L, ro) == LUA_TTABLE) {
        poke(ro, 1, data, size, &at, 0);
        check_refused_write(ro, ro);
        lua_pushnil(L);                           /* and a write to its first table member, if any */
        while (lua_next(L, 1)) {
            if (lua_type(L, -1) == LUA_TTABLE) {
                lua_pushvalue(L, -2);
                lua_gettable(L, ro);
                check_refused_write(lua_gettop(L), ro);
                lua_pop(L, 3);
                break;
            }
            lua_pop(L, 1);
        }
    } else if (!same(ro, 1, 1, 0)) {
        broke("a read-only scalar differs from the writable one");
    }
    char *enc3 = encode(ro, &n3, "the read-only event");
    if (n1 != n3 || memcmp(enc1, enc3, n1) != 0) broke("the read-only event encodes as %s, not %s", enc3, enc1);
    lua_settop(L, 1);

    /* 5b. the mapper's event, on the state's pooled document: the same values and bytes; and the
     * previous input's event, kept, now stale: what was built of it stays, more is refused, never a
     * crash or a read of this input's tape */
    if (json_decode_event(L, text, len, err, sizeof err)) broke("pooled decode refused: %s", err);
    int pooled = lua_gettop(L);
    if (lua_type(L, pooled) == LUA_TTABLE) {
        size_t at2 = 0;
        poke(pooled, 1, data, size, &at2, 0);
    }
    size_t n4;
    char *enc4 = encode(pooled, &n4, "the pooled event");
    if (n1 != n4 || memcmp(enc1, enc4, n1) != 0) broke("the pooled event encodes as %s, not %s", enc4, enc1);
    free(enc4);
    lua_rawgeti(L, LUA_REGISTRYINDEX, kept_event_ref);     /* the previous input's, or nil */
    if (lua_type(L, -1) == LUA_TTABLE) {
        strbuf out = {0};                                  /* encodes, or fails with its own error */
        if (json_encode(L, -1, &out, err, sizeof err) != 0 && !strstr(err, "no longer readable"))
            broke("a stale table's encoding failed: %s", err);
        strbuf_free(&out);
        lua_pushcfunction(L, read_all);
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK && !strstr(lua_tostring(L, -1), "no longer readable"))
            broke("a stale table raised: %s", lua_tostring(L, -1));
    }
    lua_settop(L, pooled);
    lua_rawseti(L, LUA_REGISTRYINDEX, kept_event_ref);
    lua_settop(L, 1);

    /* 6. the scanners that do not build */
    size_t end;
    if (json_value_end(text, len, &end, err, sizeof err)) broke("json_value_end refuses accepted text: %s", err);
    if (!blank_from(text, end, len)) broke("json_value_end stops at %zu, before non-blank data", end);
    const jnode *nodes;
    size_t nn;
    if (json_tape_scan(text, len, &nodes, &nn, NULL, err, sizeof err)) broke("the scan refuses accepted text");
    if (nodes[0].type == JN_OBJECT && !has_bom) {  /* json_each_member reads objects as sent, no BOM */
        size_t seen = 0, members = nodes[0].len;     /* (its own scans reuse the tape) */
        int rc = json_each_member(text, len, count_member, &seen);
        if (rc != 0 || seen != members)
            broke("json_each_member returns %d after %zu members; the object has %zu", rc, seen, members);
    }
    free(enc1);
    free(enc2);
    free(enc3);
}

/* 2. We refused what cjson accepted: only for the documented reasons. */
static void check_refusal(const char *text, const char *err) {
    size_t off = 0;
    if (sscanf(err, "byte %zu", &off) != 1) broke("an error without its byte offset: %s", err);
    /* The offending byte is checked in the text, not in cjson's value: a duplicate key may have
     * replaced the string or number that held it. */
    if (strstr(err, "invalid UTF-8")) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, utf8_len_ref);
        lua_pushlstring(L, text + off, strnlen(text + off, 4));
        lua_call(L, 1, 2);                        /* utf8.len: nil and the position of the first bad one */
        if (!lua_isnil(L, -2) || lua_tointeger(L, -1) != 1)
            broke("refused as invalid UTF-8, yet Lua's utf8.len reads the bytes there: %s", err);
        lua_pop(L, 2);
    } else if (strstr(err, "control character")) {
        if ((unsigned char)text[off] >= 0x20) broke("refused for a control character that is not one: %s", err);
    } else if (strstr(err, "number out of range")) {
        if (!isinf(strtod(text + off, NULL))) broke("refused as out of range, yet the number is finite: %s", err);
    } else if (strstr(err, "number longer than")) {
        /* a documented limit of ours */
    } else if (strstr(err, "invalid number") || strstr(err, "digit expected")) {
        if (off == 0 || (text[off - 1] != '.' && text[off - 1] != '-'))
            broke("a number refused that cjson reads, and not after '.' or '-': %s", err);
    } else {
        broke("cjson accepts what we refuse: %s", err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);                /* text[len] must be readable (json.h) */
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = 0;
    char err[256];
    lua_settop(L, 0);
    int ok = json_decode(L, text, size, JSON_WRITABLE, err, sizeof err) == 0;
    if (!ok) {
        if (lua_gettop(L) != 0) broke("a refused decode left a value on the stack");
        size_t end;
        char err2[256];
        if (json_value_end(text, size, &end, err2, sizeof err2) == 0 && blank_from(text, end, size))
            broke("json_value_end accepts what the scan refuses (%s)", err);
    }

    /* 7. a message made of any bytes prints as a JSON string */
    strbuf lit = {0};
    json_append_string(&lit, text, size);
    strbuf_addc(&lit, 0);
    if (json_decode(L, lit.data, lit.len - 1, JSON_WRITABLE, err, sizeof err) || lua_type(L, -1) != LUA_TSTRING)
        broke("json_append_string wrote what does not decode as a string: %s", lit.data);
    lua_pop(L, 1);
    strbuf_free(&lit);

    if (memchr(text, 0, size)) {                  /* cjson would stop at the NUL */
        if (ok) broke("a text holding a NUL byte was accepted");
        goto done;
    }
    size_t skip = 0;
    while (skip < size && is_blank(text[skip])) skip++;
    int has_bom = size - skip >= 3 && memcmp(text + skip, "\xef\xbb\xbf", 3) == 0;
    strbuf ref = {0};
    strbuf_add(&ref, text, skip);
    if (has_bom) strbuf_add(&ref, text + skip + 3, size - skip - 3);
    else strbuf_add(&ref, text + skip, size - skip);
    int ref_ok = cjson_decode(ref.data ? ref.data : "", ref.len);
    if (ok && !ref_ok) broke("we accept what cjson refuses (%s): %.200s", lua_tostring(L, -1), text);
    if (ok) {
        if (!same(1, 2, 0, 0)) broke("the decoded value differs from cjson's: %.200s", text);
        lua_settop(L, 1);
        check_accepted(text, size, has_bom, data, size);
    } else if (ref_ok) {
        check_refusal(text, err);
    }
    strbuf_free(&ref);
done:
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);                  /* free this input's values now, so libFuzzer's count of */
    free(text);                                   /* mallocs and frees balances and it suspects no leak */
    return 0;
}
