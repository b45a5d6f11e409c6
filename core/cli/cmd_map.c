/*
 * cmd_map.c: `returnflow map` and `returnflow check`, the mapping from the shell.
 *
 * map prints, one JSON document a line, exactly what would be sent to Klaviyo
 * for each event; nothing is sent. Events a script defers (a label event that
 * came before its return) are tried again once after all input was read, the
 * way the service retries them later. The exit status says whether every
 * event mapped: 0 yes (dropped counts as done), 1 some failed, 2 the scripts
 * or the command line are wrong.
 */
#include "cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "input.h"
#include "json.h"
#include "mapper.h"

typedef struct pending {
    char *text, *label;
    size_t len;
} pending;

typedef struct run {
    mapper *m;
    int pretty;
    int counts[4];
    int invalid;
    pending *deferred;
    size_t ndeferred, cap;
    strbuf doc, out;
} run;

/* ./scripts when there is one; else the defaults compiled into the binary (an installed share
 * folder holds the same files, and a checkout build run elsewhere has none beside it). */
static void default_scripts(mapper_config *cfg) {
    struct stat st;
    if (stat("scripts", &st) == 0 && S_ISDIR(st.st_mode)) cfg->scripts_dir = "scripts";
    else cfg->builtin_defaults = 1;
}

static const char *scripts_name(const mapper_config *cfg) {
    return cfg->builtin_defaults ? MAPPER_BUILTIN_NAME : cfg->scripts_dir;
}

static void emit(run *r) {
    if (r->pretty) {
        r->out.len = 0;
        json_pretty(r->doc.data, r->doc.len, &r->out);
        fwrite(r->out.data, 1, r->out.len, stdout);
    } else {
        fwrite(r->doc.data, 1, r->doc.len, stdout);
    }
    fputc('\n', stdout);
}

static void invalid_doc(run *r, const char *label, const char *error) {
    r->doc.len = 0;
    strbuf_adds(&r->doc, "{\"input\":");
    json_append_string(&r->doc, label, strlen(label));
    strbuf_adds(&r->doc, ",\"trigger\":null,\"status\":\"failed\",\"reason\":");
    char msg[512];
    snprintf(msg, sizeof msg, "invalid JSON: %s", error);
    json_append_string(&r->doc, msg, strlen(msg));
    strbuf_adds(&r->doc, ",\"requests\":[],\"scheduled\":[],\"cancelled\":[]}");
    fprintf(stderr, "%s: %s\n", label, msg);
    r->counts[MAP_FAILED]++;
    r->invalid++;
    emit(r);
}

static int on_event(void *ud, const char *path, const input_event *ev) {
    run *r = ud;
    char label[1100];
    snprintf(label, sizeof label, "%s#%d", path, ev->index);
    if (ev->error) { invalid_doc(r, label, ev->error); return 0; }
    r->doc.len = 0;
    map_status st = mapper_map(r->m, ev->text, ev->len, label, &r->doc);
    if (st == MAP_DEFERRED) {
        if (r->ndeferred == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 16;
            r->deferred = realloc(r->deferred, r->cap * sizeof *r->deferred);
            if (!r->deferred) abort();
        }
        pending *p = &r->deferred[r->ndeferred++];
        p->text = malloc(ev->len + 1);
        p->label = strdup(label);
        if (!p->text || !p->label) abort();
        memcpy(p->text, ev->text, ev->len);
        p->text[ev->len] = 0;
        p->len = ev->len;
        return 0;
    }
    if (st == MAP_FAILED) fprintf(stderr, "%s: failed: %s\n", label, mapper_reason(r->m));
    r->counts[st]++;
    emit(r);
    return 0;
}

static void usage_error(const char *cmd, const char *msg) {
    fprintf(stderr, "returnflow %s: %s\nTry 'returnflow help %s'.\n", cmd, msg, cmd);
}

/* Options shared by map and check. Returns 0, or 2 after printing the problem. */
static int parse_mapper_options(const char *cmd, int argc, char **argv, mapper_config *cfg, int *pretty, int *quiet) {
    enum { O_KEY_KIND = 256, O_SITE, O_TENANT, O_REVISION, O_SEGPROP, O_BACKFILL, O_PRETTY,
           O_MEM, O_TIME };
    static const struct option opts[] = {
        { "scripts", required_argument, 0, 's' }, { "key-kind", required_argument, 0, O_KEY_KIND },
        { "site-id", required_argument, 0, O_SITE }, { "tenant", required_argument, 0, O_TENANT },
        { "revision", required_argument, 0, O_REVISION }, { "segments-property", required_argument, 0, O_SEGPROP },
        { "backfill", no_argument, 0, O_BACKFILL }, { "pretty", no_argument, 0, O_PRETTY },
        { "memory-cap", required_argument, 0, O_MEM },
        { "time-cap", required_argument, 0, O_TIME }, { "quiet", no_argument, 0, 'q' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    cfg->caps.memory_bytes = SANDBOX_DEFAULT_MEMORY;
    cfg->caps.seconds = SANDBOX_DEFAULT_SECONDS;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "s:qh", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 's': cfg->scripts_dir = optarg; break;
        case 'q': *quiet = 1; break;
        case 'h': cmd_help(cmd); exit(0);
        case O_KEY_KIND:
            if (strcmp(optarg, "private") && strcmp(optarg, "public")) {
                usage_error(cmd, "--key-kind must be 'private' or 'public'");
                return 2;
            }
            cfg->key_kind = optarg;
            break;
        case O_SITE: cfg->site_id = optarg; break;
        case O_TENANT: cfg->tenant = optarg; break;
        case O_REVISION: cfg->revision = optarg; break;
        case O_SEGPROP: cfg->segments_property = optarg; break;
        case O_BACKFILL: cfg->backfill = 1; break;
        case O_PRETTY: *pretty = 1; break;
        case O_MEM: {
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 4096) { usage_error(cmd, "--memory-cap takes MiB, 1 to 4096"); return 2; }
            cfg->caps.memory_bytes = (size_t)v << 20;
            break;
        }
        case O_TIME: {
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1) { usage_error(cmd, "--time-cap takes milliseconds, at least 1"); return 2; }
            cfg->caps.seconds = (double)v / 1000.0;
            break;
        }
        default: {
            char msg[128];
            snprintf(msg, sizeof msg, "unknown option '%s'", argv[optind - 1]);
            usage_error(cmd, msg);
            return 2;
        }
        }
    }
    if (!cfg->scripts_dir) default_scripts(cfg);
    return 0;
}

