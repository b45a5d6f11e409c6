/*
 * reload.c: hot reload of a tenant's scripts while serve runs.
 *
 * Each tenant's scripts folder is watched (inotify through uv_fs_event, the
 * folder and its subfolders). A burst of saves settles for DEBOUNCE_MS, then
 * the folder is frozen (snapshot.c), loaded as `check` would but in a
 * mapping worker under its watchdog (mapworker.c), off the loop's thread, so
 * a folder that hangs or crashes at load is refused like a syntax error and
 * ingest never waits on it; and, when reload_requires_specs is on, its own busted specs run
 * against the frozen copy in a child process (`returnflow test`), so the loop
 * never blocks on them. Only a version that passes is handed to serve, which
 * swaps it in between two batches; any other is refused with the reason in
 * the log, /metrics and DATA/scripts/TENANT/status.json (`returnflow status`),
 * and the running version stays. A version already refused is not retried
 * until the folder changes again.
 *
 * With reload_requires_specs the specs are part of what was refused: a
 * change to them alone (the fix of a failing spec) is checked again.
 *
 * The swap itself is asynchronous (serve stops the mapping threads off the
 * loop, so ingest keeps answering); reload_swapped() brings the outcome back.
 *
 * Handle lifecycle: every handle is owned by its tenant's slot; reload_stop
 * closes them all, and the reloader is freed once the last handle is closed
 * and no swap is still out.
 */
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "json.h"
#include "log.h"
#include "mapper.h"
#include "mapper_settings.h"
#include "mapworker.h"
#include "snapshot.h"

#define DEBOUNCE_MS 300
#define MAX_WATCHES 64           /* the folder and its subfolders, three levels down */
#define WATCH_DEPTH 3
#define RETRY_MS 2000            /* a folder that vanished is looked for again this often */
#define SPEC_TIMEOUT_MS 120000
#define KEEP_VERSIONS 20

typedef struct slot slot;

typedef struct watch {
    uv_fs_event_t handle;
    slot *owner;
} watch;

struct slot {
    reloader *r;
    int tenant;                  /* index into r->cfg->tenants */
    char tenant_id[128];
    watch *watches[MAX_WATCHES];
    int nwatches;
    uv_timer_t debounce;
    uv_timer_t spec_timeout;
    uv_process_t spec;
    int spec_running, swapping, checking, changed_meanwhile, watches_dropped, candidate_created;
    char candidate[SNAPSHOT_VERSION_LEN + 1], candidate_path[PATH_MAX];
    char candidate_key[2 * SNAPSHOT_VERSION_LEN + 2];   /* version, and the specs' version if they count */
    char refused[SNAPSHOT_VERSION_LEN + 1];
    char refused_key[2 * SNAPSHOT_VERSION_LEN + 2];
    char refused_error[2048];
    long long refused_at, loaded_at;
    unsigned long long loaded, refusals;
    int open_handles;
};

struct reloader {
    uv_loop_t *loop;
    config *cfg;
    reload_swap_fn swap;
    void *ud;
    slot *slots;
    int nslots, open_slots, stopping, swaps_out;
};

static void rescan(slot *s);
static void on_settled(uv_timer_t *h);

/* One load check of a candidate version, in a mapping worker on libuv's pool. */
typedef struct check {
    uv_work_t req;
    slot *s;
    mapper_config mc;            /* its strings: own */
    char *own[7];
    strbuf problems;
} check;

static void load_check(uv_work_t *req);
static void load_checked(uv_work_t *req, int status);

static long long now_s(void) { return (long long)time(NULL); }

