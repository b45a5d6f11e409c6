/*
 * cmd_trace.c: `returnflow trace`: "did this customer's refund email go out, and if not, why?"
 * answered from the store without SQL (core/ops/trace.c reads it; this file is the command line).
 * Read-only, beside a running service.
 */
#include "cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "json.h"
#include "store_db.h"
#include "trace.h"

int cmd_trace(int argc, char **argv) {
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' }, { "data", required_argument, 0, 'd' },
        { "tenant", required_argument, 0, 't' }, { "json", no_argument, 0, 'j' },
        { "return", required_argument, 0, 'r' }, { "event", required_argument, 0, 'e' },
        { "email", required_argument, 0, 'm' }, { "store", required_argument, 0, 's' }, { 0, 0, 0, 0 },
    };
    const char *config_path = NULL, *data = NULL, *tenant = NULL, *value = NULL, *store_url = NULL;
    trace_kind kind = TRACE_GUESS;
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:d:t:s:j", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'd': data = optarg; break;
        case 's': store_url = optarg; break;
        case 't': tenant = optarg; break;
        case 'j': json = 1; break;
        case 'r': kind = TRACE_RETURN, value = optarg; break;
        case 'e': kind = TRACE_EVENT, value = optarg; break;
        case 'm': kind = TRACE_EMAIL, value = optarg; break;
        default:
            fprintf(stderr, "returnflow trace: unknown option '%s'\nTry 'returnflow help trace'.\n", argv[optind - 1]);
            return 2;
        }
    }
    if (!value && optind < argc) value = argv[optind++];
    if (!value || !*value || optind < argc) {
        fprintf(stderr, "returnflow trace: give one return id, event id or email\nTry 'returnflow help trace'.\n");
        return 2;
    }
    config *cfg = NULL;
    const char *location = store_url ? store_url : data;   /* --store: a PostgreSQL store, from any machine */
    if (!location) {
        char err[4096];
        cfg = config_load_secrets(config_path ? config_path : "returnflow.conf.lua", 0, err, sizeof err);   /* reads no key */
        if (!cfg) { fprintf(stderr, "%sreturnflow trace: give --data DIR, --store URL or a config that loads\n", err); return 2; }
        location = config_store_location(cfg);
    }
    char why[1200];
    store_db *db = store_db_open(location, STORE_READ_ONLY, why, sizeof why);
    config_free(cfg);
    if (!db) { fprintf(stderr, "returnflow trace: %s\n", why); return 2; }
    trace *t = trace_read(db, tenant, kind, value, why, sizeof why);
    store_db_close(db);
    if (!t) { fprintf(stderr, "returnflow trace: %s\n", why); return 2; }
    if (json) {
        strbuf out = {0};
        trace_json(t, &out);
        strbuf_addc(&out, '\n');
        fwrite(out.data, 1, out.len, stdout);
        strbuf_free(&out);
    } else {
        trace_print(t, stdout);
    }
    int found = trace_events(t) > 0;
    trace_free(t);
    json_thread_done();                           /* the scratch the bodies were read with */
    return found ? 0 : 1;
}
