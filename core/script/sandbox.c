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
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "embedded.h"
#include "json.h"
#include "lauxlib.h"
#include "lualib.h"
#include "sandbox_lib.h"

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
    size_t external;                    /* host buffers of the current call, counted against the cap */
    size_t printed;                     /* bytes print wrote in the current call (SANDBOX_PRINT_MAX) */
    int retrying;                       /* refused once; Lua collects and asks again (see capped_alloc) */
    int soft_refused;                   /* a soft refusal not retried yet (sticky until the retry) */
    void *retry_ptr;
    size_t retry_size;
    char where[160];                    /* "scripts/x.lua:12" of the breach */
    char soft_where[160];               /* ... of the last soft refusal */
    int deep;                           /* the breach came with a very deep call stack */
    char scripts_dir[512];
    char display_dir[512];                 /* named in messages instead of scripts_dir, if set */
};

/* Registry keys. */
static const char host_require_key = 0, script_require_key = 0, file_require_key = 0, stop_mt_key = 0;

/* Which require an allow-list gets: the host realm's, the script realm's inner one (for
 * returnflow's modules loaded for scripts), or a script file's. */
enum { REALM_HOST, REALM_SCRIPT_MODULE, REALM_SCRIPT_FILE };

static void budget_hook(lua_State *L, lua_Debug *ar);

