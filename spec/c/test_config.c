/*
 * test_config.c: what core/base/config.c promises an operator about returnflow.conf.lua.
 *
 * Why these tests: the config is read once at start, and a server must never start half-configured
 * nor with a typo silently replaced by a default. So: a good file loads with every default filled
 * and every relative path taken from the config's folder; secrets come inline, from the environment
 * or from a file (trailing newline stripped); and every kind of problem is reported, all at once,
 * one "PATH: where: what" line each, without ever showing a secret's value. The shipped
 * returnflow.conf.lua must load as it is (the tests run from the repo root).
 *
 * Each test gets a fresh temporary folder holding a scripts/ folder; the config under test is
 * written there as returnflow.conf.lua.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/* ------------------------------- helpers --------------------------------- */

typedef struct fixture {
    char dir[64];            /* a fresh temporary folder, with scripts/ in it */
    char path[128];          /* dir/returnflow.conf.lua */
    char err[8192];
    config *c;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rf-test-config-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/returnflow.conf.lua", f->dir);
    char scripts[128];
    snprintf(scripts, sizeof scripts, "%s/scripts", f->dir);
    if (mkdir(scripts, 0700)) return -1;
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state) {
    fixture *f = *state;
    config_free(f->c);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    unsetenv("RF_TEST_SECRET");
    unsetenv("RF_TEST_KEY");
    return 0;
}

static void write_file(const fixture *f, const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    fputs(text, out);
    fclose(out);
}

/* Writes the config and loads it; f->c is the result (NULL on problems, f->err says why). */
static config *load(fixture *f, const char *text) {
    write_file(f, "returnflow.conf.lua", text);
    f->err[0] = 0;
    f->c = config_load(f->path, f->err, sizeof f->err);
    return f->c;
}

static config *load_ok(fixture *f, const char *text) {
    config *c = load(f, text);
    if (!c) fail_msg("config_load failed:\n%s", f->err);
    return c;
}

static void load_fails(fixture *f, const char *text) {
    if (load(f, text)) fail_msg("config_load accepted:\n%s", text);
    assert_true(f->err[0] != 0);
}

