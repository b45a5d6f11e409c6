/*
 * ownership.c: this node's leases on a shared store, kept by a thread of its own (ownership.h).
 *
 * Each pass (every PASS_MS; heartbeat and renewal every RENEW_MS):
 * - heartbeat this node, renew the leases it holds;
 * - publish the scripts versions it runs (a reload changes them);
 * - for each configured tenant, rendezvous hashing over the live nodes names its rightful owner:
 *   a tenant that is free (or expired, or left by an earlier run of this node) is taken by its
 *   rightful owner at once, and by any node running the published version once it has stayed free
 *   for ORPHAN_MS (its rightful owner may run another version); a tenant held elsewhere that is this
 *   node's is asked for (store_lease_want); a held tenant that the live rightful owner asked for is
 *   handed over: no new work starts, and the lease is released once its requests in flight are
 *   answered (or after HANDOVER_MS); a held tenant whose published version is not ours is released.
 *
 * Invariant (self-fencing): a lease counts here only until its renewal's start plus
 * STORE_LEASE_TTL_MS minus FENCE_MARGIN_MS on this machine's monotonic clock, so a node cut off from
 * the store stops mapping and delivering before the store lets another node take the tenant. Every
 * write of a mapping batch and every mark in flight is fenced in the store besides (store_fence), so
 * a node paused past that bound (SIGSTOP, a swapped-out VM) still writes nothing as the owner.
 *
 * What it does not do: move work itself. Taking a lease requeues the tenant's requests in flight in
 * the store (store_lease_take); the mapping threads and the deliverer see the change on their next
 * pass through ownership_holds.
 */
#include "ownership.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "json.h"
#include "log.h"
#include "store_db.h"

#define PASS_MS 1000
#define RENEW_MS 2000
#define FENCE_MARGIN_MS 3000
#define ORPHAN_MS 3000
#define HANDOVER_MS 10000

typedef struct tenant_lease {
    char id[128], version[16];
    int configured;               /* in the running config (0: dropped by SIGHUP; released, then forgotten) */
    int published;                /* version published since it last changed */
    long long epoch;              /* held at this epoch; 0: not held */
    long long valid_until;        /* monotonic ms: the lease counts here until then */
    long long handing_since;      /* monotonic ms: handing over to another node since (0: not) */
    int in_flight;                /* the deliverer's requests in flight */
} tenant_lease;

struct ownership {
    int clustered;
    char node[128];
    store_db *db;                 /* the thread's own connection */
    pthread_t tid;
    pthread_mutex_t mu;           /* guards what follows */
    pthread_cond_t cv;
    int stopping;
    int failing;                  /* the store refused the last pass (logged once); the thread's own */
    void (*on_take)(void *ud);    /* ownership_on_take's */
    void *on_take_ud;
    tenant_lease **tenants;       /* by pointer: the thread keeps one across an unlocked store call */
    int ntenants;
};

/* The config's `node` (config.c makes it the host name when the config gives none). */
static void node_name(const config *cfg, char *out, size_t len) {
    snprintf(out, len, "%s", cfg->node && cfg->node[0] ? cfg->node : "node");
}


static int location_is_shared(const char *location) {
    return strncmp(location, "postgresql://", 13) == 0 || strncmp(location, "postgres://", 11) == 0;
}

/* ------------------------------ the view ---------------------------------- */

static tenant_lease *find(ownership *o, const char *tenant) {
    for (int i = 0; i < o->ntenants; i++)
        if (strcmp(o->tenants[i]->id, tenant) == 0) return o->tenants[i];
    return NULL;
}

static int counts(const tenant_lease *t, long long mono) {
    return t->epoch > 0 && !t->handing_since && mono < t->valid_until;
}

int ownership_clustered(const ownership *o) { return o && o->clustered; }

const char *ownership_node(const ownership *o) { return o ? o->node : ""; }

int ownership_holds(ownership *o, const char *tenant, long long *epoch) {
    if (epoch) *epoch = 1;
    if (!o || !o->clustered) return 1;
    long long mono = clock_mono_ms();
    pthread_mutex_lock(&o->mu);
    tenant_lease *t = find(o, tenant);
    int held = t && t->configured && counts(t, mono);
    if (epoch) *epoch = held ? t->epoch : 0;
    pthread_mutex_unlock(&o->mu);
    return held;
}

