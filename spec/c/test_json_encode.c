/*
 * test_json_encode.c: what core/json/json_encode.c promises about writing Lua values as JSON.
 *
 * Why these tests: every body sent to Klaviyo is written here, and a body stored today must be
 * the body sent tomorrow. So the same value must always give the same bytes, a float must stay a
 * float (3.0, not 3), and whatever JSON cannot carry (NaN, holes in a list, boolean keys,
 * functions, invalid UTF-8, a cycle) must be refused with the path of the value, never guessed
 * at, truncated or crashed on. The helpers for people (json_append_string, json_pretty) must
 * always print and must not change the value.
 *
 * Each test gets a fresh state with the standard libraries, json_open and the Lua binding as the
 * global `json`, so values are built in Lua where that reads better than the C API. The pretty
 * test reads the repository's fixtures/loop/return.created.json (SPEC_FIXTURES, compiled in).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "lauxlib.h"
#include "lualib.h"
#include "strbuf.h"

/* -------------------------------- helpers --------------------------------- */

static int setup(void **state) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    json_open(L);
    json_luaopen(L);
    lua_setglobal(L, "json");
    *state = L;
    return 0;
}

static int teardown(void **state) {
    lua_close(*state);
    return 0;
}

/* Decodes text (which must be valid) and pushes the value. */
static void decode_ok(lua_State *L, const char *text, size_t len, int mode) {
    char err[256] = "";
    int top = lua_gettop(L);
    if (json_decode(L, text, len, mode, err, sizeof err)) fail_msg("decode of %s failed: %s", text, err);
    assert_int_equal(lua_gettop(L), top + 1);
}

/* Encodes the value at idx (which must succeed); returns a malloc'd string. */
static char *encode_ok(lua_State *L, int idx) {
    strbuf out = {0};
    char err[512] = "";
    int top = lua_gettop(L);
    if (json_encode(L, idx, &out, err, sizeof err)) {
        strbuf_free(&out);
        fail_msg("encode failed: %s", err);
    }
    assert_int_equal(lua_gettop(L), top);
    strbuf_addc(&out, 0);
    return out.data;
}

/* Encodes the value at idx, which must fail; returns the message (static). The output
 * buffer holds bytes beforehand, which must be left exactly as they were. */
static const char *encode_fails(lua_State *L, int idx) {
    static char err[512];
    strbuf out = {0};
    strbuf_adds(&out, "kept");
    int top = lua_gettop(L);
    err[0] = 0;
    assert_int_equal(json_encode(L, idx, &out, err, sizeof err), -1);
    assert_int_equal(lua_gettop(L), top);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "kept", 4);
    strbuf_free(&out);
    return err;
}

/* decode then encode, compared with want; the stack is left as it was. */
static void assert_roundtrip(lua_State *L, const char *in, const char *want) {
    decode_ok(L, in, strlen(in), JSON_WRITABLE);
    char *got = encode_ok(L, -1);
    assert_string_equal(got, want);
    free(got);
    lua_pop(L, 1);
}

/* Runs Lua code returning one value and pushes it. */
static void push_lua(lua_State *L, const char *code) {
    if (luaL_loadstring(L, code) || lua_pcall(L, 0, 1, 0)) fail_msg("%s: %s", code, lua_tostring(L, -1));
}

static void assert_contains(const char *s, const char *part) {
    if (!strstr(s, part)) fail_msg("\"%s\" does not contain \"%s\"", s, part);
}

/* Reads a whole file; returns a malloc'd NUL-terminated buffer. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    strbuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) strbuf_add(&b, chunk, n);
    fclose(f);
    *len = b.len;
    strbuf_addc(&b, 0);
    return b.data;
}

/* -------------------------- numbers and strings --------------------------- */