static void iso(long long t, char out[32]) {
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* DATA/scripts/TENANT, absolute: the specs run in another folder and must find the frozen copy. */
static void tenant_root(const config *cfg, const char *tenant, char *out, size_t len) {
    char data[PATH_MAX];
    if (!realpath(cfg->data_dir, data)) snprintf(data, sizeof data, "%s", cfg->data_dir);
    snprintf(out, len, "%.3500s/scripts/%.200s", data, tenant);
}

/* DATA/scripts/TENANT/status.json, replaced whole (write, fsync, rename). */
static void write_status(const config *cfg, const tenant_config *t, const char *refused, const char *error,
                         long long refused_at, long long loaded_at) {
    char root[PATH_MAX], tmp[PATH_MAX + 16], path[PATH_MAX + 16], at[32];
    tenant_root(cfg, t->id, root, sizeof root);
    snprintf(tmp, sizeof tmp, "%s/.status.tmp", root);
    snprintf(path, sizeof path, "%s/status.json", root);
    strbuf b = {0};
    strbuf_adds(&b, "{\"version\":");
    json_append_string(&b, t->scripts_version, strlen(t->scripts_version));
    strbuf_adds(&b, ",\"source\":");
    const char *source = t->scripts_source ? t->scripts_source : t->scripts;
    json_append_string(&b, source, strlen(source));
    iso(loaded_at, at);
    strbuf_adds(&b, ",\"loaded_at\":");
    json_append_string(&b, at, strlen(at));
    if (refused && *refused) {
        strbuf_adds(&b, ",\"refused\":{\"version\":");
        json_append_string(&b, refused, strlen(refused));
        iso(refused_at, at);
        strbuf_adds(&b, ",\"at\":");
        json_append_string(&b, at, strlen(at));
        strbuf_adds(&b, ",\"error\":");
        json_append_string(&b, error, strlen(error));
        strbuf_addc(&b, '}');
    }
    strbuf_adds(&b, "}\n");
    FILE *f = fopen(tmp, "wb");
    if (f) {
        int ok = fwrite(b.data, 1, b.len, f) == b.len && fflush(f) == 0 && fsync(fileno(f)) == 0;
        fclose(f);
        if (ok) rename(tmp, path);
    }
    strbuf_free(&b);
}

int reload_freeze(config *cfg, char *err, size_t errlen) {
    for (int i = 0; i < cfg->ntenants; i++) {
        tenant_config *t = &cfg->tenants[i];
        char root[PATH_MAX], path[PATH_MAX], why[1024];
        tenant_root(cfg, t->id, root, sizeof root);
        if (snapshot_take(t->scripts, root, t->scripts_version, path, sizeof path, &t->scripts_created, why,
                          sizeof why) != 0) {
            snprintf(err, errlen, "tenant %s: cannot freeze its scripts: %s", t->id, why);
            return -1;
        }
        free(t->scripts_source);
        t->scripts_source = t->scripts;
        t->scripts = strdup(path);
        if (!t->scripts) abort();
    }
    return 0;
}

void reload_unfreeze(config *cfg) {
    for (int i = 0; i < cfg->ntenants; i++)
        if (cfg->tenants[i].scripts_created && cfg->tenants[i].scripts_source) snapshot_remove(cfg->tenants[i].scripts);
}

static void log_tenant(const char *level, const char *msg, const slot *s, const char *version, const char *error) {
    strbuf f = {0};
    strbuf_adds(&f, "\"tenant\":");
    json_append_string(&f, s->tenant_id, strlen(s->tenant_id));
    strbuf_adds(&f, ",\"version\":");
    json_append_string(&f, version, strlen(version));
    if (error) {
        strbuf_adds(&f, ",\"error\":");
        json_append_string(&f, error, strlen(error));
    }
    strbuf_addc(&f, 0);
    log_line(level, msg, f.data);
    strbuf_free(&f);
}

static void free_reloader(reloader *r) {
    free(r->slots);
    free(r);
}

/* Refuses the candidate; its frozen copy goes (only a loaded version is kept for the record). */
static void refuse(slot *s, const char *version, const char *error) {
    tenant_config *t = &s->r->cfg->tenants[s->tenant];
    snprintf(s->refused_key, sizeof s->refused_key, "%s", s->candidate_key[0] ? s->candidate_key : version);
    s->candidate_key[0] = 0;
    if (s->candidate_created && strcmp(version, t->scripts_version) != 0 && strcmp(version, s->candidate) == 0)
        snapshot_remove(s->candidate_path);      /* made for this check only: an older loaded one stays */
    s->candidate_created = 0;
    snprintf(s->refused, sizeof s->refused, "%s", version);
    snprintf(s->refused_error, sizeof s->refused_error, "%s", error);
    s->refused_at = now_s();
    s->refusals++;
    /* status.json first, then the log line: whoever reads the line (an operator, a spec) finds
     * `returnflow status` saying the same (write, fsync, rename took long enough on a loaded machine
     * for status to be read between the two). */
    write_status(s->r->cfg, t, s->refused, s->refused_error, s->refused_at, s->loaded_at);
    log_tenant("error", "scripts changed but refused; the running version stays", s, version, error);
}

static void accept_candidate(slot *s) {
    reloader *r = s->r;
    s->swapping = 1;
    r->swaps_out++;
    r->swap(r->ud, s->tenant, s->candidate, s->candidate_path);
}

static void on_settled(uv_timer_t *h);

void reload_swapped(reloader *r, int tenant, int ok, const char *err) {
    slot *s = &r->slots[tenant];
    s->swapping = 0;
    r->swaps_out--;
    if (r->stopping) {
        if (r->open_slots == 0 && r->swaps_out == 0) free_reloader(r);
        return;
    }
    tenant_config *t = &r->cfg->tenants[s->tenant];
    if (!ok) {
        refuse(s, s->candidate, err && *err ? err : "the mapping threads would not start with it");
    } else {
        s->loaded++;
        s->loaded_at = now_s();
        s->refused[0] = s->refused_key[0] = 0;
        write_status(r->cfg, t, NULL, NULL, 0, s->loaded_at);     /* before the line, as in refuse() */
        log_tenant("info", "scripts reloaded", s, t->scripts_version, NULL);
        char root[PATH_MAX];
        tenant_root(r->cfg, t->id, root, sizeof root);
        snapshot_prune(root, KEEP_VERSIONS, t->scripts_version);
    }
    if (s->changed_meanwhile) {
        s->changed_meanwhile = 0;
        uv_timer_start(&s->debounce, on_settled, DEBOUNCE_MS, 0);
    }
}

/* The specs of a scripts folder: SCRIPTS/spec (returns 1), else spec/ beside SCRIPTS (2); -1 none. */
enum { SPECS_INSIDE = 1, SPECS_BESIDE = 2 };

static int find_specs(const char *scripts, char *spec, char *project, size_t len) {
    struct stat st;
    snprintf(spec, len, "%s/spec", scripts);
    if (stat(spec, &st) == 0 && S_ISDIR(st.st_mode)) { snprintf(project, len, "%s", scripts); return SPECS_INSIDE; }
    snprintf(project, len, "%s/..", scripts);
    snprintf(spec, len, "%s/../spec", scripts);
    return stat(spec, &st) == 0 && S_ISDIR(st.st_mode) ? SPECS_BESIDE : -1;
}

static void on_handle_closed(uv_handle_t *h);

static void on_spec_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
    slot *s = p->data;
    s->spec_running = 0;
    uv_timer_stop(&s->spec_timeout);
    uv_close((uv_handle_t *)p, on_handle_closed);
    if (s->r->stopping) return;
    if (exit_status == 0 && term_signal == 0) {
        accept_candidate(s);
    } else {
        char why[PATH_MAX + 128];
        if (term_signal) snprintf(why, sizeof why, "its specs did not finish in %d s; output in %s.spec.log",
                                  SPEC_TIMEOUT_MS / 1000, s->candidate_path);
        else snprintf(why, sizeof why, "its specs failed (returnflow test exit status %lld); output in %s.spec.log",
                      (long long)exit_status, s->candidate_path);
        refuse(s, s->candidate, why);
    }
    if (s->changed_meanwhile && !s->swapping) {
        s->changed_meanwhile = 0;
        uv_timer_start(&s->debounce, on_settled, DEBOUNCE_MS, 0);
    }
}

