/*
 * config.c: returnflow.conf.lua, the operator's settings, read into the C structs of config.h.
 *
 * The file is the operator's own and trusted: it runs in a fresh, plain Lua state with the standard
 * libraries (so it may compute values or call os.getenv), and must return a table. Everything is
 * then copied out into C and the state is closed; nothing keeps a Lua reference after config_load.
 *
 * The invariant: a config is all or nothing. Every problem found (a type, a range, an unknown key, a
 * missing secret, a scripts folder that is not there) is collected, one "PATH: where: what" line
 * each (each line ends with a newline), and config_load returns NULL when there is any, so a server
 * never starts half-configured and an operator fixes everything in one round. Unknown keys are
 * errors so a typo ("webhook_secert") cannot silently fall back to a default.
 *
 * Secrets (the Loop webhook secret, the Klaviyo key, the store's URL, which may hold a password) may be written inline, or as { env = "NAME" }
 * or { file = "PATH" } (read with the trailing newline stripped). A secret's value never appears in
 * a message, and config_free wipes it; one with a control character (CR, LF, ...) is refused, as it
 * could split the header it is sent in. Lua's own messages about the file ("unfinished string near
 * '...'", "(constant '...')") quote its text, which may be a secret: that text is withheld. Relative paths (data, scripts, secret files) resolve against
 * the config file's folder, not the working directory. Tenants are kept sorted by id.
 *
 * Not here: command-line overrides (--listen, --data) and reloading are the caller's; this reads.
 */
#include "config.h"
#include "version.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"
#include "strbuf.h"

#define DEFAULT_LISTEN "127.0.0.1:8787"
#define DEFAULT_CONSOLE_LISTEN "127.0.0.1:8788"
#define DEFAULT_DATA "data"
#define DEFAULT_SCRIPTS "scripts"
#define DEFAULT_BASE_URL "https://a.klaviyo.com"
#define DEFAULT_SEGMENTS_PROPERTY "returnflow_segments"
#define SECRET_FILE_MAX (64 * 1024)

typedef struct loader {
    lua_State *L;
    const char *path;          /* as given: the first part of every problem line */
    char *dir;                 /* the config file's folder, for relative paths */
    strbuf problems;
    int nproblems;
    int secrets;               /* CONFIG_* kinds to resolve; the others are only checked for form */
    config *c;
} loader;

static const char *const top_keys[] = { "listen", "data", "workers", "retention_days", "max_body",
    "max_connections", "timeouts", "delivery", "caps", "watch_scripts", "reload_requires_specs", "tenants", "debug", "store", "node",
    "console", NULL };
static const char *const store_keys[] = { "check_seconds", "url", NULL };
static const char *const console_keys[] = { "listen", "token", NULL };
static const char *const debug_keys[] = { "core_dumps", NULL };
static const char *const timeout_keys[] = { "header", "body", "idle", NULL };
static const char *const delivery_keys[] = { "max_age_hours", "backoff_max_seconds", "timeout_seconds",
    "bulk_timeout_seconds", "connect_timeout_seconds", NULL };
static const char *const caps_keys[] = { "memory_mib", "time_ms", NULL };
static const char *const tenant_keys[] = { "scripts", "webhook_secret", "klaviyo", "segments_property", NULL };
static const char *const klaviyo_keys[] = { "key_kind", "key", "site_id", "revision", "base_url",
    "rate_scale", NULL };
static const char *const secret_keys[] = { "env", "file", NULL };

/* ------------------------------- helpers --------------------------------- */

static char *dupstr(const char *s) {
    char *d = strdup(s);
    if (!d) { fputs("returnflow: out of memory\n", stderr); abort(); }
    return d;
}

static void problem(loader *ld, const char *where, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    strbuf_adds(&ld->problems, ld->path);
    strbuf_adds(&ld->problems, ": ");
    if (where && *where) {
        strbuf_adds(&ld->problems, where);
        strbuf_adds(&ld->problems, ": ");
    }
    strbuf_adds(&ld->problems, what);
    strbuf_addc(&ld->problems, '\n');
    ld->nproblems++;
}

