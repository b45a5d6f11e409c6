/*
 * sandbox_internal.h: what sandbox.c (the state and its caps) and sandbox_realm.c (what a script can
 * reach) share. Nothing outside core/script/sandbox*.c includes it.
 */
#ifndef RF_SANDBOX_INTERNAL_H
#define RF_SANDBOX_INTERNAL_H

#include <signal.h>
#include <stddef.h>

#include "lua.h"
#include "sandbox.h"

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
    int retrying;                       /* refused once; Lua collects and asks again (see sandbox_capped_alloc) */
    int soft_refused;                   /* a soft refusal not retried yet (sticky until the retry) */
    void *retry_ptr;
    size_t retry_size;
    char where[160];                    /* "scripts/x.lua:12" of the sandbox_breach */
    char soft_where[160];               /* ... of the last soft refusal */
    int deep;                           /* the sandbox_breach came with a very deep call stack */
    char scripts_dir[512];
    char display_dir[512];                 /* named in messages instead of scripts_dir, if set */
};


/* Which require an allow-list gets: the host realm's, the script realm's inner one (for
 * returnflow's modules loaded for scripts), or a script file's. */
enum { REALM_HOST, REALM_SCRIPT_MODULE, REALM_SCRIPT_FILE };

/* Registry keys of the realms' require functions. */
extern const char sandbox_host_require_key, sandbox_script_require_key, sandbox_file_require_key;

/* sandbox.c: the caps. */
void sandbox_breach(sandbox *sb, int cap);
void sandbox_budget_hook(lua_State *L, lua_Debug *ar);
int sandbox_cap_message(sandbox *sb, lua_State *L);
void *sandbox_capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
void sandbox_remember_where(sandbox *sb, lua_State *L);

/* sandbox_watch.c: the run-time cap. enter (fails closed: -1 with errno) and leave bracket the
 * outermost call; sandbox_calling is the sandbox inside a call on this thread. */
extern _Thread_local sandbox *sandbox_calling;
int sandbox_watch_enter(double seconds);
void sandbox_watch_leave(void);

/* sandbox_realm.c: the surface. */
void sandbox_push_allowlist(lua_State *L, int realm);
void sandbox_make_realm(lua_State *L, const void *inner_key, const void *file_key);

#endif