static void on_spec_timeout(uv_timer_t *h) {
    slot *s = h->data;
    if (s->spec_running) uv_process_kill(&s->spec, SIGKILL);
}

static int run_specs(slot *s) {
    char spec[PATH_MAX], project[PATH_MAX], exe[PATH_MAX], log_path[PATH_MAX + 16];
    tenant_config *t = &s->r->cfg->tenants[s->tenant];
    if (find_specs(t->scripts_source, spec, project, sizeof spec) < 0) {
        refuse(s, s->candidate, "reload_requires_specs is on, but the scripts folder has no spec/ folder in it or beside it");
        return -1;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) { refuse(s, s->candidate, "cannot find the returnflow binary to run the specs"); return -1; }
    exe[n] = 0;
    snprintf(log_path, sizeof log_path, "%s.spec.log", s->candidate_path);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { refuse(s, s->candidate, "cannot write the specs' log"); return -1; }
    char *args[] = { exe, "test", "--scripts", s->candidate_path, spec, NULL };
    uv_stdio_container_t stdio[3] = {
        { .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = fd }, { .flags = UV_INHERIT_FD, .data.fd = fd },
    };
    uv_process_options_t opts = { .exit_cb = on_spec_exit, .file = exe, .args = args, .cwd = project,
                                  .stdio_count = 3, .stdio = stdio };
    s->spec.data = s;
    int rc = uv_spawn(s->r->loop, &s->spec, &opts);
    close(fd);
    if (rc != 0) {
        uv_close((uv_handle_t *)&s->spec, NULL);
        char why[256];
        snprintf(why, sizeof why, "cannot run the specs: %s", uv_strerror(rc));
        refuse(s, s->candidate, why);
        return -1;
    }
    s->open_handles++;
    s->spec_running = 1;
    uv_timer_start(&s->spec_timeout, on_spec_timeout, SPEC_TIMEOUT_MS, 0);
    log_tenant("info", "scripts changed: running their specs before loading them", s, s->candidate, NULL);
    return 0;
}

