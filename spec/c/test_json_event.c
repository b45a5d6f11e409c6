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
#include "json_tape.h"
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

/* ---- the mapper's events: one pooled document, a generation each ---- */

/* Decodes text as the mapper does (json_decode_event) from a heap copy freed at once, into global name. */
static void mapper_event(lua_State *L, const char *name, const char *text) {
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    memcpy(copy, text, len + 1);
    char err[256] = "";
    if (json_decode_event(L, copy, len, err, sizeof err)) fail_msg("decode failed: %s", err);
    memset(copy, 'x', len);
    free(copy);
    lua_setglobal(L, name);
}

/* Runs a chunk that must raise an error holding `what`. */
static void assert_lua_error(lua_State *L, const char *code, const char *what) {
    if (luaL_dostring(L, code) == LUA_OK) fail_msg("%s: did not raise", code);
    if (!strstr(lua_tostring(L, -1), what)) fail_msg("%s: raised '%s', not '%s'", code, lua_tostring(L, -1), what);
    lua_settop(L, 0);
}

static void a_table_kept_from_an_earlier_event_keeps_its_reads_and_refuses_the_rest(void **state) {
    lua_State *L = *state;
    mapper_event(L, "old", "{\"id\":\"1\",\"sub\":{\"x\":1,\"y\":2},\"items\":[{\"sku\":\"A\"},{\"sku\":\"B\"}],\"z\":3}");
    assert_lua(L, "kept_sub = old.sub; return old.id == '1' and old.sub.x == 1 and #old.items == 2 "
                  "and old.items[1].sku == 'A'");
    mapper_event(L, "ev", "{\"id\":\"2\",\"sub\":{\"x\":10,\"y\":20},\"items\":[],\"z\":30}");
    assert_lua(L, "collectgarbage() collectgarbage() return ev.id == '2' and ev.sub.y == 20 and ev.z == 30");
    /* what was read stays, the same values; nothing of the new event shows through */
    assert_lua(L, "return old.id == '1' and old.sub == kept_sub and old.sub.x == 1 and #old.items == 2 "
                  "and old.items[1].sku == 'A' and old.items[1] == old.items[1]");
    assert_lua_error(L, "return old.z", "event is no longer readable: field 'z'");
    assert_lua_error(L, "return old.sub.y", "event is no longer readable: field 'y'");
    assert_lua_error(L, "return old.items[2].sku", "event is no longer readable");
    assert_lua_error(L, "for k in pairs(old) do end", "event is no longer readable");
    assert_lua(L, "local text, err = json.encode(old) return text == nil and err:find('no longer readable') ~= nil");
    assert_lua(L, "local text, err = json.encode({ kept = { old.sub } }) return text == nil "
                  "and err:find('no longer readable') ~= nil");
    /* still read-only, and the new event unharmed */
    assert_lua_error(L, "old.z = 1", "event is read-only");
    assert_lua(L, "return ev.id == '2' and ev.sub.x == 10 and json.encode(ev) == "
                  "'{\"id\":\"2\",\"items\":[],\"sub\":{\"x\":10,\"y\":20},\"z\":30}'");
}

static void a_coroutine_kept_across_events_cannot_read_the_next_events_tape(void **state) {
    lua_State *L = *state;
    mapper_event(L, "ev", "{\"a\":\"first\",\"b\":\"first b\"}");
    assert_lua(L, "local e = ev co = coroutine.wrap(function() local a = e.a coroutine.yield(a) return e.b end) "
                  "return co() == 'first'");
    mapper_event(L, "ev", "{\"a\":\"second\",\"b\":\"second b\"}");
    assert_lua(L, "local ok, err = pcall(co) return not ok and err:find('no longer readable') ~= nil");
    assert_lua(L, "return ev.b == 'second b'");
}