/* "parent.key", or "key" at the top. */
static void join(char *out, size_t size, const char *parent, const char *key) {
    size_t n = 0;
    for (const char *p = parent ? parent : ""; *p && n + 1 < size; p++) out[n++] = *p;
    if (n > 0 && n + 1 < size) out[n++] = '.';
    for (const char *p = key; *p && n + 1 < size; p++) out[n++] = *p;
    out[n] = 0;
}

/* The folder part of path ("." when there is none). */
static char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return dupstr(".");
    if (slash == path) return dupstr("/");
    char *d = dupstr(path);
    d[slash - path] = 0;
    return d;
}

/* rel against the config file's folder; absolute paths stay as they are. */
static char *resolve(const loader *ld, const char *rel) {
    if (rel[0] == '/' || strcmp(ld->dir, ".") == 0) return dupstr(rel);
    size_t n = strlen(ld->dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (!p) { fputs("returnflow: out of memory\n", stderr); abort(); }
    snprintf(p, n, "%s/%s", ld->dir, rel);
    return p;
}

static void wipe_free(char *s) {
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* Reports every key of the table at idx that is not in known, in a stable (sorted) order. */
static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_keys(loader *ld, int idx, const char *where, const char *const known[]) {
    lua_State *L = ld->L;
    idx = lua_absindex(L, idx);
    char list[256] = "", at[300];
    for (int i = 0; known[i]; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", known[i]);
    }
    char **unknown = NULL;
    size_t nunknown = 0, cap = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        char name[80];
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            int found = 0;
            for (int i = 0; known[i] && !found; i++) found = strcmp(known[i], k) == 0;
            if (found) continue;
            snprintf(name, sizeof name, "%s", k);
        } else if (lua_isinteger(L, -1)) {
            snprintf(name, sizeof name, "[%lld]", (long long)lua_tointeger(L, -1));
        } else {
            snprintf(name, sizeof name, "[a %s key]", luaL_typename(L, -1));
        }
        if (nunknown == cap) {
            cap = cap ? cap * 2 : 8;
            char **u = realloc(unknown, cap * sizeof *u);
            if (!u) { fputs("returnflow: out of memory\n", stderr); abort(); }
            unknown = u;
        }
        unknown[nunknown++] = dupstr(name);
    }
    if (nunknown > 1) qsort(unknown, nunknown, sizeof *unknown, by_name);
    for (size_t i = 0; i < nunknown; i++) {
        if (unknown[i][0] == '[') {
            problem(ld, where, "unexpected entry %s (known here: %s)", unknown[i], list);
        } else {
            join(at, sizeof at, where, unknown[i]);
            problem(ld, at, "unknown setting (known here: %s)", list);
        }
        free(unknown[i]);
    }
    free(unknown);
}

/* Pushes t[key] and returns its type. */
static int field(loader *ld, int t, const char *key) {
    return lua_getfield(ld->L, t, key);
}

/* A non-empty string, or def when absent. *out is NULL when absent with no default.
 * Returns the type found (LUA_TNIL when absent). */
static int get_string(loader *ld, int t, const char *parent, const char *key, const char *def, char **out) {
    char at[300];
    join(at, sizeof at, parent, key);
    int type = field(ld, t, key);
    if (type == LUA_TNIL) {
        *out = def ? dupstr(def) : NULL;
    } else if (type != LUA_TSTRING) {
        problem(ld, at, "must be a string, not a %s", lua_typename(ld->L, type));
    } else {
        size_t len;
        const char *s = lua_tolstring(ld->L, -1, &len);
        if (len == 0) problem(ld, at, "must not be empty");
        else if (strlen(s) != len) problem(ld, at, "must not contain a NUL byte");
        else *out = dupstr(s);
    }
    lua_pop(ld->L, 1);
    return type;
}

