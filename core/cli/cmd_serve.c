/*
 * cmd_serve.c: `returnflow serve`, the service: webhooks in, durably.
 *
 * Start-up is all or nothing: the config must load whole and every tenant's
 * scripts must load before the port is opened, so a server never runs half
 * configured. Shutdown on SIGTERM or SIGINT drains: no new connection is
 * accepted, every webhook already received gets its answer once its commit
 * is done, then the store closes.
 *
 * Mapping threads (worker.c) turn the journal into the outbox; dry tenants'
 * requests go to DATA/dry/TENANT.ndjson, the others' to Klaviyo (deliver.c).
 */
#include "cmd.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <curl/curl.h>
#include <uv.h>

#include "config.h"
#include "console.h"
#include "deliver.h"
#include "event_counts.h"
#include "ingest.h"
#include "json.h"
#include "lazy_libs.h"
#include "log.h"
#include "mapper.h"
#include "mapper_settings.h"
#include "mapworker.h"
#include "ownership.h"
#include "process_metrics.h"
#include "reload.h"
#include "store.h"
#include "store_db.h"
#include "store_health.h"
#include "worker.h"

typedef struct server {
    uv_loop_t *loop;
    config *cfg;
    store *st;
    ingest *in;
    ownership *own;                            /* which tenants this node maps and delivers */
    workers *w;
    deliverer *d;
    reloader *reload;
    console *console;                          /* NULL: not configured */
    pthread_mutex_t mu;                        /* guards w and d: the journal writer wakes w, a
                                                  replacement swaps both off the loop's thread */
    uv_signal_t sigterm, sigint, sighup;
    int stopping;
    struct replacement *replacing;             /* at most one at a time */
    struct replacement *queued;                /* hot reloads waiting for it, in order */
    int hup_pending, close_pending;
} server;

/* /healthz: ready unless draining, or degraded while the store refuses writes or reads (or is
 * damaged: store_health.h), with the reason; paused tenants are named (their key was refused). On a
 * shared store it names this node and the tenants it owns (ownership.h). */
static int health(void *ud, strbuf *body) {
    server *s = ud;
    pthread_mutex_lock(&s->mu);
    char *paused = s->d ? deliver_paused(s->d) : NULL;
    pthread_mutex_unlock(&s->mu);
    char why[400];
    int degraded = store_health_get(why, sizeof why) != STORE_READY;
    strbuf_adds(body, s->stopping ? "{\"status\":\"draining\"" : degraded ? "{\"status\":\"degraded\"" : "{\"status\":\"ready\"");
    if (degraded) {
        strbuf_adds(body, ",\"store\":");
        json_append_string(body, why, strlen(why));
    }
    if (paused && *paused) {
        strbuf_adds(body, ",\"paused\":");
        json_append_string(body, paused, strlen(paused));
    }
    if (ownership_clustered(s->own)) {
        const char *node = ownership_node(s->own);
        strbuf_adds(body, ",\"node\":");
        json_append_string(body, node, strlen(node));
        strbuf_adds(body, ",\"owns\":");
        ownership_owned_json(s->own, body);
    }
    mapworker_health(body);                    /* tenants whose mapping worker was replaced, and why */
    strbuf_addc(body, '}');
    free(paused);
    return s->stopping || degraded ? 503 : 200;
}