/* What a refusal is remembered by: the scripts' version, and the specs' when they must pass. */
static void candidate_key(slot *s, const char *version, char *key, size_t len) {
    tenant_config *t = &s->r->cfg->tenants[s->tenant];
    char spec[PATH_MAX], project[PATH_MAX], specs_version[SNAPSHOT_VERSION_LEN + 1] = "none", err[256];
    if (s->r->cfg->reload_requires_specs && find_specs(t->scripts_source, spec, project, sizeof spec) > 0)
        snapshot_version(spec, specs_version, err, sizeof err);
    if (s->r->cfg->reload_requires_specs) snprintf(key, len, "%s:%s", version, specs_version);
    else snprintf(key, len, "%s", version);
}

/* The folder settled: freeze it, check it, maybe run its specs, then hand it over. */
static void on_settled(uv_timer_t *h) {
    slot *s = h->data;
    reloader *r = s->r;
    if (r->stopping) return;
    if (s->spec_running || s->swapping || s->checking) { s->changed_meanwhile = 1; return; }
    rescan(s);                                  /* a new subfolder gets its watch */
    tenant_config *t = &r->cfg->tenants[s->tenant];
    char version[SNAPSHOT_VERSION_LEN + 1], key[sizeof s->candidate_key], err[1024];
    if (snapshot_version(t->scripts_source, version, err, sizeof err) != 0) {
        if (strcmp(s->refused, "missing") != 0) {
            s->candidate_key[0] = s->candidate_path[0] = 0;
            refuse(s, "missing", err);
        }
        uv_timer_start(&s->debounce, on_settled, RETRY_MS, 0);   /* it may come back, watches with it */
        return;
    }
    candidate_key(s, version, key, sizeof key);
    if (strcmp(version, t->scripts_version) == 0 && s->refused[0]) {   /* the change was undone */
        s->refused[0] = s->refused_key[0] = 0;
        write_status(r->cfg, t, NULL, NULL, 0, s->loaded_at);     /* before the line, as in refuse() */
        log_tenant("info", "scripts are back to the running version", s, version, NULL);
    }
    if (strcmp(version, t->scripts_version) == 0 || strcmp(key, s->refused_key) == 0) return;
    char root[PATH_MAX];
    tenant_root(r->cfg, t->id, root, sizeof root);
    snprintf(s->candidate_key, sizeof s->candidate_key, "%s", key);
    if (snapshot_take(t->scripts_source, root, s->candidate, s->candidate_path, sizeof s->candidate_path,
                      &s->candidate_created, err, sizeof err) != 0) {
        s->candidate_path[0] = 0;
        refuse(s, version, err);
        return;
    }
    /* The load runs in a worker, on libuv's pool: the loop goes on; load_checked() takes it up. */
    check *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->s = s;
    c->req.data = c;
    /* Copies: a SIGHUP may free this config while the check runs. */
    const char *from[7] = { s->candidate_path, t->scripts_source, t->id, t->key_kind, t->site_id, t->revision,
                            t->segments_property };
    for (int i = 0; i < 7; i++)
        if (from[i] && !(c->own[i] = strdup(from[i]))) abort();
    c->mc = mapper_config_of(r->cfg, t);
    c->mc.scripts_dir = c->own[0];                 /* the version to check, not the running one */
    c->mc.display_dir = c->own[1];
    c->mc.tenant = c->own[2];
    c->mc.key_kind = c->own[3];
    c->mc.site_id = c->own[4];
    c->mc.revision = c->own[5];
    c->mc.segments_property = c->own[6];
    s->checking = 1;
    r->swaps_out++;                             /* the reloader outlives the check */
    uv_queue_work(r->loop, &c->req, load_check, load_checked);
}