static void floats_encode_shortest_and_stay_floats(void **state) {
    lua_State *L = *state;
    static const struct { double v; const char *want; } cases[] = {
        { 118.8, "118.8" }, { 3.0, "3.0" }, { 1e300, "1e+300" }, { -0.0, "-0.0" }, { 0.1, "0.1" },
        { 1.5e-7, "1.5e-07" }, { 1.0 / 3.0, "0.3333333333333333" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lua_pushnumber(L, cases[i].v);
        char *s = encode_ok(L, -1);
        assert_string_equal(s, cases[i].want);
        lua_pop(L, 1);
        decode_ok(L, s, strlen(s), JSON_WRITABLE);
        assert_false(lua_isinteger(L, -1));
        assert_true(lua_tonumber(L, -1) == cases[i].v);
        assert_int_equal(!!signbit(lua_tonumber(L, -1)), !!signbit(cases[i].v));
        lua_pop(L, 1);
        free(s);
    }
    assert_roundtrip(L, "[118.80,3.0,1e300,-0.0]", "[118.8,3.0,1e+300,-0.0]");
}

/* The reference: the shortest of %.15g/%.16g/%.17g that reads back, ".0" added to an integral one. */
static void float_reference(double d, char *num, size_t size) {
    int n = snprintf(num, size, "%.15g", d);
    if (strtod(num, NULL) != d) n = snprintf(num, size, "%.16g", d);
    if (strtod(num, NULL) != d) n = snprintf(num, size, "%.17g", d);
    if (!strpbrk(num, ".eEn")) snprintf(num + n, size - (size_t)n, ".0");
}

/* Money and other short decimals take a quicker way than snprintf: the same bytes, at every
 * magnitude, number of places, sign, and the neighbours of each value (which take the general way). */
static void short_decimals_encode_as_snprintf_does(void **state) {
    lua_State *L = *state;
    char want[64], err[128];
    strbuf out = {0};
    uint64_t seed = 88172645463325252ull;
    for (int i = 0; i < 100000; i++) {
        seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
        int places = (int)(seed % 12), digits = 1 + (int)((seed >> 8) % 17);
        uint64_t mantissa = (seed >> 16) % 100000000000000000ull;
        for (int k = digits; k < 17; k++) mantissa /= 10;
        double d = (double)mantissa;
        for (int k = 0; k < places; k++) d /= 10;
        if (seed >> 63) d = -d;
        double near[] = { d, nextafter(d, INFINITY), nextafter(d, -INFINITY), d * 1e-4, (double)(seed >> 11) / 9007199254740992.0 };
        for (size_t j = 0; j < sizeof near / sizeof *near; j++) {
            lua_pushnumber(L, near[j]);
            out.len = 0;
            assert_int_equal(json_encode(L, -1, &out, err, sizeof err), 0);
            lua_pop(L, 1);
            float_reference(near[j], want, sizeof want);
            if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0)
                fail_msg("%.17g: %.*s, want %s", near[j], (int)out.len, out.data, want);
        }
    }
    strbuf_free(&out);
}

static void nan_and_infinity_are_refused_with_a_message(void **state) {
    lua_State *L = *state;
    const double bad[] = { NAN, HUGE_VAL, -HUGE_VAL };
    for (size_t i = 0; i < 3; i++) {
        lua_pushnumber(L, bad[i]);
        assert_contains(encode_fails(L, -1), "number is NaN or infinite");
        lua_pop(L, 1);
    }
    push_lua(L, "return { total = 0/0 }");
    assert_string_equal(encode_fails(L, -1), "total: number is NaN or infinite, which JSON cannot carry");
    lua_pop(L, 1);
}

static void control_characters_are_escaped_on_encode(void **state) {
    lua_State *L = *state;
    const char raw[] = "a\"b\\c\n\r\t\b\f\x01\x1f\x7f";
    const char *want = "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f\"";
    lua_pushlstring(L, raw, sizeof raw - 1);
    char *s = encode_ok(L, -1);
    assert_string_equal(s, want);
    lua_pop(L, 1);
    decode_ok(L, s, strlen(s), JSON_WRITABLE);
    assert_int_equal(lua_rawlen(L, -1), sizeof raw - 1);
    assert_memory_equal(lua_tostring(L, -1), raw, sizeof raw - 1);
    lua_pop(L, 1);
    free(s);
}

static void encoder_refuses_invalid_utf8_naming_the_path(void **state) {
    lua_State *L = *state;
    push_lua(L, "return { customer = { name = 'Mar\\xed' } }");
    assert_string_equal(encode_fails(L, -1), "customer.name: string is not valid UTF-8 (byte 0xed at 3)");
    lua_pop(L, 1);
}

/* --------------------------------- tables --------------------------------- */