static void on_store_closed(void *ud) {
    server *s = ud;
    if (s->replacing) { s->close_pending = 1; return; }   /* its end calls this again */
    pthread_mutex_lock(&s->mu);
    workers *w = s->w;
    deliverer *d = s->d;
    s->w = NULL;
    s->d = NULL;
    pthread_mutex_unlock(&s->mu);
    if (w) workers_stop(w);                    /* after the journal: its last events get mapped */
    if (d) deliver_stop(d);                    /* what is in flight stays queued for the next start */
    ownership_stop(s->own);                    /* then the leases go: other nodes take over at once */
    s->own = NULL;
    log_line("info", "stopped", NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
}

static void on_ingest_stopped(void *ud) {
    server *s = ud;
    s->in = NULL;
    store_close(s->st, on_store_closed, s);
}

/* Replacing the mapping threads (a hot reload of one tenant's scripts, or SIGHUP's new config) is
 * done in two steps on libuv's thread pool, so ingest keeps answering while a thread finishes its
 * batch: first the old threads stop (and, for a new config, delivery), then, back on the loop's
 * thread, the config changes while nothing maps, then the new threads start. The old ones stop
 * before the new ones start, so no event is mapped, and no request sent, by both. */
typedef struct replacement {
    uv_work_t req;
    server *s;
    int phase;                                 /* 1: stopping, 2: starting */
    config *next;                              /* SIGHUP: the config to run; NULL: one tenant's scripts */
    int tenant;
    char version[16], *path;                   /* the tenant's new scripts (hot reload) */
    char *old_path, old_version[16];           /* to go back to if the new ones do not start */
    int reverting, with_delivery;
    reloader *reloader;                        /* whose swap it is (reload_swapped tells it) */
    struct replacement *next_queued;
    workers *old_w, *new_w;
    deliverer *old_d, *new_d;
    char err[1024];
} replacement;

static void on_sighup(uv_signal_t *h, int signum);
static void replace_done(uv_work_t *req, int status);
static void swap_scripts(void *ud, int tenant, const char *version, const char *path);

static void replace_work(uv_work_t *req) {
    replacement *r = req->data;
    if (r->phase == 1) {
        if (r->old_w) workers_halt(r->old_w);
        if (r->old_d) deliver_stop(r->old_d);
        return;
    }
    const config *run = r->next ? r->next : r->s->cfg;
    r->new_w = workers_start(run, r->s->own, r->err, sizeof r->err);
    if (r->new_w && r->with_delivery) r->new_d = deliver_start(run, r->s->own, r->err, sizeof r->err);
}

static void replace_begin(server *s, replacement *r) {
    r->s = s;
    r->phase = 1;
    r->req.data = r;
    s->replacing = r;
    pthread_mutex_lock(&s->mu);
    r->old_w = s->w;
    s->w = NULL;
    if (r->with_delivery) {
        r->old_d = s->d;
        s->d = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    uv_queue_work(s->loop, &r->req, replace_work, replace_done);
}

static void replace_done(uv_work_t *req, int status) {
    (void)status;
    replacement *r = req->data;
    server *s = r->s;
    tenant_config *t = r->next ? NULL : &s->cfg->tenants[r->tenant];
    if (r->phase == 1) {                       /* nothing maps now: the config may change */
        if (t) {
            r->old_path = t->scripts;
            memcpy(r->old_version, t->scripts_version, sizeof r->old_version);
            t->scripts = r->path;
            snprintf(t->scripts_version, sizeof t->scripts_version, "%s", r->version);
            r->path = NULL;
        }
        r->phase = 2;
        uv_queue_work(s->loop, &r->req, replace_work, replace_done);
        return;
    }
    if (!r->new_w && !r->reverting) {          /* cannot happen after the check; if it does, go back */
        log_line("error", r->next ? "SIGHUP: the new config would not start; going back to the running one"
                                  : "the new scripts would not start; going back to the running ones", NULL);
        if (t) {
            r->path = t->scripts;
            t->scripts = r->old_path;
            r->old_path = NULL;
            memcpy(t->scripts_version, r->old_version, sizeof r->old_version);
        } else {
            reload_unfreeze(r->next);
            config_free(r->next);
            r->next = NULL;
        }
        r->reverting = 1;
        uv_queue_work(s->loop, &r->req, replace_work, replace_done);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->w = r->new_w;
    if (r->with_delivery) s->d = r->new_d;
    pthread_mutex_unlock(&s->mu);
    if (!r->new_w || (r->with_delivery && !r->new_d))
        log_line("error", "mapping or delivery could not restart; restart the service", NULL);
    if (r->new_w) workers_wake(r->new_w);
    ownership_set_config(s->own, r->next ? r->next : s->cfg);   /* the versions that run now */
    if (r->next) {
        /* A SIGTERM during the swap: ingest may be gone already and nothing new is watched. */
        if (s->in) ingest_set_config(s->in, r->next);
        reload_stop(s->reload);
        s->reload = s->stopping ? NULL : reload_start(s->loop, r->next, swap_scripts, s);
        config_free(s->cfg);
        s->cfg = r->next;
        char f[64];
        snprintf(f, sizeof f, "\"tenants\":%d", s->cfg->ntenants);
        log_line("info", "SIGHUP: config and scripts reloaded", f);
    } else {
        reload_swapped(r->reloader, r->tenant, !r->reverting, r->err);
    }
    free(r->old_path);
    free(r->path);
    free(r);
    s->replacing = NULL;
    /* What waited: a new config makes the hot reloads queued for the old one moot (its own reload
     * watches the folders again); otherwise they go in order. At a stop they are dropped. */
    while (s->queued && (s->close_pending || s->stopping || s->hup_pending || s->queued->reloader != s->reload)) {
        replacement *q = s->queued;
        s->queued = q->next_queued;
        reload_swapped(q->reloader, q->tenant, 0, "superseded: the service stops or reloads its config");
        free(q->path);
        free(q);
    }
    if (s->close_pending) on_store_closed(s);
    else if (s->hup_pending && !s->stopping) {
        s->hup_pending = 0;
        on_sighup(&s->sighup, SIGHUP);
    } else if (s->queued) {
        replacement *q = s->queued;
        s->queued = q->next_queued;
        replace_begin(s, q);
    }
}

/* Hot reload (reload.c): one tenant's new scripts take over between two batches; delivery goes on. */
static void swap_scripts(void *ud, int tenant, const char *version, const char *path) {
    server *s = ud;
    replacement *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->tenant = tenant;
    r->reloader = s->reload;
    snprintf(r->version, sizeof r->version, "%s", version);
    r->path = strdup(path);
    if (!r->path) abort();
    if (s->replacing) {                        /* one replacement at a time: this one waits its turn */
        replacement **tail = &s->queued;
        while (*tail) tail = &(*tail)->next_queued;
        *tail = r;
        return;
    }
    replace_begin(s, r);
}

/* SIGHUP: the config file and every tenant's scripts, read again. A config or
 * a script that does not load is refused whole, and what runs stays. What
 * cannot change while running (listen address, data folder) waits for a
 * restart, and the log says so. Ingest keeps answering throughout: the
 * mapping and delivery threads are replaced between two batches. It is the
 * operator's word: reload_requires_specs does not apply to it. */
static void on_sighup(uv_signal_t *h, int signum) {
    (void)signum;
    server *s = h->data;
    if (s->stopping) return;
    if (s->replacing) { s->hup_pending = 1; return; }
    char err[8192];
    config *next = config_load(s->cfg->path, err, sizeof err);
    if (!next) {
        strbuf f = {0};
        strbuf_adds(&f, "\"problems\":");
        json_append_string(&f, err, strlen(err));
        strbuf_addc(&f, 0);
        log_line("error", "SIGHUP: the config does not load; the running one stays", f.data);
        strbuf_free(&f);
        return;
    }
    if (strcmp(next->listen, s->cfg->listen) != 0 || strcmp(next->data_dir, s->cfg->data_dir) != 0 ||
        strcmp(config_store_location(next), config_store_location(s->cfg)) != 0 || strcmp(next->node, s->cfg->node) != 0)
        log_line("warn", "SIGHUP: a new listen address, data folder, store or node name takes effect at the next restart",
                 NULL);
    free(next->listen);
    free(next->data_dir);
    free(next->node);
    if (next->store_url) {
        explicit_bzero(next->store_url, strlen(next->store_url));
        free(next->store_url);
    }
    next->listen = strdup(s->cfg->listen);
    next->data_dir = strdup(s->cfg->data_dir);
    next->node = strdup(s->cfg->node);
    next->store_url = s->cfg->store_url ? strdup(s->cfg->store_url) : NULL;
    if (reload_freeze(next, err, sizeof err) != 0) {
        strbuf f = {0};
        strbuf_adds(&f, "\"error\":");
        json_append_string(&f, err, strlen(err));
        strbuf_addc(&f, 0);
        log_line("error", "SIGHUP: the scripts cannot be frozen; the running config stays", f.data);
        strbuf_free(&f);
        config_free(next);
        return;
    }
    /* Check every tenant's scripts first: the running threads stop only for a config that will run. */
    strbuf problems = {0};
    for (int i = 0; i < next->ntenants; i++) {
        const tenant_config *t = &next->tenants[i];
        mapper_config mc = mapper_config_of(next, t);
        mapworker_free(mapworker_new(&mc, &problems));   /* in a worker: a hang is bounded and refused */
    }
    if (problems.len) {
        strbuf f = {0};
        strbuf_adds(&f, "\"problems\":");
        json_append_string(&f, problems.data, problems.len);
        strbuf_addc(&f, 0);
        log_line("error", "SIGHUP: scripts do not load; the running ones stay", f.data);
        strbuf_free(&f);
        strbuf_free(&problems);
        reload_unfreeze(next);
        config_free(next);
        return;
    }
    strbuf_free(&problems);
    replacement *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->next = next;
    r->with_delivery = 1;
    replace_begin(s, r);
}

static void on_signal(uv_signal_t *h, int signum) {
    server *s = h->data;
    if (s->stopping) return;
    s->stopping = 1;
    char fields[64];
    snprintf(fields, sizeof fields, "\"signal\":\"%s\"", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    log_line("info", "draining: answering the webhooks in flight, then stopping", fields);
    console_stop(s->console);                  /* before what its counters read goes */
    s->console = NULL;
    reload_stop(s->reload);
    s->reload = NULL;
    ingest_stop(s->in, on_ingest_stopped, s);
}

/* The journal writer's hook; the workers may be replaced by a reload meanwhile. */
static void wake_workers(void *ud) {
    server *s = ud;
    pthread_mutex_lock(&s->mu);
    if (s->w) workers_wake(s->w);
    pthread_mutex_unlock(&s->mu);
}

static void serve_metrics(void *ud, strbuf *out) {
    server *s = ud;
    pthread_mutex_lock(&s->mu);
    if (s->d) deliver_metrics(s->d, out);
    pthread_mutex_unlock(&s->mu);
    reload_metrics(s->reload, out);
    mapworker_metrics(out);
    store_health_metrics(out);
    /* The node as an info gauge (Prometheus' convention): join on it, or add it as a target label. */
    const char *node = ownership_node(s->own);
    strbuf_adds(out, "# HELP returnflow_node_info This node's name (config `node`).\n# TYPE returnflow_node_info gauge\n"
                     "returnflow_node_info{node=");
    json_append_string(out, node, strlen(node));
    strbuf_adds(out, "} 1\n");
    event_counts_metrics(out);
    process_metrics(out);
}

/* The console's charts and rates, from its own thread: only what is safe there (counters behind a
 * lock or atomic), never the reloader's state, which belongs to the loop's thread. */
static void console_counters(void *ud, strbuf *out) {
    server *s = ud;
    ingest_counters(s->in, out);
    pthread_mutex_lock(&s->mu);
    if (s->d) deliver_metrics(s->d, out);
    pthread_mutex_unlock(&s->mu);
    event_counts_metrics(out);
}

/* The console (docs/console.md) when the config has one; a failure to listen stops the start. */
static int start_console(server *s, char *err, size_t errlen) {
    if (!s->cfg->console_listen) return 0;
    console_options o = { .listen = s->cfg->console_listen, .token = s->cfg->console_token,
                          .store = config_store_location(s->cfg), .data_dir = s->cfg->data_dir,
                          .counters = console_counters, .ud = s };
    s->console = console_start(&o, err, errlen);
    if (!s->console) return -1;
    strbuf f = {0};
    strbuf_adds(&f, "\"address\":");
    json_append_string(&f, console_address(s->console), strlen(console_address(s->console)));
    strbuf_addc(&f, 0);
    log_line("info", "console listening", f.data);
    strbuf_free(&f);
    return 0;
}

static void first_problem(void *ud, const char *what) {
    char *first = ud;
    if (!first[0]) snprintf(first, 1200, "%s", what);
}

/* Before anything opens the store for writing (which would also drop a damaged log's later commits
 * for good): a bounded check. On damage serve does not start, and says which file and what to do. */
static int check_store(const config *cfg, char *err, size_t errlen) {
    if (cfg->store_url) return 0;               /* PostgreSQL checks its own pages (and has its own recovery) */
    char first[1200] = "";
    int rc = store_check(cfg->data_dir, cfg->store_check_seconds, first_problem, first);
    if (rc == STORE_CHECK_DAMAGED) {
        snprintf(err, errlen, "the store is damaged: %s\nStop here: copy what can be read with 'returnflow store "
                 "recover --into NEW_DATA', then point the config's data at NEW_DATA (docs/operations.md, "
                 "\"A damaged store\")", first);
        return -1;
    }
    if (rc == STORE_CHECK_CUT_SHORT) {
        char f[128];
        snprintf(f, sizeof f, "\"seconds\":%g", cfg->store_check_seconds);
        log_line("warn", "the start check of the store was cut short (store.check_seconds); run returnflow store check "
                         "for a whole one", f);
    }
    return 0;
}

int cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' }, { "listen", required_argument, 0, 'l' },
        { "data", required_argument, 0, 'd' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *path = "returnflow.conf.lua", *listen = NULL, *data = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:l:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'l': listen = optarg; break;
        case 'd': data = optarg; break;
        case 'h': cmd_help("serve"); return 0;
        default:
            fprintf(stderr, "returnflow serve: unknown option '%s'\nTry 'returnflow help serve'.\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) { fprintf(stderr, "returnflow serve: unexpected argument '%s'\n", argv[optind]); return 2; }
    char err[8192];
    server s = {0};
    s.cfg = config_load(path, err, sizeof err);
    if (!s.cfg) { fprintf(stderr, "%s%sreturnflow serve: not started\n", err, err[0] && err[strlen(err) - 1] != '\n' ? "\n" : ""); return 2; }
    if (listen) { free(s.cfg->listen); s.cfg->listen = strdup(listen); }
    if (data) { free(s.cfg->data_dir); s.cfg->data_dir = strdup(data); }
    /* No core file of this process: it holds every tenant's secrets (debug.core_dumps asks for one). */
    if (!s.cfg->core_dumps) prctl(PR_SET_DUMPABLE, 0);
    /* A client that resets its connection while its answer is written must cost an EPIPE on that
     * connection, not the process: libuv writes sockets with write(2), which raises SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* Each step below undoes the ones before it when it fails (the labels at the end, in reverse
     * order), and says why on one line: exit 2 for what the operator's files say (config, scripts),
     * 1 for what the machine refuses (the data folder, the port, a thread). */
    int status = 1;
    s.loop = uv_default_loop();
    pthread_mutex_init(&s.mu, NULL);
    if (check_store(s.cfg, err, sizeof err) != 0) goto fail_config;
    s.st = store_open(s.loop, config_store_location(s.cfg), s.cfg->node, err, sizeof err);
    if (!s.st) goto fail_config;
    char health_file[4200];
    snprintf(health_file, sizeof health_file, "%s/store-health", s.cfg->data_dir);
    store_health_set_file(health_file);         /* `returnflow status` reads what /healthz says of the store */
    if (reload_freeze(s.cfg, err, sizeof err) != 0) goto fail_store;
    char status_dir[4096];
    snprintf(status_dir, sizeof status_dir, "%s/scripts", s.cfg->data_dir);
    mapworker_set_status_dir(status_dir);       /* worker deaths, for `returnflow status` */
    s.own = ownership_start(s.cfg, err, sizeof err);   /* after the freeze: it publishes the versions */
    if (!s.own) goto fail_freeze;
    s.w = workers_start(s.cfg, s.own, err, sizeof err);   /* loads every tenant's scripts, or nothing starts */
    if (!s.w) {
        if (strstr(err, "the scripts do not load")) status = 2;
        goto fail_ownership;
    }
    store_on_commit(s.st, wake_workers, &s);
    ownership_on_take(s.own, wake_workers, &s);   /* a tenant taken is mapped at once */
    if (lazy_libs_curl(err, sizeof err) != 0) goto fail_libcurl;   /* delivery's, before its first call */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s.d = deliver_start(s.cfg, s.own, err, sizeof err);
    if (!s.d) goto fail_workers;
    s.in = ingest_start(s.loop, s.cfg, s.st, health, serve_metrics, &s, err, sizeof err);
    if (!s.in) goto fail_deliver;
    if (start_console(&s, err, sizeof err) != 0) goto fail_ingest;
    uv_signal_init(s.loop, &s.sigterm);
    uv_signal_init(s.loop, &s.sigint);
    uv_signal_init(s.loop, &s.sighup);
    s.sigterm.data = s.sigint.data = s.sighup.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sighup, on_sighup, SIGHUP);
    s.reload = reload_start(s.loop, s.cfg, swap_scripts, &s);

    strbuf fields = {0};
    strbuf_adds(&fields, "\"address\":");
    json_append_string(&fields, ingest_address(s.in), strlen(ingest_address(s.in)));
    strbuf_adds(&fields, ",\"data\":");
    json_append_string(&fields, s.cfg->data_dir, strlen(s.cfg->data_dir));
    char store_safe[1200];
    store_location_safe(config_store_location(s.cfg), store_safe, sizeof store_safe);    /* never its password */
    strbuf_adds(&fields, ",\"store\":");
    json_append_string(&fields, store_safe, strlen(store_safe));
    strbuf_adds(&fields, ",\"node\":");
    json_append_string(&fields, s.cfg->node, strlen(s.cfg->node));
    strbuf_adds(&fields, ",\"tenants\":[");
    for (int i = 0; i < s.cfg->ntenants; i++) {
        if (i) strbuf_addc(&fields, ',');
        json_append_string(&fields, s.cfg->tenants[i].id, strlen(s.cfg->tenants[i].id));
    }
    strbuf_adds(&fields, "]");
    strbuf_addc(&fields, 0);
    log_line("info", "listening", fields.data);
    strbuf_free(&fields);
    for (int i = 0; i < s.cfg->ntenants; i++) {
        char f[1200];
        const tenant_config *t = &s.cfg->tenants[i];
        if (tenant_is_dry(t)) {
            snprintf(f, sizeof f, "\"tenant\":\"%s\",\"scripts\":\"%s\",\"requests\":\"%s/dry/%s.ndjson\"", t->id,
                     t->scripts_version, s.cfg->data_dir, t->id);
            log_line("info", "no Klaviyo key: this tenant runs dry", f);
        } else {
            snprintf(f, sizeof f, "\"tenant\":\"%s\",\"scripts\":\"%s\",\"klaviyo\":\"%.900s\"", t->id,
                     t->scripts_version, t->base_url);
            log_line("info", "delivering to Klaviyo", f);
        }
    }

    uv_run(s.loop, UV_RUN_DEFAULT);
    uv_loop_close(s.loop);
    config_free(s.cfg);
    json_thread_done();
    curl_global_cleanup();
    return 0;

fail_ingest:
    ingest_stop(s.in, NULL, NULL);
fail_deliver:
    deliver_stop(s.d);
fail_workers:
    curl_global_cleanup();
fail_libcurl:                                  /* libcurl did not load: nothing of it to clean up */
    pthread_mutex_lock(&s.mu);
    workers *w = s.w;
    s.w = NULL;                                /* the journal writer's hook wakes nothing now */
    pthread_mutex_unlock(&s.mu);
    workers_halt(w);
fail_ownership:
    ownership_stop(s.own);
fail_freeze:
    reload_unfreeze(s.cfg);                    /* a version that never ran leaves no frozen copy */
fail_store:
    store_close(s.st, NULL, NULL);
fail_config:
    uv_run(s.loop, UV_RUN_DEFAULT);            /* the close callbacks of what was opened */
    uv_loop_close(s.loop);
    pthread_mutex_destroy(&s.mu);
    /* The reason's first line, then any detail (a script's file:line problems), then the verdict. */
    fprintf(stderr, "returnflow serve: %s%s", err, err[0] && err[strlen(err) - 1] != '\n' ? "\n" : "");
    fprintf(stderr, "returnflow serve: not started\n");
    config_free(s.cfg);
    json_thread_done();
    return status;
}
