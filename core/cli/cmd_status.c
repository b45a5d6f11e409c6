/*
 * cmd_status.c: `returnflow status` and `returnflow dlq`, the operator's view
 * of the data directory.
 *
 * They read (and, for dlq replay and purge, change) the store directly, beside
 * a running service: SQLite's WAL lets them read while it writes, and every
 * change here is one short transaction the service then picks up (a replayed
 * event is mapped again within a second, a replayed request is sent again).
 */
#include "cmd.h"

#include <dirent.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "json.h"
#include "lauxlib.h"
#include "lualib.h"

static int open_store(const char *cmd, int argc, char **argv, sqlite3 **db, const char **tenant, int *all) {
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' }, { "data", required_argument, 0, 'd' },
        { "tenant", required_argument, 0, 't' }, { "all", no_argument, 0, 'a' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *config_path = NULL, *data = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:d:t:ah", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'd': data = optarg; break;
        case 't': *tenant = optarg; break;
        case 'a': if (all) { *all = 1; break; } /* fallthrough */
        case 'h': cmd_help(cmd); exit(0);
        default:
            fprintf(stderr, "returnflow %s: unknown option '%s'\nTry 'returnflow help %s'.\n", cmd, argv[optind - 1], cmd);
            return 2;
        }
    }
    char path[1100];
    config *cfg = NULL;
    if (!data) {
        char err[4096];
        cfg = config_load(config_path ? config_path : "returnflow.conf.lua", err, sizeof err);
        if (!cfg) { fprintf(stderr, "%sreturnflow %s: give --data DIR or a config that loads\n", err, cmd); return 2; }
        data = cfg->data_dir;
    }
    snprintf(path, sizeof path, "%s/returnflow.db", data);
    config_free(cfg);
    if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fprintf(stderr, "returnflow %s: cannot open %s: %s\n", cmd, path, sqlite3_errmsg(*db));
        sqlite3_close(*db);
        return 2;
    }
    sqlite3_busy_timeout(*db, 10000);
    return 0;
}

static long long scalar(sqlite3 *db, const char *sql, const char *tenant) {
    sqlite3_stmt *st;
    long long v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static const char *field(lua_State *L, int t, const char *key) {
    lua_getfield(L, t, key);
    const char *v = lua_isstring(L, -1) ? lua_tostring(L, -1) : "?";
    lua_pop(L, 1);                              /* the table keeps the string alive */
    return v;
}

/* Prints text with every line after the first indented, so a multi-line error stays in its column. */
static void print_indented(const char *text, int indent) {
    for (const char *p = text; *p; p++) {
        putchar(*p);
        if (*p == '\n' && p[1]) printf("%*s", indent, "");
    }
    putchar('\n');
}

/* The scripts each tenant maps with, and a refused version (reload.c's DATA/scripts/T/status.json). */
static void print_scripts(sqlite3 *db, const char *only) {
    const char *dbfile = sqlite3_db_filename(db, "main");
    char dir[1100], path[1400];
    snprintf(dir, sizeof dir, "%s", dbfile ? dbfile : "returnflow.db");
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    snprintf(path, sizeof path, "%s/scripts", dir);
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0) return;
    lua_State *L = luaL_newstate();
    json_open(L);
    int header = 0;
    for (int i = 0; i < n; i++) {
        const char *t = names[i]->d_name;
        snprintf(path, sizeof path, "%s/scripts/%.200s/status.json", dir, t);
        FILE *f = t[0] != '.' && (!only || strcmp(only, t) == 0) ? fopen(path, "rb") : NULL;
        char text[8192];
        size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f) fclose(f);
        text[len] = 0;
        lua_settop(L, 0);
        char err[256];
        if (len && json_decode(L, text, len, 0, err, sizeof err) == 0 && lua_istable(L, -1)) {
            if (!header++) printf("\n%-16s %-12s %-20s %s\n", "tenant", "scripts", "since", "folder");
            printf("%-16s %-12s %-20s %s\n", t, field(L, 1, "version"), field(L, 1, "loaded_at"), field(L, 1, "source"));
            if (lua_getfield(L, 1, "refused") == LUA_TTABLE) {
                printf("%-16s refused %s at %s, the running version stays: ", "", field(L, 2, "version"),
                       field(L, 2, "at"));
                print_indented(field(L, 2, "error"), 19);
            }
        }
        free(names[i]);
    }
    free(names);
    lua_close(L);
}