static void load_check(uv_work_t *req) {
    check *c = req->data;
    mapworker_free(mapworker_new(&c->mc, &c->problems));
}

static void load_checked(uv_work_t *req, int status) {
    (void)status;
    check *c = req->data;
    slot *s = c->s;
    reloader *r = s->r;
    s->checking = 0;
    r->swaps_out--;
    if (r->stopping) {                          /* nothing of the reloader is touched after it is freed */
        strbuf_free(&c->problems);
        for (int i = 0; i < 7; i++) free(c->own[i]);
        free(c);
        if (r->open_slots == 0 && r->swaps_out == 0) free_reloader(r);
        return;
    }
    if (c->problems.len) {
        /* The problems name the folder the merchant edits (display_dir), not the frozen copy. */
        strbuf shown = {0};
        strbuf_add(&shown, c->problems.data, c->problems.len);
        while (shown.len && shown.data[shown.len - 1] == '\n') shown.len--;
        strbuf_addc(&shown, 0);
        refuse(s, s->candidate, shown.data ? shown.data : "does not load");
        strbuf_free(&shown);
    } else if (r->cfg->reload_requires_specs) {
        run_specs(s);
    } else {
        accept_candidate(s);
    }
    if (s->changed_meanwhile && !s->swapping && !s->checking && !s->spec_running) {
        s->changed_meanwhile = 0;
        uv_timer_start(&s->debounce, on_settled, DEBOUNCE_MS, 0);
    }
    strbuf_free(&c->problems);
    for (int i = 0; i < 7; i++) free(c->own[i]);
    free(c);
}

static void on_change(uv_fs_event_t *h, const char *filename, int events, int status) {
    (void)filename; (void)events; (void)status;
    watch *w = h->data;
    if (!w->owner->r->stopping) uv_timer_start(&w->owner->debounce, on_settled, DEBOUNCE_MS, 0);
}

static void on_handle_closed(uv_handle_t *h) {
    slot *s;
    if (h->type == UV_FS_EVENT) {
        watch *w = h->data;
        s = w->owner;
        free(w);
    } else {
        s = h->data;
    }
    reloader *r = s->r;
    if (--s->open_handles == 0 && --r->open_slots == 0 && r->stopping && r->swaps_out == 0) free_reloader(r);
}

static void add_watch(slot *s, const char *dir) {
    if (s->nwatches == MAX_WATCHES) {
        if (!s->watches_dropped++) {
            strbuf f = {0};
            strbuf_adds(&f, "\"tenant\":");
            json_append_string(&f, s->tenant_id, strlen(s->tenant_id));
            strbuf_adds(&f, ",\"folder\":");
            json_append_string(&f, dir, strlen(dir));
            strbuf_addc(&f, 0);
            log_line("warn", "too many subfolders to watch them all; send SIGHUP after changing this one", f.data);
            strbuf_free(&f);
        }
        return;
    }
    watch *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->owner = s;
    uv_fs_event_init(s->r->loop, &w->handle);
    w->handle.data = w;
    s->open_handles++;
    int rc = uv_fs_event_start(&w->handle, on_change, dir, 0);
    if (rc != 0) {
        strbuf f = {0};
        strbuf_adds(&f, "\"tenant\":");
        json_append_string(&f, s->tenant_id, strlen(s->tenant_id));
        strbuf_adds(&f, ",\"folder\":");
        json_append_string(&f, dir, strlen(dir));
        strbuf_adds(&f, ",\"error\":");
        json_append_string(&f, uv_strerror(rc), strlen(uv_strerror(rc)));
        strbuf_addc(&f, 0);
        log_line("warn", "cannot watch a scripts folder; send SIGHUP after changing it", f.data);
        strbuf_free(&f);
        uv_close((uv_handle_t *)&w->handle, on_handle_closed);
        return;
    }
    s->watches[s->nwatches++] = w;
}

/* Watches dir and its subfolders, WATCH_DEPTH levels down (inotify does not recurse). */
static void watch_tree(slot *s, const char *dir, int depth) {
    add_watch(s, dir);
    if (depth == WATCH_DEPTH) return;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[PATH_MAX];
        struct stat st;
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) watch_tree(s, sub, depth + 1);
    }
    if (d) closedir(d);
}