void ownership_in_flight(ownership *o, const char *tenant, int n) {
    if (!o || !o->clustered) return;
    pthread_mutex_lock(&o->mu);
    tenant_lease *t = find(o, tenant);
    if (t) t->in_flight = n;
    pthread_mutex_unlock(&o->mu);
}

void ownership_set_config(ownership *o, const config *cfg) {
    pthread_mutex_lock(&o->mu);
    for (int i = 0; i < o->ntenants; i++) o->tenants[i]->configured = 0;
    for (int i = 0; i < cfg->ntenants; i++) {
        const tenant_config *tc = &cfg->tenants[i];
        tenant_lease *t = find(o, tc->id);
        if (!t) {
            o->tenants = realloc(o->tenants, (size_t)(o->ntenants + 1) * sizeof *o->tenants);
            if (!o->tenants || !(t = calloc(1, sizeof *t))) abort();
            o->tenants[o->ntenants++] = t;
            snprintf(t->id, sizeof t->id, "%s", tc->id);
        }
        t->configured = 1;
        if (strcmp(t->version, tc->scripts_version) != 0) {
            snprintf(t->version, sizeof t->version, "%s", tc->scripts_version);
            t->published = 0;
        }
    }
    pthread_cond_broadcast(&o->cv);               /* publish now: a reload waits for no pass */
    pthread_mutex_unlock(&o->mu);
}

void ownership_on_take(ownership *o, void (*cb)(void *ud), void *ud) {
    if (!o) return;
    pthread_mutex_lock(&o->mu);
    o->on_take = cb;
    o->on_take_ud = ud;
    pthread_mutex_unlock(&o->mu);
}

void ownership_owned_json(ownership *o, strbuf *out) {
    strbuf_addc(out, '[');
    long long mono = clock_mono_ms();
    int n = 0;
    if (o) pthread_mutex_lock(&o->mu);
    for (int i = 0; o && i < o->ntenants; i++) {
        const tenant_lease *t = o->tenants[i];
        if (!t->configured || (o->clustered && !counts(t, mono))) continue;
        if (n++) strbuf_addc(out, ',');
        json_append_string(out, t->id, strlen(t->id));
    }
    if (o) pthread_mutex_unlock(&o->mu);
    strbuf_addc(out, ']');
}

/* ------------------------------ the thread -------------------------------- */

/* The rendezvous weight of (node, tenant): the highest live node owns the tenant. FNV-1a, then
 * splitmix64's finalizer, so similar names spread. */
static unsigned long long weight(const char *node, const char *tenant) {
    unsigned long long h = 1469598103934665603ULL;
    for (const char *s = node; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *s = tenant; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h ^= h >> 30, h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27, h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

typedef struct names { char (*v)[128]; int n, cap; } names;

static void add_name(void *ud, const char *node) {
    names *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
        if (!l->v) abort();
    }
    snprintf(l->v[l->n++], sizeof *l->v, "%s", node);
}

static const char *rightful(const names *live, const char *tenant) {
    const char *best = NULL;
    unsigned long long best_w = 0;
    for (int i = 0; i < live->n; i++) {
        unsigned long long w = weight(live->v[i], tenant);
        if (!best || w > best_w || (w == best_w && strcmp(live->v[i], best) < 0)) best = live->v[i], best_w = w;
    }
    return best;
}

static int is_live(const names *live, const char *node) {
    for (int i = 0; node && i < live->n; i++) if (strcmp(live->v[i], node) == 0) return 1;
    return 0;
}

/* The store's view of one tenant, copied out of store_leases_of. */
typedef struct seen_lease {
    char tenant[128], node[128], wanted_by[128], version[16];
    long long epoch, expires_in_ms;
} seen_lease;

typedef struct seen { seen_lease *v; int n, cap; } seen;

static void add_lease(void *ud, const store_lease *l) {
    seen *s = ud;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = realloc(s->v, (size_t)s->cap * sizeof *s->v);
        if (!s->v) abort();
    }
    seen_lease *x = &s->v[s->n++];
    snprintf(x->tenant, sizeof x->tenant, "%s", l->tenant);
    snprintf(x->node, sizeof x->node, "%s", l->node ? l->node : "");
    snprintf(x->wanted_by, sizeof x->wanted_by, "%s", l->wanted_by ? l->wanted_by : "");
    snprintf(x->version, sizeof x->version, "%s", l->version ? l->version : "");
    x->epoch = l->epoch;
    x->expires_in_ms = l->expires_in_ms;
}