/* A whole number in [min, max], or def when absent. */
static long long get_int(loader *ld, int t, const char *parent, const char *key, long long def,
                         long long min, long long max) {
    char at[300];
    join(at, sizeof at, parent, key);
    long long v = def;
    int type = field(ld, t, key);
    if (type != LUA_TNIL) {
        int ok = 0;
        lua_Integer i = type == LUA_TNUMBER ? lua_tointegerx(ld->L, -1, &ok) : 0;
        if (!ok || i < min || i > max) problem(ld, at, "must be a whole number from %lld to %lld", min, max);
        else v = i;
    }
    lua_pop(ld->L, 1);
    return v;
}

/* true or false, or def when absent. */
static int get_bool(loader *ld, int t, const char *parent, const char *key, int def) {
    char at[300];
    join(at, sizeof at, parent, key);
    int v = def;
    int type = field(ld, t, key);
    if (type == LUA_TBOOLEAN) v = lua_toboolean(ld->L, -1);
    else if (type != LUA_TNIL) problem(ld, at, "must be true or false, not a %s", lua_typename(ld->L, type));
    lua_pop(ld->L, 1);
    return v;
}

/* A finite number above 0, or def when absent. */
static double get_positive(loader *ld, int t, const char *parent, const char *key, double def) {
    char at[300];
    join(at, sizeof at, parent, key);
    double v = def;
    int type = field(ld, t, key);
    if (type != LUA_TNIL) {
        double d = type == LUA_TNUMBER ? lua_tonumber(ld->L, -1) : 0;
        if (type != LUA_TNUMBER || !isfinite(d) || d <= 0) problem(ld, at, "must be a number above 0");
        else v = d;
    }
    lua_pop(ld->L, 1);
    return v;
}

/* Pushes t[key] when it is a table and returns 1; returns 0 with nothing pushed otherwise
 * (reporting anything that is neither a table nor absent, or absent when required). */
static int get_table(loader *ld, int t, const char *parent, const char *key, int required) {
    char at[300];
    join(at, sizeof at, parent, key);
    int type = field(ld, t, key);
    if (type == LUA_TTABLE) return 1;
    if (type != LUA_TNIL) problem(ld, at, "must be a table, not a %s", lua_typename(ld->L, type));
    else if (required) problem(ld, at, "missing");
    lua_pop(ld->L, 1);
    return 0;
}

#define CONTROL_PROBLEM "must not contain control characters (CR, LF, tab, ...)"

/* A secret goes into an HTTP header or an HMAC key: a CR or LF could split the header. */
static int has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

/* Lua's message with the file's own text withheld: a syntax error's token (" near '...'", a
 * secret's unfinished string among them) and a constant's value ("(constant '...')"), each to the
 * end of the message, as a secret may hold quotes. Lua's words and the line stay. */
static void add_withheld(strbuf *out, const char *msg) {
    const char *near = strstr(msg, " near "), *constant = strstr(msg, "(constant ");
    const char *cut = near && (!constant || near < constant) ? near : constant;
    if (!cut) { strbuf_adds(out, msg); return; }
    strbuf_add(out, msg, (size_t)(cut - msg));
    strbuf_adds(out, cut == near ? " near '(withheld)'" : "(constant '(withheld)')");
}

/* Reads a secret file, trailing newline(s) stripped. NULL with why filled on failure. */
static char *read_secret_file(const char *path, char *why, size_t whylen) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno)); return NULL; }
    char *buf = malloc(SECRET_FILE_MAX + 1);
    if (!buf) { fputs("returnflow: out of memory\n", stderr); abort(); }
    size_t n = fread(buf, 1, SECRET_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    const char *what = NULL;
    if (bad) what = "cannot be read";
    else if (n > SECRET_FILE_MAX) what = "is larger than 64 KiB";
    else {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
        buf[n] = 0;
        if (n == 0) what = "is empty";
        else if (strlen(buf) != n) what = "contains a NUL byte";
        else if (has_control(buf)) what = CONTROL_PROBLEM;
    }
    if (what) {
        snprintf(why, whylen, "file %s %s", path, what);
        explicit_bzero(buf, SECRET_FILE_MAX + 1);
        free(buf);
        return NULL;
    }
    return buf;
}

/* A secret written inline, as { env = "NAME" } or as { file = "PATH" }. *out stays NULL when
 * absent (reported if required). No message ever includes the value. */