static void encoder_makes_arrays_only_of_keys_exactly_1_to_n(void **state) {
    lua_State *L = *state;
    push_lua(L, "return { {'a','b'}, {[3]='c',[1]='a',[2]='b'}, {[1]=true} }");
    char *s = encode_ok(L, -1);
    assert_string_equal(s, "[[\"a\",\"b\"],[\"a\",\"b\",\"c\"],[true]]");
    free(s);
    lua_pop(L, 1);
    static const char *const not_lists[] = { "return {[2]='b',[3]='c'}", "return {[0]='z',[1]='a'}",
                                             "return {[-1]=1}" };
    for (size_t i = 0; i < 3; i++) {
        push_lua(L, not_lists[i]);
        assert_string_equal(encode_fails(L, -1), "a list with holes or keys outside 1..n cannot be a JSON array");
        lua_pop(L, 1);
    }
}

static void encoder_refuses_a_list_with_holes_naming_the_path(void **state) {
    lua_State *L = *state;
    push_lua(L, "return { a = { b = { 1, { 1, nil, 3 } } } }");
    assert_string_equal(encode_fails(L, -1), "a.b[2]: a list with holes or keys outside 1..n cannot be a JSON array");
    lua_pop(L, 1);
}

static void encoder_refuses_an_array_with_string_keys_naming_the_path(void **state) {
    lua_State *L = *state;
    push_lua(L, "return { x = json.array({ 1, 2, k = 3 }) }");
    assert_string_equal(encode_fails(L, -1), "x: a list with holes or keys outside 1..n cannot be a JSON array");
    lua_pop(L, 1);
    push_lua(L, "local t = json.decode('{\"l\":[1,2]}') t.l.k = 1 return t");
    assert_string_equal(encode_fails(L, -1), "l: a list with holes or keys outside 1..n cannot be a JSON array");
    lua_pop(L, 1);
}

static void encoder_refuses_boolean_and_float_keys(void **state) {
    lua_State *L = *state;
    push_lua(L, "return { a = { [true] = 1 } }");
    assert_string_equal(encode_fails(L, -1), "a: a table key of type boolean cannot be a JSON key");
    lua_pop(L, 1);
    push_lua(L, "return { a = { [1.5] = 1 } }");
    assert_string_equal(encode_fails(L, -1), "a: a table key of type number cannot be a JSON key");
    lua_pop(L, 1);
}

static void encoder_refuses_functions_naming_the_path(void **state) {
    lua_State *L = *state;
    push_lua(L, "return { items = { { f = print } } }");
    assert_string_equal(encode_fails(L, -1), "items[1].f: a function cannot be encoded as JSON");
    lua_pop(L, 1);
    lua_pushlightuserdata(L, &state);
    assert_string_equal(encode_fails(L, -1), "a userdata cannot be encoded as JSON");
    lua_pop(L, 1);
}

static void encoder_prints_integer_keys_of_an_object_as_strings(void **state) {
    lua_State *L = *state;
    push_lua(L, "return { [10] = 'x', [2] = 'y', k = 'z' }");
    char *s = encode_ok(L, -1);
    assert_string_equal(s, "{\"10\":\"x\",\"2\":\"y\",\"k\":\"z\"}");
    free(s);
    lua_pop(L, 1);
}

/* A Lua error raised while encoding (here the memory of a capped state, met when an integer key is
 * made a string) unwinds through the encoder: nothing of the encoder's may stay allocated (the
 * ASan build's LeakSanitizer fails this test when the encoder was on the heap). */
typedef struct { size_t used, limit; } alloc_budget;

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    alloc_budget *b = ud;
    if (!ptr) osize = 0;
    if (nsize == 0) { free(ptr); b->used -= osize; return NULL; }
    if (nsize > osize && b->used + (nsize - osize) > b->limit) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) b->used = b->used - osize + nsize;
    return p;
}

static strbuf raised_out;                  /* kept across the raise: the caller's, freed below */

static int encode_first(lua_State *L) {
    char err[256];
    raised_out.len = 0;
    lua_pushinteger(L, json_encode(L, 1, &raised_out, err, sizeof err));
    return 1;
}