static void a_larger_event_replaces_the_pooled_document_and_the_old_tables_go_stale(void **state) {
    lua_State *L = *state;
    mapper_event(L, "old", "{\"a\":1,\"b\":2}");
    assert_lua(L, "return old.a == 1");
    strbuf big = {0};
    strbuf_adds(&big, "{\"list\":[");
    for (int i = 0; i < 20000; i++) strbuf_adds(&big, i ? ",\"v\"" : "\"v\"");
    strbuf_adds(&big, "],\"b\":3,\"c\":5}");
    strbuf_addc(&big, 0);
    mapper_event(L, "ev", big.data);
    strbuf_free(&big);
    assert_lua(L, "return #ev.list == 20000 and ev.b == 3 and old.a == 1");
    assert_lua_error(L, "return old.b", "no longer readable");
    mapper_event(L, "small", "{\"b\":4}");           /* far smaller: a new document, not the big one kept */
    assert_lua(L, "return small.b == 4 and #ev.list == 20000");
    assert_lua_error(L, "return ev.c", "no longer readable");
}

static void a_scripts_own_read_only_decode_leaves_the_event_readable(void **state) {
    lua_State *L = *state;
    mapper_event(L, "ev", "{\"a\":1,\"b\":2}");
    assert_lua(L, "local mine = json.decode('{\"b\":5,\"c\":6}', true) return mine.c == 6 and ev.b == 2 "
                  "and mine.b == 5");
}

static void a_view_of_a_stale_table_is_refused(void **state) {
    lua_State *L = *state;
    mapper_event(L, "old", "{\"a\":\"x\",\"b\":\"y\"}");
    json_view v;
    lua_getglobal(L, "old");
    assert_int_equal(json_event_view(L, -1, &v), 0);
    mapper_event(L, "ev", "{\"a\":\"z\"}");
    assert_int_equal(json_event_view(L, -1, &v), -1);
    lua_getglobal(L, "ev");
    assert_int_equal(json_event_view(L, -1, &v), 0);
    uint32_t a = json_view_member(L, &v, v.node, "a");
    assert_true(a != 0);
    json_view_push(L, &v, a);
    assert_string_equal(lua_tostring(L, -1), "z");
    lua_settop(L, 0);
}

static void strings_read_again_are_the_same_values(void **state) {
    lua_State *L = *state;
    /* the cache's slots collide and are overwritten; every read must still give its own bytes */
    strbuf text = {0};
    strbuf_adds(&text, "{");
    for (int i = 0; i < 3000; i++) {
        char member[64];
        snprintf(member, sizeof member, "%s\"k%d\":\"value %d\"", i ? "," : "", i, i);
        strbuf_adds(&text, member);
    }
    strbuf_adds(&text, "}");
    strbuf_addc(&text, 0);
    for (int round = 0; round < 2; round++) {
        mapper_event(L, "ev", text.data);
        assert_lua(L, "for i = 0, 2999 do if ev['k' .. i] ~= 'value ' .. i then return false end end "
                      "local n = 0 for k, v in pairs(ev) do n = n + 1 if v ~= 'value ' .. k:sub(2) then return false end end "
                      "return n == 3000");
    }
    strbuf_free(&text);
}

/* {"keep":{"o1":{"v":1,"w":{"x":1}},...},"drop":{"d1":{"v":1},...}}: n objects under each */
static char *nested_objects(int n) {
    strbuf text = {0};
    strbuf_adds(&text, "{\"keep\":{");
    for (int i = 1; i <= n; i++) {
        char member[96];
        snprintf(member, sizeof member, "%s\"o%d\":{\"v\":%d,\"w\":{\"x\":%d}}", i > 1 ? "," : "", i, i, i);
        strbuf_adds(&text, member);
    }
    strbuf_adds(&text, "},\"drop\":{");
    for (int i = 1; i <= n; i++) {
        char member[64];
        snprintf(member, sizeof member, "%s\"d%d\":{\"v\":%d}", i > 1 ? "," : "", i, i);
        strbuf_adds(&text, member);
    }
    strbuf_adds(&text, "}}");
    strbuf_addc(&text, 0);
    return text.data;
}