/* kind: CONFIG_WEBHOOK_SECRETS or CONFIG_KLAVIYO_KEYS. A kind the caller does not use is checked for
 * its form only: its environment variable or file is never read, and *out stays NULL. */
static void get_secret(loader *ld, int t, const char *parent, const char *key, int required, int kind, char **out) {
    lua_State *L = ld->L;
    int wanted = ld->secrets & kind;
    char at[300], sub[300];
    join(at, sizeof at, parent, key);
    int type = field(ld, t, key);
    if (type == LUA_TNIL) {
        if (required) problem(ld, at, "missing");
    } else if (type == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (len == 0) problem(ld, at, "must not be empty");
        else if (strlen(s) != len) problem(ld, at, "must not contain a NUL byte");
        else if (has_control(s)) problem(ld, at, CONTROL_PROBLEM);
        else if (wanted) *out = dupstr(s);
    } else if (type == LUA_TTABLE) {
        int tt = lua_gettop(L);
        check_keys(ld, tt, at, secret_keys);
        int te = field(ld, tt, "env"), tf = field(ld, tt, "file");
        if ((te == LUA_TNIL) == (tf == LUA_TNIL)) {
            problem(ld, at, "give exactly one of { env = \"NAME\" } or { file = \"PATH\" }");
        } else if (te != LUA_TNIL) {
            join(sub, sizeof sub, at, "env");
            const char *name = te == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            if (!name || !*name) {
                problem(ld, sub, "must name an environment variable");
            } else if (wanted) {
                const char *v = getenv(name);
                if (!v) problem(ld, at, "environment variable %s is not set", name);
                else if (!*v) problem(ld, at, "environment variable %s is empty", name);
                else if (has_control(v)) problem(ld, at, "environment variable %s: " CONTROL_PROBLEM, name);
                else *out = dupstr(v);
            }
        } else {
            join(sub, sizeof sub, at, "file");
            const char *file = tf == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            if (!file || !*file) {
                problem(ld, sub, "must name a file");
            } else if (wanted) {
                char why[600];
                char *p = resolve(ld, file);
                *out = read_secret_file(p, why, sizeof why);
                if (!*out) problem(ld, at, "%s", why);
                free(p);
            }
        }
        lua_pop(L, 2);
    } else {
        problem(ld, at, "must be a string, { env = \"NAME\" } or { file = \"PATH\" }, not a %s",
                lua_typename(L, type));
    }
    lua_pop(L, 1);
}

/* ------------------------------- checks ---------------------------------- */

/* HOST:PORT, where HOST is an IPv4 address, [an IPv6 address] or a host name, and PORT 0-65535. */
static int valid_listen(const char *s) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5) return 0;
    for (const char *p = colon + 1; *p; p++)
        if (!isdigit((unsigned char)*p)) return 0;
    if (atoi(colon + 1) > 65535) return 0;
    size_t hl = (size_t)(colon - s);
    char host[256];
    if (hl >= sizeof host) return 0;
    memcpy(host, s, hl);
    host[hl] = 0;
    unsigned char addr[16];
    if (host[0] == '[') {
        if (hl < 3 || host[hl - 1] != ']') return 0;
        host[hl - 1] = 0;
        return inet_pton(AF_INET6, host + 1, addr) == 1;
    }
    for (const char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-') return 0;
    return 1;
}

static int valid_tenant_id(const char *s, size_t len) {
    if (len == 0 || len > 64) return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') return 0;
    return 1;
}

/* 2026-07-15, optionally with a suffix such as .pre */
static int valid_revision(const char *s) {
    static const char shape[] = "dddd-dd-dd";
    for (int i = 0; shape[i]; i++) {
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i]) return 0;
    }
    if (!s[10]) return 1;
    if (s[10] != '.' || !s[11]) return 0;
    for (const char *p = s + 11; *p; p++)
        if (!isalnum((unsigned char)*p)) return 0;
    return 1;
}