static const seen_lease *seen_of(const seen *s, const char *tenant) {
    for (int i = 0; i < s->n; i++) if (strcmp(s->v[i].tenant, tenant) == 0) return &s->v[i];
    return NULL;
}

static void log_lease(const char *msg, const char *tenant, long long epoch, const char *to) {
    char f[400];
    snprintf(f, sizeof f, "\"tenant\":\"%s\",\"epoch\":%lld%s%s%s", tenant, epoch, to ? ",\"to\":\"" : "",
             to ? to : "", to ? "\"" : "");
    log_line("info", msg, f);
}

/* Heartbeat and renewal: what the store confirmed counts until the start of the call plus the
 * lease's time less the margin; what it did not confirm is dropped at once. */
static int renew(ownership *o) {
    long long started = clock_mono_ms();
    if (store_node_heartbeat(o->db, o->node, 0) != 0) return -1;
    pthread_mutex_lock(&o->mu);
    int n = 0;
    const char **ids = malloc((size_t)(o->ntenants + 1) * sizeof *ids);
    long long *epochs = malloc((size_t)(o->ntenants + 1) * sizeof *epochs);
    tenant_lease **held = malloc((size_t)(o->ntenants + 1) * sizeof *held);
    int *kept = calloc((size_t)(o->ntenants + 1), sizeof *kept);
    char (*copies)[128] = malloc((size_t)(o->ntenants + 1) * sizeof *copies);
    if (!ids || !epochs || !held || !kept || !copies) abort();
    for (int i = 0; i < o->ntenants; i++)
        if (o->tenants[i]->epoch > 0) {
            snprintf(copies[n], sizeof *copies, "%s", o->tenants[i]->id);
            ids[n] = copies[n];
            epochs[n] = o->tenants[i]->epoch;
            held[n++] = o->tenants[i];
        }
    pthread_mutex_unlock(&o->mu);
    int rc = n ? store_lease_renew(o->db, o->node, ids, epochs, n, kept) : 0;
    pthread_mutex_lock(&o->mu);
    for (int k = 0; rc == 0 && k < n; k++) {
        tenant_lease *t = held[k];                  /* only this thread frees one (balance) */
        if (t->epoch != epochs[k]) continue;
        if (kept[k]) { t->valid_until = started + STORE_LEASE_TTL_MS - FENCE_MARGIN_MS; continue; }
        log_lease("lease lost: another node holds the tenant now", t->id, t->epoch, NULL);
        t->epoch = 0;
        t->handing_since = 0;
    }
    pthread_mutex_unlock(&o->mu);
    free(ids), free(epochs), free(held), free(kept), free(copies);
    return rc;
}

static void publish(ownership *o) {
    pthread_mutex_lock(&o->mu);
    for (int i = 0; i < o->ntenants; i++) {
        tenant_lease *t = o->tenants[i];
        if (!t->configured || t->published || !t->version[0]) continue;
        char id[128], version[16];
        memcpy(id, t->id, sizeof id);
        memcpy(version, t->version, sizeof version);
        pthread_mutex_unlock(&o->mu);
        int rc = store_publish_version(o->db, id, version, o->node);
        pthread_mutex_lock(&o->mu);
        if (rc == 0 && strcmp(t->version, version) == 0) t->published = 1;
    }
    pthread_mutex_unlock(&o->mu);
}

/* Gives the tenant's lease up (it was handed over, dropped from the config, or its version is not
 * the cluster's any more). Called with mu held; the store call runs without it. */
