/*
 * cmd_store.c: `returnflow store migrate|check|backup|recover`: the operator's tools for the store
 * (docs/operations.md has the runbooks). migrate creates or upgrades the schema (SQLite or
 * PostgreSQL; serve does it too at start); check and recover read a SQLite store without changing
 * it; backup copies it while serve runs. A PostgreSQL store has its own tools for those three
 * (pg_dump, pg_basebackup, docs/scale-out.md).
 */
#include "cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "store_db.h"

static void print_problem(void *ud, const char *what) {
    (*(int *)ud)++;
    printf("damaged: %s\n", what);
}

static void print_lost(void *ud, long long id) {
    (*(long long *)ud)++;
    printf("lost: event %lld (an acknowledged webhook that cannot be read; Loop's copy is its only one)\n", id);
}

int cmd_store(int argc, char **argv) {
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' }, { "data", required_argument, 0, 'd' },
        { "into", required_argument, 0, 'i' }, { "seconds", required_argument, 0, 's' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *config_path = "returnflow.conf.lua", *data = NULL, *into = NULL;
    double seconds = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:d:i:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'd': data = optarg; break;
        case 'i': into = optarg; break;
        case 's': seconds = atof(optarg); break;
        case 'h': return cmd_help("store");
        default:
            fprintf(stderr, "returnflow store: unknown option '%s'\nTry 'returnflow help store'.\n", argv[optind - 1]);
            return 2;
        }
    }
    const char *what = optind < argc ? argv[optind] : NULL;
    if (!what || (strcmp(what, "check") && strcmp(what, "backup") && strcmp(what, "recover") && strcmp(what, "migrate"))) {
        fprintf(stderr, "returnflow store: say migrate, check, backup FILE or recover --into NEW_DATA\n");
        return 2;
    }
    char err[4096], dir[4096], safe[1200];
    if (!data) {
        config *cfg = config_load_secrets(config_path, 0, err, sizeof err);
        if (!cfg) { fprintf(stderr, "%sreturnflow store: give --data DIR or a config that loads\n", err); return 2; }
        snprintf(dir, sizeof dir, "%s", config_store_location(cfg));
        config_free(cfg);
    } else {
        snprintf(dir, sizeof dir, "%s", data);
    }
    store_location_safe(dir, safe, sizeof safe);
    int is_url = strstr(dir, "://") != NULL;
    if (strcmp(what, "migrate") == 0) {
        store_db *db = store_db_open(dir, STORE_CREATE, err, sizeof err);
        explicit_bzero(dir, sizeof dir);
        if (!db) { fprintf(stderr, "returnflow store migrate: %s\n", err); return 1; }
        store_db_close(db);
        printf("%s: the schema is up to date\n", safe);
        return 0;
    }
    if (is_url) {
        fprintf(stderr, "returnflow store %s: %s is a PostgreSQL store: use pg_dump / pg_basebackup and PostgreSQL's "
                        "own checks (docs/scale-out.md)\n", what, safe);
        return 2;
    }
    if (!store_db_exists(dir)) { fprintf(stderr, "returnflow store: no store in %s\n", dir); return 2; }
    if (strcmp(what, "check") == 0) {
        int problems = 0;
        int rc = store_check(dir, seconds, print_problem, &problems);
        if (rc == STORE_CHECK_DAMAGED) {
            printf("%s/returnflow.db is damaged: stop serve, then returnflow store recover --into NEW_DATA "
                   "(docs/operations.md)\n", dir);
            return 1;
        }
        printf(rc == STORE_CHECK_CUT_SHORT ? "%s/returnflow.db: no damage found in %.0f s (the check was cut short)\n"
                                           : "%s/returnflow.db: sound\n", dir, seconds);
        return 0;
    }
    if (strcmp(what, "backup") == 0) {
        if (optind + 1 >= argc) { fprintf(stderr, "returnflow store backup: give the FILE to write\n"); return 2; }
        store_db *db = store_db_open(dir, STORE_READ_ONLY, err, sizeof err);
        if (!db) { fprintf(stderr, "returnflow store backup: %s\n", err); return 1; }
        int rc = store_backup(db, argv[optind + 1], err, sizeof err);
        store_db_close(db);
        if (rc != 0) { fprintf(stderr, "returnflow store backup: %s\n", err); return 1; }
        printf("%s: a copy of %s/returnflow.db (restore: docs/operations.md)\n", argv[optind + 1], dir);
        return 0;
    }
    if (!into) { fprintf(stderr, "returnflow store recover: give --into NEW_DATA, a folder with no store\n"); return 2; }
    store_recovered got;
    long long lost = 0;
    if (store_recover(dir, into, &got, print_lost, &lost, err, sizeof err) != 0) {
        fprintf(stderr, "returnflow store recover: %s\n", err);
        return 1;
    }
    printf("recovered into %s/returnflow.db: %lld events, %lld requests, %lld schedules, %lld memory rows, %lld jobs; "
           "%lld acknowledged webhooks and %lld other rows could not be read\n", into, got.events, got.requests,
           got.schedules, got.memory, got.jobs, lost, got.unreadable_rows);
    return lost || got.unreadable_rows ? 1 : 0;
}