static int valid_base_url(const char *s) {
    const char *rest = strncmp(s, "https://", 8) == 0 ? s + 8 : strncmp(s, "http://", 7) == 0 ? s + 7 : NULL;
    if (!rest || !*rest || *rest == '/') return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#') return 0;
    return 1;
}

/* ------------------------------- tenants --------------------------------- */

static void read_klaviyo(loader *ld, int t, const char *parent, tenant_config *tc) {
    char at[300], sub[300];
    join(at, sizeof at, parent, "klaviyo");
    int have = get_table(ld, t, parent, "klaviyo", 0);
    if (!have) {        /* absent (or reported): every default, no key, the tenant runs dry */
        lua_newtable(ld->L);
    } else {
        check_keys(ld, -1, at, klaviyo_keys);
    }
    int k = lua_gettop(ld->L);
    get_string(ld, k, at, "key_kind", "private", &tc->key_kind);
    if (tc->key_kind && strcmp(tc->key_kind, "private") && strcmp(tc->key_kind, "public")) {
        join(sub, sizeof sub, at, "key_kind");
        problem(ld, sub, "must be 'private' or 'public'");
    }
    get_secret(ld, k, at, "key", 0, CONFIG_KLAVIYO_KEYS, &tc->key);
    int site_type = get_string(ld, k, at, "site_id", NULL, &tc->site_id);
    join(sub, sizeof sub, at, "site_id");
    if (tc->site_id) {
        for (const char *p = tc->site_id; *p; p++)
            if (!isalnum((unsigned char)*p)) {
                problem(ld, sub, "must be letters and digits (Klaviyo's public API key, 6 characters)");
                break;
            }
    } else if (site_type == LUA_TNIL && tc->key_kind && strcmp(tc->key_kind, "public") == 0) {
        problem(ld, sub, "missing: a public key_kind needs site_id (Klaviyo's public API key)");
    }
    get_string(ld, k, at, "revision", KLAVIYO_REVISION, &tc->revision);
    join(sub, sizeof sub, at, "revision");
    if (tc->revision && !valid_revision(tc->revision))
        problem(ld, sub, "'%s' is not a Klaviyo revision like %s", tc->revision, KLAVIYO_REVISION);
    get_string(ld, k, at, "base_url", DEFAULT_BASE_URL, &tc->base_url);
    join(sub, sizeof sub, at, "base_url");
    if (tc->base_url) {
        if (!valid_base_url(tc->base_url)) problem(ld, sub, "'%s' is not an http:// or https:// URL", tc->base_url);
        size_t n = strlen(tc->base_url);
        while (n > 0 && tc->base_url[n - 1] == '/') tc->base_url[--n] = 0;
    }
    tc->rate_scale = get_positive(ld, k, at, "rate_scale", 1);
    lua_pop(ld->L, 1);
}

static void read_tenant(loader *ld, int t, const char *id, tenant_config *tc) {
    char at[300], sub[300];
    join(at, sizeof at, "tenants", id);
    tc->id = dupstr(id);
    check_keys(ld, t, at, tenant_keys);
    char *scripts = NULL;
    get_string(ld, t, at, "scripts", DEFAULT_SCRIPTS, &scripts);
    if (scripts) {
        tc->scripts = resolve(ld, scripts);
        struct stat st;
        join(sub, sizeof sub, at, "scripts");
        if (stat(tc->scripts, &st) != 0 && errno == ENOENT) problem(ld, sub, "folder %s does not exist", tc->scripts);
        else if (stat(tc->scripts, &st) != 0) problem(ld, sub, "folder %s: %s", tc->scripts, strerror(errno));
        else if (!S_ISDIR(st.st_mode)) problem(ld, sub, "%s is not a folder", tc->scripts);
        free(scripts);
    }
    get_secret(ld, t, at, "webhook_secret", 1, CONFIG_WEBHOOK_SECRETS, &tc->webhook_secret);
    read_klaviyo(ld, t, at, tc);
    get_string(ld, t, at, "segments_property", DEFAULT_SEGMENTS_PROPERTY, &tc->segments_property);
}

