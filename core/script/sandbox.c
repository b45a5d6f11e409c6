/*
 * sandbox.c: a tenant's Lua state, with nothing in reach but what mapping needs.
 *
 * Scripts see an allow-listed copy of the standard library (no io, package,
 * debug, dofile, loadfile, string.dump, collectgarbage; os only time, date and
 * clock), a `load` that takes text only, and a `require` that reaches nothing
 * but returnflow's own modules, cjson and files of the tenant's folder. Each
 * script file gets its own globals table over the shared allow-list, so one
 * file cannot clobber another's names; returnflow's modules get yet another
 * copy of the library, so a script that rewrites `string.format` cannot bend
 * them.
 *
 * Caps. The allocator counts every byte of the state and refuses past the
 * memory cap. Run time is the calling thread's CPU time, watched by a POSIX
 * timer armed for each call: no hook runs while a script behaves, because in
 * Lua 5.4 any count hook costs a check at every VM instruction (about an
 * eighth of all mapping time). When a cap breaks, the state is "spoiled": a
 * count hook is set, from the signal handler as lua.c does for SIGINT, on the
 * innermost running coroutine, and it raises the cap error at every
 * instruction from then on; pcall, xpcall and coroutine.resume refuse to
 * start. So a script cannot swallow the error, and the owner throws the state
 * away once the call returns. The allocator gives a spoiled state some slack,
 * so the error can still be built and unwound.
 *
 * Not covered: a single C library call that runs long without allocating
 * (a pathological string pattern) is not interrupted until it returns.
 */
#include "sandbox.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "embedded.h"
#include "json.h"
#include "lauxlib.h"
#include "lua-cjson.h"
#include "lualib.h"

#define SPOILED_SLACK (16u << 20)       /* bytes a spoiled state may still take */
#define CAP_SIGNAL (SIGRTMIN + 3)       /* the run-time timer's signal */

enum { CAP_NONE, CAP_MEMORY, CAP_TIME };

struct sandbox {
    lua_State *L;
    sandbox_caps caps;
    size_t cap_memory;                  /* caps.memory_bytes as configured, for messages */
    size_t used;
    volatile sig_atomic_t armed;        /* inside sandbox_call */
    volatile sig_atomic_t broken;       /* which cap, CAP_NONE if none */
    lua_State *running;                 /* innermost running coroutine, for the hook */
    void *free_blocks[32];              /* the allocator's free lists, by 16-byte class */
    char *bump, *bump_end;              /* the rest of the newest chunk */
    void *chunks;
    char where[160];                    /* "scripts/x.lua:12" of the breach */
    int deep;                           /* the breach came with a very deep call stack */
    char scripts_dir[512];
    char display_dir[512];                 /* named in messages instead of scripts_dir, if set */
};

/* Registry keys. */
static const char base_env_key = 0, module_env_key = 0, loaded_key = 0, cjson_key = 0;

static void budget_hook(lua_State *L, lua_Debug *ar);

/* Marks the state spoiled and makes the next instruction raise the cap error. */
static void breach(sandbox *sb, int cap) {
    sb->broken = cap;
    lua_sethook(sb->running, budget_hook, LUA_MASKCOUNT, 1);
}

/* ------------------------------ allocator -------------------------------- */

/* Small blocks (most of Lua's: tables, short strings, closures) come from
 * per-state free lists in 16-byte classes, carved from 64 KB chunks; they go
 * back to the system only when the state closes. glibc's malloc and free were
 * a tenth of all mapping time. Under AddressSanitizer every block goes to
 * malloc, so the sanitizer keeps seeing each one. */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_MAX 0
#else
#define POOL_MAX 512
#endif
#define POOL_CHUNK (64u << 10)

typedef struct pool_chunk { struct pool_chunk *next; } pool_chunk;

static inline size_t pool_class(size_t size) { return (size - 1) >> 4; }   /* 1..16 → 0 */

static void *pool_get(sandbox *sb, size_t size) {
    size_t c = pool_class(size);
    void **head = &sb->free_blocks[c];
    if (*head) {
        void *p = *head;
        *head = *(void **)p;
        return p;
    }
    size_t block = (c + 1) << 4;
    if ((size_t)(sb->bump_end - sb->bump) < block) {
        pool_chunk *chunk = malloc(POOL_CHUNK);
        if (!chunk) return NULL;
        chunk->next = sb->chunks;
        sb->chunks = chunk;
        sb->bump = (char *)chunk + 16;
        sb->bump_end = (char *)chunk + POOL_CHUNK;
    }
    void *p = sb->bump;
    sb->bump += block;
    return p;
}