static void give_up(ownership *o, tenant_lease *t, const char *why, const char *to) {
    char id[128];
    long long epoch = t->epoch;
    memcpy(id, t->id, sizeof id);
    t->epoch = 0;                                 /* nothing new starts from now on */
    t->handing_since = 0;
    pthread_mutex_unlock(&o->mu);
    store_lease_release(o->db, id, o->node, epoch);
    log_lease(why, id, epoch, to);
    pthread_mutex_lock(&o->mu);
}

/* One decision pass over the configured tenants (see the header). */
static int balance(ownership *o) {
    names live = {0};
    seen leases = {0};
    int rc = -1, took = 0;
    if (store_live_nodes(o->db, add_name, &live) < 0 || store_leases_of(o->db, add_lease, &leases) < 0) goto done;
    rc = 0;
    if (!is_live(&live, o->node)) goto done;      /* our heartbeat is not in yet: decide nothing */
    pthread_mutex_lock(&o->mu);
    for (int i = 0; i < o->ntenants; i++) {
        tenant_lease *t = o->tenants[i];
        const seen_lease *s = seen_of(&leases, t->id);
        const char *owner = rightful(&live, t->id);
        int ours = owner && strcmp(owner, o->node) == 0;
        int current = s && s->version[0] && strcmp(s->version, t->version) == 0;
        long long mono = clock_mono_ms();
        if (t->epoch > 0) {
            if (!t->configured) give_up(o, t, "lease released: the tenant left the config", NULL);
            else if (s && s->version[0] && !current)
                give_up(o, t, "lease released: another scripts version is published for the tenant", NULL);
            else if (!ours && s && owner && strcmp(s->wanted_by, owner) == 0) {
                if (!t->handing_since) t->handing_since = mono;   /* no new work from now on */
                if (t->in_flight == 0 || mono - t->handing_since > HANDOVER_MS)
                    give_up(o, t, "lease handed over", owner);
            } else {
                t->handing_since = 0;             /* the one who asked is gone: keep it */
            }
            continue;
        }
        if (!t->configured || !current) continue;
        int mine_left = s && s->node[0] && strcmp(s->node, o->node) == 0;   /* an earlier run of this node */
        int is_free = !s->node[0] || s->expires_in_ms <= 0;
        if (mine_left || (is_free && (ours || s->expires_in_ms <= -ORPHAN_MS))) {
            char id[128], version[16];
            memcpy(id, t->id, sizeof id);
            memcpy(version, t->version, sizeof version);
            pthread_mutex_unlock(&o->mu);
            long long started = clock_mono_ms();
            long long epoch = store_lease_take(o->db, id, o->node, version);
            pthread_mutex_lock(&o->mu);
            if (epoch > 0) {
                t->epoch = epoch;
                t->valid_until = started + STORE_LEASE_TTL_MS - FENCE_MARGIN_MS;
                t->handing_since = 0;
                t->in_flight = 0;
                log_lease("lease taken", t->id, epoch, NULL);
                took = 1;
            }
        } else if (ours && s && s->node[0] && strcmp(s->wanted_by, o->node) != 0 && is_live(&live, s->node)) {
            char id[128];
            memcpy(id, t->id, sizeof id);
            pthread_mutex_unlock(&o->mu);
            store_lease_want(o->db, id, o->node);
            pthread_mutex_lock(&o->mu);
        }
    }
    /* Tenants gone from the config and no longer held are forgotten. */
    int k = 0;
    for (int i = 0; i < o->ntenants; i++) {
        if (o->tenants[i]->configured || o->tenants[i]->epoch > 0) o->tenants[k++] = o->tenants[i];
        else free(o->tenants[i]);
    }
    o->ntenants = k;
    void (*on_take)(void *ud) = took ? o->on_take : NULL;
    void *on_take_ud = o->on_take_ud;
    pthread_mutex_unlock(&o->mu);
    if (on_take) on_take(on_take_ud);             /* map the tenants taken now, not at the next timed pass */
done:
    free(live.v);
    free(leases.v);
    return rc;
}