static void read_tenants(loader *ld, int top) {
    lua_State *L = ld->L;
    if (!get_table(ld, top, "", "tenants", 1)) return;
    int t = lua_gettop(L);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) { n++; lua_pop(L, 1); }
    if (n == 0) { problem(ld, "tenants", "must name at least one tenant"); lua_pop(L, 1); return; }

    /* Ids first, sorted: tenants are kept in id order (config_tenant searches them), and their
     * problems come in a stable order. */
    char **ids = calloc(n, sizeof *ids);
    if (!ids) { fputs("returnflow: out of memory\n", stderr); abort(); }
    size_t nids = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            if (lua_isinteger(L, -1))
                problem(ld, "tenants", "entry [%lld] has no tenant id: write tenants = { ID = { ... } }",
                        (long long)lua_tointeger(L, -1));
            else problem(ld, "tenants", "a %s key is not a tenant id", luaL_typename(L, -1));
            continue;
        }
        size_t len;
        const char *id = lua_tolstring(L, -1, &len);
        if (!valid_tenant_id(id, len)) {
            char shown[80];
            snprintf(shown, sizeof shown, "%s", id);
            problem(ld, "tenants", "'%s' is not a tenant id (1 to 64 of A-Z a-z 0-9 _ -)", shown);
            continue;
        }
        ids[nids++] = dupstr(id);
    }
    qsort(ids, nids, sizeof *ids, by_name);
    ld->c->tenants = calloc(nids ? nids : 1, sizeof *ld->c->tenants);
    if (!ld->c->tenants) { fputs("returnflow: out of memory\n", stderr); abort(); }
    for (size_t i = 0; i < nids; i++) {
        char at[300];
        join(at, sizeof at, "tenants", ids[i]);
        if (lua_getfield(L, t, ids[i]) != LUA_TTABLE) {
            problem(ld, at, "must be a table, not a %s", luaL_typename(L, -1));
        } else {
            read_tenant(ld, lua_gettop(L), ids[i], &ld->c->tenants[ld->c->ntenants++]);
        }
        lua_pop(L, 1);
        free(ids[i]);
    }
    free(ids);
    lua_pop(L, 1);
}

/* A node's name: it names the node in the store's leases and in /metrics. */
static int valid_node(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 63) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-", *s)) return 0;
    return 1;
}

/* ------------------------------- the file -------------------------------- */