static void an_error_raised_while_encoding_leaves_nothing_allocated(void **state) {
    (void)state;
    alloc_budget b = { 0, SIZE_MAX };
    lua_State *L = lua_newstate(budget_alloc, &b);
    assert_non_null(L);
    int raised = 0;
    for (int i = 0; i < 40; i++) {
        lua_settop(L, 0);
        lua_createtable(L, 0, 64);             /* integer keys of an object: each made a string */
        for (int k = 0; k < 64; k++) {
            lua_pushboolean(L, 1);
            lua_rawseti(L, -2, 1000000 + 7 * k);
        }
        lua_pushstring(L, "k");                /* a string key: an object, not a list */
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
        lua_pushcfunction(L, encode_first);
        lua_insert(L, 1);
        lua_gc(L, LUA_GCCOLLECT);
        b.limit = b.used + (size_t)(i * 64);   /* room for a few key strings, more each round */
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) raised++;
        b.limit = SIZE_MAX;
    }
    assert_true(raised > 0);                   /* the cap was met inside the encoder */
    lua_close(L);
    strbuf_free(&raised_out);
}

/* Keys sort by their bytes: a key and its extensions (a NUL byte too), keys alike in their first 8
 * bytes, more keys than the insertion sort takes (the rest sort the same way). */
static void keys_sort_by_their_bytes_whatever_their_prefix(void **state) {
    lua_State *L = *state;
    push_lua(L, "return { b = 6, abcdefghX = 3, ['a\\0'] = 2, abcdefgh = 5, a = 1, abcdefghA = 4, ['\\u{e9}'] = 7 }");
    char *s = encode_ok(L, -1);
    assert_string_equal(s, "{\"a\":1,\"a\\u0000\":2,\"abcdefgh\":5,\"abcdefghA\":4,\"abcdefghX\":3,\"b\":6,\"\xc3\xa9\":7}");
    free(s);
    lua_pop(L, 1);
    push_lua(L, "local t = {} for i = 100, 1, -1 do t[string.format('key%03d', i)] = i end "
                "local keys = {} for k in pairs(t) do keys[#keys + 1] = k end table.sort(keys) "
                "local parts = {} for i, k in ipairs(keys) do parts[i] = string.format('\"%s\":%d', k, t[k]) end "
                "return { t, '{' .. table.concat(parts, ',') .. '}' }");
    lua_rawgeti(L, -1, 1);
    s = encode_ok(L, -1);
    lua_rawgeti(L, -2, 2);
    assert_string_equal(s, lua_tostring(L, -1));
    free(s);
    lua_pop(L, 3);
}

/* Tables of one shape encoded in turn (the encoder tries the order of the last one first): each
 * sorts as its own keys do, whether built alike, in another order, with a key changed, or holding a
 * key twice (as a number and as a string), which is refused every time. */
