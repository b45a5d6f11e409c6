/*
 * cmd_status.c: `returnflow status` and `returnflow dlq`, the operator's view
 * of the data directory.
 *
 * They read (and, for dlq replay and purge, change) the store beside a
 * running service (store_db.h: dead_letters.c); every change is one short
 * transaction the service then picks up (a replayed event is mapped again
 * within a second, a replayed request is sent again).
 */
#include "cmd.h"

#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "json.h"
#include "lauxlib.h"
#include "lualib.h"
#include "store_db.h"
#include "store_health.h"

static char data_dir[1024];                    /* the data folder opened (status reads its scripts/) */

static int open_store(const char *cmd, int argc, char **argv, store_db **db, const char **tenant, int *all) {
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' }, { "data", required_argument, 0, 'd' },
        { "tenant", required_argument, 0, 't' }, { "all", no_argument, 0, 'a' },
        { "store", required_argument, 0, 's' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *config_path = NULL, *data = NULL, *store_url = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:d:t:s:ah", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'd': data = optarg; break;
        case 's': store_url = optarg; break;
        case 't': *tenant = optarg; break;
        case 'a': if (all) { *all = 1; break; } /* fallthrough */
        case 'h': cmd_help(cmd); exit(0);
        default:
            fprintf(stderr, "returnflow %s: unknown option '%s'\nTry 'returnflow help %s'.\n", cmd, argv[optind - 1], cmd);
            return 2;
        }
    }
    config *cfg = NULL;
    const char *location = data;
    if (!data) {
        char err[4096];
        cfg = config_load_secrets(config_path ? config_path : "returnflow.conf.lua", 0, err, sizeof err);   /* reads no key */
        if (!cfg) { fprintf(stderr, "%sreturnflow %s: give --data DIR or a config that loads\n", err, cmd); return 2; }
        data = cfg->data_dir;
        location = config_store_location(cfg);      /* the shared PostgreSQL store, from any machine */
    }
    snprintf(data_dir, sizeof data_dir, "%s", data);
    if (store_url) location = store_url;            /* --store: a PostgreSQL store beside --data's folder */
    char why[1200];
    *db = store_db_open(location, 0, why, sizeof why);
    config_free(cfg);
    if (!*db) {
        fprintf(stderr, "returnflow %s: %s\n", cmd, why);
        return 2;
    }
    return 0;
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
static void print_scripts(const char *dir, const char *only) {
    char path[1400];
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
        /* Mapping workers that were killed or crashed (mapworker.c's DATA/scripts/T/worker.json). */
        snprintf(path, sizeof path, "%s/scripts/%.200s/worker.json", dir, t);
        f = t[0] != '.' && (!only || strcmp(only, t) == 0) ? fopen(path, "rb") : NULL;
        len = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f) fclose(f);
        text[len] = 0;
        lua_settop(L, 0);
        if (len && json_decode(L, text, len, 0, err, sizeof err) == 0 && lua_istable(L, -1)) {
            if (!header++) printf("\n%-16s %-12s %-20s %s\n", "tenant", "scripts", "since", "folder");
            lua_getfield(L, 1, "restarts");
            long long restarts = (long long)lua_tointeger(L, -1);
            lua_pop(L, 1);
            printf("%-16s mapping worker replaced %lld time(s), last at %s: %s\n", t, restarts, field(L, 1, "at"),
                   field(L, 1, "last"));
        }
        free(names[i]);
    }
    free(names);
    lua_close(L);
}

/* On a shared store (PostgreSQL): the live nodes, and each tenant's owner, the lease's epoch and time
 * left, who asked for it, and the scripts version the cluster maps it with (ownership.c). */
typedef struct owners_ctx { const char *only; int n; } owners_ctx;

static void print_node(void *ud, const char *node) {
    int *n = ud;
    printf("%s%s", (*n)++ ? ", " : "", node);
}

static void print_owner(void *ud, const store_lease *l) {
    owners_ctx *oc = ud;
    if (oc->only && strcmp(oc->only, l->tenant) != 0) return;
    if (!oc->n++)
        printf("\n%-16s %-20s %7s %-12s %-16s %s\n", "tenant", "owner", "epoch", "lease", "scripts", "asked by");
    char lease[32];
    if (!l->node) snprintf(lease, sizeof lease, "free");
    else if (l->expires_in_ms <= 0) snprintf(lease, sizeof lease, "expired");
    else snprintf(lease, sizeof lease, "%.1f s left", (double)l->expires_in_ms / 1000);
    printf("%-16s %-20s %7lld %-12s %-16s %s\n", l->tenant, l->node && l->expires_in_ms > 0 ? l->node : "(none)",
           l->epoch, lease, l->version ? l->version : "-", l->wanted_by ? l->wanted_by : "");
}

static void print_owners(store_db *db, const char *only) {
    if (!store_clustered(db)) return;             /* one node owns everything: nothing to say */
    int n = 0;
    printf("\nnodes live: ");
    if (store_live_nodes(db, print_node, &n) <= 0) printf("none");
    printf("\n");
    store_leases_of(db, print_owner, &(owners_ctx){ only, 0 });
}

typedef struct status_ctx { store_db *db; const char *only; } status_ctx;

