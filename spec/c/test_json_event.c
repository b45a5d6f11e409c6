/*
 * test_json_event.c: the read-only event is built lazily (core/json/json_event.c); these tests pin
 * down that laziness never shows. A field read late must equal one read early, keep its identity,
 * survive the caller freeing its text and a full garbage collection; pairs and the encoder must see
 * every member, duplicates resolved the same way (the last wins) whether a field was read before or
 * not; keys written with escapes must still be found.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "lauxlib.h"
#include "lualib.h"
#include "strbuf.h"

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

/* Decodes text read-only from a heap copy that is freed at once, and sets the global `ev`. */
static void event_from(lua_State *L, const char *text) {
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    memcpy(copy, text, len + 1);
    char err[256] = "";
    if (json_decode(L, copy, len, JSON_READONLY, err, sizeof err)) fail_msg("decode failed: %s", err);
    memset(copy, 'x', len);              /* the event must not read the caller's buffer later */
    free(copy);
    lua_setglobal(L, "ev");
}

/* Runs a chunk that must return true; shows its error or result otherwise. */
static void assert_lua(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != LUA_OK) fail_msg("%s: %s", code, lua_tostring(L, -1));
    if (!lua_toboolean(L, -1)) fail_msg("%s: returned %s", code, luaL_tolstring(L, -1, NULL));
    lua_settop(L, 0);
}

static char *encode_global(lua_State *L, const char *name) {
    lua_getglobal(L, name);
    strbuf out = {0};
    char err[256];
    if (json_encode(L, -1, &out, err, sizeof err)) fail_msg("encode failed: %s", err);
    lua_pop(L, 1);
    strbuf_addc(&out, 0);
    return out.data;
}

static void fields_read_late_survive_the_callers_buffer_and_a_full_collection(void **state) {
    lua_State *L = *state;
    event_from(L, "{\"id\":\"8812745\",\"customer_detail\":{\"email\":\"m@example.com\"},\"n\":13377290551445}");
    assert_lua(L, "collectgarbage() collectgarbage() return ev.customer_detail.email == 'm@example.com' "
                  "and ev.n == 13377290551445 and math.type(ev.n) == 'integer' and ev.id == '8812745'");
}

static void a_container_keeps_its_identity_across_reads(void **state) {
    lua_State *L = *state;
    event_from(L, "{\"address\":{\"city\":\"Seattle\"},\"items\":[{\"sku\":\"A\"}]}");
    assert_lua(L, "return ev.address == ev.address and ev.items[1] == ev.items[1] and ev.items == ev.items");
}

static void absent_fields_read_as_nil_every_time(void **state) {
    lua_State *L = *state;
    event_from(L, "{\"a\":1}");
    assert_lua(L, "return ev.missing == nil and ev.missing == nil and ev[1] == nil and ev.a == 1");
}

static void pairs_sees_every_member_once_after_some_were_read(void **state) {
    lua_State *L = *state;
    event_from(L, "{\"a\":1,\"b\":{\"c\":2},\"d\":[3],\"e\":null}");
    assert_lua(L, "local b = ev.b local n, seen = 0, {} "
                  "for k, v in pairs(ev) do n = n + 1 seen[k] = v end "
                  "return n == 4 and seen.b == b and seen.a == 1 and seen.d[1] == 3 and seen.e == json.null");
}

static void the_last_duplicate_wins_whether_read_first_or_listed_by_pairs(void **state) {
    lua_State *L = *state;
    event_from(L, "{\"k\":1,\"x\":0,\"k\":2}");
    assert_lua(L, "return ev.k == 2");
    event_from(L, "{\"k\":1,\"x\":0,\"k\":2}");
    assert_lua(L, "local got for k, v in pairs(ev) do if k == 'k' then got = v end end return got == 2");
}

/* Objects of more than 8 members are read through a hash index of their keys: the same answers.
 * The keys share length, first, middle and last byte in pairs (so their slots collide), one is
 * written with an escape, and one comes three times. */
static void a_large_object_reads_the_same_through_its_key_index(void **state) {
    lua_State *L = *state;
    const char *big = "{\"abxa\":1,\"acxa\":2,\"k\":\"first\",\"b\":3,\"c\":4,\"d\":5,\"e\":6,"
                      "\"f\":7,\"g\":8,\"k\":\"second\",\"caf\\u00e9\":9,\"adxa\":10,\"k\":\"third\"}";
    event_from(L, big);
    assert_lua(L, "return ev.k == 'third' and ev.abxa == 1 and ev.acxa == 2 and ev.adxa == 10 "
                  "and ev['caf\\u{e9}'] == 9 and ev.g == 8 and ev.missing == nil and ev.aqxa == nil "
                  "and ev[''] == nil and ev[1] == nil");
    event_from(L, big);
    assert_lua(L, "local n, got = 0 for k, v in pairs(ev) do n = n + 1 if k == 'k' then got = v end end "
                  "return n == 11 and got == 'third' and ev.k == 'third'");
}

static void keys_written_with_escapes_are_found_by_their_text(void **state) {
    lua_State *L = *state;
    event_from(L, "{\"caf\\u00e9\":\"yes\",\"a\\/b\":1}");
    assert_lua(L, "return ev['caf\\u{e9}'] == 'yes' and ev['a/b'] == 1");
}

static void encoding_a_partly_read_event_gives_the_whole_value(void **state) {
    lua_State *L = *state;
    event_from(L, "{\"z\":[1,{\"y\":true}],\"a\":\"\\u00e9\",\"m\":{},\"e\":[]}");
    assert_lua(L, "return ev.z[2].y == true");
    char *got = encode_global(L, "ev");
    assert_string_equal(got, "{\"a\":\"\xc3\xa9\",\"e\":[],\"m\":{},\"z\":[1,{\"y\":true}]}");
    free(got);
}

static void length_and_ipairs_of_an_array_need_no_reads_first(void **state) {
    lua_State *L = *state;
    event_from(L, "{\"items\":[\"a\",\"b\",\"c\"]}");
    assert_lua(L, "local s = '' for _, v in ipairs(ev.items) do s = s .. v end return #ev.items == 3 and s == 'abc'");
}

static void a_field_read_lazily_is_still_read_only(void **state) {
    lua_State *L = *state;
    event_from(L, "{\"customer_detail\":{\"email\":\"m@example.com\"}}");
    lua_getglobal(L, "ev");
    json_set_event_root(L, -1);
    lua_pop(L, 1);
    int rc = luaL_dostring(L, "ev.customer_detail.email = 'x'");
    assert_int_not_equal(rc, LUA_OK);
    assert_non_null(strstr(lua_tostring(L, -1), "cannot set field 'customer_detail.email'"));
    lua_settop(L, 0);
    assert_lua(L, "return ev.customer_detail.email == 'm@example.com'");
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(fields_read_late_survive_the_callers_buffer_and_a_full_collection),
        T(a_container_keeps_its_identity_across_reads),
        T(absent_fields_read_as_nil_every_time),
        T(pairs_sees_every_member_once_after_some_were_read),
        T(the_last_duplicate_wins_whether_read_first_or_listed_by_pairs),
        T(a_large_object_reads_the_same_through_its_key_index),
        T(keys_written_with_escapes_are_found_by_their_text),
        T(encoding_a_partly_read_event_gives_the_whole_value),
        T(length_and_ipairs_of_an_array_need_no_reads_first),
        T(a_field_read_lazily_is_still_read_only),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
