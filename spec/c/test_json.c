/*
 * test_json.c: what core/json/json.c promises about reading JSON into Lua, one behaviour a test.
 *
 * Why these tests: the event path trusts json.c for meaning it cannot check later. Ids like
 * 13377290551445 and money must survive exactly; null, [] and {} must not collapse into one
 * another; decode then encode must give canonical bytes (keys sorted bytewise, compact) and be a
 * fixed point, since outputs are compared and deduplicated; bad input must be refused with the
 * byte offset a merchant can find; and the read-only event a handler receives must read like a
 * table but refuse writes by the field's full path. The encoder's own rules are in
 * test_json_encode.c.
 *
 * Each test gets a fresh state with the standard libraries, json_open and the Lua binding as the
 * global `json`, so values are built in Lua where that reads better than the C API.
 * Fixtures are read from the repository's fixtures/loop (SPEC_FIXTURES, an absolute path the Makefile
 * compiles in, so a test runs from any folder).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "lauxlib.h"
#include "lua-cjson.h"
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

/* decode then encode, compared with want; the stack is left as it was. */
static void assert_roundtrip(lua_State *L, const char *in, const char *want) {
    decode_ok(L, in, strlen(in), JSON_WRITABLE);
    char *got = encode_ok(L, -1);
    assert_string_equal(got, want);
    free(got);
    lua_pop(L, 1);
}

/* Decoding text must fail with a message starting "byte N: " and holding `what`. */
static void assert_decode_error(lua_State *L, const char *text, size_t byte, const char *what) {
    char err[256] = "", prefix[32];
    int top = lua_gettop(L);
    assert_int_equal(json_decode(L, text, strlen(text), JSON_WRITABLE, err, sizeof err), -1);
    assert_int_equal(lua_gettop(L), top);
    snprintf(prefix, sizeof prefix, "byte %zu: ", byte);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, what))
        fail_msg("input %s: got \"%s\", want \"%s...%s\"", text, err, prefix, what);
}

/* Runs Lua code returning one value and pushes it. */
static void push_lua(lua_State *L, const char *code) {
    if (luaL_loadstring(L, code) || lua_pcall(L, 0, 1, 0)) fail_msg("%s: %s", code, lua_tostring(L, -1));
}