int cmd_status(int argc, char **argv) {
    sqlite3 *db;
    const char *only = NULL;
    int rc = open_store("status", argc, argv, &db, &only, NULL);
    if (rc) return rc;
    sqlite3_stmt *tenants;
    sqlite3_prepare_v2(db, "SELECT tenant FROM events UNION SELECT tenant FROM outbox ORDER BY 1", -1, &tenants, NULL);
    printf("%-16s %9s %9s %8s %7s %9s %9s %6s %6s  %s\n", "tenant", "journaled", "deferred", "failed",
           "queued", "retrying", "delivered", "dead", "paused", "last error");
    while (sqlite3_step(tenants) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(tenants, 0);
        if (only && strcmp(only, t) != 0) continue;
        long long journaled = scalar(db, "SELECT count(*) FROM events WHERE tenant = ? AND state = 0", t);
        long long deferred = scalar(db, "SELECT count(*) FROM events WHERE tenant = ? AND state = 4", t);
        long long failed = scalar(db, "SELECT count(*) FROM events WHERE tenant = ? AND state = 2", t);
        long long queued = scalar(db, "SELECT count(*) FROM outbox WHERE tenant = ? AND state IN (0, 3)", t);
        long long retrying = scalar(db, "SELECT count(*) FROM outbox WHERE tenant = ? AND state IN (0, 3) AND attempts > 0", t);
        long long delivered = scalar(db, "SELECT count(*) FROM outbox WHERE tenant = ? AND state = 1", t);
        long long dead = scalar(db, "SELECT count(*) FROM outbox WHERE tenant = ? AND state = 2", t);
        long long paused = scalar(db, "SELECT count(*) FROM tenant_status WHERE tenant = ? AND paused = 1", t);
        sqlite3_stmt *st;
        char last[200] = "";
        if (sqlite3_prepare_v2(db, "SELECT e FROM (SELECT last_error AS e, next_at AS at FROM outbox WHERE tenant = ?1 "
                                   "AND last_error IS NOT NULL UNION ALL SELECT reason, received_at FROM events WHERE "
                                   "tenant = ?1 AND state = 2) ORDER BY at DESC LIMIT 1", -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                snprintf(last, sizeof last, "%.120s", (const char *)sqlite3_column_text(st, 0));
            sqlite3_finalize(st);
        }
        for (char *p = last; *p; p++) if (*p == '\n' || *p == '\r') *p = ' ';
        printf("%-16s %9lld %9lld %8lld %7lld %9lld %9lld %6lld %6s  %s\n", t, journaled, deferred, failed, queued,
               retrying, delivered, dead, paused ? "yes" : "no", last);
    }
    sqlite3_finalize(tenants);
    print_scripts(db, only);
    sqlite3_close(db);
    return 0;
}

/* dlq: dead letters are failed events ("event:ID", mapped again on replay)
 * and dead requests ("request:ID", sent again on replay). */
static int parse_id(const char *arg, int *is_event, long long *id) {
    if (strncmp(arg, "event:", 6) == 0) { *is_event = 1; *id = atoll(arg + 6); return *id > 0 ? 0 : -1; }
    if (strncmp(arg, "request:", 8) == 0) { *is_event = 0; *id = atoll(arg + 8); return *id > 0 ? 0 : -1; }
    return -1;
}

static void list(sqlite3 *db, const char *tenant) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT 'event:' || id, tenant, '', reason FROM events WHERE state = 2 AND (?1 IS NULL OR tenant = ?1) "
                           "UNION ALL SELECT 'request:' || id, tenant, path || ' ' || coalesce(last_status, ''), "
                           "last_error FROM outbox WHERE state = 2 AND (?1 IS NULL OR tenant = ?1) ORDER BY 2, 1", -1, &st, NULL);
    if (tenant) sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char why[160] = "";
        if (sqlite3_column_text(st, 3)) snprintf(why, sizeof why, "%.150s", (const char *)sqlite3_column_text(st, 3));
        for (char *p = why; *p; p++) if (*p == '\n' || *p == '\r') *p = ' ';
        printf("%-16s %-12s %-32s %s\n", (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
               (const char *)sqlite3_column_text(st, 2), why);
        n++;
    }
    sqlite3_finalize(st);
    fprintf(stderr, "dlq: %d dead letter%s\n", n, n == 1 ? "" : "s");
}

