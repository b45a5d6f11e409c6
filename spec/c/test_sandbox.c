/*
 * test_sandbox.c: what core/script/sandbox.c promises a tenant's scripts can and cannot do.
 *
 * Why these tests: one tenant's Lua state runs merchant-written scripts next to other tenants.
 * The allow-list must give mapping what it needs (string, table, math, utf8, os.time/date/clock,
 * pcall, text `load`) and nothing that reaches the host (io, os.execute, package, debug, bytecode,
 * finalizers); `require` must reach only returnflow's modules, cjson and the tenant's own folder;
 * and every cap (CPU time, memory, stack) must end a runaway script with a message naming the
 * cap, never a hang or a crash, even when the script wraps itself in pcall or a coroutine.
 *
 * Each test gets a fresh sandbox with small caps (8 MiB, 100 ms of CPU time) over a fresh
 * temporary scripts folder, so a broken cap is reached quickly. A script is run as the file
 * "test" with its own file env, as sandbox_load_file would. An alarm kills the binary if one
 * test runs past 20 s, so a cap that fails to fire shows as a failure, not a hung suite.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "lauxlib.h"
#include "sandbox.h"

/* ------------------------------- helpers --------------------------------- */

typedef struct fixture {
    sandbox *sb;
    char dir[64];           /* the scripts folder, a fresh temporary directory */
} fixture;

static const sandbox_caps small_caps = { 8u << 20, 0.1 };

static sandbox *new_sandbox(const sandbox_caps *caps, const char *dir) {
    char err[256] = "";
    sandbox *sb = sandbox_new(caps, dir, err, sizeof err);
    if (!sb) fail_msg("sandbox_new: %s", err);
    return sb;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rf-test-sandbox-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    f->sb = new_sandbox(&small_caps, f->dir);
    *state = f;
    alarm(20);
    return 0;
}