/* err holds the line "PATH: where_what" (the start of a line; the rest of it may say more). */
static void assert_problem(const fixture *f, const char *where_what) {
    char line[512];
    snprintf(line, sizeof line, "%s: %s", f->path, where_what);
    const char *p = f->err;
    while ((p = strstr(p, line)) != NULL) {
        if (p == f->err || p[-1] == '\n') return;
        p++;
    }
    fail_msg("no problem line starting '%s' in:\n%s", line, f->err);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void path_in(const fixture *f, char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", f->dir, name);
}

/* ------------------------------- loading --------------------------------- */

static void a_minimal_file_loads_with_every_default(void **state) {
    fixture *f = *state;
    config *c = load_ok(f, "return { tenants = { demo = { webhook_secret = 'shh' } } }");
    char want[256];

    assert_string_equal(c->path, f->path);
    assert_string_equal(c->listen, "127.0.0.1:8787");
    path_in(f, want, sizeof want, "data");
    assert_string_equal(c->data_dir, want);
    assert_int_equal(c->workers, 0);
    assert_int_equal(c->retention_days, 30);
    assert_int_equal(c->max_body, 1048576);
    assert_int_equal(c->max_connections, 1024);
    assert_true(c->header_timeout == 10 && c->body_timeout == 30 && c->idle_timeout == 60);
    assert_true(c->max_age_hours == 72);
    assert_int_equal(c->caps.memory_bytes, 32u << 20);
    assert_true(c->caps.seconds == 0.5);
    assert_int_equal(c->ntenants, 1);

    const tenant_config *t = &c->tenants[0];
    assert_string_equal(t->id, "demo");
    path_in(f, want, sizeof want, "scripts");
    assert_string_equal(t->scripts, want);
    assert_string_equal(t->webhook_secret, "shh");
    assert_string_equal(t->key_kind, "private");
    assert_null(t->key);                                  /* no key: the tenant runs dry */
    assert_null(t->site_id);
    assert_string_equal(t->revision, "2026-07-15");
    assert_string_equal(t->base_url, "https://a.klaviyo.com");
    assert_string_equal(t->segments_property, "returnflow_segments");
    assert_true(t->rate_scale == 1);
}

static void every_setting_is_copied_out(void **state) {
    fixture *f = *state;
    config *c = load_ok(f,
        "local hours = 24 * 2\n"                       /* the file is Lua: it may compute */
        "return {\n"
        "  listen = '0.0.0.0:9000', data = '/var/lib/rf', workers = 2, retention_days = 7,\n"
        "  max_body = 2048, max_connections = 10,\n"
        "  timeouts = { header = 1.5, body = 2, idle = 3 },\n"
        "  delivery = { max_age_hours = hours },\n"
        "  caps = { memory_mib = 8, time_ms = 250 },\n"
        "  tenants = {\n"
        "    acme = { scripts = '/tmp', webhook_secret = 'a',\n"
        "             klaviyo = { key_kind = 'public', key = 'pk_live', site_id = 'AbC123',\n"
        "                         revision = '2025-01-15.pre', base_url = 'http://127.0.0.1:9999/',\n"
        "                         rate_scale = 0.5 },\n"
        "             segments_property = 'tags' },\n"
        "  },\n"
        "}\n");
    assert_string_equal(c->listen, "0.0.0.0:9000");
    assert_string_equal(c->data_dir, "/var/lib/rf");      /* absolute paths stay as written */
    assert_int_equal(c->workers, 2);
    assert_int_equal(c->retention_days, 7);
    assert_int_equal(c->max_body, 2048);
    assert_int_equal(c->max_connections, 10);
    assert_true(c->header_timeout == 1.5 && c->body_timeout == 2 && c->idle_timeout == 3);
    assert_true(c->max_age_hours == 48);
    assert_int_equal(c->caps.memory_bytes, 8u << 20);
    assert_true(c->caps.seconds == 0.25);
    const tenant_config *t = &c->tenants[0];
    assert_string_equal(t->scripts, "/tmp");
    assert_string_equal(t->key_kind, "public");
    assert_string_equal(t->key, "pk_live");
    assert_string_equal(t->site_id, "AbC123");
    assert_string_equal(t->revision, "2025-01-15.pre");
    assert_string_equal(t->base_url, "http://127.0.0.1:9999");   /* trailing slash dropped */
    assert_true(t->rate_scale == 0.5);
    assert_string_equal(t->segments_property, "tags");
}

static void relative_paths_are_taken_from_the_configs_folder(void **state) {
    fixture *f = *state;
    write_file(f, "secret.txt", "from-file\n");
    char sub[128];
    snprintf(sub, sizeof sub, "%s/scripts/acme", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    config *c = load_ok(f, "return { data = 'store/x', tenants = { acme = { scripts = 'scripts/acme',"
                           " webhook_secret = { file = 'secret.txt' } } } }");
    char want[256];
    path_in(f, want, sizeof want, "store/x");
    assert_string_equal(c->data_dir, want);
    assert_string_equal(c->tenants[0].scripts, sub);
    assert_string_equal(c->tenants[0].webhook_secret, "from-file");
}

static void secrets_come_from_the_environment(void **state) {
    fixture *f = *state;
    setenv("RF_TEST_SECRET", "env-secret", 1);
    setenv("RF_TEST_KEY", "pk_from_env", 1);
    config *c = load_ok(f, "return { tenants = { demo = { webhook_secret = { env = 'RF_TEST_SECRET' },"
                           " klaviyo = { key = { env = 'RF_TEST_KEY' } } } } }");
    assert_string_equal(c->tenants[0].webhook_secret, "env-secret");
    assert_string_equal(c->tenants[0].key, "pk_from_env");
}

static void the_console_is_off_unless_configured_and_on_loopback_by_default(void **state) {
    fixture *f = *state;
    config *c = load_ok(f, "return { tenants = { demo = { webhook_secret = 'shh' } } }");
    assert_null(c->console_listen);
    assert_null(c->console_token);
    config_free(c);
    setenv("RF_TEST_SECRET", "a-console-token-of-32-bytes-xxxx", 1);
    c = f->c = load_ok(f, "return { console = { token = { env = 'RF_TEST_SECRET' } },"
                          " tenants = { demo = { webhook_secret = 'shh' } } }");
    assert_string_equal(c->console_listen, "127.0.0.1:8788");
    assert_string_equal(c->console_token, "a-console-token-of-32-bytes-xxxx");
}

static void console_problems_are_reported(void **state) {
    fixture *f = *state;
    load_fails(f, "return { console = { listen = 'nowhere' }, tenants = { demo = { webhook_secret = 'shh' } } }");
    assert_problem(f, "console.listen: 'nowhere' is not HOST:PORT");
    assert_problem(f, "console.token: missing");
    load_fails(f, "return { console = { token = 'too-short', port = 1 }, tenants = { demo = { webhook_secret = 'shh' } } }");
    assert_problem(f, "console.token: must be 16 bytes or more");
    assert_problem(f, "console.port: unknown");
    assert_null(strstr(f->err, "too-short"));                /* never the value */
}

static void secrets_come_from_files_without_their_trailing_newline(void **state) {
    fixture *f = *state;
    write_file(f, "loop.secret", "line-secret\n");
    write_file(f, "klaviyo.key", "pk_crlf\r\n");
    write_file(f, "bare.secret", "no newline");
    char abs[256], text[600];
    path_in(f, abs, sizeof abs, "klaviyo.key");
    snprintf(text, sizeof text, "return { tenants = {\n"
             "  a = { webhook_secret = { file = 'loop.secret' }, klaviyo = { key = { file = '%s' } } },\n"
             "  b = { webhook_secret = { file = 'bare.secret' } } } }", abs);
    config *c = load_ok(f, text);
    assert_string_equal(c->tenants[0].webhook_secret, "line-secret");
    assert_string_equal(c->tenants[0].key, "pk_crlf");
    assert_string_equal(c->tenants[1].webhook_secret, "no newline");
}

static void tenants_are_found_by_id_slice(void **state) {
    fixture *f = *state;
    config *c = load_ok(f, "return { tenants = { zeta = { webhook_secret = 'z' }, acme = { webhook_secret = 'a' },"
                           " ['m-2_x'] = { webhook_secret = 'm' }, demo = { webhook_secret = 'd' } } }");
    assert_int_equal(c->ntenants, 4);
    assert_string_equal(c->tenants[0].id, "acme");         /* kept in id order */
    assert_string_equal(c->tenants[3].id, "zeta");
    const char *path = "demo/more";                        /* a slice of a URL path, not NUL-ended */
    const tenant_config *t = config_tenant(c, path, 4);
    assert_non_null(t);
    assert_string_equal(t->webhook_secret, "d");
    assert_string_equal(config_tenant(c, "m-2_x", 5)->webhook_secret, "m");
    assert_string_equal(config_tenant(c, "zeta", 4)->webhook_secret, "z");
    assert_string_equal(config_tenant(c, "acme", 4)->webhook_secret, "a");
    assert_null(config_tenant(c, "dem", 3));
    assert_null(config_tenant(c, "demos", 5));
    assert_null(config_tenant(c, "", 0));
}

static void the_shipped_config_loads(void **state) {
    (void)state;
    char err[4096] = "";
    config *c = config_load("returnflow.conf.lua", err, sizeof err);   /* the tests run from the repo root */
    if (!c) fail_msg("returnflow.conf.lua does not load:\n%s", err);
    assert_string_equal(c->listen, "127.0.0.1:8787");
    assert_string_equal(c->data_dir, "data");
    assert_int_equal(c->ntenants, 1);
    const tenant_config *t = config_tenant(c, "demo", 4);
    assert_non_null(t);
    assert_string_equal(t->scripts, "scripts");
    assert_null(t->key);                                  /* the demo runs dry */
    assert_string_equal(t->key_kind, "private");
    assert_true(strlen(t->webhook_secret) > 0);
    config_free(c);
}

/* ------------------------------- problems -------------------------------- */

static void a_missing_webhook_secret_is_reported(void **state) {
    fixture *f = *state;
    load_fails(f, "return { tenants = { demo = {} } }");
    assert_problem(f, "tenants.demo.webhook_secret: missing");
    assert_int_equal(count_lines(f->err), 1);
}

static void a_bad_listen_address_is_reported(void **state) {
    fixture *f = *state;
    static const char *const bad[] = { "x", "8787", ":8787", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:http",
                                       "[::1:8787", "a b:1" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[200], want[100];
        snprintf(text, sizeof text, "return { listen = '%s', tenants = { demo = { webhook_secret = 's' } } }", bad[i]);
        config_free(f->c);
        load_fails(f, text);
        snprintf(want, sizeof want, "listen: '%s' is not HOST:PORT", bad[i]);
        assert_problem(f, want);
    }
    config_free(f->c);
    load_ok(f, "return { listen = '[::1]:8787', tenants = { demo = { webhook_secret = 's' } } }");
}

static void unknown_keys_are_reported_at_every_level(void **state) {
    fixture *f = *state;
    load_fails(f, "return { lisen = 'x', timeouts = { hedaer = 1 }, caps = { memory = 1 },\n"
                  "  tenants = { demo = { webhook_secert = 's', webhook_secret = 's',\n"
                  "                       klaviyo = { api_key = 'k' } } }, 'stray' }");
    assert_problem(f, "lisen: unknown setting");
    assert_problem(f, "timeouts.hedaer: unknown setting");
    assert_problem(f, "caps.memory: unknown setting");
    assert_problem(f, "tenants.demo.webhook_secert: unknown setting");
    assert_problem(f, "tenants.demo.klaviyo.api_key: unknown setting");
    assert_problem(f, "unexpected entry [1]");
    assert_int_equal(count_lines(f->err), 6);
}

static void wrong_types_and_ranges_are_reported(void **state) {
    fixture *f = *state;
    load_fails(f, "return { data = 5, workers = -1, retention_days = 1.5, max_body = '1', max_connections = 0,\n"
                  "  timeouts = { header = 0, body = -1, idle = 'x' }, delivery = 3,\n"
                  "  caps = { memory_mib = 0, time_ms = 1e12 },\n"
                  "  tenants = { demo = { webhook_secret = 's', segments_property = '',\n"
                  "    klaviyo = { revision = 'latest', base_url = 'ftp://x', rate_scale = 0 } } } }");
    assert_problem(f, "data: must be a string");
    assert_problem(f, "workers: must be a whole number");
    assert_problem(f, "retention_days: must be a whole number");
    assert_problem(f, "max_body: must be a whole number");
    assert_problem(f, "max_connections: must be a whole number");
    assert_problem(f, "timeouts.header: must be a number above 0");
    assert_problem(f, "timeouts.body: must be a number above 0");
    assert_problem(f, "timeouts.idle: must be a number above 0");
    assert_problem(f, "delivery: must be a table");
    assert_problem(f, "caps.memory_mib: must be a whole number");
    assert_problem(f, "caps.time_ms: must be a whole number");
    assert_problem(f, "tenants.demo.segments_property: must not be empty");
    assert_problem(f, "tenants.demo.klaviyo.revision: 'latest' is not a Klaviyo revision");
    assert_problem(f, "tenants.demo.klaviyo.base_url: 'ftp://x' is not an http:// or https:// URL");
    assert_problem(f, "tenants.demo.klaviyo.rate_scale: must be a number above 0");
    assert_int_equal(count_lines(f->err), 15);
}

static void tenants_must_be_a_non_empty_table_of_valid_ids(void **state) {
    fixture *f = *state;
    load_fails(f, "return { listen = '127.0.0.1:1' }");
    assert_problem(f, "tenants: missing");
    config_free(f->c);
    load_fails(f, "return { tenants = {} }");
    assert_problem(f, "tenants: must name at least one tenant");
    config_free(f->c);
    load_fails(f, "return { tenants = { ['bad id'] = { webhook_secret = 's' }, ['a/b'] = { webhook_secret = 's' },"
                  " ok = 'not a table', { webhook_secret = 's' } } }");
    assert_problem(f, "tenants: 'bad id' is not a tenant id");
    assert_problem(f, "tenants: 'a/b' is not a tenant id");
    assert_problem(f, "tenants.ok: must be a table");
    assert_problem(f, "tenants: entry [1] has no tenant id");
    config_free(f->c);
    load_fails(f, "return { tenants = 'demo' }");
    assert_problem(f, "tenants: must be a table");
}

static void klaviyo_key_kind_and_site_id_are_checked(void **state) {
    fixture *f = *state;
    load_fails(f, "return { tenants = {\n"
                  "  acme = { webhook_secret = 's', klaviyo = { key_kind = 'secret' } },\n"
                  "  pub = { webhook_secret = 's', klaviyo = { key_kind = 'public' } },\n"
                  "  odd = { webhook_secret = 's', klaviyo = { key_kind = 'public', site_id = 'a b' } } } }");
    assert_problem(f, "tenants.acme.klaviyo.key_kind: must be 'private' or 'public'");
    assert_problem(f, "tenants.pub.klaviyo.site_id: missing: a public key_kind needs site_id");
    assert_problem(f, "tenants.odd.klaviyo.site_id: must be letters and digits");
    assert_int_equal(count_lines(f->err), 3);
}

static void a_missing_scripts_folder_is_reported(void **state) {
    fixture *f = *state;
    write_file(f, "plain-file", "x");
    load_fails(f, "return { tenants = { a = { scripts = 'nowhere', webhook_secret = 's' },"
                  " b = { scripts = 'plain-file', webhook_secret = 's' } } }");
    char want[256];
    snprintf(want, sizeof want, "tenants.a.scripts: folder %s/nowhere does not exist", f->dir);
    assert_problem(f, want);
    snprintf(want, sizeof want, "tenants.b.scripts: %s/plain-file is not a folder", f->dir);
    assert_problem(f, want);
}

static void secret_problems_are_reported(void **state) {
    fixture *f = *state;
    write_file(f, "empty.secret", "\n");
    unsetenv("RF_TEST_KEY");
    setenv("RF_TEST_SECRET", "", 1);
    load_fails(f, "return { tenants = {\n"
                  "  a = { webhook_secret = { env = 'RF_TEST_SECRET' }, klaviyo = { key = { env = 'RF_TEST_KEY' } } },\n"
                  "  b = { webhook_secret = { file = 'missing.secret' }, klaviyo = { key = '' } },\n"
                  "  c = { webhook_secret = { file = 'empty.secret' } },\n"
                  "  d = { webhook_secret = { env = 'X', file = 'y' } },\n"
                  "  e = { webhook_secret = 42 },\n"
                  "  f = { webhook_secret = { envv = 'X' } } } }");
    char want[256];
    assert_problem(f, "tenants.a.webhook_secret: environment variable RF_TEST_SECRET is empty");
    assert_problem(f, "tenants.a.klaviyo.key: environment variable RF_TEST_KEY is not set");
    snprintf(want, sizeof want, "tenants.b.webhook_secret: cannot read %s/missing.secret: No such file", f->dir);
    assert_problem(f, want);
    assert_problem(f, "tenants.b.klaviyo.key: must not be empty");
    snprintf(want, sizeof want, "tenants.c.webhook_secret: file %s/empty.secret is empty", f->dir);
    assert_problem(f, want);
    assert_problem(f, "tenants.d.webhook_secret: give exactly one of");
    assert_problem(f, "tenants.e.webhook_secret: must be a string, { env = \"NAME\" } or { file = \"PATH\" }");
    assert_problem(f, "tenants.f.webhook_secret.envv: unknown setting");
    assert_problem(f, "tenants.f.webhook_secret: give exactly one of");
}

static void no_secret_value_ever_appears_in_a_message(void **state) {
    fixture *f = *state;
    setenv("RF_TEST_SECRET", "env-value-7a1c", 1);
    write_file(f, "key.txt", "file-value-93be\n");
    /* Every secret here is valid; each sits next to problems, and one secret is of the wrong kind. */
    load_fails(f, "return { workers = 'many', tenants = {\n"
                  "  a = { webhook_secret = 'inline-value-5d2f', klaviyo = { key = { file = 'key.txt' },"
                  " key_kind = 'nope', revision = 'x' }, typo = 1 },\n"
                  "  b = { webhook_secret = { env = 'RF_TEST_SECRET' }, klaviyo = { key = 123456789 } } } }");
    assert_problem(f, "workers: must be a whole number");
    assert_problem(f, "tenants.a.typo: unknown setting");
    assert_problem(f, "tenants.a.klaviyo.key_kind: must be 'private' or 'public'");
    assert_problem(f, "tenants.b.klaviyo.key: must be a string");
    assert_null(strstr(f->err, "inline-value-5d2f"));
    assert_null(strstr(f->err, "env-value-7a1c"));
    assert_null(strstr(f->err, "file-value-93be"));
    assert_null(strstr(f->err, "123456789"));
}

/* store.url: SQLite when absent; a secret (env, file, inline) that must be a postgresql:// URL and is
 * resolved whatever secrets the command asked for (every command reads the store); node: the host
 * name by default. */
static void the_store_url_is_a_secret_and_the_node_has_a_name(void **state) {
    fixture *f = *state;
    config *c = load_ok(f, "return { tenants = { demo = { webhook_secret = 'shh' } } }");
    assert_null(c->store_url);
    assert_string_equal(config_store_location(c), c->data_dir);
    assert_true(c->node && c->node[0]);
    config_free(c);
    f->c = NULL;

    setenv("RF_TEST_SECRET", "postgresql://rf:pw-4e1d@db.internal:5433/returnflow", 1);
    c = load_ok(f, "return { node = 'node-1.eu', store = { url = { env = 'RF_TEST_SECRET' } },"
                   " tenants = { demo = { webhook_secret = 'shh' } } }");
    assert_string_equal(c->store_url, "postgresql://rf:pw-4e1d@db.internal:5433/returnflow");
    assert_string_equal(config_store_location(c), c->store_url);
    assert_string_equal(c->node, "node-1.eu");
    config_free(c);
    f->c = config_load_secrets(f->path, 0, f->err, sizeof f->err);      /* a read-only command's load */
    assert_non_null(f->c);
    assert_string_equal(f->c->store_url, "postgresql://rf:pw-4e1d@db.internal:5433/returnflow");
    config_free(f->c);
    f->c = NULL;

    setenv("RF_TEST_SECRET", "mysql://rf:pw-77c0@db/returnflow", 1);
    load_fails(f, "return { node = 'bad name!', store = { url = { env = 'RF_TEST_SECRET' } },"
                  " tenants = { demo = { webhook_secret = 'shh' } } }");
    assert_problem(f, "store.url: must be a postgresql:// URL");
    assert_problem(f, "node: 'bad name!' is not a node name");
    assert_null(strstr(f->err, "pw-77c0"));
}

static void a_syntax_error_is_reported_as_lua_says_it(void **state) {
    fixture *f = *state;
    load_fails(f, "return {\n  listen = '127.0.0.1:8787'\n  data = 'data',\n}\n");
    char want[256];
    snprintf(want, sizeof want, "%s:3:", f->path);
    assert_memory_equal(f->err, want, strlen(want));
    assert_non_null(strstr(f->err, "'}' expected"));
    assert_int_equal(count_lines(f->err), 1);
}

static void a_file_that_fails_or_returns_no_table_is_reported(void **state) {
    fixture *f = *state;
    load_fails(f, "local x = nil\nreturn x.y\n");
    char want[256];
    snprintf(want, sizeof want, "%s:2: attempt to index", f->path);
    assert_memory_equal(f->err, want, strlen(want));
    config_free(f->c);
    load_fails(f, "return 'listen = 1'");
    assert_problem(f, "must return a table of settings, not a string");
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.lua", f->dir);
    assert_null(config_load(missing, f->err, sizeof f->err));
    snprintf(want, sizeof want, "%s: cannot read: No such file or directory", missing);
    assert_memory_equal(f->err, want, strlen(want));
}

static void a_small_error_buffer_gets_whole_lines_and_a_count(void **state) {
    fixture *f = *state;
    write_file(f, "returnflow.conf.lua", "return { a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8 }");
    char err[400];
    assert_null(config_load(f->path, err, sizeof err));
    assert_true(strlen(err) < sizeof err);
    assert_non_null(strstr(err, "more problems not shown\n"));
    assert_int_equal(err[strlen(err) - 1], '\n');
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(a_minimal_file_loads_with_every_default),
        T(every_setting_is_copied_out),
        T(relative_paths_are_taken_from_the_configs_folder),
        T(secrets_come_from_the_environment),
        T(secrets_come_from_files_without_their_trailing_newline),
        T(the_console_is_off_unless_configured_and_on_loopback_by_default),
        T(console_problems_are_reported),
        T(tenants_are_found_by_id_slice),
        T(the_shipped_config_loads),
        T(a_missing_webhook_secret_is_reported),
        T(a_bad_listen_address_is_reported),
        T(unknown_keys_are_reported_at_every_level),
        T(wrong_types_and_ranges_are_reported),
        T(tenants_must_be_a_non_empty_table_of_valid_ids),
        T(klaviyo_key_kind_and_site_id_are_checked),
        T(a_missing_scripts_folder_is_reported),
        T(secret_problems_are_reported),
        T(no_secret_value_ever_appears_in_a_message),
        T(the_store_url_is_a_secret_and_the_node_has_a_name),
        T(a_syntax_error_is_reported_as_lua_says_it),
        T(a_file_that_fails_or_returns_no_table_is_reported),
        T(a_small_error_buffer_gets_whole_lines_and_a_count),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