/* The store refused the leases' statements (ok 0) or took them again (1): said once each way, since
 * a node that cannot renew stops its tenants within the lease's time (self-fencing). */
static void note_store(ownership *o, int ok) {
    if (ok == !o->failing) return;
    o->failing = !ok;
    if (ok) { log_line("info", "leases kept again: the store answers", NULL); return; }
    store_log_error("cannot renew this node's leases: it stops mapping and delivering their tenants within 7 s", o->db);
}

static void *thread_main(void *arg) {
    ownership *o = arg;
    pthread_setname_np(pthread_self(), "rf-ownership");
    long long next_renew = 0;
    int prepared = 0, ok;
    pthread_mutex_lock(&o->mu);
    while (!o->stopping) {
        pthread_mutex_unlock(&o->mu);
        if (!prepared) prepared = store_cluster_prepare(o->db) == 0;
        ok = prepared;
        if (prepared) {
            long long mono = clock_mono_ms();
            if (mono >= next_renew) {
                ok = renew(o) == 0;
                next_renew = mono + RENEW_MS;
            }
            publish(o);
            ok = balance(o) == 0 && ok;
        }
        note_store(o, ok);
        pthread_mutex_lock(&o->mu);
        if (o->stopping) break;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += PASS_MS / 1000;
        pthread_cond_timedwait(&o->cv, &o->mu, &until);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

/* ------------------------------ lifecycle --------------------------------- */

ownership *ownership_start(const config *cfg, char *err, size_t errlen) {
    ownership *o = calloc(1, sizeof *o);
    if (!o) abort();
    node_name(cfg, o->node, sizeof o->node);
    pthread_mutex_init(&o->mu, NULL);
    pthread_condattr_t cv_attr;                   /* its timed waits on the monotonic clock */
    pthread_condattr_init(&cv_attr);
    pthread_condattr_setclock(&cv_attr, CLOCK_MONOTONIC);
    pthread_cond_init(&o->cv, &cv_attr);
    pthread_condattr_destroy(&cv_attr);
    ownership_set_config(o, cfg);
    const char *location = config_store_location(cfg);
    if (!location_is_shared(location)) return o;  /* one node: it owns everything, no thread */
    o->clustered = 1;
    char why[1200];
    if (!(o->db = store_db_open(location, STORE_RELAXED, why, sizeof why))) {
        snprintf(err, errlen, "ownership: %s", why);
        goto fail;
    }
    if (!store_clustered(o->db)) {                /* several nodes without leases would double work */
        snprintf(err, errlen, "ownership: the %s store of this build keeps no leases", store_db_backend(o->db));
        goto fail_db;
    }
    if (pthread_create(&o->tid, NULL, thread_main, o) != 0) {
        snprintf(err, errlen, "cannot start the ownership thread");
        goto fail_db;
    }
    return o;
fail_db:
    store_db_close(o->db);
fail:
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    for (int i = 0; i < o->ntenants; i++) free(o->tenants[i]);
    free(o->tenants);
    free(o);
    return NULL;
}

void ownership_stop(ownership *o) {
    if (!o) return;
    if (o->clustered) {
        pthread_mutex_lock(&o->mu);
        o->stopping = 1;
        pthread_cond_broadcast(&o->cv);
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->tid, NULL);
        /* Mapping and delivery have stopped: every lease goes, and the others take over at once.
         * The node is gone first: a node whose pass saw a released tenant while this one still
         * counted as live left it to its rightful owner, this one, until ORPHAN_MS past the release
         * (or until a later pass saw this node gone). */
        store_node_heartbeat(o->db, o->node, 1);
        for (int i = 0; i < o->ntenants; i++)
            if (o->tenants[i]->epoch > 0) {
                store_lease_release(o->db, o->tenants[i]->id, o->node, o->tenants[i]->epoch);
                log_lease("lease released: the node stops", o->tenants[i]->id, o->tenants[i]->epoch, NULL);
            }
        store_db_close(o->db);
    }
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    for (int i = 0; i < o->ntenants; i++) free(o->tenants[i]);
    free(o->tenants);
    free(o);
}