/* Replaces the fixture's sandbox (spoiled by the test so far) with a fresh one. */
static void renew(fixture *f) {
    sandbox_free(f->sb);
    f->sb = new_sandbox(&small_caps, f->dir);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state) {
    fixture *f = *state;
    alarm(0);
    sandbox_free(f->sb);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Writes text to dir/name (name may hold one subfolder, "sub/x.lua"). */
static void write_script(const fixture *f, const char *name, const char *text) {
    char path[256];
    const char *slash = strchr(name, '/');
    if (slash) {
        snprintf(path, sizeof path, "%s/%.*s", f->dir, (int)(slash - name), name);
        mkdir(path, 0700);
    }
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *out = fopen(path, "w");
    if (!out) fail_msg("cannot write %s", path);
    fputs(text, out);
    fclose(out);
}

/* Loads code as the script "test" under the env on top of the stack (popped), calls it under
 * the caps and returns the status; the one result or the message is left on the stack. */
static int run_in_env(sandbox *sb, const char *code) {
    lua_State *L = sandbox_lua(sb);
    if (luaL_loadbufferx(L, code, strlen(code), "=test", "t") != LUA_OK)
        fail_msg("%s: %s", code, lua_tostring(L, -1));
    lua_insert(L, -2);
    lua_setupvalue(L, -2, 1);
    return sandbox_call(sb, 0, 1);
}

/* The same with a fresh file env. */
static int run(sandbox *sb, const char *code) {
    sandbox_push_file_env(sb);
    return run_in_env(sb, code);
}

/* Runs code, which must succeed and return a string equal to want. */
static void assert_script_returns(sandbox *sb, const char *code, const char *want) {
    lua_State *L = sandbox_lua(sb);
    int top = lua_gettop(L);
    if (run(sb, code) != LUA_OK) fail_msg("%s: %s", code, lua_tostring(L, -1));
    const char *got = luaL_tolstring(L, -1, NULL);
    if (strcmp(got, want) != 0) fail_msg("%s: got \"%s\", want \"%s\"", code, got, want);
    lua_settop(L, top);
}

/* Runs code, which must fail; returns the message (static). */
static const char *script_fails(sandbox *sb, const char *code) {
    static char msg[1024];
    lua_State *L = sandbox_lua(sb);
    int top = lua_gettop(L);
    if (run(sb, code) == LUA_OK) fail_msg("%s: did not fail", code);
    snprintf(msg, sizeof msg, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
    lua_settop(L, top);
    return msg;
}

static void assert_contains(const char *s, const char *part) {
    if (!strstr(s, part)) fail_msg("\"%s\" does not contain \"%s\"", s, part);
}

/* ------------------------------ allow-list -------------------------------- */

static void allowed_globals_work(void **state) {
    fixture *f = *state;
    assert_script_returns(f->sb,
        "assert(string.format('%d-%s', 3, 'x') == '3-x')\n"
        "assert(('abc'):upper() == 'ABC' and ('a,b'):find(',', 1, true) == 2)\n"
        "assert(table.concat({ 'a', 'b' }, ',') == 'a,b')\n"
        "local t = { 3, 1, 2 } table.sort(t) assert(t[1] == 1 and #t == 3)\n"
        "assert(math.floor(2.5) == 2 and math.type(1) == 'integer')\n"
        "assert(utf8.char(233) == '\\xc3\\xa9' and utf8.len('\\xc3\\xa9') == 1)\n"
        "assert(math.type(os.time()) == 'integer' and os.date('!%Y', 0) == '1970')\n"
        "assert(type(os.clock()) == 'number')\n"
        "local ok, e = pcall(error, 'boom', 0) assert(not ok and e == 'boom')\n"
        "assert(select('#', 1, 2) == 2 and tonumber('12') == 12 and next({}) == nil)\n"
        "return 'ok'",
        "ok");
}

static void host_reaching_globals_are_nil(void **state) {
    fixture *f = *state;
    assert_script_returns(f->sb,
        "local found = {}\n"
        "local function absent(name, v) if v ~= nil then found[#found + 1] = name end end\n"
        "absent('io', io) absent('os.execute', os.execute) absent('os.getenv', os.getenv)\n"
        "absent('os.exit', os.exit) absent('os.remove', os.remove) absent('os.rename', os.rename)\n"
        "absent('os.tmpname', os.tmpname) absent('package', package) absent('debug', debug)\n"
        "absent('dofile', dofile) absent('loadfile', loadfile) absent('collectgarbage', collectgarbage)\n"
        "absent('string.dump', string.dump) absent('_G.io', _G.io)\n"
        "return table.concat(found, ',')",
        "");
}

static void string_dump_is_not_reachable_through_string_methods(void **state) {
    fixture *f = *state;
    assert_script_returns(f->sb, "return tostring(('').dump)", "nil");
}

static void load_of_a_text_chunk_works_with_the_tenant_globals(void **state) {
    fixture *f = *state;
    assert_script_returns(f->sb, "local add = load('return 1 + 1') return add()", "2");
    assert_script_returns(f->sb, "return load('return string.upper(...)')('x')", "X");
}

static void load_of_a_binary_chunk_is_refused(void **state) {
    fixture *f = *state;
    /* string.dump is gone, so craft the start of a binary chunk by hand. */
    assert_script_returns(f->sb,
        "local chunk, err = load('\\27Lua\\84\\0\\25\\147\\r\\n\\26\\n') return tostring(chunk) .. ': ' .. err",
        "nil: attempt to load a binary chunk (mode is 't')");
    assert_script_returns(f->sb,
        "local ok, err = pcall(load, 'return 1', 'x', 'bt') return tostring(ok) .. ': ' .. err",
        "false: load: only text chunks are allowed (mode 't')");
}

static void setmetatable_with_a_gc_field_is_refused(void **state) {
    fixture *f = *state;
    assert_contains(script_fails(f->sb, "setmetatable({}, { __gc = function() end })"),
                    "test:1: setmetatable: __gc finalizers are not allowed in scripts");
    assert_contains(script_fails(f->sb, "setmetatable({}, { __gc = true })"), "__gc finalizers are not allowed");
    assert_script_returns(f->sb, "return setmetatable({}, { __index = { x = 'plain' } }).x", "plain");
}

static void rawset_cannot_change_a_readonly_event(void **state) {
    fixture *f = *state;
    lua_State *L = sandbox_lua(f->sb);
    char err[128];
    assert_int_equal(json_decode(L, "{\"id\":1}", 8, JSON_READONLY, err, sizeof err), 0);
    sandbox_push_file_env(f->sb);
    lua_insert(L, -2);
    lua_setfield(L, -2, "event");
    assert_int_equal(run_in_env(f->sb, "rawset(event, 'id', 2)"), LUA_ERRRUN);
    assert_contains(lua_tostring(L, -1), "event is read-only: rawset cannot change it");
    lua_pop(L, 1);
}

static void globals_written_by_one_file_stay_in_that_file(void **state) {
    fixture *f = *state;
    lua_State *L = sandbox_lua(f->sb);
    sandbox_push_file_env(f->sb);                         /* file A's env, kept below */
    lua_pushvalue(L, -1);
    assert_int_equal(run_in_env(f->sb, "x = 42 string = 'mine' return x"), LUA_OK);
    assert_int_equal(lua_tointeger(L, -1), 42);
    lua_pop(L, 1);
    sandbox_push_file_env(f->sb);                         /* file B's env */
    assert_int_equal(run_in_env(f->sb, "return tostring(x) .. ' ' .. type(string)"), LUA_OK);
    assert_string_equal(lua_tostring(L, -1), "nil table");
    lua_pop(L, 1);
    assert_int_equal(run_in_env(f->sb, "return tostring(x) .. ' ' .. type(string)"), LUA_OK); /* A again */
    assert_string_equal(lua_tostring(L, -1), "42 string");
    lua_pop(L, 1);
}

/* -------------------------------- require --------------------------------- */

static void require_of_a_system_module_is_refused_saying_what_is_allowed(void **state) {
    fixture *f = *state;
    static const char *const names[] = { "socket", "os", "io", "debug", "ffi" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char code[64], want[128];
        snprintf(code, sizeof code, "return require '%s'", names[i]);
        snprintf(want, sizeof want, "require: '%s' is not allowed in the sandbox (only returnflow.*, cjson "
                                    "and files of the scripts folder", names[i]);
        assert_contains(script_fails(f->sb, code), want);
    }
}

static void require_cannot_leave_the_scripts_folder(void **state) {
    fixture *f = *state;
    write_script(f, "inside.lua", "return 1");
    static const char *const names[] = { "../inside", "..inside", ".inside", "/etc/passwd", "a/../inside", "" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char code[64];
        snprintf(code, sizeof code, "return require '%s'", names[i]);
        assert_contains(script_fails(f->sb, code), "is not allowed in the sandbox");
    }
}

static void require_of_a_scripts_file_loads_it_once_and_caches_it(void **state) {
    fixture *f = *state;
    write_script(f, "helpers.lua",
                 "leaked = true\n"
                 "local M = {}\n"
                 "function M.greet(name) return 'hi ' .. name end\n"
                 "return M\n");
    write_script(f, "sub/money.lua", "return { cents = function(s) return math.tointeger(tonumber(s) * 100) end }");
    assert_script_returns(f->sb,
        "local a, b = require 'helpers', require 'helpers'\n"
        "local m = require 'sub.money'\n"
        "return tostring(a == b) .. ' ' .. a.greet('Ana') .. ' ' .. m.cents('118.80') .. ' ' .. tostring(leaked)",
        "true hi Ana 11880 nil");
    /* Another file gets the very same table: the cache is the tenant's, not the file's. */
    assert_script_returns(f->sb, "local h = require 'helpers' h.marked = 'yes' return 'ok'", "ok");
    assert_script_returns(f->sb, "return require('helpers').marked", "yes");
}

static void require_cjson_shares_null_with_returnflow_json(void **state) {
    fixture *f = *state;
    assert_script_returns(f->sb,
        "local cjson = require 'cjson'\n"
        "local json = require 'returnflow.json'\n"
        "assert(json.null ~= nil and type(json.null) == 'userdata')\n"
        "assert(json.decode('[null]')[1] == cjson.null)\n"
        "return tostring(cjson.null == json.null) .. ' ' .. cjson.encode({ a = cjson.null }) .. ' '\n"
        "  .. json.encode({ b = json.null, c = json.array() })",
        "true {\"a\":null} {\"b\":null,\"c\":[]}");
}

/* ---------------------------------- caps ----------------------------------- */

static void infinite_loop_breaks_the_run_time_cap(void **state) {
    fixture *f = *state;
    assert_false(sandbox_spoiled(f->sb));
    assert_string_equal(script_fails(f->sb, "local n = 0\nwhile true do n = n + 1 end"),
                        "test:2: cap: 100 ms of run time exceeded (a loop that never ends?)");
    assert_true(sandbox_spoiled(f->sb));
}

static void run_time_cap_is_counted_per_call(void **state) {
    fixture *f = *state;
    const char *busy_60ms = "local t = os.clock() while os.clock() - t < 0.06 do end return 'done'";
    assert_script_returns(f->sb, busy_60ms, "done");
    assert_script_returns(f->sb, busy_60ms, "done");
    assert_false(sandbox_spoiled(f->sb));
}

static void pcall_in_the_script_cannot_swallow_a_broken_cap(void **state) {
    fixture *f = *state;
    assert_contains(script_fails(f->sb,
                        "local caught = 0\n"
                        "while true do caught = caught + 1 pcall(function() while true do end end) end"),
                    "cap: 100 ms of run time exceeded");
    assert_true(sandbox_spoiled(f->sb));
    renew(f);                                             /* a spoiled state is thrown away */
    assert_contains(script_fails(f->sb,
                        "while true do xpcall(function() while true do end end, function(e) return e end) end"),
                    "cap: 100 ms of run time exceeded");
}

static void run_time_cap_reaches_into_coroutines(void **state) {
    fixture *f = *state;
    assert_contains(script_fails(f->sb,
                        "while true do coroutine.resume(coroutine.create(function() while true do end end)) end"),
                    "cap: 100 ms of run time exceeded");
    renew(f);
    assert_contains(script_fails(f->sb, "return coroutine.wrap(function() while true do end end)()"),
                    "cap: 100 ms of run time exceeded");
}

/* One watchdog watches every thread: a runaway call on one thread breaks its own cap, and the
 * busy but short calls of another thread, running at the same time, are not touched. */
typedef struct thread_run { const char *dir; int ok, broke; } thread_run;

static void *runaway_thread(void *arg) {
    thread_run *r = arg;
    sandbox *sb = new_sandbox(&small_caps, r->dir);
    lua_State *L = sandbox_lua(sb);
    r->broke = run(sb, "while true do end") != LUA_OK && strstr(lua_tostring(L, -1), "cap: 100 ms of run time");
    sandbox_free(sb);
    sandbox_thread_done();
    return NULL;
}

static void *busy_thread(void *arg) {
    thread_run *r = arg;
    sandbox *sb = new_sandbox(&small_caps, r->dir);
    for (int i = 0; i < 6; i++)
        r->ok += run(sb, "local t = os.clock() while os.clock() - t < 0.06 do end return 'done'") == LUA_OK;
    sandbox_free(sb);
    sandbox_thread_done();
    return NULL;
}

static void run_time_caps_of_two_threads_are_apart(void **state) {
    fixture *f = *state;
    thread_run a = { f->dir, 0, 0 }, b = { f->dir, 0, 0 };
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, runaway_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, busy_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_true(a.broke);
    assert_int_equal(b.ok, 6);
    /* and this thread's next calls still have their cap */
    assert_contains(script_fails(f->sb, "while true do end"), "cap: 100 ms of run time exceeded");
}

static void endless_allocation_breaks_the_memory_cap_and_spoils_the_state(void **state) {
    fixture *f = *state;
    /* A roomy time cap: under ASan the allocations are slow, and the memory
     * cap, not the clock, must be what stops this script. */
    static const sandbox_caps memory_only = { 8u << 20, 10.0 };
    sandbox_free(f->sb);
    f->sb = new_sandbox(&memory_only, f->dir);
    assert_false(sandbox_spoiled(f->sb));
    const char *msg = script_fails(f->sb,
        "local keep = {}\n"
        "while true do keep[#keep + 1] = string.rep('x', 65536) .. #keep end");
    assert_contains(msg, "test:2: cap: memory 8 MiB exceeded");
    assert_true(sandbox_spoiled(f->sb));
}

static void unbounded_recursion_breaks_the_memory_cap_saying_so(void **state) {
    fixture *f = *state;
    static const sandbox_caps memory_only = { 8u << 20, 10.0 };   /* as above: memory, not time */
    sandbox_free(f->sb);
    f->sb = new_sandbox(&memory_only, f->dir);
    assert_contains(script_fails(f->sb, "local function down(n) return 1 + down(n + 1) end return down(1)"),
                    "cap: memory 8 MiB exceeded (recursion more than 10000 calls deep)");
}

static void unbounded_recursion_under_roomy_caps_fails_with_a_stack_overflow_message(void **state) {
    fixture *f = *state;
    /* Lua's own stack limit (a million slots) comes before a cap only when memory is roomy. */
    const sandbox_caps caps = { 256u << 20, 5.0 };
    sandbox_free(f->sb);
    f->sb = new_sandbox(&caps, f->dir);
    assert_contains(script_fails(f->sb, "local function down(n) return 1 + down(n + 1) end return down(1)"),
                    "stack overflow");
    assert_false(sandbox_spoiled(f->sb));
    assert_script_returns(f->sb, "return 'still usable'", "still usable");
}

static void unbounded_metamethod_recursion_fails_with_a_c_stack_overflow_message(void **state) {
    fixture *f = *state;
    assert_contains(script_fails(f->sb,
                        "local t = setmetatable({}, { __index = function(t, k) return t[k] end }) return t.x"),
                    "stack overflow");
    assert_false(sandbox_spoiled(f->sb));
}


/* ---------------------- guards (issues 10 and 18) ------------------------- */

/* Pushes a fresh file env holding `event`, a read-only event decoded from json. */
static void push_env_with_event(fixture *f, const char *json) {
    lua_State *L = sandbox_lua(f->sb);
    char err[128];
    sandbox_push_file_env(f->sb);
    assert_int_equal(json_decode(L, json, strlen(json), JSON_READONLY, err, sizeof err), 0);
    lua_setfield(L, -2, "event");
}

static void event_iterator_checks_its_argument(void **state) {
    fixture *f = *state;
    lua_State *L = sandbox_lua(f->sb);
    static const char *const calls[] = { "local it = pairs(event) return it(12345, nil)",
                                         "local it = pairs(event) return it('a string', 'k')",
                                         "local it = pairs(event) return it({}, nil)" };
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
        push_env_with_event(f, "{\"a\":1,\"b\":{\"c\":2}}");
        assert_int_equal(run_in_env(f->sb, calls[i]), LUA_ERRRUN);
        assert_contains(lua_tostring(L, -1), "bad argument #1");
        lua_pop(L, 1);
    }
    push_env_with_event(f, "{\"a\":1,\"b\":{\"c\":2}}");
    assert_int_equal(run_in_env(f->sb, "local n = 0 for k, v in pairs(event) do n = n + 1 end return n"), LUA_OK);
    assert_int_equal(lua_tointeger(L, -1), 2);
    lua_pop(L, 1);
}

static void pairs_never_hands_out_the_writable_table(void **state) {
    fixture *f = *state;
    lua_State *L = sandbox_lua(f->sb);
    push_env_with_event(f, "{\"state\":\"open\"}");
    assert_int_equal(run_in_env(f->sb,
        "local _, s = pairs(event)\n"
        "assert(rawequal(s, event), 'the second value is the read-only table itself')\n"
        "assert(not pcall(function() s.state = 'forged' end))\n"
        "assert(not pcall(rawset, s, 'state', 'forged'))\n"
        "return event.state"), LUA_OK);
    assert_string_equal(lua_tostring(L, -1), "open");
    lua_pop(L, 1);
}

static void marking_cannot_make_the_event_writable_and_markers_are_guarded(void **state) {
    fixture *f = *state;
    lua_State *L = sandbox_lua(f->sb);
    push_env_with_event(f, "{\"state\":\"open\",\"items\":[1,2]}");
    assert_int_equal(run_in_env(f->sb,
        "local rf = require 'returnflow'\n"
        "assert(not pcall(rf.object, event)) assert(not pcall(rf.array, event.items))\n"
        "assert(not pcall(function() event.state = 'x' end))\n"
        "assert(getmetatable(rf.array {}) == 'array' and getmetatable(rf.object {}) == 'object')\n"
        "local mine = rf.decode('[1]') setmetatable(mine, { __index = function() return 0 end })\n"
        "assert(mine[5] == 0, 'a decoded table of the script may get a metatable of its own')\n"
        "assert(not pcall(setmetatable, event, {}))\n"
        "return event.state"), LUA_OK);
    assert_string_equal(lua_tostring(L, -1), "open");
    lua_pop(L, 1);
}

static void long_c_loops_end_at_the_run_time_cap(void **state) {
    fixture *f = *state;
    assert_script_returns(f->sb, "return string.rep('', math.maxinteger) .. ('ab'):rep(2, ',')", "ab,ab");
    renew(f);
    assert_contains(script_fails(f->sb, "table.move({}, 1, 1 << 40, 2) return 'returned'"), "cap: 100 ms");
    renew(f);
    assert_script_returns(f->sb, "local t = table.move({1, 2, 3}, 1, 3, 2) return table.concat(t, ',')", "1,1,2,3");
}

static void table_insert_remove_sort_refuse_huge_lengths_and_end_at_the_cap(void **state) {
    fixture *f = *state;
    const char *border = "local t = {} for k = 62, 0, -1 do t[1 << k] = true end t[3] = true ";
    char code[512];
    snprintf(code, sizeof code, "%s table.insert(t, 1, 'x') return 'returned'", border);
    assert_contains(script_fails(f->sb, code), "table.insert: cap: the table's length 4611686018427387904");
    renew(f);
    snprintf(code, sizeof code, "%s table.remove(t, 1) return 'returned'", border);
    assert_contains(script_fails(f->sb, code), "table.remove: cap:");
    renew(f);
    assert_contains(script_fails(f->sb, "table.sort(setmetatable({}, { __len = function() return (1 << 31) - 2 end,"
                                        " __index = type, __newindex = rawequal })) return 'returned'"), "table.sort: cap:");
    renew(f);
    /* under the bound, C metamethods only: the shift loop itself must check the time cap */
    assert_contains(script_fails(f->sb, "table.insert(setmetatable({}, { __len = function() return (1 << 26) - 1 end,"
                                        " __index = type, __newindex = rawequal }), 1, 'x') return 'returned'"),
                    "cap: 100 ms");
    renew(f);
    /* every comparison a long strcoll in C: the sort checks the cap at each */
    assert_contains(script_fails(f->sb, "local s = ('s'):rep(1 << 20) local t = {} for i = 1, 20000 do t[i] = s end"
                                        " table.sort(t) return 'returned'"), "cap: 100 ms");
    renew(f);
    assert_contains(script_fails(f->sb, "table.concat(setmetatable({}, { __len = function() return 1 << 62 end,"
                                        " __index = type })) return 'returned'"), "table.concat: cap:");
    renew(f);
    assert_contains(script_fails(f->sb, "table.concat(setmetatable({}, { __index = function() return '' end }), '',"
                                        " 1, (1 << 26) - 1) return 'returned'"), "cap: 100 ms");
    renew(f);
    assert_script_returns(f->sb, "return table.concat({1, 'b', 3}, '-') .. table.concat({}, 'x') .. table.concat({'a', 'b', 'c'}, '', 2, 3)", "1-b-3bc");
    renew(f);
    assert_script_returns(f->sb, "local t = {5, 3, 9, 1} table.insert(t, 2, 7) table.remove(t, 1)"
                                 " table.sort(t, function(a, b) return a > b end) return table.concat(t, ',')", "9,7,3,1");
}

static void a_breach_in_a_coroutine_stops_its_caller_and_close_handlers(void **state) {
    fixture *f = *state;
    assert_contains(script_fails(f->sb,
        "coroutine.resume(coroutine.create(function() while true do end end)) while true do end"), "cap: 100 ms");
    renew(f);
    assert_contains(script_fails(f->sb,
        "local co = coroutine.create(function()\n"
        "  local g <close> = setmetatable({}, { __close = function() while true do end end })\n"
        "  coroutine.yield() end)\n"
        "coroutine.resume(co) coroutine.close(co)"), "cap: 100 ms");
}

static void host_buffers_count_against_the_memory_cap(void **state) {
    fixture *f = *state;
    static const sandbox_caps memory_only = { 8u << 20, 10.0 };   /* the memory cap must stop these */
    sandbox_free(f->sb);
    f->sb = new_sandbox(&memory_only, f->dir);
    assert_contains(script_fails(f->sb,
        "local t = { 'xxxxxxxxxxxxxxxx' } for _ = 1, 40 do t = { t, t } end\n"
        "local s, err = require('returnflow.json').encode(t) error(err)"), "cap: memory");
    assert_contains(script_fails(f->sb,
        "local t = { 'xxxxxxxxxxxxxxxx' } for _ = 1, 40 do t = { t, t } end\n"
        "return require('cjson').encode(t)"), "cap");
    assert_contains(script_fails(f->sb,
        "return require('returnflow.json').decode('[' .. ('0,'):rep(3000000) .. '0]')"), "cap: memory");
}

static void garbage_of_earlier_calls_never_fails_a_later_one(void **state) {
    fixture *f = *state;
    static const sandbox_caps memory_only = { 8u << 20, 10.0 };   /* the memory cap is under test */
    sandbox_free(f->sb);
    f->sb = new_sandbox(&memory_only, f->dir);
    for (int i = 0; i < 3; i++)   /* 12 MiB of garbage a call under an 8 MiB cap */
        assert_script_returns(f->sb, "for i = 1, 12 do local s = ('g'):rep(1 << 20) end return 'ok'", "ok");
    assert_false(sandbox_spoiled(f->sb));
}

static void cjson_is_fixed_by_the_host(void **state) {
    fixture *f = *state;
    assert_script_returns(f->sb,
        "local cj = require 'cjson'\n"
        "for _, s in ipairs { 'encode_max_depth', 'decode_max_depth', 'encode_sparse_array', 'encode_keep_buffer' } do\n"
        "  assert(cj[s] == nil, s) end\n"
        "assert(not pcall(function() cj.encode = nil end))\n"
        "return cj.encode({ 1, 2 })", "[1,2]");
}

static void scripts_require_only_documented_modules_read_only(void **state) {
    fixture *f = *state;
    static const char *const hidden[] = { "returnflow.runtime", "returnflow.emitter", "returnflow.klaviyo",
                                          "returnflow.render", "returnflow.testing", "returnflow.cli.install" };
    for (size_t i = 0; i < sizeof hidden / sizeof *hidden; i++) {
        char code[96];
        snprintf(code, sizeof code, "return require '%s'", hidden[i]);
        assert_contains(script_fails(f->sb, code), "is not a module scripts may use");
    }
    assert_contains(script_fails(f->sb, "require('returnflow.loop').money = nil"), "read-only");
    assert_script_returns(f->sb, "local loop = require 'returnflow.loop' return type(loop.money)", "function");
}

static void each_file_has_its_own_library_tables(void **state) {
    fixture *f = *state;
    assert_script_returns(f->sb, "string.upper = function() return 'FORGED' end "
                                 "load('string.lower = nil')() return 'changed mine'", "changed mine");
    assert_script_returns(f->sb, "return ('x'):upper() .. string.upper('y') .. type(string.lower)", "XYfunction");
}

static void error_values_become_clean_messages(void **state) {
    fixture *f = *state;
    assert_contains(script_fails(f->sb, "error({})"), "(error object is a table value with no message)");
    assert_contains(script_fails(f->sb, "error(setmetatable({}, { __tostring = function() return '' end }))"),
                    "(error object is a table value with no message)");
    assert_contains(script_fails(f->sb, "error('a\\27[31mb\\nc')"), "a\\x1b[31mb\\nc");
    lua_State *L = sandbox_lua(f->sb);
    assert_int_equal(run(f->sb, "error(('x'):rep(1 << 20))"), LUA_ERRRUN);
    assert_true(lua_rawlen(L, -1) < SANDBOX_MESSAGE_MAX + 100);
    assert_contains(lua_tostring(L, -1), "bytes cut)");
    lua_pop(L, 1);
    assert_contains(script_fails(f->sb, "error(setmetatable({}, { __tostring = function() while true do end end }))"),
                    "cap: 100 ms");
}

static void a_fifo_is_not_loaded(void **state) {
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/pipe.lua", f->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    lua_State *L = sandbox_lua(f->sb);
    assert_int_not_equal(sandbox_load_file(f->sb, path), LUA_OK);
    assert_contains(lua_tostring(L, -1), "not a regular file");
    lua_pop(L, 1);
    assert_contains(script_fails(f->sb, "return require 'pipe'"), "not a regular file");
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(allowed_globals_work),
        T(host_reaching_globals_are_nil),
        T(string_dump_is_not_reachable_through_string_methods),
        T(load_of_a_text_chunk_works_with_the_tenant_globals),
        T(load_of_a_binary_chunk_is_refused),
        T(setmetatable_with_a_gc_field_is_refused),
        T(rawset_cannot_change_a_readonly_event),
        T(globals_written_by_one_file_stay_in_that_file),
        T(require_of_a_system_module_is_refused_saying_what_is_allowed),
        T(require_cannot_leave_the_scripts_folder),
        T(require_of_a_scripts_file_loads_it_once_and_caches_it),
        T(require_cjson_shares_null_with_returnflow_json),
        T(infinite_loop_breaks_the_run_time_cap),
        T(run_time_cap_is_counted_per_call),
        T(pcall_in_the_script_cannot_swallow_a_broken_cap),
        T(run_time_cap_reaches_into_coroutines),
        T(run_time_caps_of_two_threads_are_apart),
        T(endless_allocation_breaks_the_memory_cap_and_spoils_the_state),
        T(unbounded_recursion_breaks_the_memory_cap_saying_so),
        T(unbounded_recursion_under_roomy_caps_fails_with_a_stack_overflow_message),
        T(unbounded_metamethod_recursion_fails_with_a_c_stack_overflow_message),
        T(event_iterator_checks_its_argument),
        T(pairs_never_hands_out_the_writable_table),
        T(marking_cannot_make_the_event_writable_and_markers_are_guarded),
        T(long_c_loops_end_at_the_run_time_cap),
        T(table_insert_remove_sort_refuse_huge_lengths_and_end_at_the_cap),
        T(a_breach_in_a_coroutine_stops_its_caller_and_close_handlers),
        T(host_buffers_count_against_the_memory_cap),
        T(garbage_of_earlier_calls_never_fails_a_later_one),
        T(cjson_is_fixed_by_the_host),
        T(scripts_require_only_documented_modules_read_only),
        T(each_file_has_its_own_library_tables),
        T(error_values_become_clean_messages),
        T(a_fifo_is_not_loaded),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