static void objects_made_after_others_were_collected_read_their_own_fields(void **state) {
    lua_State *L = *state;
    /* the event's data tables are known by their addresses: tables collected in the middle of an
     * event leave theirs to new ones, which must read their own nodes, not the dead ones' */
    char *text = nested_objects(64);
    for (int pooled = 0; pooled < 2; pooled++) {
        if (pooled) mapper_event(L, "ev", text);
        else event_from(L, text);
        assert_lua(L, "local n = 0 for i = 1, 64 do n = n + ev.drop['d' .. i].v end "
                      "kept = ev.keep ev = nil collectgarbage() collectgarbage() "
                      "for i = 1, 64 do local o = kept['o' .. i] "
                      "  if o.v ~= i or o.w.x ~= i then return false end "
                      "  if i % 8 == 0 then collectgarbage() end end "
                      "for i = 1, 64 do if kept['o' .. i].w.x ~= i then return false end end "
                      "return n == 64 * 65 / 2");
    }
    free(text);
}

static void every_object_of_an_event_of_objects_alone_is_read(void **state) {
    lua_State *L = *state;
    /* as many data tables as the tape has objects: the map's room, twice that, is never short */
    char *text = nested_objects(300);
    mapper_event(L, "ev", text);
    free(text);
    assert_lua(L, "for i = 1, 300 do local o = ev.keep['o' .. i] "
                  "  if o.v ~= i or o.w.x ~= i or ev.drop['d' .. i].v ~= i then return false end end "
                  "local n = 0 for k, v in pairs(ev.keep) do n = n + 1 end "
                  "return n == 300 and json.encode(ev):find('\"o300\":{\"v\":300,\"w\":{\"x\":300}}', 1, true) ~= nil");
}

static void a_kept_table_stays_stale_through_many_later_events(void **state) {
    lua_State *L = *state;
    /* staleness is a kept data table's absence from the document's map, which every event
     * starts empty: however many tables later events make, none takes a kept one's place */
    mapper_event(L, "ev", "{\"a\":{\"x\":1,\"y\":2},\"b\":{\"z\":3}}");
    assert_lua(L, "kept, kept_b = ev.a, ev.b return kept.x == 1");
    for (int i = 0; i < 50; i++) {
        mapper_event(L, "ev", "{\"a\":{\"x\":10,\"y\":20},\"b\":{\"z\":30},\"c\":{\"w\":{\"v\":1}}}");
        assert_lua(L, "return ev.a.y == 20 and ev.b.z == 30 and ev.c.w.v == 1 and kept.x == 1");
        assert_lua_error(L, "return kept.y", "event is no longer readable: field 'y'");
        assert_lua_error(L, "return kept_b.z", "event is no longer readable: field 'z'");
        if (i % 10 == 0) assert_lua(L, "collectgarbage() return true");
    }
}

static void the_map_of_data_tables_grows_and_starts_small_again(void **state) {
    lua_State *L = *state;
    /* an event making many data tables grows its document's map; the next starts with a small one
     * again, and the first's tables stay stale through both */
    char *text = nested_objects(500);
    mapper_event(L, "ev", text);
    free(text);
    assert_lua(L, "big = {} for i = 1, 500 do big[i] = ev.keep['o' .. i] "
                  "  if big[i].w.x ~= i or big[i].v ~= i then return false end end return true");
    mapper_event(L, "ev", "{\"a\":{\"b\":{\"c\":1}}}");
    assert_lua(L, "return ev.a.b.c == 1 and big[7].v == 7");
    assert_lua_error(L, "return big[7].missing", "event is no longer readable: field 'missing'");
    mapper_event(L, "ev", "{\"a\":{\"b\":{\"c\":2}}}");
    assert_lua(L, "return ev.a.b.c == 2");
    assert_lua_error(L, "return big[300].w2", "event is no longer readable");
}

/* json_tape_keep (a validated NDJSON line): the next json_decode_event of those very bytes builds from
 * the kept tape; any other scan between, or other bytes, and it scans its own. Each case is checked
 * against the same text decoded fresh. */
