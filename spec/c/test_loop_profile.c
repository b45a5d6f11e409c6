/*
 * test_loop_profile.c: loop_native.profile (core/script/loop_properties.c) finds the fields of the
 * customer's detail and of the address in one pass over each object; these tests pin down that the
 * pass answers as single reads do: the last of duplicate keys wins, keys written with escapes are
 * found, "" fields are dropped, the event's own fields stand in for a detail's missing ones; and
 * that a second call for the same event (built again from the nodes the first noted) gives a fresh
 * table of the same answer, which a change to the first does not reach, and another event its own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "json.h"
#include "lauxlib.h"
#include "loop_properties.h"
#include "lualib.h"

static int setup(void **state) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    json_open(L);
    json_luaopen(L);
    lua_setglobal(L, "json");
    loop_properties_luaopen(L);
    lua_setglobal(L, "native");
    *state = L;
    return 0;
}

static int teardown(void **state) {
    lua_close(*state);
    return 0;
}

/* native.profile of the read-only event text, encoded (keys sorted), must be `want`. */
static void profile_is(lua_State *L, const char *text, const char *want) {
    char err[256] = "";
    if (json_decode(L, text, strlen(text), JSON_READONLY, err, sizeof err)) fail_msg("decode failed: %s", err);
    lua_setglobal(L, "ev");
    if (luaL_dostring(L, "local p = native.profile(ev) return p and json.encode(p) or 'none'") != LUA_OK)
        fail_msg("%s", lua_tostring(L, -1));
    assert_string_equal(lua_tostring(L, -1), want);
    lua_settop(L, 0);
}

static void the_last_of_duplicate_keys_wins_in_the_detail_and_the_address(void **state) {
    profile_is(*state,
               "{\"customer_detail\":{\"email\":\"a@x.com\",\"first_name\":\"A\",\"email\":\"b@x.com\","
               "\"first_name\":\"B\",\"last_name\":\"L\"},"
               "\"address\":{\"city\":\"One\",\"zip\":\"1\",\"city\":\"Two\",\"country\":\"US\",\"zip\":\"\"}}",
               "{\"email\":\"b@x.com\",\"first_name\":\"B\",\"last_name\":\"L\","
               "\"location\":{\"city\":\"Two\",\"country\":\"US\"}}");
}

static void keys_written_with_escapes_are_found(void **state) {
    profile_is(*state,
               "{\"customer_detail\":{\"em\\u0061il\":\"e@x.com\",\"last_\\u006eame\":\"N\"},"
               "\"address\":{\"addr\\u0065ss1\":\"1 Main St\",\"st\\u0061te\":\"WA\"}}",
               "{\"email\":\"e@x.com\",\"last_name\":\"N\",\"location\":{\"address1\":\"1 Main St\",\"region\":\"WA\"}}");
}

static void the_events_fields_stand_in_for_a_detail_without_them(void **state) {
    profile_is(*state,
               "{\"customer\":\"c@x.com\",\"first_name\":\"F\",\"last_name\":\"G\","
               "\"customer_detail\":{\"email\":\"\",\"first_name\":null,\"last_name\":false},"
               "\"address\":{\"address1\":\"\",\"zip\":\"\"}}",
               "{\"email\":\"c@x.com\",\"first_name\":\"F\",\"last_name\":\"G\"}");
}

static void a_detail_of_many_members_is_read_as_a_small_one(void **state) {
    /* more members than an object's index starts at, with the names sought among them */
    profile_is(*state,
               "{\"customer_detail\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
               "\"first_name\":\"Kenji\",\"email\":\"k@x.jp\",\"last_name\":\"Sato\"},"
               "\"address\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
               "\"country\":\"JP\",\"address2\":\"Apt 3\"}}",
               "{\"email\":\"k@x.jp\",\"first_name\":\"Kenji\",\"last_name\":\"Sato\","
               "\"location\":{\"address2\":\"Apt 3\",\"country\":\"JP\"}}");
}