static void pool_put(sandbox *sb, void *p, size_t size) {
    void **head = &sb->free_blocks[pool_class(size)];
    *(void **)p = *head;
    *head = p;
}

static void pool_free_all(sandbox *sb) {
    for (pool_chunk *c = sb->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
}

static void release(sandbox *sb, void *ptr, size_t size) {
    if (size <= POOL_MAX) pool_put(sb, ptr, size);
    else free(ptr);
}

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sandbox *sb = ud;
    if (!ptr) osize = 0;
    if (nsize == 0) {
        if (ptr) release(sb, ptr, osize);
        sb->used -= osize;
        return NULL;
    }
    if (nsize > osize && sb->caps.memory_bytes) {
        size_t want = sb->used + (nsize - osize);
        size_t limit = sb->caps.memory_bytes + (sb->broken ? SPOILED_SLACK : 0);
        if (want > limit) {
            if (sb->armed && !sb->broken) breach(sb, CAP_MEMORY);
            if (want > sb->caps.memory_bytes + SPOILED_SLACK || !sb->armed) return NULL;
        }
    }
    void *p;
    if (ptr && osize <= POOL_MAX && nsize <= POOL_MAX && pool_class(osize) == pool_class(nsize)) {
        p = ptr;                                   /* same class: the block already fits */
    } else if (ptr && osize > POOL_MAX && nsize > POOL_MAX) {
        p = realloc(ptr, nsize);
    } else {
        p = nsize <= POOL_MAX ? pool_get(sb, nsize) : malloc(nsize);
        if (p && ptr) {
            memcpy(p, ptr, osize < nsize ? osize : nsize);
            release(sb, ptr, osize);
        }
    }
    if (p) sb->used += nsize - osize;
    return p;
}

/* --------------------------------- hook ---------------------------------- */

static void remember_where(sandbox *sb, lua_State *L) {
    lua_Debug ar;
    if (sb->where[0]) return;
    if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
        snprintf(sb->where, sizeof sb->where, "%s:%d", ar.short_src, ar.currentline);
    sb->deep = lua_getstack(L, 10000, &ar);
}

/* Pushes "scripts/x.lua:12: cap: ..." (the place first, like every Lua error). */
static int cap_message(sandbox *sb, lua_State *L) {
    char what[128];
    switch (sb->broken) {
    case CAP_MEMORY:
        snprintf(what, sizeof what, "cap: memory %d MiB exceeded%s", (int)(sb->cap_memory >> 20),
                 sb->deep ? " (recursion more than 10000 calls deep)" : "");
        break;
    default:
        snprintf(what, sizeof what, "cap: %d ms of run time exceeded (a loop that never ends?)",
                 (int)(sb->caps.seconds * 1000 + 0.5));
        break;
    }
    if (sb->where[0]) lua_pushfstring(L, "%s: %s", sb->where, what);
    else lua_pushstring(L, what);
    return 1;
}

/* Runs once the state is spoiled: at every instruction, raises the cap error. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    void *ud;
    lua_getallocf(L, &ud);
    sandbox *sb = ud;
    if (!sb->armed || !sb->broken) return;
    remember_where(sb, L);
    cap_message(sb, L);
    lua_error(L);
}

/* ------------------------------ run-time cap ------------------------------ */

static _Thread_local sandbox *calling;        /* the sandbox inside sandbox_call here */
static _Thread_local timer_t cpu_timer;
static _Thread_local int cpu_timer_made;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

static void on_cap_signal(int sig) {
    (void)sig;
    sandbox *sb = calling;
    if (sb && sb->armed && !sb->broken) breach(sb, CAP_TIME);
}

static void install_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_cap_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(CAP_SIGNAL, &sa, NULL);
}

/* One timer per thread, on the thread's own CPU clock, signalling that thread. */
static int timer_arm(double seconds) {
    if (!cpu_timer_made) {
        pthread_once(&handler_once, install_handler);
        struct sigevent sev;
        memset(&sev, 0, sizeof sev);
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = CAP_SIGNAL;
        sev._sigev_un._tid = gettid();
        if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &cpu_timer) != 0) return -1;
        cpu_timer_made = 1;
    }
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t)seconds;
    its.it_value.tv_nsec = (long)((seconds - (double)its.it_value.tv_sec) * 1e9);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    return timer_settime(cpu_timer, 0, &its, NULL);
}

void sandbox_thread_done(void) {
    if (cpu_timer_made) timer_delete(cpu_timer);
    cpu_timer_made = 0;
}