static void a_kept_tape_decodes_its_own_bytes_and_nothing_else(void **state) {
    lua_State *L = *state;
    char a[] = "{\"id\": 1, \"items\": [{\"sku\": \"A\"}, {\"sku\": \"B\"}], \"name\": \"ann\"}";
    /* the same length, its members in another order: a's tape over b's bytes reads garbage */
    char b[] = "{\"name\": \"bob\", \"id\": 2, \"items\": [{\"sku\": \"C\"}, {\"sku\": \"D\"}]}";
    assert_int_equal(strlen(a), strlen(b));
    char err[256] = "";

    assert_int_equal(json_tape_keep(a, strlen(a)), 0);
    assert_int_equal(json_decode_event(L, a, strlen(a), err, sizeof err), 0);
    lua_setglobal(L, "ev");
    assert_lua(L, "return ev.id == 1 and ev.items[2].sku == 'B' and ev.name == 'ann' and #ev.items == 2");
    char *text = encode_global(L, "ev");
    assert_string_equal(text, "{\"id\":1,\"items\":[{\"sku\":\"A\"},{\"sku\":\"B\"}],\"name\":\"ann\"}");
    free(text);

    /* kept for a, then b (other bytes of the same length) decoded: b's own scan */
    assert_int_equal(json_tape_keep(a, strlen(a)), 0);
    assert_int_equal(json_decode_event(L, b, strlen(b), err, sizeof err), 0);
    lua_setglobal(L, "ev");
    assert_lua(L, "return ev.id == 2 and ev.items[1].sku == 'C' and ev.name == 'bob'");

    /* kept for a, another scan on the thread (which writes the tape), then a: scanned again */
    size_t end;
    assert_int_equal(json_tape_keep(a, strlen(a)), 0);
    assert_int_equal(json_value_end("[1, [2, [3]], {\"x\": null}]", 26, &end, err, sizeof err), 0);
    assert_int_equal(json_decode_event(L, a, strlen(a), err, sizeof err), 0);
    lua_setglobal(L, "ev");
    assert_lua(L, "return ev.id == 1 and ev.items[1].sku == 'A' and ev.name == 'ann'");

    /* used once: a second decode of a, its tape overwritten by b's scan in between, still reads a */
    assert_int_equal(json_tape_keep(a, strlen(a)), 0);
    assert_int_equal(json_decode_event(L, a, strlen(a), err, sizeof err), 0);
    assert_int_equal(json_decode_event(L, b, strlen(b), err, sizeof err), 0);
    assert_int_equal(json_decode_event(L, a, strlen(a), err, sizeof err), 0);
    lua_setglobal(L, "ev");
    assert_lua(L, "return ev.id == 1 and ev.items[2].sku == 'B'");

    /* what json_decode_event refuses is not kept: a bad line, or one with data after its value */
    assert_int_equal(json_tape_keep("{\"id\": }", 9), -1);
    assert_int_equal(json_tape_keep("{} {}", 5), -1);
    assert_int_equal(json_tape_keep(" {\"id\": 3}\r\n ", 13), 0);   /* whitespace around it is fine */
    lua_settop(L, 0);
}

/* ---- read plans: the members read of an object before are built on its first read ---- */

/* Every read answers what the event holds, whatever the plan learned from the events before: a
 * member absent now, of another type now (a container is never built ahead), duplicated (the last
 * wins), or in an object with a key written with escapes (read key by key). */