static void tables_alike_sort_each_by_their_own_keys(void **state) {
    lua_State *L = *state;
    push_lua(L, "local cases = {} "
                "for round = 1, 40 do "
                "  local t, order = {}, {} "
                "  for i = 1, 20 do order[i] = i end "
                "  if round % 3 == 0 then for i = 1, 20 do order[i] = 21 - i end end "
                "  for _, i in ipairs(order) do t[string.format('k%02d', i)] = i end "
                "  if round % 5 == 0 then t.k07 = nil; t.z = round end "
                "  if round % 7 == 0 then t.k07 = nil; t.a = round end "
                "  local keys = {} for k in pairs(t) do keys[#keys + 1] = k end table.sort(keys) "
                "  local parts = {} for i, k in ipairs(keys) do parts[i] = string.format('\"%s\":%d', k, t[k]) end "
                "  cases[round] = { t, '{' .. table.concat(parts, ',') .. '}' } "
                "end "
                "return cases");
    for (int round = 1; round <= 40; round++) {
        lua_rawgeti(L, -1, round);
        lua_rawgeti(L, -1, 1);
        char *s = encode_ok(L, -1);
        lua_rawgeti(L, -2, 2);
        if (strcmp(s, lua_tostring(L, -1)) != 0) fail_msg("round %d: %s, want %s", round, s, lua_tostring(L, -1));
        free(s);
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    /* keys made, dropped and collected, then others made, likely at the same addresses */
    for (int round = 0; round < 20; round++) {
        char code[400];
        snprintf(code, sizeof code, "collectgarbage() local t = {} "
                 "for i = 1, 16 do t[string.format('%%s%%02d', string.char(%d + (i * 7 + %d) %% 26), i)] = i end "
                 "local keys = {} for k in pairs(t) do keys[#keys + 1] = k end table.sort(keys) "
                 "local parts = {} for i, k in ipairs(keys) do parts[i] = string.format('\"%%s\":%%d', k, t[k]) end "
                 "return { t, '{' .. table.concat(parts, ',') .. '}' }", 'a', round * 5);
        push_lua(L, code);
        lua_rawgeti(L, -1, 1);
        char *s = encode_ok(L, -1);
        lua_rawgeti(L, -2, 2);
        if (strcmp(s, lua_tostring(L, -1)) != 0) fail_msg("collected %d: %s, want %s", round, s, lua_tostring(L, -1));
        free(s);
        lua_pop(L, 3);
    }
    for (int round = 0; round < 2; round++) {
        push_lua(L, "local t = { ['1'] = 1, [1] = 2 } for i = 1, 14 do t['k' .. i] = i end return t");
        strbuf out = {0};
        char err[256];
        assert_int_equal(json_encode(L, -1, &out, err, sizeof err), -1);
        assert_non_null(strstr(err, "appears twice"));
        strbuf_free(&out);
        lua_pop(L, 1);
    }
}

static void encoder_refuses_a_self_referencing_table_instead_of_crashing(void **state) {
    lua_State *L = *state;
    push_lua(L, "local t = {} t.self = t return t");
    assert_contains(encode_fails(L, -1), "nesting deeper than 256 levels (a cycle?)");
    lua_pop(L, 1);
    push_lua(L, "local t = {} t[1] = t return t");
    assert_contains(encode_fails(L, -1), "nesting deeper than 256 levels (a cycle?)");
    lua_pop(L, 1);
}

static void encoder_keeps_earlier_members_when_a_later_child_is_large(void **state) {
    lua_State *L = *state;
    /* An object below with more keys than the encoder held before: its scratch list of
     * members must grow under the parents that are still being written. */
    push_lua(L, "local big = {} for i = 1, 50000 do big['k' .. i] = i end\n"
                "return { a = 'first', b = big, c = 'last', d = { e = big, f = 'deep last' } }");
    char *s = encode_ok(L, -1);
    lua_pop(L, 1);
    const char *head = "{\"a\":\"first\",\"b\":{\"k1\":1,\"k10\":10,\"k100\":100,";
    assert_memory_equal(s, head, strlen(head));
    assert_contains(s, ",\"k9999\":9999},\"c\":\"last\",\"d\":{\"e\":{\"k1\":1,");
    assert_contains(s, ",\"k9999\":9999},\"f\":\"deep last\"}}");
    free(s);
}

/* ---------------------- markers and read-only values ---------------------- */

/* A marked array is encoded as its keys come (1..n, in order) when they do; built any other way, or
 * with a hole, a key past n or a bad item, it gives what it always gave: its items in order, or the
 * hole's error before any item's. */
static void marked_arrays_encode_and_fail_the_same_whatever_their_build(void **state) {
    lua_State *L = *state;
    static const struct { const char *lua, *want; } cases[] = {
        { "return json.array { 1, 'b', { x = 1 }, json.array { 2 } }", "[1,\"b\",{\"x\":1},[2]]" },
        { "local t = json.array() t[3] = 'c' t[2] = 'b' t[1] = 'a' return t", "[\"a\",\"b\",\"c\"]" },
        { "local t = json.array() for i = 40, 1, -1 do t[i] = i end return t", NULL },
        { "local t = json.array { 1, 2, 3 } t[2] = nil t[2] = 9 return t", "[1,9,3]" },
        { "return json.array { 'ok', '\xff', x = 1 }", "a list with holes or keys outside 1..n cannot be a JSON array" },
        { "return json.array { 'ok', '\xff' }", "[2]: string is not valid UTF-8 (byte 0xff at 0)" },
        { "local t = json.array { 1, 2 } t[4] = 4 return t", "a list with holes or keys outside 1..n cannot be a JSON array" },
        { "return json.array { 1, { y = '\xff' }, [5] = 5 }", "a list with holes or keys outside 1..n cannot be a JSON array" },
        { "return json.array { 1, { y = '\xff' } }", "[2].y: string is not valid UTF-8 (byte 0xff at 0)" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        push_lua(L, cases[i].lua);
        strbuf out = {0};
        char err[256] = "";
        int rc = json_encode(L, -1, &out, err, sizeof err);
        if (!cases[i].want) {                        /* 1..40 */
            assert_int_equal(rc, 0);
            assert_true(out.len > 2 && memcmp(out.data, "[1,2,3,", 7) == 0 && memcmp(out.data + out.len - 4, ",40]", 4) == 0);
        } else if (cases[i].want[0] == '[' && cases[i].want[1] != '2') {
            if (rc) fail_msg("case %zu: %s", i, err);
            if (out.len != strlen(cases[i].want) || memcmp(out.data, cases[i].want, out.len) != 0)
                fail_msg("case %zu: %.*s, want %s", i, (int)out.len, out.data, cases[i].want);
        } else {
            assert_int_equal(rc, -1);
            if (strcmp(err, cases[i].want) != 0) fail_msg("case %zu: %s, want %s", i, err, cases[i].want);
        }
        strbuf_free(&out);
        lua_pop(L, 1);
    }
}

static void array_and_object_markers_force_brackets_for_empty_tables(void **state) {
    lua_State *L = *state;
    push_lua(L, "return { a = json.array(), b = json.object(), c = {}, d = json.array({}),"
                " e = tostring(json.is_array(json.array())), f = tostring(json.is_array(json.object())) }");
    char *s = encode_ok(L, -1);
    assert_string_equal(s, "{\"a\":[],\"b\":{},\"c\":{},\"d\":[],\"e\":\"true\",\"f\":\"false\"}");
    free(s);
    lua_pop(L, 1);
}

static void object_marker_prints_integer_keys_as_strings(void **state) {
    lua_State *L = *state;
    push_lua(L, "local by_line = json.object() by_line[1] = 'a' by_line[2] = 'b' return { by_line = by_line }");
    char *s = encode_ok(L, -1);
    assert_string_equal(s, "{\"by_line\":{\"1\":\"a\",\"2\":\"b\"}}");
    free(s);
    lua_pop(L, 1);
}

static const char event_json[] =
    "{\"id\":7,\"customer_detail\":{\"email\":\"m@example.com\",\"middle_name\":null},"
    "\"line_items\":[{\"sku\":\"A\"},{\"sku\":\"B\"}],\"labels\":[],\"extra\":{}}";

static void encoding_a_readonly_event_gives_the_writable_bytes(void **state) {
    lua_State *L = *state;
    decode_ok(L, event_json, sizeof event_json - 1, JSON_WRITABLE);
    char *writable = encode_ok(L, -1);
    decode_ok(L, event_json, sizeof event_json - 1, JSON_READONLY);
    char *readonly = encode_ok(L, -1);
    assert_string_equal(readonly, writable);
    assert_contains(readonly, "\"extra\":{},\"id\":7,\"labels\":[]");
    free(writable), free(readonly);
    lua_pop(L, 2);
}

/* ------------------------------- for people ------------------------------- */

static void append_string_escapes_and_replaces_invalid_utf8(void **state) {
    (void)state;
    strbuf out = {0};
    strbuf_adds(&out, "x=");
    const char in[] = "a\"b\xff" "c\n\xc3\xa9\0z\xe6\x9d";
    json_append_string(&out, in, sizeof in - 1);
    const char want[] = "x=\"a\\\"b\xef\xbf\xbd" "c\\n\xc3\xa9\\u0000z\xef\xbf\xbd\xef\xbf\xbd\"";
    assert_int_equal(out.len, sizeof want - 1);
    assert_memory_equal(out.data, want, out.len);
    strbuf_free(&out);
}

static void pretty_output_indents_by_two_spaces_and_reparses_to_the_same_value(void **state) {
    lua_State *L = *state;
    const char *compact = "{\"a\":[1,{}],\"b\":\"x,y:{\\\"z\\\"}\\\\\"}";
    strbuf pretty = {0};
    json_pretty(compact, strlen(compact), &pretty);
    strbuf_addc(&pretty, 0);
    assert_string_equal(pretty.data,
        "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": \"x,y:{\\\"z\\\"}\\\\\"\n}");
    assert_roundtrip(L, pretty.data, compact);
    strbuf_free(&pretty);

    size_t len;
    const char *path = SPEC_FIXTURES "/return.created.json";
    char *text = slurp(path, &len);
    decode_ok(L, text, len, JSON_WRITABLE);
    char *canonical = encode_ok(L, -1);
    lua_pop(L, 1);
    json_pretty(canonical, strlen(canonical), &pretty);
    strbuf_addc(&pretty, 0);
    assert_roundtrip(L, pretty.data, canonical);
    strbuf_free(&pretty);
    free(text), free(canonical);
}

static void a_key_printed_twice_is_refused(void **state) {
    lua_State *L = *state;
    assert_int_equal(luaL_dostring(L, "return { [1] = 'a', ['1'] = 'b' }"), LUA_OK);
    const char *msg = encode_fails(L, -1);
    assert_non_null(strstr(msg, "key '1' appears twice"));
    lua_pop(L, 1);
}

/* Caught by spec/fuzz/fuzz_json.c (clang's UBSan; gcc's does not check NULL + 0): an empty object as
 * the first table a thread encodes took an offset of its still-NULL member scratch. */
static void an_empty_object_encodes_first_on_a_fresh_thread(void **state) {
    lua_State *L = *state;
    json_encode_thread_done();                  /* as on a new thread: no scratch yet */
    push_lua(L, "return {}");
    strbuf out = {0};
    char err[128];
    assert_int_equal(json_encode(L, -1, &out, err, sizeof err), 0);
    assert_int_equal(out.len, 2);
    assert_memory_equal(out.data, "{}", 2);
    strbuf_free(&out);
    lua_pop(L, 1);
}

/* The reference: what enc_string writes, byte by byte (the encoder steps 16 bytes at a time and
 * reads a short tail within its page: every length and every place of the byte must agree). */
static void escape_reference(strbuf *out, const char *s, size_t n) {
    strbuf_addc(out, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char u[8];
        if (c == '"' || c == '\\') { strbuf_addc(out, '\\'); strbuf_addc(out, (char)c); }
        else if (c == '\n') strbuf_adds(out, "\\n");
        else if (c == '\r') strbuf_adds(out, "\\r");
        else if (c == '\t') strbuf_adds(out, "\\t");
        else if (c == '\b') strbuf_adds(out, "\\b");
        else if (c == '\f') strbuf_adds(out, "\\f");
        else if (c < 0x20 || c == 0x7f) { snprintf(u, sizeof u, "\\u%04x", c); strbuf_adds(out, u); }
        else strbuf_addc(out, (char)c);
    }
    strbuf_addc(out, '"');
}

static void strings_escape_the_same_at_every_length_and_place(void **state) {
    lua_State *L = *state;
    static const char *const odd[] = { "\"", "\\", "\n", "\x01", "\x7f", "\x1f", "\xc3\xa9", "\xe2\x82\xac" };
    char text[64];
    strbuf out = {0}, want = {0};
    char err[256];
    for (size_t n = 0; n <= 48; n++) {
        for (size_t k = 0; k < sizeof odd / sizeof *odd; k++) {
            size_t olen = strlen(odd[k]);
            for (size_t at = 0; at <= n; at++) {     /* at == n: no odd byte at all */
                if (at < n && at + olen > n) continue;
                memset(text, 'a', n);
                if (at < n) memcpy(text + at, odd[k], olen);
                lua_pushlstring(L, text, n);
                out.len = want.len = 0;
                assert_int_equal(json_encode(L, -1, &out, err, sizeof err), 0);
                escape_reference(&want, text, n);
                if (out.len != want.len || memcmp(out.data, want.data, want.len) != 0)
                    fail_msg("length %zu, byte %zu at %zu: %.*s, want %.*s", n, k, at, (int)out.len, out.data,
                             (int)want.len, want.data);
                lua_pop(L, 1);
                /* json_append_string takes any bytes: no NUL after them here, plain and odd bytes */
                text[n] = (char)(k & 1 ? '"' : 'a');
                memset(text + n + 1, 'a', sizeof text - n - 1);
                out.len = 0;
                json_append_string(&out, text, n);
                if (out.len != want.len || memcmp(out.data, want.data, want.len) != 0)
                    fail_msg("append, length %zu, byte %zu at %zu: %.*s, want %.*s", n, k, at, (int)out.len,
                             out.data, (int)want.len, want.data);
            }
        }
    }
    strbuf_free(&out);
    strbuf_free(&want);
}

/* A memory write holding the properties table of a body copies the body's bytes (the mapper's
 * json_encode_reusing): they must be the bytes a fresh encoding gives, wherever the table sits, and
 * a table deeper than where the body met it (where the depth limit could differ) is encoded anew. */
static void reusing_a_memo_gives_the_bytes_of_a_fresh_encoding(void **state) {
    lua_State *L = *state;
    static const json_rules rules = { "Klaviyo's", 0, 0, "properties", 400, 10 };
    assert_int_equal(luaL_loadstring(L, "local p = { b = 2, a = json.array(), s = 'x\\u{e9}', n = { 1.5, json.null } }\n"
                                        "return { data = { attributes = { properties = p } } }, p"), LUA_OK);
    assert_int_equal(lua_pcall(L, 0, 2, 0), LUA_OK);
    int body = lua_gettop(L) - 1, props = lua_gettop(L);
    json_memo *memo = json_memo_new();
    strbuf out = {0}, fresh = {0}, reused = {0};
    char err[256] = "";
    assert_int_equal(json_encode_with(L, body, &out, &rules, memo, err, sizeof err), 0);
    const char *shapes[] = {
        "local p = ... return { key = 'k', properties = p, other = { p, 3 } }",   /* shallower: copied */
        "local p = ... return { a = { b = { c = { d = { properties = p } } } } }", /* deeper: encoded */
        "local p = ... return p",
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        assert_int_equal(luaL_loadstring(L, shapes[i]), LUA_OK);
        lua_pushvalue(L, props);
        assert_int_equal(lua_pcall(L, 1, 1, 0), LUA_OK);
        fresh.len = reused.len = 0;
        assert_int_equal(json_encode(L, -1, &fresh, err, sizeof err), 0);
        assert_int_equal(json_encode_reusing(L, -1, &reused, memo, err, sizeof err), 0);
        assert_int_equal(reused.len, fresh.len);
        assert_memory_equal(reused.data, fresh.data, fresh.len);
        lua_pop(L, 1);
    }
    json_memo_free(memo);
    strbuf_free(&out);
    strbuf_free(&fresh);
    strbuf_free(&reused);
    lua_pop(L, 2);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(floats_encode_shortest_and_stay_floats),
        T(short_decimals_encode_as_snprintf_does),
        T(an_empty_object_encodes_first_on_a_fresh_thread),
        T(nan_and_infinity_are_refused_with_a_message),
        T(control_characters_are_escaped_on_encode),
        T(encoder_refuses_invalid_utf8_naming_the_path),
        T(encoder_makes_arrays_only_of_keys_exactly_1_to_n),
        T(encoder_refuses_a_list_with_holes_naming_the_path),
        T(encoder_refuses_an_array_with_string_keys_naming_the_path),
        T(encoder_refuses_boolean_and_float_keys),
        T(encoder_refuses_functions_naming_the_path),
        T(encoder_prints_integer_keys_of_an_object_as_strings),
        T(an_error_raised_while_encoding_leaves_nothing_allocated),
        T(keys_sort_by_their_bytes_whatever_their_prefix),
        T(tables_alike_sort_each_by_their_own_keys),
        T(encoder_refuses_a_self_referencing_table_instead_of_crashing),
        T(array_and_object_markers_force_brackets_for_empty_tables),
        T(marked_arrays_encode_and_fail_the_same_whatever_their_build),
        T(object_marker_prints_integer_keys_as_strings),
        T(encoding_a_readonly_event_gives_the_writable_bytes),
        T(append_string_escapes_and_replaces_invalid_utf8),
        T(pretty_output_indents_by_two_spaces_and_reparses_to_the_same_value),
        T(a_key_printed_twice_is_refused),
        T(reusing_a_memo_gives_the_bytes_of_a_fresh_encoding),
        T(strings_escape_the_same_at_every_length_and_place),
        /* Last: while core/json/json_encode.c reuses a moved members list, this one can crash. */
        T(encoder_keeps_earlier_members_when_a_later_child_is_large),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