static void timer_disarm(void) {
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (cpu_timer_made) timer_settime(cpu_timer, 0, &its, NULL);
}

/* ------------------------------- guarded API ----------------------------- */

static int sb_print(lua_State *L) {
    int n = lua_gettop(L);
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar))
        fprintf(stderr, "%s:%d: ", ar.short_src, ar.currentline);
    for (int i = 1; i <= n; i++) {
        if (i > 1) fputc('\t', stderr);
        fputs(luaL_tolstring(L, i, NULL), stderr);
        lua_pop(L, 1);
    }
    fputc('\n', stderr);
    return 0;
}

/* After a cap broke, no new protected call may start: the error unwinds
 * through every pcall frame instead of being caught at the same one forever. */
static int finish_call(lua_State *L, int status, lua_KContext base) {
    (void)status;
    return lua_gettop(L) - (int)base;
}

static int guarded_call(lua_State *L, const char *real) {
    void *ud;
    lua_getallocf(L, &ud);
    sandbox *sb = ud;
    if (sb->broken) {
        remember_where(sb, L);
        cap_message(sb, L);
        return lua_error(L);
    }
    int base = 0;
    lua_getglobal(L, real);               /* the host's own, never reachable by scripts */
    lua_insert(L, 1);
    lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, base, finish_call);
    return finish_call(L, LUA_OK, base);
}

static int sb_pcall(lua_State *L) { return guarded_call(L, "pcall"); }
static int sb_xpcall(lua_State *L) { return guarded_call(L, "xpcall"); }

/* Resumes co from L, keeping sb->running on the innermost coroutine so a
 * breach can set its hook there. Returns the number of results moved to L,
 * or -1 with the error value on L (as lcorolib's auxresume). */
static int resume_tracked(lua_State *L, lua_State *co, int narg) {
    void *ud;
    lua_getallocf(L, &ud);
    sandbox *sb = ud;
    if (sb->broken) { remember_where(sb, L); cap_message(sb, L); return lua_error(L); }
    if (!lua_checkstack(co, narg)) { lua_pushliteral(L, "too many arguments to resume"); return -1; }
    lua_xmove(L, co, narg);
    lua_State *outer = sb->running;
    sb->running = co;
    int nres, status = lua_resume(co, L, narg, &nres);
    sb->running = outer;
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
}

static int sb_resume(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    int n = resume_tracked(L, co, lua_gettop(L) - 1);
    if (n < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(n + 1));
    return n + 1;
}

static int wrapped(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int n = resume_tracked(L, co, lua_gettop(L));
    if (n < 0) return lua_error(L);
    return n;
}

static int sb_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, wrapped, 1);
    return 1;
}

static int sb_rawset(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    json_unwrap(L, 1);
    if (!lua_rawequal(L, -1, 1)) return luaL_error(L, "event is read-only: rawset cannot change it");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

static int sb_setmetatable(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "setmetatable: the table's metatable is protected (the event is read-only)");
    lua_pushliteral(L, "__gc");
    if (lua_istable(L, 2) && lua_rawget(L, 2) != LUA_TNIL)
        return luaL_error(L, "setmetatable: __gc finalizers are not allowed in scripts");
    lua_settop(L, 2);
    lua_getglobal(L, "setmetatable"); /* the real one lives in the host's _G */
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* load(chunk [, name [, mode [, env]]]): text only, tenant globals by default. */
static int sb_load(lua_State *L) {
    int has_env = !lua_isnone(L, 4);
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t") != 0) return luaL_error(L, "load: only text chunks are allowed (mode 't')");
    lua_settop(L, 4);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    if (!has_env) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &base_env_key);
        lua_replace(L, 4);
    }
    lua_getglobal(L, "load");
    lua_insert(L, 1);
    lua_call(L, 4, 2);                  /* chunk, nil  or  nil, message */
    if (lua_isnil(L, 1)) return 2;
    lua_settop(L, 1);
    return 1;
}

static int valid_module_name(const char *name) {
    if (!*name || *name == '.') return 0;
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return 0;
        if (p[0] == '.' && p[1] == '.') return 0;
    }
    return 1;
}

/* Loads an embedded returnflow module into the module env and runs it. */
static int load_embedded(lua_State *L, const embedded_file *f) {
    char chunkname[128];
    snprintf(chunkname, sizeof chunkname, "=[returnflow] %s", f->name);
    if (luaL_loadbufferx(L, f->source, f->len, chunkname, "t") != LUA_OK) return lua_error(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &module_env_key);
    lua_setupvalue(L, -2, 1);
    lua_pushstring(L, f->name);
    lua_call(L, 1, 1);
    return 1;
}