/* Marks the state spoiled and makes the next instruction raise the cap error. */
static void breach(sandbox *sb, int cap) {
    sb->broken = cap;
    lua_sethook(sb->running, budget_hook, LUA_MASKCOUNT, 1);
    if (sb->running != sb->L) lua_sethook(sb->L, budget_hook, LUA_MASKCOUNT, 1);
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

/* Where a soft refusal happened, for the message if nobody retries it (lua_getinfo with "Sl"
 * reads the call info only: it allocates nothing). */
static void note_soft_where(sandbox *sb) {
    lua_Debug ar;
    sb->soft_where[0] = 0;
    for (int level = 0; level < 8 && lua_getstack(sb->running, level, &ar); level++) {
        if (lua_getinfo(sb->running, "Sl", &ar) && ar.currentline > 0) {     /* the nearest Lua line */
            snprintf(sb->soft_where, sizeof sb->soft_where, "%s:%d", ar.short_src, ar.currentline);
            return;
        }
    }
}

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sandbox *sb = ud;
    if (!ptr) osize = 0;
    if (nsize == 0) {
        if (ptr) release(sb, ptr, osize);
        sb->used -= osize;
        return NULL;
    }
    /* Over the cap, the first refusal is soft: Lua answers a failed allocation with a full
     * (emergency) collection and asks again with the same block and size; only if that retry
     * does not fit either is the cap broken. So garbage of earlier events never fails a later
     * one: what counts is what is live. */
    if (nsize > osize && sb->caps.memory_bytes) {
        /* (only a growth clears the mark: the collection itself shrinks tables on the way) */
        int retry = sb->retrying && ptr == sb->retry_ptr && nsize == sb->retry_size;
        sb->retrying = 0;
        if (retry) sb->soft_refused = 0;
        size_t want = sb->used + sb->external + (nsize - osize);
        size_t limit = sb->caps.memory_bytes + (sb->broken ? SPOILED_SLACK : 0);
        if (want > limit) {
            if (sb->armed && !sb->broken && !retry) {
                sb->retrying = sb->soft_refused = 1;
                note_soft_where(sb);
                sb->retry_ptr = ptr;
                sb->retry_size = nsize;
                return NULL;
            }
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

size_t sandbox_bytes_left(lua_State *L) {
    void *ud;
    if (lua_getallocf(L, &ud) != capped_alloc) return SIZE_MAX;
    sandbox *sb = ud;
    if (!sb->caps.memory_bytes) return SIZE_MAX;
    size_t held = sb->used + sb->external;
    return held < sb->caps.memory_bytes ? sb->caps.memory_bytes - held : 0;
}

int sandbox_charge(lua_State *L, size_t n) {
    void *ud;
    if (lua_getallocf(L, &ud) != capped_alloc) return 0;
    sandbox *sb = ud;
    if (sandbox_bytes_left(L) < n) return -1;
    sb->external += n;
    return 0;
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

void sandbox_check_broken(lua_State *L) {
    void *ud;
    if (lua_getallocf(L, &ud) != capped_alloc) return;
    sandbox *sb = ud;
    if (!sb->armed || !sb->broken) return;
    remember_where(sb, L);
    cap_message(sb, L);
    lua_error(L);
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

/* print(...): one line on standard error, "file:line: " first, the values tab-separated, control
 * characters escaped and the line cut to SANDBOX_MESSAGE_MAX, so a script can neither forge log
 * lines nor drive a terminal nor flood the log with one call; and at most SANDBOX_PRINT_MAX bytes
 * a call (an event), then one "print output cut" note, so nor with many calls. */
static int sb_print(lua_State *L) {
    int n = lua_gettop(L);
    void *ud;
    sandbox *sb = lua_getallocf(L, &ud) == capped_alloc ? ud : NULL;
    if (sb && sb->printed >= SANDBOX_PRINT_MAX) {
        if (sb->printed == SANDBOX_PRINT_MAX) {
            fprintf(stderr, "print output cut: over %d KiB printed in this event\n", SANDBOX_PRINT_MAX >> 10);
            sb->printed++;
        }
        return 0;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        if (luaL_bufflen(&b) + lua_rawlen(L, -1) > 2 * SANDBOX_MESSAGE_MAX) {   /* enough to cut from */
            size_t room = 2 * SANDBOX_MESSAGE_MAX - luaL_bufflen(&b);
            lua_pushlstring(L, lua_tostring(L, -1), room);
            lua_remove(L, -2);
            luaL_addvalue(&b);
            luaL_addstring(&b, " ... (cut)");
            break;
        }
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    sandbox_push_clean_message(L, -1);
    lua_Debug ar;
    int where = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar))
        where = fprintf(stderr, "%s:%d: ", ar.short_src, ar.currentline);
    size_t len;
    const char *line = lua_tolstring(L, -1, &len);
    if (sb) {   /* the place and the newline count too */
        sb->printed += (size_t)(where > 0 ? where : 0) + 1;
        size_t room = sb->printed < SANDBOX_PRINT_MAX ? SANDBOX_PRINT_MAX - sb->printed : 0;
        if (len > room) len = room;
        sb->printed += len;
        if (sb->printed > SANDBOX_PRINT_MAX) sb->printed = SANDBOX_PRINT_MAX;
    }
    fwrite(line, 1, len, stderr);
    fputc('\n', stderr);
    return 0;
}

/* After a cap broke, no new protected call may start: the error unwinds
 * through every pcall frame instead of being caught at the same one forever. */
static int finish_call(lua_State *L, int status, lua_KContext base) {
    (void)status;
    void *ud;
    lua_getallocf(L, &ud);
    sandbox *sb = ud;
    if (sb->soft_refused && sb->armed && !sb->broken) {
        /* the protected call ended on a refusal nobody retried (lauxlib's "not enough memory",
         * which pcall catches as a memory error): that was the cap, and it stays broken */
        sb->soft_refused = 0;
        breach(sb, CAP_MEMORY);
        if (!sb->where[0]) memcpy(sb->where, sb->soft_where, sizeof sb->where);
        cap_message(sb, L);
        return lua_error(L);
    }
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
    if (sb->broken) {                 /* the cap broke inside: the caller stops too, hooked or not */
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
        remember_where(sb, L);
        cap_message(sb, L);
        return lua_error(L);
    }
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

/* coroutine.close(co): the __close handlers it runs execute in co, so co is the running thread
 * the cap's hook is set on; after a breach no coroutine is closed (its handlers would run). */
static int sb_close(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    void *ud;
    lua_getallocf(L, &ud);
    sandbox *sb = ud;
    if (sb->broken) { remember_where(sb, L); cap_message(sb, L); return lua_error(L); }
    lua_settop(L, 1);
    lua_getglobal(L, "coroutine");               /* the host's own table, never a script's */
    lua_getfield(L, -1, "close");
    lua_remove(L, -2);
    lua_insert(L, 1);
    lua_State *outer = sb->running;
    sb->running = co;
    int rc = lua_pcall(L, 1, LUA_MULTRET, 0);
    sb->running = outer;
    if (sb->broken) {
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
        remember_where(sb, L);
        cap_message(sb, L);
        return lua_error(L);
    }
    if (rc != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

static int sb_rawset(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    json_unwrap(L, 1);
    if (!lua_rawequal(L, -1, 1)) return luaL_error(L, "event is read-only: rawset cannot change it");
    /* Every host object a script holds (returnflow's modules, the emitter, drop values) has a
     * protected metatable: rawset would write past its guard, so it is refused too. */
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "rawset: the table is read-only (its metatable is protected)");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

static int sb_setmetatable(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) {
        /* A script's own table marked array/object (a decoded or recalled value) may get another
         * metatable; every other protected one (the event, modules, the emitter) may not. */
        const char *guard = lua_tostring(L, -1);
        if (!guard || (strcmp(guard, "array") != 0 && strcmp(guard, "object") != 0))
            return luaL_error(L, "setmetatable: the table's metatable is protected (the event is read-only)");
        lua_pop(L, 1);
    }
    lua_pushliteral(L, "__gc");
    if (lua_istable(L, 2) && lua_rawget(L, 2) != LUA_TNIL)
        return luaL_error(L, "setmetatable: __gc finalizers are not allowed in scripts");
    luaL_argexpected(L, lua_type(L, 2) == LUA_TNIL || lua_type(L, 2) == LUA_TTABLE, 2, "nil or table");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);           /* the checks above are the real setmetatable's, and ours */
    return 1;
}

/* load(chunk [, name [, mode [, env]]]): text only; by default the chunk gets globals of its own
 * over a fresh copy of the allow-list, so a loaded chunk can change no table another file sees. */
static void push_allowlist(lua_State *L, int realm);
static int sb_load(lua_State *L) {
    int has_env = !lua_isnone(L, 4);
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t") != 0) return luaL_error(L, "load: only text chunks are allowed (mode 't')");
    lua_settop(L, 4);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    if (!has_env) {
        lua_createtable(L, 0, 0);
        lua_createtable(L, 0, 1);
        push_allowlist(L, REALM_SCRIPT_FILE);
        lua_setfield(L, -2, "__index");
        lua_setmetatable(L, -2);
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

/* The modules a script file may require by name (docs/mapping-api.md); the modules they require
 * in turn (the runtime, the emitter) are loaded for them, but never handed to a script. */
static int documented_module(const char *name) {
    static const char *const names[] = { "returnflow", "returnflow.loop", "returnflow.json",
                                         "returnflow.defaults", "cjson", NULL };
    for (const char *const *n = names; *n; n++)
        if (strcmp(*n, name) == 0) return 1;
    return 0;
}

/* Loads an embedded returnflow module with env as its globals and runs it. */
static int load_embedded(lua_State *L, const embedded_file *f, int env) {
    char chunkname[128];
    snprintf(chunkname, sizeof chunkname, "=[returnflow] %s", f->name);
    if (luaL_loadbufferx(L, f->source, f->len, chunkname, "t") != LUA_OK) return lua_error(L);
    lua_pushvalue(L, env);
    lua_setupvalue(L, -2, 1);
    lua_pushstring(L, f->name);
    lua_call(L, 1, 1);
    return 1;
}

/* ------------------------------ read-only copies ---------------------------- */

/* A module as a script sees it: an empty proxy over a copy of its fields, nested tables copied and
 * proxied the same way, with a protected metatable. Writes raise; pairs walks the copy; nothing
 * reaches the module's own tables, which the runtime's instances never share anyway. */
static int frozen_newindex(lua_State *L) {
    return luaL_error(L, "returnflow's modules are read-only: cannot set '%s'",
                      lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "a field");
}

static int frozen_next(lua_State *L) {
    if (!lua_rawequal(L, 1, lua_upvalueindex(2)))
        return luaL_argerror(L, 1, "the module this iterator came from expected");
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1))) return 2;
    lua_pushnil(L);
    return 1;
}

static int frozen_pairs(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_getmetatable(L, 1)) return luaL_argerror(L, 1, "read-only module expected");
    lua_getfield(L, -1, "__index");                    /* raw: the metatable has no metatable */
    if (!lua_istable(L, -1)) return luaL_argerror(L, 1, "read-only module expected");
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, frozen_next, 2);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int frozen_len(lua_State *L) {
    if (!lua_getmetatable(L, 1)) return 0;
    lua_getfield(L, -1, "__index");
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

/* Replaces the table at the top with its read-only proxy (seen: index of the copies made). */
static void freeze_top(lua_State *L, int seen, int depth) {
    int t = lua_gettop(L);
    luaL_checkstack(L, 8, "freezing a module");
    lua_pushvalue(L, t);
    if (lua_rawget(L, seen) != LUA_TNIL) { lua_replace(L, t); return; }
    lua_pop(L, 1);
    lua_createtable(L, 0, 0);                          /* t P */
    lua_pushvalue(L, t);
    lua_pushvalue(L, -2);
    lua_rawset(L, seen);                               /* seen[t] = P (cycles) */
    lua_createtable(L, 0, 0);                          /* t P D */
    lua_pushnil(L);
    while (lua_next(L, t)) {                           /* t P D k v */
        if (lua_type(L, -1) == LUA_TTABLE && depth < 16) freeze_top(L, seen, depth + 1);
        else if (lua_type(L, -1) == LUA_TTABLE) { lua_pop(L, 1); lua_pushnil(L); }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_createtable(L, 0, 5);                          /* t P D M */
    lua_insert(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, frozen_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, frozen_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushcfunction(L, frozen_len);
    lua_setfield(L, -2, "__len");
    lua_pushliteral(L, "read-only module");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);                           /* t P */
    lua_replace(L, t);
}

static void freeze(lua_State *L) {
    if (!lua_istable(L, -1)) return;
    lua_createtable(L, 0, 8);
    lua_insert(L, -2);
    freeze_top(L, lua_gettop(L) - 1, 0);
    lua_remove(L, -2);
}

/* --------------------------------- require --------------------------------- */

/* require in one realm. Upvalues: 1 the realm's loaded table, 2 the env its embedded modules get,
 * 3 true for a script file's require (documented modules only, read-only copies, files of the
 * scripts folder), false for the require of returnflow's own modules inside that realm.
 *
 * Realms: the host's (the runtime, emitter and request builder the host calls) and the scripts'
 * (separate instances of the same modules, for scripts). Nothing of the host realm is reachable
 * from a script, so no script can replace a function the host calls. */
static int realm_require(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    int loaded = lua_upvalueindex(1), env = lua_upvalueindex(2);
    int for_script = lua_toboolean(L, lua_upvalueindex(3));
    lua_settop(L, 1);
    if (lua_getfield(L, loaded, name) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    int ours = strcmp(name, "cjson") == 0 || strcmp(name, "returnflow") == 0 || strncmp(name, "returnflow.", 11) == 0;
    if (for_script && ours && !documented_module(name))
        return luaL_error(L, "require: '%s' is not a module scripts may use (returnflow, returnflow.loop, "
                             "returnflow.json, returnflow.defaults, cjson and files of the scripts folder)", name);
    if (for_script && ours) {
        /* The realm's own instance, through the realm's inner require, then a read-only copy. */
        lua_rawgetp(L, LUA_REGISTRYINDEX, &script_require_key);
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        freeze(L);
    } else if (strcmp(name, "cjson") == 0) {
        sandbox_push_cjson(L);
    } else if (strcmp(name, "returnflow.json") == 0) {
        json_luaopen(L);
    } else if (ours) {
        const embedded_file *f = embedded_find(name);
        if (!f) return luaL_error(L, "require: no module '%s' in returnflow", name);
        load_embedded(L, f, env);
    } else if (for_script) {
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
        struct stat st;
        if (lstat(path, &st) != 0)
            return luaL_error(L, "require: '%s' is not allowed in the sandbox (only returnflow.*, cjson "
                                 "and files of the scripts folder; no %s)", name, path);
        if (sandbox_load_file(sb, path) != LUA_OK) return lua_error(L);
        lua_pushstring(L, name);
        lua_call(L, 1, 1);
    } else {
        return luaL_error(L, "require: '%s' is not one of returnflow's modules", name);
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

/* Pushes a new table holding the allow-listed globals: its own copies of the library tables, so
 * each file (and each realm) changes only its own. `require` is the realm's. */
static void push_allowlist(lua_State *L, int realm) {
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
        { "load", sb_load }, { "pcall", sb_pcall }, { "xpcall", sb_xpcall }, { NULL, NULL },
    };
    luaL_setfuncs(L, guarded, 0);
    static const void *const require_keys[] = { &host_require_key, &script_require_key, &file_require_key };
    lua_rawgetp(L, LUA_REGISTRYINDEX, require_keys[realm]);
    lua_setfield(L, -2, "require");
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
    lua_pushcfunction(L, sb_close);
    lua_setfield(L, -2, "close");
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

/* Makes one realm: its loaded table, its modules' env, and its require functions. */
static void make_realm(lua_State *L, const void *inner_key, const void *file_key) {
    lua_newtable(L);                                     /* loaded, shared by the realm's requires */
    int loaded = lua_gettop(L);
    lua_newtable(L);                                     /* the env its modules get (filled below) */
    int env = lua_gettop(L);
    lua_pushvalue(L, loaded);
    lua_pushvalue(L, env);
    lua_pushboolean(L, 0);
    lua_pushcclosure(L, realm_require, 3);
    lua_rawsetp(L, LUA_REGISTRYINDEX, inner_key);
    if (file_key) {
        lua_newtable(L);                                 /* what script files got: read-only copies */
        lua_pushvalue(L, env);
        lua_pushboolean(L, 1);
        lua_pushcclosure(L, realm_require, 3);
        lua_rawsetp(L, LUA_REGISTRYINDEX, file_key);
    }
    push_allowlist(L, inner_key == &host_require_key ? REALM_HOST : REALM_SCRIPT_MODULE);
    lua_pushnil(L);                                      /* env = a copy of the allow-list */
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, env);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    lua_pop(L, 2);
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
    sandbox_lib_open(L);                   /* bounded string, table and cjson functions */

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

    make_realm(L, &host_require_key, NULL);
    make_realm(L, &script_require_key, &file_require_key);

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
void sandbox_set_seconds(sandbox *sb, double seconds) { sb->caps.seconds = seconds; }
int sandbox_spoiled(const sandbox *sb) { return sb->broken != CAP_NONE; }

void sandbox_push_file_env(sandbox *sb) {
    lua_State *L = sb->L;
    lua_createtable(L, 0, 4);
    lua_createtable(L, 0, 1);
    push_allowlist(L, REALM_SCRIPT_FILE);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
}

void sandbox_set_display_dir(sandbox *sb, const char *dir) {
    snprintf(sb->display_dir, sizeof sb->display_dir, "%s", dir ? dir : "");
}

void sandbox_set_stop_metatable(sandbox *sb) {
    lua_rawsetp(sb->L, LUA_REGISTRYINDEX, &stop_mt_key);
}

/* Reads a script file: a regular file only (no FIFO, device or directory: opened non-blocking
 * and checked on the open descriptor), a symbolic link only to a regular file inside the scripts
 * folder, and no larger than the memory cap. */
static int read_script(sandbox *sb, const char *path, const char *shown) {
    lua_State *L = sb->L;
    struct stat st;
    if (lstat(path, &st) != 0) { lua_pushfstring(L, "cannot open %s", shown); return LUA_ERRFILE; }
    if (S_ISLNK(st.st_mode)) {
        char real[PATH_MAX], dir[PATH_MAX];
        size_t dlen;
        if (!realpath(path, real) || !realpath(sb->scripts_dir, dir) || (dlen = strlen(dir), 0) ||
            strncmp(real, dir, dlen) != 0 || real[dlen] != '/') {
            lua_pushfstring(L, "%s: a symbolic link out of the scripts folder is not loaded", shown);
            return LUA_ERRFILE;
        }
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) { lua_pushfstring(L, "cannot open %s", shown); return LUA_ERRFILE; }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        lua_pushfstring(L, "%s: not a regular file (only plain .lua files are loaded)", shown);
        return LUA_ERRFILE;
    }
    size_t limit = sb->caps.memory_bytes ? sb->caps.memory_bytes : (size_t)1 << 30;
    if ((uint64_t)st.st_size > limit) {
        close(fd);
        lua_pushfstring(L, "%s: %d bytes, more than the memory cap", shown, (int)(st.st_size > INT32_MAX ? INT32_MAX : st.st_size));
        return LUA_ERRFILE;
    }
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)st.st_size);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, p + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    luaL_pushresultsize(&b, got);
    return LUA_OK;
}

int sandbox_load_file(sandbox *sb, const char *path) {
    lua_State *L = sb->L;
    size_t dlen = strlen(sb->scripts_dir);
    char chunkname[1100];
    if (sb->display_dir[0] && strncmp(path, sb->scripts_dir, dlen) == 0 && path[dlen] == '/')
        snprintf(chunkname, sizeof chunkname, "@%s%s", sb->display_dir, path + dlen);   /* the folder the merchant edits */
    else
        snprintf(chunkname, sizeof chunkname, "@%s", path);
    int rc = read_script(sb, path, chunkname + 1);
    if (rc != LUA_OK) return rc;
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    if (len && text[0] == LUA_SIGNATURE[0]) {
        lua_pop(L, 1);
        lua_pushfstring(L, "%s: a binary chunk; only Lua text is loaded", chunkname + 1);
        return LUA_ERRSYNTAX;
    }
    /* A first line starting with '#' is skipped, as luaL_loadfile does. */
    size_t skip = 0;
    if (len && text[0] == '#') { while (skip < len && text[skip] != '\n') skip++; }
    rc = luaL_loadbufferx(L, text + skip, len - skip, chunkname, "t");
    lua_remove(L, -2);                      /* the text; the chunk or the message stays */
    if (rc != LUA_OK) return rc;
    sandbox_push_file_env(sb);
    lua_setupvalue(L, -2, 1);
    return LUA_OK;
}

/* ----------------------------- error values ------------------------------ */

/* Pushes a copy of the string at idx fit for a log line and a result: control characters escaped
 * (\n, \r, \t, \xHH), cut to SANDBOX_MESSAGE_MAX bytes with a note of how much was cut. */
void sandbox_push_clean_message(lua_State *L, int idx) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t i = 0;
    for (; i < len && luaL_bufflen(&b) < SANDBOX_MESSAGE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') luaL_addstring(&b, "\\n");
        else if (c == '\r') luaL_addstring(&b, "\\r");
        else if (c == '\t') luaL_addstring(&b, "\\t");
        else if (c < 0x20 || c == 0x7f) {
            char hex[8];
            snprintf(hex, sizeof hex, "\\x%02x", c);
            luaL_addstring(&b, hex);
        } else luaL_addchar(&b, (char)c);
    }
    if (i < len) {
        char note[64];
        snprintf(note, sizeof note, "... (%zu more bytes cut)", len - i);
        luaL_addstring(&b, note);
    }
    luaL_pushresult(&b);
}

/* The message handler of every sandbox_call: runs under the caps, before the stack unwinds, and
 * turns whatever a script raised into a value the host may read after the call with no metamethod
 * and no trust: a clean string, or, for a drop/fail/defer raised by the emitter (its metatable,
 * compared raw), a new plain table { status = string, reason = clean string or nil }. */
static int message_handler(lua_State *L) {
    int t = lua_type(L, 1);
    void *ud;
    lua_getallocf(L, &ud);
    sandbox *sb = ud;
    if (sb->soft_refused && sb->armed && !sb->broken) {
        /* A soft refusal nobody retried: the block was asked for by C code that calls the
         * allocator itself (lauxlib's buffers) and raised "not enough memory". It is the cap. */
        sb->soft_refused = 0;
        breach(sb, CAP_MEMORY);
        remember_where(sb, L);
        return cap_message(sb, L);
    }
    if (t == LUA_TTABLE && lua_getmetatable(L, 1)) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &stop_mt_key);
        int is_stop = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (is_stop) {
            lua_createtable(L, 0, 2);
            lua_pushliteral(L, "status");
            if (lua_rawget(L, 1) == LUA_TSTRING) lua_setfield(L, -2, "status");
            else lua_pop(L, 1);
            lua_pushliteral(L, "reason");
            int rt = lua_rawget(L, 1);
            if (rt == LUA_TSTRING || rt == LUA_TNUMBER) {
                sandbox_push_clean_message(L, -1);
                lua_setfield(L, -3, "reason");
            } else if (rt != LUA_TNIL) {
                lua_pushfstring(L, "(a %s value as the reason)", lua_typename(L, rt));
                lua_setfield(L, -3, "reason");
            }
            lua_pop(L, 1);
            return 1;
        }
    }
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        sandbox_push_clean_message(L, 1);
    } else if (t != LUA_TNIL && luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING &&
               lua_rawlen(L, -1) > 0) {
        sandbox_push_clean_message(L, -1);
    } else {
        lua_pushfstring(L, "(error object is a %s value%s)", lua_typename(L, t),
                        t == LUA_TTABLE || t == LUA_TUSERDATA ? " with no message" : "");
    }
    if (lua_rawlen(L, -1) == 0) lua_pushliteral(L, "(an empty error message)");
    return 1;
}

int sandbox_require(sandbox *sb, const char *name) {
    lua_State *L = sb->L;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &host_require_key);
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
    if (!was_armed) sb->external = 0, sb->soft_refused = 0, sb->printed = 0;     /* counted per call */
    sb->armed = 1;
    int rc = lua_pcall(L, nargs, nresults, base);
    if (rc == LUA_ERRMEM && sb->soft_refused && !sb->broken) {
        /* "not enough memory" from C that calls the allocator itself (lauxlib's buffers): a
         * memory error skips the message handler, so the breach is recorded here. */
        sb->broken = CAP_MEMORY;
        if (!sb->where[0]) memcpy(sb->where, sb->soft_where, sizeof sb->where);
    }
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