static void print_tenant(void *ud, const char *t) {
    status_ctx *sc = ud;
    if (sc->only && strcmp(sc->only, t) != 0) return;
    store_tenant_counts c;
    store_tenant_counts_of(sc->db, t, &c);
    char last[200];
    snprintf(last, sizeof last, "%.120s", c.last_error);
    for (char *p = last; *p; p++) if (*p == '\n' || *p == '\r') *p = ' ';
    printf("%-16s %9lld %9lld %8lld %7lld %9lld %9lld %6lld %6s  %s\n", t, c.journaled, c.deferred, c.failed, c.queued,
           c.retrying, c.delivered, c.dead, c.paused ? "yes" : "no", last);
}

int cmd_status(int argc, char **argv) {
    store_db *db;
    const char *only = NULL;
    int rc = open_store("status", argc, argv, &db, &only, NULL);
    if (rc) return rc;
    printf("%-16s %9s %9s %8s %7s %9s %9s %6s %6s  %s\n", "tenant", "journaled", "deferred", "failed",
           "queued", "retrying", "delivered", "dead", "paused", "last error");
    store_tenants(db, print_tenant, &(status_ctx){ db, only });
    print_owners(db, only);
    print_scripts(data_dir, only);
    /* What serve last found of the store (store_health.h): degraded while it refuses writes. */
    char path[4200], state[32], reason[400];
    snprintf(path, sizeof path, "%s/store-health", data_dir);
    if (store_health_read_file(path, state, sizeof state, reason, sizeof reason))
        printf("\nstore: %s%s%s\n", state, reason[0] ? ": " : "", reason);
    store_db_close(db);
    return 0;
}

/* dlq: dead letters are failed events ("event:ID", mapped again on replay)
 * and dead requests ("request:ID", sent again on replay). */
static int parse_id(const char *arg, int *is_event, long long *id) {
    if (strncmp(arg, "event:", 6) == 0) { *is_event = 1; *id = atoll(arg + 6); return *id > 0 ? 0 : -1; }
    if (strncmp(arg, "request:", 8) == 0) { *is_event = 0; *id = atoll(arg + 8); return *id > 0 ? 0 : -1; }
    return -1;
}

static void list_one(void *ud, const char *id, const char *tenant, const char *what, const char *reason) {
    int *n = ud;
    char why[160] = "";
    if (reason) snprintf(why, sizeof why, "%.150s", reason);
    for (char *p = why; *p; p++) if (*p == '\n' || *p == '\r') *p = ' ';
    printf("%-16s %-12s %-32s %s\n", id, tenant, what, why);
    (*n)++;
}

static void list(store_db *db, const char *tenant) {
    int n = 0;
    store_dead_letters(db, tenant, list_one, &n);
    fprintf(stderr, "dlq: %d dead letter%s\n", n, n == 1 ? "" : "s");
}

static void show_one(void *ud, const char *tenant, const char *reason, const char *text) {
    (void)ud;
    printf("tenant: %s\nreason: %s\n%s\n", tenant, reason, text);
}

static int show(store_db *db, int is_event, long long id) {
    return store_dead_letter(db, is_event, id, show_one, NULL) ? 0 : 1;
}

int cmd_dlq(int argc, char **argv) {
    if (argc < 2) { cmd_help("dlq"); return 2; }
    const char *verb = argv[1];
    store_db *db;
    const char *tenant = NULL;
    int all = 0;
    int rc = open_store("dlq", argc - 1, argv + 1, &db, &tenant, &all);
    if (rc) return rc;
    const char *arg = optind < argc - 1 ? argv[optind + 1] : NULL;
    int is_event = 0;
    long long id = 0;
    if (strcmp(verb, "list") == 0) { list(db, tenant); store_db_close(db); return 0; }
    if (!all && (!arg || parse_id(arg, &is_event, &id))) {
        fprintf(stderr, "returnflow dlq %s: give an id from 'dlq list' (event:N or request:N), or --all\n", verb);
        store_db_close(db);
        return 2;
    }
    if (strcmp(verb, "show") == 0) {
        rc = all ? 2 : show(db, is_event, id);
        if (rc == 1) fprintf(stderr, "returnflow dlq show: no dead letter %s\n", arg);
        store_db_close(db);
        return rc;
    }
    int replay = strcmp(verb, "replay") == 0, purge = strcmp(verb, "purge") == 0;
    if (!replay && !purge) {
        fprintf(stderr, "returnflow dlq: no verb '%s' (list, show, replay, purge)\n", verb);
        store_db_close(db);
        return 2;
    }
    long long which = all ? 0 : id;
    int n = 0, m = 0;
    if (all || is_event)
        n = replay ? store_replay_dead_events(db, which, tenant) : store_purge_dead_events(db, which, tenant);
    if (all || !is_event)
        m = replay ? store_replay_dead_requests(db, which, tenant) : store_purge_dead_requests(db, which, tenant);
    store_db_close(db);
    if (n < 0 || m < 0) { fprintf(stderr, "returnflow dlq %s: the store refused the change\n", verb); return 1; }
    printf("dlq %s: %d event%s, %d request%s%s\n", verb, n, n == 1 ? "" : "s", m, m == 1 ? "" : "s",
           replay && n + m ? " (the running service takes them up within a second)" : "");
    return n + m > 0 ? 0 : 1;
}
