/*
 * sandbox.h: one tenant's Lua state, allow-listed and capped.
 */
#ifndef RF_SANDBOX_H
#define RF_SANDBOX_H

#include <stddef.h>
#include "lua.h"

typedef struct sandbox_caps {
    size_t memory_bytes;      /* whole state, default 32 MiB; 0 for none */
    double seconds;           /* CPU time of one call (one event), default 0.5 s; 0 for none */
} sandbox_caps;

#define SANDBOX_DEFAULT_MEMORY (32u << 20)
#define SANDBOX_DEFAULT_SECONDS 0.5

typedef struct sandbox sandbox;

/* A fresh state whose scripts may `require` files under scripts_dir.
 * Returns NULL with err filled if even the empty state cannot be built. */
sandbox *sandbox_new(const sandbox_caps *caps, const char *scripts_dir, char *err, size_t errlen);
void sandbox_free(sandbox *sb);
lua_State *sandbox_lua(sandbox *sb);

/* Pushes a new global environment for one script file: reads fall through
 * to the tenant's allow-listed globals, writes stay in the file. */
void sandbox_push_file_env(sandbox *sb);

/* Messages name files under dir instead of the scripts folder they are read
 * from (serve reads a frozen copy; the merchant knows the folder they edit). */
void sandbox_set_display_dir(sandbox *sb, const char *dir);

/* Loads a script file as text (never bytecode) with a fresh file env and
 * pushes the chunk; on error pushes the message and returns non-zero. */
int sandbox_load_file(sandbox *sb, const char *path);

/* lua_pcall under the per-event caps (the run-time cap counts the calling
 * thread's CPU time, so a busy machine does not fail events). On error the message ("scripts/x.lua:12:
 * boom", or "cap: memory 32 MiB exceeded at scripts/x.lua:12") is on the stack.
 * After a cap was broken sandbox_spoiled() is true: throw the state away. */
int sandbox_call(sandbox *sb, int nargs, int nresults);
int sandbox_spoiled(const sandbox *sb);

/* Changes the run-time cap of the next calls (the mapper's total load budget). */
void sandbox_set_seconds(sandbox *sb, double seconds);

/* The emitter's drop/fail/defer metatable, popped from the top of the stack: an error value with
 * it (compared raw) is reported as { status, reason }, every other one as a clean string. */
void sandbox_set_stop_metatable(sandbox *sb);

/* Messages from scripts are cut to this many bytes on their way to logs and results. */
#define SANDBOX_MESSAGE_MAX 2000
/* Bytes print may write in one sandbox_call (one event or one load); the rest is cut, noted once. */
#define SANDBOX_PRINT_MAX (32 << 10)

/* Pushes the string at idx with control characters escaped, cut to SANDBOX_MESSAGE_MAX. */
void sandbox_push_clean_message(lua_State *L, int idx);

/* Pushes the module `name` as the host's runtime would require it (the host realm) (under the caps), or
 * the error message; returns the lua_pcall status. */
int sandbox_require(sandbox *sb, const char *name);

/* Starts the run-time cap's watchdog thread now (it starts on the first capped call otherwise):
 * the mapping worker does it before its lock-down forbids new threads. 0, or -1 with errno. */
int sandbox_watchdog_start(void);

/* Forgets this thread's run-time slot; call before a thread that ran sandboxes exits (a thread
 * that does not is forgotten as it exits). */
void sandbox_thread_done(void);

#endif
