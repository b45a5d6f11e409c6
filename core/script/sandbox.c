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
 * memory cap. Run time is the calling thread's CPU time, watched by one
 * watchdog thread (sandbox_watch.c): no hook runs and no system call is made
 * while a script behaves, because in Lua 5.4 any count hook costs a check at
 * every VM instruction (about an eighth of all mapping time). When a cap
 * breaks, the state is "spoiled": a count hook is set, from the signal
 * handler on the mapping thread as lua.c does for SIGINT, on the
 * innermost running coroutine, and it raises the cap error at every
 * instruction from then on; pcall, xpcall and coroutine.resume refuse to
 * start. So a script cannot swallow the error, and the owner throws the state
 * away once the call returns. The allocator gives a spoiled state some slack,
 * so the error can still be built and unwound.
 *
 * Long C calls that neither allocate nor run Lua (patterns, string.rep, the
 * table library) are the guarded versions of sandbox_lib.c, lua_pattern.c and
 * sandbox_table.c, which check the caps as they go. What a script can reach
 * (the guarded library, require, each file's globals) is sandbox_realm.c;
 * this file is the state and its caps.
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
#include "sandbox_internal.h"
#include "sandbox_lib.h"

#define SPOILED_SLACK (16u << 20)       /* bytes a spoiled state may still take */

/* Registry keys (the realms' requires are sandbox_realm.c's, declared in sandbox_internal.h). */
const char sandbox_host_require_key = 0, sandbox_script_require_key = 0, sandbox_file_require_key = 0;
static const char stop_mt_key = 0;


/* Marks the state spoiled and makes the next instruction raise the cap error. */
void sandbox_breach(sandbox *sb, int cap) {
    sb->broken = cap;
    lua_sethook(sb->running, sandbox_budget_hook, LUA_MASKCOUNT, 1);
    if (sb->running != sb->L) lua_sethook(sb->L, sandbox_budget_hook, LUA_MASKCOUNT, 1);
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

/* Every allocation but the two commonest (below): the cap's soft refusal and breach, blocks that
 * change size or class, large blocks, an empty free list. */
static __attribute__((noinline)) void *alloc_general(sandbox *sb, void *ptr, size_t osize, size_t nsize) {
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
            if (sb->armed && !sb->broken) sandbox_breach(sb, CAP_MEMORY);
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

/* Lua's allocator. Most calls are a new small block while the state is under its cap, or a small
 * block freed: those take a free list's head, or give it back, and count the bytes, in a few
 * instructions and no call (the cap check, saved registers and branches of alloc_general were a
 * twentieth of an event's instructions); anything else, alloc_general. The same blocks, counts and
 * answers either way: the fast path runs only where alloc_general would do exactly this (no soft
 * refusal pending, so it would clear nothing; within the cap itself, so it would refuse nothing). */
void *sandbox_capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sandbox *sb = ud;
#if POOL_MAX > 0                                   /* (no pool under AddressSanitizer) */
    if (!ptr) {
        if (nsize - 1 < POOL_MAX && !sb->retrying &&
            (!sb->caps.memory_bytes || sb->used + sb->external + nsize <= sb->caps.memory_bytes)) {
            void **head = &sb->free_blocks[pool_class(nsize)];
            void *p = *head;
            if (p) {
                *head = *(void **)p;
                sb->used += nsize;
                return p;
            }
        }
    } else if (nsize == 0 && osize - 1 < POOL_MAX) {
        pool_put(sb, ptr, osize);
        sb->used -= osize;
        return NULL;
    }
#endif
    return alloc_general(sb, ptr, osize, nsize);
}

size_t sandbox_bytes_left(lua_State *L) {
    void *ud;
    if (lua_getallocf(L, &ud) != sandbox_capped_alloc) return SIZE_MAX;
    sandbox *sb = ud;
    if (!sb->caps.memory_bytes) return SIZE_MAX;
    size_t held = sb->used + sb->external;
    return held < sb->caps.memory_bytes ? sb->caps.memory_bytes - held : 0;
}

int sandbox_charge(lua_State *L, size_t n) {
    void *ud;
    if (lua_getallocf(L, &ud) != sandbox_capped_alloc) return 0;
    sandbox *sb = ud;
    if (sandbox_bytes_left(L) < n) return -1;
    sb->external += n;
    return 0;
}

/* --------------------------------- hook ---------------------------------- */

void sandbox_remember_where(sandbox *sb, lua_State *L) {
    lua_Debug ar;
    if (sb->where[0]) return;
    if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
        snprintf(sb->where, sizeof sb->where, "%s:%d", ar.short_src, ar.currentline);
    sb->deep = lua_getstack(L, 10000, &ar);
}

/* Pushes "scripts/x.lua:12: cap: ..." (the place first, like every Lua error). */
int sandbox_cap_message(sandbox *sb, lua_State *L) {
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
    if (lua_getallocf(L, &ud) != sandbox_capped_alloc) return;
    sandbox *sb = ud;
    if (!sb->armed || !sb->broken) return;
    sandbox_remember_where(sb, L);
    sandbox_cap_message(sb, L);
    lua_error(L);
}

/* Runs once the state is spoiled: at every instruction, raises the cap error. */
void sandbox_budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    void *ud;
    lua_getallocf(L, &ud);
    sandbox *sb = ud;
    if (!sb->armed || !sb->broken) return;
    sandbox_remember_where(sb, L);
    sandbox_cap_message(sb, L);
    lua_error(L);
}

sandbox *sandbox_new(const sandbox_caps *caps, const char *scripts_dir, char *err, size_t errlen) {
    sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) { snprintf(err, errlen, "out of memory"); return NULL; }
    sb->caps = *caps;
    sb->cap_memory = caps->memory_bytes;
    snprintf(sb->scripts_dir, sizeof sb->scripts_dir, "%s", scripts_dir ? scripts_dir : ".");
    lua_State *L = lua_newstate(sandbox_capped_alloc, sb);
    if (!L) { free(sb); snprintf(err, errlen, "cannot create a Lua state"); return NULL; }
    sb->L = L;
    luaL_openlibs(L);
    /* A cycle starts when the heap is 4 times what the last one left live (Lua's default: 2): a
     * mapping state holds little live data and makes short-lived garbage, so half the cycles
     * cost nothing in memory that matters (the memory cap still counts every byte, and a
     * refusal collects in full first). Measured: 3% fewer instructions an event; the generational
     * mode was 4% more. */
    lua_gc(L, LUA_GCINC, 400, 0, 0);
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

    sandbox_make_realm(L, &sandbox_host_require_key, NULL);
    sandbox_make_realm(L, &sandbox_script_require_key, &sandbox_file_require_key);

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
    sandbox_push_allowlist(L, REALM_SCRIPT_FILE);
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
        sandbox_breach(sb, CAP_MEMORY);
        sandbox_remember_where(sb, L);
        return sandbox_cap_message(sb, L);
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
    lua_rawgetp(L, LUA_REGISTRYINDEX, &sandbox_host_require_key);
    lua_pushstring(L, name);
    return sandbox_call(sb, 1, 1);
}