static int show(sqlite3 *db, int is_event, long long id) {
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, is_event ? "SELECT tenant, reason, body FROM events WHERE id = ? AND state = 2"
                                    : "SELECT tenant, coalesce(last_status, '') || ' ' || coalesce(last_error, ''), "
                                      "method || ' ' || path || char(10) || body FROM outbox WHERE id = ? AND state = 2",
                       -1, &st, NULL);
    sqlite3_bind_int64(st, 1, id);
    int found = sqlite3_step(st) == SQLITE_ROW;
    if (found)
        printf("tenant: %s\nreason: %s\n%s\n", (const char *)sqlite3_column_text(st, 0),
               sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "",
               (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    return found ? 0 : 1;
}

static int change(sqlite3 *db, const char *sql, long long id, const char *tenant) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, id);
    if (tenant) sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? sqlite3_changes(db) : -1;
}

int cmd_dlq(int argc, char **argv) {
    if (argc < 2) { cmd_help("dlq"); return 2; }
    const char *verb = argv[1];
    sqlite3 *db;
    const char *tenant = NULL;
    int all = 0;
    int rc = open_store("dlq", argc - 1, argv + 1, &db, &tenant, &all);
    if (rc) return rc;
    const char *arg = optind < argc - 1 ? argv[optind + 1] : NULL;
    int is_event = 0;
    long long id = 0;
    if (strcmp(verb, "list") == 0) { list(db, tenant); sqlite3_close(db); return 0; }
    if (!all && (!arg || parse_id(arg, &is_event, &id))) {
        fprintf(stderr, "returnflow dlq %s: give an id from 'dlq list' (event:N or request:N), or --all\n", verb);
        sqlite3_close(db);
        return 2;
    }
    if (strcmp(verb, "show") == 0) {
        rc = all ? 2 : show(db, is_event, id);
        if (rc == 1) fprintf(stderr, "returnflow dlq show: no dead letter %s\n", arg);
        sqlite3_close(db);
        return rc;
    }
    int replay = strcmp(verb, "replay") == 0, purge = strcmp(verb, "purge") == 0;
    if (!replay && !purge) {
        fprintf(stderr, "returnflow dlq: no verb '%s' (list, show, replay, purge)\n", verb);
        sqlite3_close(db);
        return 2;
    }
    /* ?1 the id (0: every one), ?2 the tenant (NULL: every one). */
    const char *events_sql = replay
        ? "UPDATE events SET state = 0, reason = NULL WHERE state = 2 AND (?1 = 0 OR id = ?1) AND (?2 IS NULL OR tenant = ?2)"
        : "UPDATE events SET state = 3, reason = 'purged from the dead letters: ' || coalesce(reason, '') "
          "WHERE state = 2 AND (?1 = 0 OR id = ?1) AND (?2 IS NULL OR tenant = ?2)";
    const char *outbox_sql = replay
        ? "UPDATE outbox SET state = 0, attempts = 0, next_at = 0, created_at = CAST(strftime('%s','now') AS INTEGER) * 1000 "
          "WHERE state = 2 AND (?1 = 0 OR id = ?1) AND (?2 IS NULL OR tenant = ?2)"
        : "DELETE FROM outbox WHERE state = 2 AND (?1 = 0 OR id = ?1) AND (?2 IS NULL OR tenant = ?2)";
    int n = 0, m = 0;
    if (all || is_event) n = change(db, events_sql, all ? 0 : id, tenant);
    if (all || !is_event) m = change(db, outbox_sql, all ? 0 : id, tenant);
    sqlite3_close(db);
    if (n < 0 || m < 0) { fprintf(stderr, "returnflow dlq %s: the store refused the change\n", verb); return 1; }
    printf("dlq %s: %d event%s, %d request%s%s\n", verb, n, n == 1 ? "" : "s", m, m == 1 ? "" : "s",
           replay && n + m ? " (the running service takes them up within a second)" : "");
    return n + m > 0 ? 0 : 1;
}