static int sb_require(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &loaded_key);
    int loaded = lua_gettop(L);
    if (lua_getfield(L, loaded, name) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    if (strcmp(name, "cjson") == 0) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &cjson_key);
    } else if (strcmp(name, "returnflow.json") == 0) {
        json_luaopen(L);

    } else if (strcmp(name, "returnflow") == 0 || strncmp(name, "returnflow.", 11) == 0) {
        const embedded_file *f = embedded_find(name);
        if (!f) return luaL_error(L, "require: no module '%s' in returnflow", name);
        load_embedded(L, f);
    } else {
        if (!valid_module_name(name))
            return luaL_error(L, "require: '%s' is not allowed in the sandbox (only returnflow.*, cjson "
                                 "and files of the scripts folder)", name);
        void *ud;
        lua_getallocf(L, &ud);
        sandbox *sb = ud;
        char path[1024];
        int n = snprintf(path, sizeof path, "%s/", sb->scripts_dir);
        for (const char *p = name; *p && n < (int)sizeof path - 5; p++) path[n++] = *p == '.' ? '/' : *p;
        snprintf(path + n, sizeof path - (size_t)n, ".lua");
        FILE *probe = fopen(path, "r");
        if (!probe)
            return luaL_error(L, "require: '%s' is not allowed in the sandbox (only returnflow.*, cjson "
                                 "and files of the scripts folder; no %s)", name, path);
        fclose(probe);
        if (sandbox_load_file(sb, path) != LUA_OK) return lua_error(L);
        lua_pushstring(L, name);
        lua_call(L, 1, 1);
    }
    if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); }
    lua_pushvalue(L, -1);
    lua_setfield(L, loaded, name);
    return 1;
}

/* ------------------------------ environment ------------------------------ */

static void copy_table_from_global(lua_State *L, const char *lib, const char *const *skip) {
    lua_getglobal(L, lib);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        int skipped = 0;
        for (const char *const *s = skip; s && *s; s++)
            if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), *s) == 0) skipped = 1;
        if (skipped) { lua_pop(L, 1); continue; }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_remove(L, -2);
}

/* Pushes a table holding the allow-listed globals. */
static void push_allowlist(lua_State *L) {
    static const char *const plain[] = {
        "assert", "error", "ipairs", "next", "pairs", "rawequal", "rawget", "rawlen",
        "select", "tonumber", "tostring", "type", "getmetatable", "_VERSION", NULL,
    };
    static const char *const no_dump[] = { "dump", NULL };
    lua_newtable(L);
    for (const char *const *g = plain; *g; g++) {
        lua_getglobal(L, *g);
        lua_setfield(L, -2, *g);
    }
    static const luaL_Reg guarded[] = {
        { "print", sb_print }, { "rawset", sb_rawset }, { "setmetatable", sb_setmetatable },
        { "load", sb_load }, { "require", sb_require }, { "pcall", sb_pcall },
        { "xpcall", sb_xpcall }, { NULL, NULL },
    };
    luaL_setfuncs(L, guarded, 0);
    copy_table_from_global(L, "string", no_dump);
    lua_setfield(L, -2, "string");
    copy_table_from_global(L, "table", NULL);
    lua_setfield(L, -2, "table");
    copy_table_from_global(L, "math", NULL);
    lua_setfield(L, -2, "math");
    copy_table_from_global(L, "utf8", NULL);
    lua_setfield(L, -2, "utf8");
    copy_table_from_global(L, "coroutine", NULL);
    lua_pushcfunction(L, sb_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, sb_wrap);
    lua_setfield(L, -2, "wrap");
    lua_setfield(L, -2, "coroutine");
    lua_newtable(L);
    static const char *const os_allowed[] = { "time", "date", "clock", NULL };
    lua_getglobal(L, "os");
    for (const char *const *f = os_allowed; *f; f++) {
        lua_getfield(L, -1, *f);
        lua_setfield(L, -3, *f);
    }
    lua_pop(L, 1);
    lua_setfield(L, -2, "os");
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
}