/* Runs the chunk with `ev` the read-only event of text (and `ev2` of text2, when given); its
 * result, a string, must be want. */
static void chunk_is(lua_State *L, const char *text, const char *text2, const char *chunk, const char *want) {
    char err[256] = "";
    if (json_decode(L, text, strlen(text), JSON_READONLY, err, sizeof err)) fail_msg("decode failed: %s", err);
    lua_setglobal(L, "ev");
    if (text2) {
        if (json_decode(L, text2, strlen(text2), JSON_READONLY, err, sizeof err)) fail_msg("decode failed: %s", err);
        lua_setglobal(L, "ev2");
    }
    if (luaL_dostring(L, chunk) != LUA_OK) fail_msg("%s", lua_tostring(L, -1));
    assert_string_equal(lua_tostring(L, -1), want);
    lua_settop(L, 0);
}

static const char customer[] =
    "{\"customer_detail\":{\"email\":\"m@x.com\",\"first_name\":\"Mar\\u00eda\",\"last_name\":\"\"},"
    "\"last_name\":\"G\",\"address\":{\"city\":\"Seattle\",\"zip\":\"\",\"country\":\"US\"}}";

static void a_second_call_gives_a_fresh_table_a_change_to_the_first_does_not_reach(void **state) {
    chunk_is(*state, customer, NULL,
             "local a = native.profile(ev)\n"
             "a.email, a.first_name, a.location.city, a.extra = 'changed', nil, 'Tacoma', 1\n"
             "local b = native.profile(ev)\n"
             "assert(b ~= a and b.location ~= a.location)\n"
             "b.location.zip = '98101'\n"
             "return json.encode(b) .. ' ' .. json.encode(native.profile(ev))",
             "{\"email\":\"m@x.com\",\"first_name\":\"Mar\xc3\xad" "a\","
             "\"location\":{\"city\":\"Seattle\",\"country\":\"US\",\"zip\":\"98101\"}} "
             "{\"email\":\"m@x.com\",\"first_name\":\"Mar\xc3\xad" "a\","
             "\"location\":{\"city\":\"Seattle\",\"country\":\"US\"}}");
}

static void a_second_call_builds_the_same_table_key_for_key_in_the_same_order(void **state) {
    chunk_is(*state, customer, NULL,
             "local function keys(t) local s = '' for k, v in next, t do s = s .. k .. ',' end return s end\n"
             "local a, b = native.profile(ev), native.profile(ev)\n"
             "local x, y = keys(a) .. keys(a.location), keys(b) .. keys(b.location)\n"
             "return x == y and 'same' or x .. ' | ' .. y",
             "same");
}

static void another_event_or_another_object_gets_its_own_profile(void **state) {
    chunk_is(*state, customer,
             "{\"customer\":\"c@x.com\",\"inner\":{\"email\":\"i@x.com\"}}",
             "local a = native.profile(ev)\n"
             "local b, c = native.profile(ev2), native.profile(ev2.inner)\n"
             "return json.encode(b) .. ' ' .. json.encode(c) .. ' ' .. json.encode(native.profile(ev))",
             "{\"email\":\"c@x.com\"} {\"email\":\"i@x.com\"} "
             "{\"email\":\"m@x.com\",\"first_name\":\"Mar\xc3\xad" "a\","
             "\"location\":{\"city\":\"Seattle\",\"country\":\"US\"}}");
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(the_last_of_duplicate_keys_wins_in_the_detail_and_the_address),
        T(keys_written_with_escapes_are_found),
        T(the_events_fields_stand_in_for_a_detail_without_them),
        T(a_detail_of_many_members_is_read_as_a_small_one),
        T(a_second_call_gives_a_fresh_table_a_change_to_the_first_does_not_reach),
        T(a_second_call_builds_the_same_table_key_for_key_in_the_same_order),
        T(another_event_or_another_object_gets_its_own_profile),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