int cmd_map(int argc, char **argv) {
    mapper_config cfg = {0};
    int pretty = 0, quiet = 0;
    int rc = parse_mapper_options("map", argc, argv, &cfg, &pretty, &quiet);
    if (rc) return rc;
    if (cfg.key_kind && strcmp(cfg.key_kind, "public") == 0 && !cfg.site_id) {
        usage_error("map", "--key-kind public needs --site-id ID (the 6-character public key sent as company_id)");
        return 2;
    }
    if (optind >= argc) { usage_error("map", "no input: give event files, or - for standard input"); return 2; }
    strbuf problems = {0};
    run r = {0};
    r.pretty = pretty;
    r.m = mapper_new(&cfg, &problems);
    if (!r.m) {
        fwrite(problems.data, 1, problems.len, stderr);
        fprintf(stderr, "returnflow map: the scripts in %s do not load; nothing was mapped\n", scripts_name(&cfg));
        strbuf_free(&problems);
        return 2;
    }
    /* Into a pipe or a file, documents go out 64 KiB at a time: the default 4 KiB buffer made a write
     * a document (an event's is ~5 KB). A terminal keeps its line at a time. */
    static char out_buffer[1 << 16];
    if (!isatty(STDOUT_FILENO)) setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);
    int unreadable = 0;
    for (int i = optind; i < argc; i++) {
        char err[600];
        if (input_each(argv[i], on_event, &r, err, sizeof err)) {
            fprintf(stderr, "returnflow map: %s\n", err);
            unreadable++;
        }
    }
    /* Deferred events get one more try, now that all input was seen. */
    for (size_t i = 0; i < r.ndeferred; i++) {
        pending *p = &r.deferred[i];
        r.doc.len = 0;
        map_status st = mapper_map(r.m, p->text, p->len, p->label, &r.doc);
        if (st == MAP_FAILED) fprintf(stderr, "%s: failed: %s\n", p->label, mapper_reason(r.m));
        r.counts[st]++;
        emit(&r);
        free(p->text);
        free(p->label);
    }
    free(r.deferred);
    fflush(stdout);
    int total = r.counts[0] + r.counts[1] + r.counts[2] + r.counts[3];
    if (!quiet)
        fprintf(stderr, "map: %d event%s: %d mapped, %d dropped, %d failed%s, %d deferred\n", total,
                total == 1 ? "" : "s", r.counts[MAP_MAPPED], r.counts[MAP_DROPPED], r.counts[MAP_FAILED],
                r.invalid ? " (invalid JSON counted as failed)" : "", r.counts[MAP_DEFERRED]);
    mapper_free(r.m);
    strbuf_free(&r.doc);
    strbuf_free(&r.out);
    strbuf_free(&problems);
    return r.counts[MAP_FAILED] || unreadable ? 1 : 0;
}

int cmd_check(int argc, char **argv) {
    mapper_config cfg = {0};
    int pretty = 0, quiet = 0;
    int rc = parse_mapper_options("check", argc, argv, &cfg, &pretty, &quiet);
    if (rc) return rc;
    if (optind < argc) { cfg.scripts_dir = argv[optind]; cfg.builtin_defaults = 0; }
    if (optind + 1 < argc) { usage_error("check", "takes one scripts folder"); return 2; }
    strbuf problems = {0};
    mapper *m = mapper_new(&cfg, &problems);
    if (!m) {
        fwrite(problems.data, 1, problems.len, stderr);
        int n = 0;
        for (size_t i = 0; i < problems.len; i++) n += problems.data[i] == '\n';
        fprintf(stderr, "check: %s: %d problem%s\n", scripts_name(&cfg), n, n == 1 ? "" : "s");
        strbuf_free(&problems);
        return 1;
    }
    int files, handlers;
    mapper_counts(m, &files, &handlers);
    if (!quiet) printf("check: %s: %d file%s, %d handler%s, no problems\n", scripts_name(&cfg), files,
                       files == 1 ? "" : "s", handlers, handlers == 1 ? "" : "s");
    mapper_free(m);
    strbuf_free(&problems);
    return 0;
}