sandbox *sandbox_new(const sandbox_caps *caps, const char *scripts_dir, char *err, size_t errlen) {
    sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) { snprintf(err, errlen, "out of memory"); return NULL; }
    sb->caps = *caps;
    sb->cap_memory = caps->memory_bytes;
    snprintf(sb->scripts_dir, sizeof sb->scripts_dir, "%s", scripts_dir ? scripts_dir : ".");
    lua_State *L = lua_newstate(capped_alloc, sb);
    if (!L) { free(sb); snprintf(err, errlen, "cannot create a Lua state"); return NULL; }
    sb->L = L;
    luaL_openlibs(L);
    json_open(L);
    luaL_requiref(L, "cjson", luaopen_cjson, 0);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cjson_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &loaded_key);

    /* The string metatable is shared by every string; hide it so a script
     * cannot reach the host's real string table through it. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    /* ... and ("").dump would still reach it through the string methods. */
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);

    push_allowlist(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &base_env_key);
    push_allowlist(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &module_env_key);

    sb->running = L;
    return sb;
}

void sandbox_free(sandbox *sb) {
    if (!sb) return;
    sb->armed = 0;
    lua_close(sb->L);
    pool_free_all(sb);
    free(sb);
}

lua_State *sandbox_lua(sandbox *sb) { return sb->L; }
int sandbox_spoiled(const sandbox *sb) { return sb->broken != CAP_NONE; }

void sandbox_push_file_env(sandbox *sb) {
    lua_State *L = sb->L;
    lua_createtable(L, 0, 4);
    lua_createtable(L, 0, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &base_env_key);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
}

void sandbox_set_display_dir(sandbox *sb, const char *dir) {
    snprintf(sb->display_dir, sizeof sb->display_dir, "%s", dir ? dir : "");
}

int sandbox_load_file(sandbox *sb, const char *path) {
    lua_State *L = sb->L;
    size_t dlen = strlen(sb->scripts_dir);
    int rc;
    if (sb->display_dir[0] && strncmp(path, sb->scripts_dir, dlen) == 0 && path[dlen] == '/') {
        /* Read from the frozen copy, named as the folder the merchant edits. */
        char chunkname[1100];
        snprintf(chunkname, sizeof chunkname, "@%s%s", sb->display_dir, path + dlen);
        FILE *f = fopen(path, "rb");
        if (!f) {
            lua_pushfstring(L, "cannot open %s", chunkname + 1);
            return LUA_ERRFILE;
        }
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) luaL_addlstring(&b, chunk, n);
        fclose(f);
        luaL_pushresult(&b);
        size_t len;
        const char *text = lua_tolstring(L, -1, &len);
        rc = luaL_loadbufferx(L, text, len, chunkname, "t");
        lua_remove(L, -2);                      /* the text; the chunk or the message stays */
    } else {
        rc = luaL_loadfilex(L, path, "t");
    }
    if (rc != LUA_OK) return rc;
    sandbox_push_file_env(sb);
    lua_setupvalue(L, -2, 1);
    return LUA_OK;
}

/* Strings and tables (a script's drop/fail/defer values) pass unchanged. */
static int message_handler(lua_State *L) {
    if (!lua_isstring(L, 1) && !lua_istable(L, 1)) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    return 1;
}

int sandbox_require(sandbox *sb, const char *name) {
    lua_State *L = sb->L;
    lua_pushcfunction(L, sb_require);
    lua_pushstring(L, name);
    return sandbox_call(sb, 1, 1);
}

int sandbox_call(sandbox *sb, int nargs, int nresults) {
    lua_State *L = sb->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, message_handler);
    lua_insert(L, base);
    sandbox *outer = calling;             /* a require inside a call nests */
    int was_armed = sb->armed;
    if (!was_armed) sb->running = L;
    calling = sb;
    if (!was_armed && sb->caps.seconds > 0 && timer_arm(sb->caps.seconds) != 0) {
        /* Without its run-time cap no script may run: fail closed. */
        lua_settop(L, base - 1);
        calling = outer;
        lua_pushfstring(L, "cannot arm the run-time cap: %s", strerror(errno));
        return LUA_ERRRUN;
    }
    sb->armed = 1;
    int rc = lua_pcall(L, nargs, nresults, base);
    if (!was_armed) {
        timer_disarm();
        sb->armed = 0;
    }
    calling = outer;
    lua_remove(L, base);
    if (sb->broken) {
        /* The state is spoiled and will be thrown away: lift the cap so the
         * message can be built without a second, unprotected failure. */
        sb->caps.memory_bytes = 0;
        if (rc == LUA_OK) lua_pop(L, nresults == LUA_MULTRET ? 0 : nresults);
        else lua_pop(L, 1);
        cap_message(sb, L);
        return rc == LUA_OK ? LUA_ERRRUN : rc;
    }
    return rc;
}