/* Copies the table at index 1 into ld->c; run under lua_pcall, so a memory error cannot escape. */
static int read_all(lua_State *L) {
    loader *ld = lua_touserdata(L, lua_upvalueindex(1));
    config *c = ld->c;
    int top = 1;
    check_keys(ld, top, "", top_keys);

    get_string(ld, top, "", "listen", DEFAULT_LISTEN, &c->listen);
    if (c->listen && !valid_listen(c->listen))
        problem(ld, "listen", "'%s' is not HOST:PORT (for example %s)", c->listen, DEFAULT_LISTEN);
    char *data = NULL;
    get_string(ld, top, "", "data", DEFAULT_DATA, &data);
    if (data) { c->data_dir = resolve(ld, data); free(data); }
    c->workers = (int)get_int(ld, top, "", "workers", 0, 0, 1024);
    c->retention_days = (int)get_int(ld, top, "", "retention_days", 30, 1, 36500);
    c->max_body = (size_t)get_int(ld, top, "", "max_body", 1 << 20, 1, 1 << 30);
    c->max_connections = (int)get_int(ld, top, "", "max_connections", 1024, 1, 1000000);

    c->header_timeout = 10, c->body_timeout = 30, c->idle_timeout = 60;
    if (get_table(ld, top, "", "timeouts", 0)) {
        int t = lua_gettop(L);
        check_keys(ld, t, "timeouts", timeout_keys);
        c->header_timeout = get_positive(ld, t, "timeouts", "header", 10);
        c->body_timeout = get_positive(ld, t, "timeouts", "body", 30);
        c->idle_timeout = get_positive(ld, t, "timeouts", "idle", 60);
        lua_pop(L, 1);
    }
    c->max_age_hours = 72;
    c->backoff_max = 300, c->request_timeout = 30, c->bulk_timeout = 120, c->connect_timeout = 10;
    if (get_table(ld, top, "", "delivery", 0)) {
        int t = lua_gettop(L);
        check_keys(ld, t, "delivery", delivery_keys);
        c->max_age_hours = get_positive(ld, t, "delivery", "max_age_hours", 72);
        c->backoff_max = get_positive(ld, t, "delivery", "backoff_max_seconds", 300);
        c->request_timeout = get_positive(ld, t, "delivery", "timeout_seconds", 30);
        c->bulk_timeout = get_positive(ld, t, "delivery", "bulk_timeout_seconds", 120);
        c->connect_timeout = get_positive(ld, t, "delivery", "connect_timeout_seconds", 10);
        lua_pop(L, 1);
    }
    c->caps.memory_bytes = SANDBOX_DEFAULT_MEMORY;
    c->caps.seconds = SANDBOX_DEFAULT_SECONDS;
    if (get_table(ld, top, "", "caps", 0)) {
        int t = lua_gettop(L);
        check_keys(ld, t, "caps", caps_keys);
        c->caps.memory_bytes = (size_t)get_int(ld, t, "caps", "memory_mib", SANDBOX_DEFAULT_MEMORY >> 20, 1, 4096) << 20;
        c->caps.seconds = (double)get_int(ld, t, "caps", "time_ms", (long long)(SANDBOX_DEFAULT_SECONDS * 1000),
                                          1, 3600000) / 1000.0;
        lua_pop(L, 1);
    }
    c->store_check_seconds = 10;
    if (get_table(ld, top, "", "store", 0)) {
        int t = lua_gettop(L);
        check_keys(ld, t, "store", store_keys);
        c->store_check_seconds = get_positive(ld, t, "store", "check_seconds", 10);
        get_secret(ld, t, "store", "url", 0, CONFIG_STORE_URL, &c->store_url);
        if (c->store_url && strncmp(c->store_url, "postgresql://", 13) != 0 && strncmp(c->store_url, "postgres://", 11) != 0)
            problem(ld, "store.url", "must be a postgresql:// URL (absent: the SQLite store in data)");
        lua_pop(L, 1);
    }
    get_string(ld, top, "", "node", NULL, &c->node);
    if (c->node && !valid_node(c->node))
        problem(ld, "node", "'%s' is not a node name (letters, digits, '.', '_' and '-', at most 63)", c->node);
    if (!c->node) {
        char host[256] = "";
        if (gethostname(host, sizeof host - 1) != 0 || !valid_node(host)) snprintf(host, sizeof host, "node");
        c->node = dupstr(host);
    }
    c->watch_scripts = get_bool(ld, top, "", "watch_scripts", 1);
    c->reload_requires_specs = get_bool(ld, top, "", "reload_requires_specs", 0);
    if (get_table(ld, top, "", "debug", 0)) {
        int t = lua_gettop(L);
        check_keys(ld, t, "debug", debug_keys);
        c->core_dumps = get_bool(ld, t, "debug", "core_dumps", 0);
        lua_pop(L, 1);
    }
    if (get_table(ld, top, "", "console", 0)) {    /* docs/console.md: off unless configured */
        int t = lua_gettop(L);
        check_keys(ld, t, "console", console_keys);
        get_string(ld, t, "console", "listen", DEFAULT_CONSOLE_LISTEN, &c->console_listen);
        if (c->console_listen && !valid_listen(c->console_listen))
            problem(ld, "console.listen", "'%s' is not HOST:PORT (for example %s)", c->console_listen, DEFAULT_CONSOLE_LISTEN);
        get_secret(ld, t, "console", "token", 1, CONFIG_CONSOLE_TOKEN, &c->console_token);
        if (c->console_token && strlen(c->console_token) < 16)
            problem(ld, "console.token", "must be 16 bytes or more (for example: openssl rand -hex 24)");
        lua_pop(L, 1);
    }
    read_tenants(ld, top);
    return 0;
}