static void planned_reads_answer_what_each_event_holds(void **state) {
    lua_State *L = *state;
    mapper_event(L, "ev", "{\"a\":\"one\",\"b\":2,\"c\":true,\"sub\":{\"x\":1},\"items\":[{\"sku\":\"A\"}]}");
    assert_lua(L, "return ev.a == 'one' and ev.b == 2 and ev.c == true and ev.sub.x == 1 "
                  "and ev.items[1].sku == 'A'");
    mapper_event(L, "ev", "{\"b\":{\"y\":5},\"a\":\"two\",\"a\":\"three\",\"sub\":{\"x\":7},"
                          "\"items\":[{\"sku\":\"B\"},{\"sku\":\"C\",\"sku\":\"D\"}]}");
    assert_lua(L, "return ev.a == 'three'");
    assert_lua(L, "return ev.b.y == 5");
    assert_lua(L, "return ev.c == nil");
    assert_lua(L, "return ev.sub.x == 7");
    assert_lua(L, "return ev.items[1].sku == 'B'");
    assert_lua(L, "return ev.items[2].sku == 'D'");
    assert_lua(L, "return ev.b == ev.b");
    mapper_event(L, "ev", "{\"a\":\"plain\",\"\\u0061\":\"escaped\",\"b\":3}");
    assert_lua(L, "return ev.a == 'escaped' and ev.b == 3");
    mapper_event(L, "ev", "{\"b\":4,\"a\":\"last\"}");
    assert_lua(L, "local n = 0 for k, v in pairs(ev) do n = n + 1 end "
                  "return ev.a == 'last' and ev.b == 4 and n == 2 and json.encode(ev) == '{\"a\":\"last\",\"b\":4}'");
}

/* What a plan changes that a script can see: a table kept past its event keeps the planned members
 * of the objects read in it (its own event's values) as well as the ones read, and refuses the
 * rest; nothing of a later event shows through it. */
static void a_kept_table_keeps_its_planned_members_and_refuses_the_rest(void **state) {
    lua_State *L = *state;
    mapper_event(L, "ev", "{\"id\":\"1\",\"state\":\"open\",\"note\":\"n1\"}");
    assert_lua(L, "return ev.id == '1' and ev.state == 'open'");       /* planned: id, state */
    mapper_event(L, "kept", "{\"id\":\"2\",\"state\":\"closed\",\"note\":\"n2\"}");
    assert_lua(L, "return kept.id == '2'");                             /* state built with it */
    mapper_event(L, "ev", "{\"id\":\"3\",\"state\":\"done\",\"note\":\"n3\"}");
    assert_lua(L, "return kept.id == '2' and kept.state == 'closed' and ev.state == 'done'");
    assert_lua_error(L, "return kept.note", "event is no longer readable: field 'note'");
}

/* A script reading every name it can think of fills its plan and no more: every read still answers
 * right, and an object it touches builds at most the plan's bound of members ahead. */
static void a_plan_is_bounded_and_reads_past_it_stay_right(void **state) {
    lua_State *L = *state;
    strbuf text = {0};
    strbuf_adds(&text, "{");
    for (int i = 0; i < 300; i++) {
        char member[48];
        snprintf(member, sizeof member, "%s\"k%d\":%d", i ? "," : "", i, i);
        strbuf_adds(&text, member);
    }
    strbuf_adds(&text, "}");
    strbuf_addc(&text, 0);
    for (int round = 0; round < 3; round++) {
        mapper_event(L, "ev", text.data);
        assert_lua(L, "for i = 0, 299 do assert(ev['k' .. i] == i, i) end return ev.k300 == nil");
    }
    strbuf_free(&text);
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
        T(a_table_kept_from_an_earlier_event_keeps_its_reads_and_refuses_the_rest),
        T(a_coroutine_kept_across_events_cannot_read_the_next_events_tape),
        T(a_larger_event_replaces_the_pooled_document_and_the_old_tables_go_stale),
        T(a_scripts_own_read_only_decode_leaves_the_event_readable),
        T(a_view_of_a_stale_table_is_refused),
        T(strings_read_again_are_the_same_values),
        T(objects_made_after_others_were_collected_read_their_own_fields),
        T(every_object_of_an_event_of_objects_alone_is_read),
        T(a_kept_table_stays_stale_through_many_later_events),
        T(the_map_of_data_tables_grows_and_starts_small_again),
        T(a_kept_tape_decodes_its_own_bytes_and_nothing_else),
        T(planned_reads_answer_what_each_event_holds),
        T(a_kept_table_keeps_its_planned_members_and_refuses_the_rest),
        T(a_plan_is_bounded_and_reads_past_it_stay_right),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
