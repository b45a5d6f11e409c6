/*
 * cmd_test.c: `returnflow test`, a merchant's busted specs under the right Lua, with returnflow's
 * testing module on the path.
 *
 * The specs call returnflow.testing, whose mapper is the host's own C (returnflow.native), so
 * what passes here maps the same way in `serve`. This command only removes the set-up mistakes:
 * Debian's busted runs Lua 5.1 unless told otherwise, and the module's folders must be on
 * LUA_PATH and LUA_CPATH. It replaces itself with `lua5.4 BUSTED ARGS...`, so busted's exit
 * status and output are the command's.
 */
#include "cmd.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef RETURNFLOW_LUADIR
#define RETURNFLOW_LUADIR "/usr/local/share/lua/5.4"
#endif
#ifndef RETURNFLOW_LIBDIR
#define RETURNFLOW_LIBDIR "/usr/local/lib/lua/5.4"
#endif

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A busted on PATH (or $RETURNFLOW_BUSTED). */
static int find_busted(char *out, size_t len) {
    const char *env = getenv("RETURNFLOW_BUSTED");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        if (is_file(out)) return 1;
        fprintf(stderr, "returnflow test: RETURNFLOW_BUSTED is %s, which is not a file\n", env);
        return -1;
    }
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p;) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        snprintf(out, len, "%.*s/busted", (int)n, p);
        if (is_file(out)) return 1;
        p += n + (colon ? 1 : 0);
    }
    return 0;
}

/* The folders holding returnflow/testing.lua and returnflow/native.so: beside a build-tree binary
 * (build/returnflow -> core/lua, build/lib), beside an installed one (PREFIX/bin -> PREFIX/share/lua,
 * PREFIX/lib/lua), else the folders compiled in. */
static void find_modules(char *luadir, char *libdir, size_t len) {
    char exe[PATH_MAX - 64], probe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(probe, sizeof probe, "%s/../core/lua/returnflow/testing.lua", exe);
        if (is_file(probe)) {
            snprintf(luadir, len, "%s/../core/lua", exe);
            snprintf(libdir, len, "%s/lib", exe);
            return;
        }
        /* PREFIX/bin/returnflow of `make install` or of a luarocks tree: PREFIX/share/lua/5.4 */
        snprintf(probe, sizeof probe, "%s/../share/lua/5.4/returnflow/testing.lua", exe);
        if (is_file(probe)) {
            snprintf(luadir, len, "%s/../share/lua/5.4", exe);
            snprintf(libdir, len, "%s/../lib/lua/5.4", exe);
            return;
        }
    }
    snprintf(luadir, len, "%s", RETURNFLOW_LUADIR);
    snprintf(libdir, len, "%s", RETURNFLOW_LIBDIR);
}

/* Lua 5.4 reads LUA_PATH_5_4, else LUA_PATH: keep whichever the caller set, after ours. */
static void prepend(const char *var, const char *fallback_var, const char *entries) {
    const char *old = getenv(var);
    if (!old || !*old) old = getenv(fallback_var);
    char *value = malloc(strlen(entries) + (old ? strlen(old) : 0) + 4);
    if (!value) abort();
    sprintf(value, "%s;%s", entries, old && *old ? old : ";");   /* ";;" keeps Lua's defaults */
    setenv(var, value, 1);
    free(value);
}

int cmd_test(int argc, char **argv) {
    const char *scripts = NULL;
    int first = 1;
    for (; first < argc; first++) {
        if (strcmp(argv[first], "-h") == 0 || strcmp(argv[first], "--help") == 0) return cmd_help("test");
        if (strcmp(argv[first], "--scripts") == 0 && first + 1 < argc) scripts = argv[++first];
        else if (strncmp(argv[first], "--scripts=", 10) == 0) scripts = argv[first] + 10;
        else break;
    }
    char busted[PATH_MAX];
    int found = find_busted(busted, sizeof busted);
    if (found < 0) return 2;
    if (!found) {
        fprintf(stderr, "returnflow test: busted is not installed (apt-get install -y lua-busted, "
                        "or set RETURNFLOW_BUSTED to its path)\n");
        return 2;
    }
    char luadir[PATH_MAX], libdir[PATH_MAX], entries[3 * PATH_MAX];
    find_modules(luadir, libdir, sizeof luadir);
    snprintf(entries, sizeof entries, "%s/?.lua;%s/?/init.lua", luadir, luadir);
    prepend("LUA_PATH_5_4", "LUA_PATH", entries);
    snprintf(entries, sizeof entries, "%s/?.so", libdir);
    prepend("LUA_CPATH_5_4", "LUA_CPATH", entries);
    if (scripts) setenv("RETURNFLOW_SCRIPTS", scripts, 1);
    const char *lua = getenv("RETURNFLOW_LUA");
    if (!lua || !*lua) lua = "lua5.4";
    /* lua5.4 BUSTED --ignore-lua [ARGS...]: busted would otherwise honour a .busted `lua` directive by
     * starting itself again, without our paths. */
    char **args = calloc((size_t)argc + 4, sizeof *args);
    if (!args) abort();
    int k = 0;
    args[k++] = (char *)lua;
    args[k++] = busted;
    args[k++] = "--ignore-lua";
    for (int i = first; i < argc; i++) args[k++] = argv[i];
    args[k] = NULL;
    fflush(stdout);
    execvp(lua, args);
    fprintf(stderr, "returnflow test: cannot run %s: ", lua);
    perror(NULL);
    free(args);
    return 2;
}