static void run_file(loader *ld) {
    lua_State *L = ld->L;
    FILE *f = fopen(ld->path, "r");
    if (!f) { problem(ld, NULL, "cannot read: %s", strerror(errno)); return; }
    fclose(f);
    if (luaL_loadfilex(L, ld->path, "t") != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);           /* "PATH:LINE: message", as Lua says it */
        add_withheld(&ld->problems, msg ? msg : "(error object is not a string)");
        strbuf_addc(&ld->problems, '\n');
        ld->nproblems++;
        return;
    }
    if (!lua_istable(L, -1)) {
        problem(ld, NULL, "must return a table of settings, not a %s", luaL_typename(L, -1));
        return;
    }
    lua_pushlightuserdata(L, ld);
    lua_pushcclosure(L, read_all, 1);
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        strbuf m = {0};
        add_withheld(&m, lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)");
        strbuf_addc(&m, 0);
        problem(ld, NULL, "%s", m.data);
        strbuf_free(&m);
    }
}

/* Copies the problems into err, whole lines only; says how many did not fit. */
static void give_problems(const loader *ld, char *err, size_t errlen) {
    if (!err || errlen == 0) return;
    const strbuf *p = &ld->problems;
    if (p->len < errlen) {
        memcpy(err, p->data, p->len);
        err[p->len] = 0;
        return;
    }
    char more[64];
    size_t room = errlen > sizeof more ? errlen - sizeof more : 0, cut = 0;
    int shown = 0;
    for (size_t i = 0; i < p->len && i < room; i++)
        if (p->data[i] == '\n') { cut = i + 1; shown++; }
    snprintf(more, sizeof more, "%s: %d more problem%s not shown\n", shown ? "..." : ld->path,
             ld->nproblems - shown, ld->nproblems - shown == 1 ? "" : "s");
    memcpy(err, p->data, cut);
    snprintf(err + cut, errlen - cut, "%s", more);
}

config *config_load(const char *path, char *err, size_t errlen) {
    return config_load_secrets(path, CONFIG_WEBHOOK_SECRETS | CONFIG_KLAVIYO_KEYS | CONFIG_CONSOLE_TOKEN, err, errlen);
}

config *config_load_secrets(const char *path, int secrets, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    loader ld = { .path = path, .secrets = secrets | CONFIG_STORE_URL };   /* every command reads the store */
    ld.c = calloc(1, sizeof *ld.c);
    ld.L = luaL_newstate();
    if (!ld.c || !ld.L) {
        if (err) snprintf(err, errlen, "%s: out of memory\n", path);
        free(ld.c);
        if (ld.L) lua_close(ld.L);
        return NULL;
    }
    luaL_openlibs(ld.L);
    ld.dir = folder_of(path);
    ld.c->path = dupstr(path);
    run_file(&ld);
    lua_close(ld.L);
    free(ld.dir);
    if (ld.nproblems) {
        give_problems(&ld, err, errlen);
        strbuf_free(&ld.problems);
        config_free(ld.c);
        return NULL;
    }
    strbuf_free(&ld.problems);
    return ld.c;
}

static void tenant_free(tenant_config *t) {
    free(t->id);
    free(t->scripts);
    free(t->scripts_source);
    wipe_free(t->webhook_secret);
    free(t->key_kind);
    wipe_free(t->key);
    free(t->site_id);
    free(t->revision);
    free(t->base_url);
    free(t->segments_property);
}

void config_free(config *c) {
    if (!c) return;
    for (int i = 0; i < c->ntenants; i++) tenant_free(&c->tenants[i]);
    free(c->tenants);
    free(c->path);
    free(c->listen);
    free(c->data_dir);
    wipe_free(c->store_url);
    free(c->node);
    free(c->console_listen);
    wipe_free(c->console_token);
    free(c);
}

const tenant_config *config_tenant(const config *c, const char *id, size_t idlen) {
    int lo = 0, hi = c->ntenants - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const char *m = c->tenants[mid].id;
        size_t mlen = strlen(m);
        int cmp = memcmp(m, id, mlen < idlen ? mlen : idlen);
        if (cmp == 0) cmp = mlen < idlen ? -1 : mlen > idlen;
        if (cmp == 0) return &c->tenants[mid];
        if (cmp < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}