/* Runs Lua code that must raise; returns the message (static). */
static const char *lua_fails(lua_State *L, const char *code) {
    static char msg[2048];
    if (luaL_loadstring(L, code)) fail_msg("%s: %s", code, lua_tostring(L, -1));
    if (lua_pcall(L, 0, 0, 0) == LUA_OK) fail_msg("%s: did not raise", code);
    snprintf(msg, sizeof msg, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return msg;
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

/* Nested arrays: "[[[...]]]" of `levels` levels; malloc'd. */
static char *nested_arrays(int levels) {
    char *s = malloc((size_t)levels * 2 + 1);
    memset(s, '[', (size_t)levels);
    memset(s + levels, ']', (size_t)levels);
    s[levels * 2] = 0;
    return s;
}

/* ------------------------- canonical round trips -------------------------- */

static void decode_encode_sorts_keys_bytewise_and_is_compact(void **state) {
    assert_roundtrip(*state,
        " { \"b\" : 1 , \"a\" : { \"d\" : [ true , false , null ] , \"c\" : \"x\" } ,\n"
        "\t\"A\" : 2 , \"\\u00e9\" : 3 , \"z\" : 4 } ",
        "{\"A\":2,\"a\":{\"c\":\"x\",\"d\":[true,false,null]},\"b\":1,\"z\":4,\"\xc3\xa9\":3}");
}

static void encode_of_decode_is_a_fixed_point_for_every_loop_fixture(void **state) {
    lua_State *L = *state;
    const char *dir = SPEC_FIXTURES;
    char path[2048];
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open the Loop fixtures folder %s: %s", dir, strerror(errno));
    int files = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        char *text = slurp(path, &len);
        decode_ok(L, text, len, JSON_WRITABLE);
        char *once = encode_ok(L, -1);
        lua_pop(L, 1);
        decode_ok(L, once, strlen(once), JSON_WRITABLE);
        char *twice = encode_ok(L, -1);
        lua_pop(L, 1);
        assert_string_equal(once, twice);
        free(text), free(once), free(twice);
        files++;
    }
    closedir(d);
    assert_true(files >= 10);
}

/* ---------------------------- null, [] and {} ----------------------------- */

static void null_decodes_to_the_null_light_userdata_that_cjson_uses(void **state) {
    lua_State *L = *state;
    decode_ok(L, "null", 4, JSON_WRITABLE);
    assert_int_equal(lua_type(L, -1), LUA_TLIGHTUSERDATA);
    assert_null(lua_touserdata(L, -1));
    lua_getglobal(L, "json");
    lua_getfield(L, -1, "null");
    assert_true(lua_rawequal(L, -1, -3));
    luaopen_cjson(L);
    lua_getfield(L, -1, "null");
    assert_true(lua_rawequal(L, -1, -5));
    char *s = encode_ok(L, -5);
    assert_string_equal(s, "null");
    free(s);
    lua_pop(L, 5);
}

static void null_inside_arrays_and_objects_round_trips_without_holes(void **state) {
    lua_State *L = *state;
    decode_ok(L, "[1,null,3]", 10, JSON_WRITABLE);
    assert_int_equal(lua_rawlen(L, -1), 3);
    assert_int_equal(lua_rawgeti(L, -1, 2), LUA_TLIGHTUSERDATA);
    lua_pop(L, 2);
    assert_roundtrip(L, "[1,null,3]", "[1,null,3]");
    assert_roundtrip(L, "[null,null]", "[null,null]");
    assert_roundtrip(L, "{\"a\":null,\"b\":[null]}", "{\"a\":null,\"b\":[null]}");
}

static void empty_array_and_empty_object_stay_apart_also_nested(void **state) {
    lua_State *L = *state;
    assert_roundtrip(L, "[]", "[]");
    assert_roundtrip(L, "{}", "{}");
    assert_roundtrip(L, "{\"a\":[],\"b\":{},\"c\":[[],{}],\"d\":{\"e\":[[{}]]}}",
                     "{\"a\":[],\"b\":{},\"c\":[[],{}],\"d\":{\"e\":[[{}]]}}");
    decode_ok(L, "[[],{}]", 7, JSON_WRITABLE);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    assert_true(json_is_array(L, -2));
    assert_false(json_is_array(L, -1));
    lua_pop(L, 3);
}

/* -------------------------- numbers and strings --------------------------- */

static void integers_that_fit_64_bits_stay_exact_lua_integers(void **state) {
    lua_State *L = *state;
    static const struct { const char *text; lua_Integer want; } cases[] = {
        { "13377290551445", 13377290551445LL },
        { "9223372036854775807", INT64_MAX },
        { "-9223372036854775808", INT64_MIN },
        { "0", 0 }, { "-1", -1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        decode_ok(L, cases[i].text, strlen(cases[i].text), JSON_WRITABLE);
        assert_true(lua_isinteger(L, -1));
        assert_true(lua_tointeger(L, -1) == cases[i].want);
        char *s = encode_ok(L, -1);
        assert_string_equal(s, cases[i].text);
        free(s);
        lua_pop(L, 1);
    }
}

static void integers_past_64_bits_become_floats(void **state) {
    lua_State *L = *state;
    static const char *const cases[] = { "9223372036854775808", "-9223372036854775809", "18446744073709551616" };
    for (size_t i = 0; i < 3; i++) {
        decode_ok(L, cases[i], strlen(cases[i]), JSON_WRITABLE);
        assert_false(lua_isinteger(L, -1));
        assert_true(lua_tonumber(L, -1) == strtod(cases[i], NULL));
        lua_pop(L, 1);
    }
    assert_roundtrip(L, "9223372036854775808", "9.223372036854776e+18");
}

static void utf8_strings_are_preserved_byte_for_byte(void **state) {
    const char *in = "{\"city\":\"\xe6\x9d\xb1\xe4\xba\xac\xe9\x83\xbd\",\"emoji\":\"\xf0\x9f\x98\x80\","
                     "\"name\":\"Mar\xc3\xad" "a Gonz\xc3\xa1lez\"}";
    assert_roundtrip(*state, in, in);
}

static void unicode_escapes_decode_to_utf8(void **state) {
    lua_State *L = *state;
    static const struct { const char *text; const char *want; size_t n; } cases[] = {
        { "\"\\u00e9\"", "\xc3\xa9", 2 },
        { "\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4 },
        { "\"\\u6771\\u4EAC\"", "\xe6\x9d\xb1\xe4\xba\xac", 6 },
        { "\"a\\u0000b\"", "a\0b", 3 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        decode_ok(L, cases[i].text, strlen(cases[i].text), JSON_WRITABLE);
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        assert_int_equal(n, cases[i].n);
        assert_memory_equal(s, cases[i].want, n);
        lua_pop(L, 1);
    }
    assert_roundtrip(L, "\"a\\u0000b\"", "\"a\\u0000b\"");
}

static void escaped_slash_decodes_to_a_plain_slash(void **state) {
    lua_State *L = *state;
    const char *text = "\"https:\\/\\/acme.loopreturns.com\\/#\\/\"";
    decode_ok(L, text, strlen(text), JSON_WRITABLE);
    assert_string_equal(lua_tostring(L, -1), "https://acme.loopreturns.com/#/");
    lua_pop(L, 1);
}

/* ------------------------------- bad input -------------------------------- */

static void numbers_beyond_a_double_are_refused(void **state) {
    lua_State *L = *state;
    assert_decode_error(L, "[1e400]", 1, "number out of range");
    assert_decode_error(L, "{\"v\":-2E+999}", 5, "number out of range");
}

/* Caught by spec/fuzz/fuzz_json.c's comparison with cjson: a number with an exponent was refused as out of range whenever it
 * was 63 characters or more, however small its value. */
static void long_numbers_with_an_exponent_are_read_when_finite(void **state) {
    lua_State *L = *state;
    strbuf text = {0};
    strbuf_adds(&text, "[1.");
    for (int i = 0; i < 100; i++) strbuf_addc(&text, '0');
    strbuf_adds(&text, "1e5]");
    decode_ok(L, text.data, text.len, JSON_WRITABLE);
    lua_rawgeti(L, -1, 1);
    assert_false(lua_isinteger(L, -1));
    assert_true(lua_tonumber(L, -1) == 100000.0);
    lua_pop(L, 2);
    text.len = 1;                               /* 1 followed by 299 zeros: the longest number read */
    strbuf_addc(&text, '1');
    for (int i = 0; i < 299; i++) strbuf_addc(&text, '0');
    strbuf_adds(&text, "]");
    strbuf_addc(&text, 0);
    decode_ok(L, text.data, text.len - 1, JSON_WRITABLE);
    lua_rawgeti(L, -1, 1);
    assert_true(lua_tonumber(L, -1) == 1e299);
    lua_pop(L, 2);
    text.len = 1;                               /* one more digit: refused by its length, not its value */
    strbuf_addc(&text, '1');
    for (int i = 0; i < 300; i++) strbuf_addc(&text, '0');
    strbuf_adds(&text, "]");
    strbuf_addc(&text, 0);
    assert_decode_error(L, text.data, 1, "number longer than 300 characters");
    strbuf_free(&text);
}

static void invalid_utf8_is_refused_at_its_byte(void **state) {
    lua_State *L = *state;
    assert_decode_error(L, "\"a\xff" "b\"", 2, "invalid UTF-8 in string");
    assert_decode_error(L, "\"\xe6\x9d\"", 1, "invalid UTF-8 in string");          /* truncated */
    assert_decode_error(L, "\"\xed\xa0\x80\"", 1, "invalid UTF-8 in string");      /* surrogate */
    assert_decode_error(L, "\"\xf4\x90\x80\x80\"", 1, "invalid UTF-8 in string");  /* > U+10FFFF */
}

static void overlong_utf8_is_refused_at_its_byte(void **state) {
    lua_State *L = *state;
    assert_decode_error(L, "[\"\xc0\xaf\"]", 2, "invalid UTF-8 in string");
    assert_decode_error(L, "\"\xe0\x80\xaf\"", 1, "invalid UTF-8 in string");
    assert_decode_error(L, "\"\xf0\x80\x80\xaf\"", 1, "invalid UTF-8 in string");
}

static void lone_surrogate_escape_is_refused(void **state) {
    lua_State *L = *state;
    assert_decode_error(L, "\"x\\ud800\"", 2, "high surrogate not followed by a low one");
    assert_decode_error(L, "\"\\ud800\\u0041\"", 1, "high surrogate not followed by a low one");
    assert_decode_error(L, "\"x\\udc00y\"", 2, "lone low surrogate");
}

static void raw_control_character_in_a_string_is_refused(void **state) {
    assert_decode_error(*state, "{\"a\":\"x\ty\"}", 7, "control character in string");
}

static void trailing_comma_is_refused(void **state) {
    lua_State *L = *state;
    assert_decode_error(L, "[1,2,]", 5, "expected a value, found ']'");
    assert_decode_error(L, "{\"a\":1,}", 7, "expected a string key, found '}'");
}

static void missing_colon_is_refused(void **state) {
    assert_decode_error(*state, "{\"a\" 1}", 5, "expected ':' after object key, found '1'");
}

static void unterminated_string_is_refused(void **state) {
    assert_decode_error(*state, "[\"abc", 5, "unexpected end of input, unterminated string");
}

static void unterminated_escape_is_refused(void **state) {
    lua_State *L = *state;
    assert_decode_error(L, "\"ab\\", 4, "unexpected end of input, unterminated escape");
    assert_decode_error(L, "\"\\u12\"", 2, "\\u needs four hex digits");
    assert_decode_error(L, "\"\\x\"", 2, "invalid escape, found 'x'");
}

static void extra_data_after_the_value_is_refused(void **state) {
    lua_State *L = *state;
    assert_decode_error(L, "{} x", 3, "unexpected data after the JSON value, found 'x'");
    assert_decode_error(L, "1 2", 2, "unexpected data after the JSON value");
    assert_decode_error(L, "\"a\"\"b\"", 3, "unexpected data after the JSON value");
}

static void empty_input_is_refused(void **state) {
    lua_State *L = *state;
    assert_decode_error(L, "", 0, "unexpected end of input, expected a value");
    assert_decode_error(L, " \n\t", 3, "unexpected end of input, expected a value");
    assert_decode_error(L, "\xef\xbb\xbf", 3, "unexpected end of input, expected a value");
}

static void malformed_numbers_and_literals_are_refused(void **state) {
    lua_State *L = *state;
    assert_decode_error(L, "01", 1, "unexpected data after the JSON value");
    assert_decode_error(L, "1.", 2, "digit expected after '.'");
    assert_decode_error(L, "1e+", 3, "digit expected in exponent");
    assert_decode_error(L, "-", 1, "invalid number");
    assert_decode_error(L, "+1", 0, "expected a value");
    assert_decode_error(L, "NaN", 0, "expected a value");
    assert_decode_error(L, "[tru]", 1, "expected a value");
}

static void value_end_finds_the_end_of_the_first_value(void **state) {
    (void)state;
    static const struct { const char *text; size_t end; } cases[] = {
        { "  {\"a\":[1,2]} {\"b\":2}", 13 }, { "123 ", 3 }, { "\"x\"y", 3 }, { "[1] [2]", 3 },
        { "\xef\xbb\xbf[1]", 6 }, { "null,", 4 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t end = 0;
        char err[128] = "";
        assert_int_equal(json_value_end(cases[i].text, strlen(cases[i].text), &end, err, sizeof err), 0);
        assert_int_equal(end, cases[i].end);
    }
    size_t end = 0;
    char err[128] = "";
    assert_int_equal(json_value_end("{\"a\":}", 6, &end, err, sizeof err), -1);
    assert_string_equal(err, "byte 5: expected a value, found '}'");
}

/* ------------------------- nesting and duplicates ------------------------- */

static void nesting_of_200_levels_round_trips(void **state) {
    char *s = nested_arrays(200);
    assert_roundtrip(*state, s, s);
    free(s);
}

static void nesting_deeper_than_max_depth_is_refused(void **state) {
    lua_State *L = *state;
    char *ok = nested_arrays(JSON_MAX_DEPTH);
    assert_roundtrip(L, ok, ok);
    char *deep = nested_arrays(JSON_MAX_DEPTH + 1);
    assert_decode_error(L, deep, JSON_MAX_DEPTH, "nesting deeper than 256 levels");
    free(ok), free(deep);
}

static void duplicate_keys_keep_the_last_value(void **state) {
    lua_State *L = *state;
    assert_roundtrip(L, "{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2}");
    const char *dup = "{\"a\":1,\"a\":{\"x\":true}}";
    decode_ok(L, dup, strlen(dup), JSON_READONLY);
    lua_setglobal(L, "event");
    push_lua(L, "return event.a.x");
    assert_true(lua_toboolean(L, -1));
    lua_pop(L, 1);
}

/* ---------------------------- read-only event ----------------------------- */

static const char event_json[] =
    "{\"id\":7,\"customer_detail\":{\"email\":\"m@example.com\",\"middle_name\":null},"
    "\"line_items\":[{\"sku\":\"A\"},{\"sku\":\"B\"}],\"labels\":[],\"extra\":{}}";

/* Decodes event_json read-only as the global `event` and registers it as the root. */
static void set_readonly_event(lua_State *L) {
    decode_ok(L, event_json, sizeof event_json - 1, JSON_READONLY);
    json_set_event_root(L, -1);
    lua_setglobal(L, "event");
}

static void readonly_event_reads_fields_length_ipairs_and_pairs(void **state) {
    lua_State *L = *state;
    set_readonly_event(L);
    push_lua(L,
        "local skus = {}\n"
        "for i, item in ipairs(event.line_items) do skus[#skus + 1] = i .. item.sku end\n"
        "local keys = {}\n"
        "for k in pairs(event) do keys[#keys + 1] = k end\n"
        "table.sort(keys)\n"
        "return table.concat({ event.id, event.customer_detail.email, #event.line_items, #event.labels,\n"
        "  tostring(event.customer_detail.middle_name == json.null), table.concat(skus, ','),\n"
        "  table.concat(keys, ',') }, ' ')");
    assert_string_equal(lua_tostring(L, -1),
        "7 m@example.com 2 0 true 1A,2B customer_detail,extra,id,labels,line_items");
    lua_pop(L, 1);
}

static void readonly_event_refuses_a_top_level_write_naming_the_field(void **state) {
    lua_State *L = *state;
    set_readonly_event(L);
    assert_contains(lua_fails(L, "event.id = 8"), "event is read-only: cannot set field 'id'");
    assert_contains(lua_fails(L, "event.new_field = 1"), "event is read-only: cannot set field 'new_field'");
}

static void readonly_event_refuses_a_nested_write_naming_the_full_path(void **state) {
    lua_State *L = *state;
    set_readonly_event(L);
    assert_contains(lua_fails(L, "event.customer_detail.email = 'x'"),
                    "event is read-only: cannot set field 'customer_detail.email'");
    assert_contains(lua_fails(L, "event.line_items[2].sku = 'x'"),
                    "event is read-only: cannot set field 'line_items[2].sku'");
    assert_contains(lua_fails(L, "event.line_items[3] = {}"),
                    "event is read-only: cannot set field 'line_items[3]'");
    assert_contains(lua_fails(L, "table.insert(event.labels, 1)"), "event is read-only");
}

/* An allocator that puts a guard band after every block and counts the blocks whose band was
 * overwritten when they are resized or freed: the Lua library is not built with ASan, so a
 * write past its stack would otherwise go unseen. */
enum { GUARD = 8192 };
static int guards_smashed;

static void check_guard(const void *p, size_t n) {
    const unsigned char *g = (const unsigned char *)p + n;
    for (size_t i = 0; i < GUARD; i++)
        if (g[i] != 0xa5) { guards_smashed++; return; }
}

static void *guarded_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    if (ptr) check_guard(ptr, osize);
    if (nsize == 0) { free(ptr); return NULL; }
    unsigned char *p = malloc(nsize + GUARD);
    if (!p) return NULL;
    if (ptr) memcpy(p, ptr, osize < nsize ? osize : nsize);
    free(ptr);
    memset(p + nsize, 0xa5, GUARD);
    return p;
}

static void readonly_event_names_the_path_of_a_write_deep_inside_it(void **state) {
    (void)state;
    lua_State *L = lua_newstate(guarded_alloc, NULL);
    luaL_openlibs(L);
    json_open(L);
    guards_smashed = 0;
    enum { LEVELS = 250 };          /* arrays between the root and the innermost object */
    strbuf text = {0};
    strbuf_adds(&text, "{\"a\":");
    for (int i = 0; i < LEVELS; i++) strbuf_addc(&text, '[');
    strbuf_adds(&text, "{\"k\":1}");
    for (int i = 0; i < LEVELS; i++) strbuf_addc(&text, ']');
    strbuf_addc(&text, '}');
    decode_ok(L, text.data, text.len, JSON_READONLY);
    json_set_event_root(L, -1);
    lua_setglobal(L, "event");
    strbuf_free(&text);
    lua_gc(L, LUA_GCCOLLECT);       /* shrinks the stack the decode grew, as a mapping run would */
    const char *msg = lua_fails(L, "local t = event.a for i = 2, 250 do t = t[1] end t[1].k = 2");
    assert_contains(msg, "event is read-only: cannot set field 'a[1][1][1]");
    assert_contains(msg, "[1][1].k'");
    lua_close(L);                   /* frees, so checks, every block */
    assert_int_equal(guards_smashed, 0);
}

static void readonly_event_metatable_is_the_protection_string(void **state) {
    lua_State *L = *state;
    set_readonly_event(L);
    push_lua(L, "return getmetatable(event) .. ' ' .. getmetatable(event.line_items[1])");
    assert_string_equal(lua_tostring(L, -1), "read-only read-only");
    lua_pop(L, 1);
    assert_contains(lua_fails(L, "setmetatable(event, nil)"), "cannot change a protected metatable");
}

static void marks_set_from_upvalues_are_the_registrys_and_refuse_a_foreign_metatable(void **state) {
    lua_State *L = *state;
    /* json.array and json.object hold the markers as upvalues; json_push_array_marked takes one
     * given by index: all give tables encode and is_array tell apart, as json_push_array's */
    push_lua(L, "local a, o = json.array(), json.object() "
                "local t = json.array({ 1, 2 }) local again = json.array(json.object({})) "
                "local ok, err = pcall(json.array, setmetatable({}, {})) "
                "return json.encode(a) == '[]' and json.encode(o) == '{}' and json.encode(t) == '[1,2]' "
                "and json.encode(again) == '[]' and json.is_array(a) and not json.is_array(o) "
                "and not ok and err:find('metatable of its own', 1, true) ~= nil "
                "and getmetatable(a) == getmetatable(t) and getmetatable(a) ~= getmetatable(o)");
    assert_true(lua_toboolean(L, -1));
    lua_pop(L, 1);
    json_push_array_marker(L);
    json_push_array_marked(L, 4, -1);
    json_push_array(L, 0);
    assert_true(lua_getmetatable(L, -2) && lua_getmetatable(L, -2));
    assert_true(lua_rawequal(L, -1, -2) && lua_rawequal(L, -1, -5));
    lua_pop(L, 2);
    assert_true(json_is_array(L, -2));
    lua_getglobal(L, "json");
    lua_getfield(L, -1, "array");
    lua_call(L, 0, 1);                              /* json.array(): the same marker */
    assert_true(lua_getmetatable(L, -1) && lua_rawequal(L, -1, 1));
    lua_settop(L, 0);
}

/* json_member_start: where a member's value begins, its own bytes not read (the text may even end
 * inside it), the members before it checked; the first of two of a name. */
static void member_start_finds_a_value_without_reading_it(void **state) {
    (void)state;
    const char *v = NULL;
    const char *text = "{ \"a\" : [1, {\"x\":2}], \"data\" : {\"attributes\": {\"n\":";   /* cut inside data */
    assert_int_equal(json_member_start(text, strlen(text), "data", &v), 0);
    assert_true(v == strstr(text, "{\"attributes\""));
    assert_int_equal(json_member_start(v, strlen(v), "attributes", &v), 0);
    assert_string_equal(v, "{\"n\":");
    const char *twice = "{\"k\":1,\"k\":2}";
    assert_int_equal(json_member_start(twice, strlen(twice), "k", &v), 0);
    assert_int_equal(*v, '1');
    const char *absent = "{\"a\":1,\"b\":\"data\"}";
    assert_int_equal(json_member_start(absent, strlen(absent), "data", &v), -1);
    const char *broken = "{\"a\":[1,,2],\"data\":{}}";                  /* a bad value before it */
    assert_int_equal(json_member_start(broken, strlen(broken), "data", &v), -1);
    assert_int_equal(json_member_start("[1]", 3, "data", &v), -1);
    const char *last = "{\"data\":";                                   /* nothing after the colon */
    assert_int_equal(json_member_start(last, strlen(last), "data", &v), -1);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(decode_encode_sorts_keys_bytewise_and_is_compact),
        T(encode_of_decode_is_a_fixed_point_for_every_loop_fixture),
        T(null_decodes_to_the_null_light_userdata_that_cjson_uses),
        T(null_inside_arrays_and_objects_round_trips_without_holes),
        T(empty_array_and_empty_object_stay_apart_also_nested),
        T(integers_that_fit_64_bits_stay_exact_lua_integers),
        T(integers_past_64_bits_become_floats),
        T(utf8_strings_are_preserved_byte_for_byte),
        T(unicode_escapes_decode_to_utf8),
        T(escaped_slash_decodes_to_a_plain_slash),
        T(invalid_utf8_is_refused_at_its_byte),
        T(numbers_beyond_a_double_are_refused),
        T(long_numbers_with_an_exponent_are_read_when_finite),
        T(overlong_utf8_is_refused_at_its_byte),
        T(lone_surrogate_escape_is_refused),
        T(raw_control_character_in_a_string_is_refused),
        T(trailing_comma_is_refused),
        T(missing_colon_is_refused),
        T(unterminated_string_is_refused),
        T(unterminated_escape_is_refused),
        T(extra_data_after_the_value_is_refused),
        T(empty_input_is_refused),
        T(malformed_numbers_and_literals_are_refused),
        T(value_end_finds_the_end_of_the_first_value),
        T(nesting_of_200_levels_round_trips),
        T(nesting_deeper_than_max_depth_is_refused),
        T(duplicate_keys_keep_the_last_value),
        T(readonly_event_reads_fields_length_ipairs_and_pairs),
        T(readonly_event_refuses_a_top_level_write_naming_the_field),
        T(readonly_event_refuses_a_nested_write_naming_the_full_path),
        T(readonly_event_names_the_path_of_a_write_deep_inside_it),
        T(readonly_event_metatable_is_the_protection_string),
        T(marks_set_from_upvalues_are_the_registrys_and_refuse_a_foreign_metatable),
        T(member_start_finds_a_value_without_reading_it),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