/* Watches the folder as it is now (and, when they must pass, its specs). */
static void rescan(slot *s) {
    for (int i = 0; i < s->nwatches; i++) uv_close((uv_handle_t *)&s->watches[i]->handle, on_handle_closed);
    s->nwatches = 0;
    const tenant_config *t = &s->r->cfg->tenants[s->tenant];
    watch_tree(s, t->scripts_source, 0);
    char spec[PATH_MAX], project[PATH_MAX];
    if (s->r->cfg->reload_requires_specs && find_specs(t->scripts_source, spec, project, sizeof spec) == SPECS_BESIDE)
        watch_tree(s, spec, 0);                   /* inside, the scripts' own watches see it */
}

reloader *reload_start(uv_loop_t *loop, config *cfg, reload_swap_fn swap, void *ud) {
    reloader *r = calloc(1, sizeof *r);
    if (!r) abort();
    *r = (reloader){ .loop = loop, .cfg = cfg, .swap = swap, .ud = ud, .nslots = cfg->ntenants };
    r->slots = calloc((size_t)(cfg->ntenants ? cfg->ntenants : 1), sizeof *r->slots);
    if (!r->slots) abort();
    for (int i = 0; i < cfg->ntenants; i++) {
        slot *s = &r->slots[i];
        s->r = r;
        s->tenant = i;
        s->loaded_at = now_s();
        snprintf(s->tenant_id, sizeof s->tenant_id, "%s", cfg->tenants[i].id);
        uv_timer_init(loop, &s->debounce);
        uv_timer_init(loop, &s->spec_timeout);
        s->debounce.data = s->spec_timeout.data = s;
        s->open_handles = 2;
        r->open_slots++;
        if (cfg->tenants[i].scripts_source) {       /* the version this config runs, for status */
            char root[PATH_MAX];
            write_status(cfg, &cfg->tenants[i], NULL, NULL, 0, s->loaded_at);
            tenant_root(cfg, cfg->tenants[i].id, root, sizeof root);
            snapshot_prune(root, KEEP_VERSIONS, cfg->tenants[i].scripts_version);
        }
        if (cfg->watch_scripts && cfg->tenants[i].scripts_source) rescan(s);
    }
    return r;
}

void reload_stop(reloader *r) {
    if (!r) return;
    r->stopping = 1;
    if (r->nslots == 0) { free_reloader(r); return; }
    for (int i = 0; i < r->nslots; i++) {
        slot *s = &r->slots[i];
        for (int k = 0; k < s->nwatches; k++) uv_close((uv_handle_t *)&s->watches[k]->handle, on_handle_closed);
        s->nwatches = 0;
        if (s->spec_running) uv_process_kill(&s->spec, SIGKILL);   /* its exit closes it */
        uv_close((uv_handle_t *)&s->debounce, on_handle_closed);
        uv_close((uv_handle_t *)&s->spec_timeout, on_handle_closed);
    }
}

void reload_metrics(reloader *r, strbuf *out) {
    if (!r || r->stopping) return;
    strbuf_adds(out, "# HELP returnflow_script_reloads_total Script changes seen, by outcome.\n"
                     "# TYPE returnflow_script_reloads_total counter\n");
    char line[512];
    for (int i = 0; i < r->nslots; i++) {
        slot *s = &r->slots[i];
        snprintf(line, sizeof line, "returnflow_script_reloads_total{tenant=\"%s\",outcome=\"loaded\"} %llu\n"
                 "returnflow_script_reloads_total{tenant=\"%s\",outcome=\"refused\"} %llu\n",
                 s->tenant_id, s->loaded, s->tenant_id, s->refusals);
        strbuf_adds(out, line);
    }
    strbuf_adds(out, "# HELP returnflow_scripts_info The scripts version each tenant maps with, and any refused one.\n"
                     "# TYPE returnflow_scripts_info gauge\n");
    for (int i = 0; i < r->nslots; i++) {
        slot *s = &r->slots[i];
        snprintf(line, sizeof line, "returnflow_scripts_info{tenant=\"%s\",version=\"%s\",state=\"running\"} 1\n",
                 s->tenant_id, r->cfg->tenants[i].scripts_version);
        strbuf_adds(out, line);
        if (s->refused[0]) {
            snprintf(line, sizeof line, "returnflow_scripts_info{tenant=\"%s\",version=\"%s\",state=\"refused\"} 1\n",
                     s->tenant_id, s->refused);
            strbuf_adds(out, line);
        }
    }
}
