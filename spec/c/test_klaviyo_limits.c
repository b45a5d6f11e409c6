/*
 * test_klaviyo_limits.c: Klaviyo's documented limits, as the encoder enforces them (klaviyo_rules).
 *
 * Why these tests: Klaviyo refuses an event with more than 400 properties, an array over 4000
 * items, more than 10 levels of nesting or a string over 100 KB, and a refused event is a dead
 * letter found days later. The encoder checks the limits as it writes the body, so each test
 * encodes a body with json_encode_with(..., &klaviyo_rules, ...) and checks both sides of every
 * limit: exactly at the limit is sent byte for byte, one past it is refused with a message that
 * names the property path and the limit. Values from a read-only event count like any other.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "klaviyo_limits.h"
#include "lauxlib.h"
#include "lualib.h"
#include "strbuf.h"

/* ------------------------------- helpers --------------------------------- */

static strbuf body;                 /* the last body encoded, reused by every test */

static int setup(void **state) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    json_open(L);
    json_luaopen(L);
    lua_setglobal(L, "json");
    /* keys(n): a table of n string keys; list(n): n items; nest(n): n tables, one in the other. */
    if (luaL_dostring(L,
            "function keys(n) local t = {} for i = 1, n do t['p' .. i] = i end return t end\n"
            "function list(n) local t = {} for i = 1, n do t[i] = i end return t end\n"
            "function nest(n) local t = { leaf = true } for _ = 2, n do t = { a = t } end return t end"))
        return -1;
    *state = L;
    return 0;
}

static int teardown(void **state) {
    lua_close(*state);
    strbuf_free(&body);
    return 0;
}

/* Encodes the value `code` returns under Klaviyo's rules; returns 0 or -1, with the body or the
 * message in out (static, NUL-terminated). The stack is left as it was. */
static int encode_body(lua_State *L, const char *code, const char **out) {
    static char err[512];
    if (luaL_dostring(L, code)) fail_msg("%s: %s", code, lua_tostring(L, -1));
    int top = lua_gettop(L);
    body.len = 0;
    int rc = json_encode_with(L, -1, &body, &klaviyo_rules, NULL, err, sizeof err);
    assert_int_equal(lua_gettop(L), top);
    lua_pop(L, 1);
    if (rc) {
        assert_int_equal(body.len, 0);
        *out = err;
    } else {
        strbuf_addc(&body, 0);
        *out = body.data;
    }
    return rc;
}

static void assert_sent(lua_State *L, const char *code) {
    const char *out;
    if (encode_body(L, code, &out)) fail_msg("%s: refused: %s", code, out);
}

static void assert_refused(lua_State *L, const char *code, const char *want) {
    const char *out;
    if (encode_body(L, code, &out) == 0) fail_msg("%s: sent, want refused", code);
    assert_string_equal(out, want);
}

/* -------------------------------- limits ---------------------------------- */

static void properties_with_400_keys_pass_and_401_are_refused(void **state) {
    lua_State *L = *state;
    assert_sent(L, "return { properties = keys(400) }");
    assert_refused(L, "return { properties = keys(401) }",
                   "properties: 401 properties, over Klaviyo's limit of 400");
}

static void only_the_top_of_properties_counts_its_keys(void **state) {
    lua_State *L = *state;
    assert_sent(L, "return { properties = { detail = keys(401) } }");
    assert_sent(L, "local body = keys(500) body.properties = keys(3) return body");
}

static void array_of_4000_items_passes_and_4001_is_refused(void **state) {
    lua_State *L = *state;
    assert_sent(L, "return { properties = { items = list(4000) } }");
    assert_refused(L, "return { properties = { items = list(4001) } }",
                   "properties.items: 4001 items, over Klaviyo's limit of 4000 per array");
    assert_refused(L, "return { properties = { order = { lines = { list(1), list(4001) } } } }",
                   "properties.order.lines[2]: 4001 items, over Klaviyo's limit of 4000 per array");
}

static void nesting_of_10_levels_passes_and_11_is_refused(void **state) {
    lua_State *L = *state;
    assert_sent(L, "return { properties = nest(10) }");
    assert_refused(L, "return { properties = nest(11) }",
                   "properties.a.a.a.a.a.a.a.a.a.a: nested 11 levels deep, over Klaviyo's limit of 10");
}

static void string_of_100_kb_passes_and_one_byte_more_is_refused(void **state) {
    lua_State *L = *state;
    assert_sent(L, "return { properties = { note = string.rep('x', 100 * 1024) } }");
    assert_refused(L, "return { properties = { items = { 'a', string.rep('x', 100 * 1024 + 1) } } }",
                   "properties.items[2]: string of 102401 bytes, over Klaviyo's limit of 102400");
}

static void readonly_event_values_count_like_any_other(void **state) {
    lua_State *L = *state;
    strbuf text = {0};
    strbuf_addc(&text, '[');
    for (int i = 1; i <= KLAVIYO_MAX_ARRAY + 1; i++) strbuf_adds(&text, i > 1 ? ",0" : "0");
    strbuf_addc(&text, ']');
    char err[256] = "";
    assert_int_equal(json_decode(L, text.data, text.len, JSON_READONLY, err, sizeof err), 0);
    lua_setglobal(L, "long_list");
    strbuf_free(&text);
    assert_refused(L, "return { properties = { items = long_list } }",
                   "properties.items: 4001 items, over Klaviyo's limit of 4000 per array");
    assert_sent(L, "return { properties = { first = long_list[1], n = #long_list } }");
}

static void a_body_exactly_at_every_limit_is_sent_byte_for_byte(void **state) {
    lua_State *L = *state;
    const char *out;
    assert_int_equal(encode_body(L, "local p = keys(398) p.items = list(3) p.deep = nest(9) return { properties = p }",
                                 &out), 0);
    assert_memory_equal(out, "{\"properties\":{\"deep\":{\"a\":{\"a\":", 32);
    assert_non_null(strstr(out, "\"items\":[1,2,3],\"p1\":1,\"p10\":10,"));
}

static void body_limit_is_100_kb_for_profile_import_else_5_mb(void **state) {
    (void)state;
    assert_int_equal(klaviyo_body_limit("/api/profile-import"), KLAVIYO_MAX_PROFILE_BODY);
    assert_int_equal(klaviyo_body_limit("/api/events"), KLAVIYO_MAX_BODY);
    assert_int_equal(KLAVIYO_MAX_PROFILE_BODY, 100 * 1024);
    assert_int_equal(KLAVIYO_MAX_BODY, 5 * 1024 * 1024);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(properties_with_400_keys_pass_and_401_are_refused),
        T(only_the_top_of_properties_counts_its_keys),
        T(array_of_4000_items_passes_and_4001_is_refused),
        T(nesting_of_10_levels_passes_and_11_is_refused),
        T(string_of_100_kb_passes_and_one_byte_more_is_refused),
        T(readonly_event_values_count_like_any_other),
        T(a_body_exactly_at_every_limit_is_sent_byte_for_byte),
        T(body_limit_is_100_kb_for_profile_import_else_5_mb),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