int sandbox_call(sandbox *sb, int nargs, int nresults) {
    lua_State *L = sb->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, message_handler);
    lua_insert(L, base);
    sandbox *outer = sandbox_calling;     /* a require inside a call nests */
    int was_armed = sb->armed;
    if (!was_armed) sb->running = L;
    sandbox_calling = sb;
    if (!was_armed && sb->caps.seconds > 0 && sandbox_watch_enter(sb->caps.seconds) != 0) {
        /* Without its run-time cap no script may run: fail closed. */
        lua_settop(L, base - 1);
        sandbox_calling = outer;
        lua_pushfstring(L, "cannot arm the run-time cap: %s", strerror(errno));
        return LUA_ERRRUN;
    }
    if (!was_armed) sb->external = 0, sb->soft_refused = 0, sb->printed = 0;     /* counted per call */
    sb->armed = 1;
    int rc = lua_pcall(L, nargs, nresults, base);
    if (rc == LUA_ERRMEM && sb->soft_refused && !sb->broken) {
        /* "not enough memory" from C that calls the allocator itself (lauxlib's buffers): a
         * memory error skips the message handler, so the sandbox_breach is recorded here. */
        sb->broken = CAP_MEMORY;
        if (!sb->where[0]) memcpy(sb->where, sb->soft_where, sizeof sb->where);
    }
    if (!was_armed) {
        sandbox_watch_leave();
        sb->armed = 0;
    }
    sandbox_calling = outer;
    lua_remove(L, base);
    if (sb->broken) {
        /* The state is spoiled and will be thrown away: lift the cap so the
         * message can be built without a second, unprotected failure. */
        sb->caps.memory_bytes = 0;
        if (rc == LUA_OK) lua_pop(L, nresults == LUA_MULTRET ? 0 : nresults);
        else lua_pop(L, 1);
        sandbox_cap_message(sb, L);
        return rc == LUA_OK ? LUA_ERRRUN : rc;
    }
    return rc;
}
