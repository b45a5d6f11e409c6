/*
 * job.c: a batch job: `returnflow send`, `replay` and `test-integration`.
 *
 * A job maps events with a tenant's scripts into the same store serve uses
 * (outbox.c writes exactly what a live event leaves), tags every row with its
 * id, and then waits until those rows are delivered. Delivery is the data
 * folder's one deliverer (deliver.c): serve's if serve runs beside the job,
 * else the job's own, so pacing and the bulk budget stay in one place.
 *
 * A job is resumable because its progress and its rows are committed
 * together, every few hundred events: after Ctrl-C or a crash, --resume
 * skips exactly the events whose rows are in the store. A rerun from the start
 * sends nothing twice either: a request whose profile, metric and unique_id
 * were already delivered (or queued) from this data folder is not queued
 * again, and Klaviyo counts each unique_id once besides.
 *
 * Mapping runs beside storing: a chunk of events is mapped on the job's
 * mapping thread (job_pipe.c) while this thread journals and stores the
 * chunk before it, and maps again what read memory that chunk wrote.
 *
 * Historical events carry backfill: true unless --live, so no flow fires.
 * Their scheduled events (the day-21 reminder of a return two years old) are
 * held until all input is read, so a later event's cancel still applies.
 */
#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "bulk.h"
#include "checkpointer.h"
#include "clock.h"
#include "deliver.h"
#include "dry.h"
#include "job_pipe.h"
#include "json.h"
#include "mapper.h"
#include "mapper_settings.h"
#include "mapworker.h"
#include "outbox.h"
#include "snapshot.h"
#include "store_db.h"
#include "strmap.h"

#define COMMIT_EVERY 250
#define MAP_BATCH PIPE_CHUNK          /* events sent to the mapping worker in one round trip */
#define MAX_REASONS 8

/* An event read: seq is its place in the input (the progress a commit records once it is stored). */
typedef struct pending { long long event_id, seq; char *text, *label; size_t len; } pending;
typedef struct reason { char text[240]; long long n; } reason;

struct job {
    job_options o;
    store_db *db;
    checkpointer *upkeep;         /* SQLite's checkpoints, off the mapping thread (NULL: PostgreSQL) */
    outbox_writer *writer;
    mapworker *m;                 /* the scripts, in a worker process (mapworker.c) */
    deliverer *d;
    char id[48], version[SNAPSHOT_VERSION_LEN + 1];
    long long skip, seen, counts[4], present, batch;
    int in_tx, tty;
    pending *deferred;
    size_t ndeferred, cap;
    pending queue[MAP_BATCH];     /* read, not yet mapped (flush); journaled already unless piped */
    int nqueue;
    long long done_through;       /* the input's events up to here are stored (or were skipped) */
    /* Mapping beside storing (job_pipe.c), for every job but a dry one: the chunk in the mapping
     * thread, the one before it being stored; slot 2 maps a stored chunk's rest again. */
    job_pipe *pipe;
    pipe_chunk chunk[3];
    pending held[2][MAP_BATCH];   /* the events of chunks 0 and 1 (journaled when stored) */
    int inflight;                 /* the chunk in the thread, -1: none */
    int clean[2];                 /* that chunk was handed over with everything before it committed */
    strmap *wrote;                /* the memory keys the chunk stored last wrote */
    map_results_view view;        /* an outcome of a chunk, read back */
    reason reasons[MAX_REASONS];
    int nreasons;
    strbuf doc;
    map_request *kept;
    int kept_cap;
    long long started, last_progress;
    long long progress_every;           /* ms between progress lines: more when counting costs more */
    long long base_queued, base_delivered, base_dead;   /* the job's rows before this run */
};

static int recall(void *ud, const char *key, size_t klen, strbuf *out) {
    job *j = ud;
    return j->db ? store_memory_recall(j->db, j->o.tenant->id, key, klen, out) : 0;
}

static void job_id(const job_options *o, char *out, size_t len) {
    unsigned char digest[32];
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
    EVP_DigestUpdate(sha, o->kind, strlen(o->kind) + 1);
    EVP_DigestUpdate(sha, o->tenant->id, strlen(o->tenant->id) + 1);
    EVP_DigestUpdate(sha, o->identity, strlen(o->identity));
    EVP_DigestFinal_ex(sha, digest, NULL);
    EVP_MD_CTX_free(sha);
    int n = snprintf(out, len, "%s-", o->kind);
    for (int i = 0; i < 6 && n + 2 < (int)len; i++) n += snprintf(out + n, len - (size_t)n, "%02x", digest[i]);
}

/* The job's row: a resumed job skips what it stored before; a new run of an unfinished one says so. */
static int register_job(job *j, char *err, size_t errlen) {
    long long now = clock_now_ms();
    long long stored;
    int finished;
    int existed = store_job_find(j->db, j->id, &stored, &finished);
    if (existed < 0) { snprintf(err, errlen, "cannot read the jobs: %s", store_db_error(j->db)); return -1; }
    if (j->o.resume) {
        if (!existed) fprintf(stderr, "%s: nothing to resume (this job never ran here): starting it\n", j->o.kind);
        else if (finished) fprintf(stderr, "%s: this job finished before: nothing is left to send\n", j->o.kind);
        else fprintf(stderr, "%s: resuming after the %lld events an earlier run stored\n", j->o.kind, stored);
        j->skip = stored;
    } else if (existed && !finished && stored > 0) {
        fprintf(stderr, "%s: an earlier run of this job stopped after %lld events (--resume continues there); "
                        "starting over: requests already delivered from this data folder are not sent again\n",
                j->o.kind, stored);
    }
    if (store_job_start(j->db, j->id, j->o.tenant->id, j->o.kind, j->o.identity, j->skip, now) != 0) {
        snprintf(err, errlen, "cannot record the job: %s", store_db_error(j->db));
        return -1;
    }
    return 0;
}

static void job_counts(job *j, long long since, long long *queued, long long *delivered, long long *dead);
static void sleep_ms(long ms);

static void count_node(void *ud, const char *node) {
    (void)node;
    ++*(int *)ud;
}

/* On a shared store with live nodes, the owner of the tenant delivers the job's requests (ownership.c):
 * a deliverer of the job's own would send the tenant's queue beside it, out of order and over its
 * rate limits. With no node live, the job delivers them itself, as beside no serve on SQLite. */
static int cluster_delivers(store_db *db) {
    int live = 0;
    return store_clustered(db) && store_live_nodes(db, count_node, &live) > 0;
}

job *job_open(const job_options *o, char *err, size_t errlen) {
    job *j = calloc(1, sizeof *j);
    if (!j) abort();
    j->o = *o;
    j->tty = isatty(2);
    j->started = j->last_progress = clock_now_ms();
    job_id(o, j->id, sizeof j->id);
    if (snapshot_version(o->tenant->scripts, j->version, err, errlen) != 0) { free(j); return NULL; }
    if (!o->dry || store_db_exists(o->cfg->data_dir)) {       /* a dry job reads the store if there is one */
        char why[1200];
        j->db = store_db_open(config_store_location(o->cfg), (o->dry ? STORE_READ_ONLY : STORE_CREATE) | STORE_RELAXED, why,
                              sizeof why);
        if (!j->db) {
            snprintf(err, errlen, "%s", why);
            free(j);
            return NULL;
        }
    }
    mapper_config mc = mapper_config_of(o->cfg, o->tenant);
    mc.backfill = !o->live;
    strbuf problems = {0};
    j->m = mapworker_new(&mc, &problems);
    if (!j->m) {
        snprintf(err, errlen, "the scripts in %s do not load:\n%.*s", o->tenant->scripts, (int)problems.len,
                 problems.data ? problems.data : "");
        strbuf_free(&problems);
        store_db_close(j->db);
        free(j);
        return NULL;
    }
    strbuf_free(&problems);
    mapworker_set_recall(j->m, recall, j);
    if (o->dry) return j;
    if (register_job(j, err, errlen) != 0 || !(j->writer = outbox_writer_new(j->db))) {
        if (!err[0]) snprintf(err, errlen, "cannot prepare the job: %s", store_db_error(j->db));
        outbox_writer_free(j->writer);
        mapworker_free(j->m);
        store_db_close(j->db);
        free(j);
        return NULL;
    }
    job_counts(j, 0, &j->base_queued, &j->base_delivered, &j->base_dead);
    /* The mapping thread: if it cannot start, this thread maps and stores in turn, as before. */
    j->inflight = -1;
    j->pipe = job_pipe_start(j->m, config_store_location(o->cfg), o->tenant->id, err, errlen);
    err[0] = 0;
    /* A job writes a lot. Its checkpoints run on a thread of their own, as serve's do, beside the
     * mapping thread that waits for each commit; if that thread cannot start, its connection
     * checkpoints as SQLite does by default. (PostgreSQL has no such upkeep.) */
    if (!store_clustered(j->db)) j->upkeep = checkpointer_start(config_store_location(o->cfg), err, errlen);
    err[0] = 0;
    store_checkpoint_every(j->db, j->upkeep ? 0 : 4000);
    if (!tenant_is_dry(o->tenant) && cluster_delivers(j->db)) {
        fprintf(stderr, "%s: the cluster's nodes deliver the requests (the tenant's owner: returnflow status)\n",
                o->kind);
    } else if (!tenant_is_dry(o->tenant)) {
        j->d = deliver_start(o->cfg, NULL, err, errlen);   /* waits for serve's lock if serve delivers */
        if (!j->d) fprintf(stderr, "%s: %s; the requests stay queued for serve\n", o->kind, err);
        err[0] = 0;
    }
    return j;
}

/* ------------------------------- progress --------------------------------- */

/* The job's requests by state (the (job, state) index answers it); since != 0: this run's only, as
 * the change from the counts before it. */
static void job_counts(job *j, long long since, long long *queued, long long *delivered, long long *dead) {
    *queued = *delivered = *dead = 0;
    if (!j->db || j->o.dry) return;
    store_job_counts(j->db, j->id, queued, delivered, dead);
    if (since) {                                  /* a row delivered now was queued before or now */
        *delivered -= j->base_delivered;
        *dead -= j->base_dead;
    }
}

static void progress(job *j, int final) {
    long long now = clock_now_ms();
    if (j->o.quiet || j->o.dry) return;
    long long every = j->tty ? 250 : 5000;
    if (j->progress_every > every) every = j->progress_every;
    if (!final && now - j->last_progress < every) return;
    j->last_progress = now;
    long long queued, delivered, dead, t0 = clock_mono_ms();
    job_counts(j, j->started, &queued, &delivered, &dead);
    /* The counts read every row of the job (a backfill of a million returns: three million rows, a
     * third of a second): at most a twentieth of the thread's time goes to them. */
    j->progress_every = 20 * (clock_mono_ms() - t0);
    double secs = (double)(now - j->started) / 1000.0;
    long long mapped = j->counts[MAP_MAPPED] + j->counts[MAP_DROPPED] + j->counts[MAP_FAILED];
    double rate = secs > 0 ? (double)(delivered + dead) / secs : 0;
    char eta[32] = "-";
    if (rate > 0 && queued > 0) {
        long long left = (long long)((double)queued / rate);
        snprintf(eta, sizeof eta, "%lld:%02lld", left / 60, left % 60);
    }
    fprintf(stderr, "%s%s: read %lld, mapped %lld, requests delivered %lld of %lld (%lld dead), %.0f/s, ETA %s%s",
            j->tty ? "\r\033[K" : "", j->o.kind, j->seen, mapped, delivered, queued + delivered + dead, dead, rate, eta,
            j->tty ? "" : "\n");
}

/* --------------------------------- input ---------------------------------- */

static void note_reason(job *j, const char *why) {
    for (int i = 0; i < j->nreasons; i++)
        if (strncmp(j->reasons[i].text, why, sizeof j->reasons[i].text - 1) == 0) { j->reasons[i].n++; return; }
    if (j->nreasons == MAX_REASONS) return;
    snprintf(j->reasons[j->nreasons].text, sizeof j->reasons[j->nreasons].text, "%s", why);
    j->reasons[j->nreasons++].n = 1;
}

static int commit(job *j) {
    if (!j->in_tx) return 0;
    int ok = store_job_progress(j->db, j->id, j->done_through, clock_now_ms()) == 0 && store_commit(j->db) == 0;
    if (!ok) {
        store_log_error("cannot store the job's batch", j->db);
        store_rollback(j->db);
    }
    j->in_tx = 0;
    j->batch = 0;
    /* Let serve's delivery take the write lock between two batches: back to back, the next BEGIN
     * would win every time and nothing would be sent until all input is read. The job's own
     * deliverer, a thread of this process, takes turns with this one (sqlite_turn.c) without it:
     * 2 ms a chunk was ~8% of the time to read a backfill. */
    if (!j->d) {
        struct timespec pause = { 0, 2000000 };
        nanosleep(&pause, NULL);
    }
    return ok ? 0 : -1;
}

/* The result to store: scheduled events now (test-integration), and no request this data folder
 * already delivered or queued (same profile, metric and unique_id). */
static map_result keep_new(job *j, const map_result *r) {
    map_result k = *r;
    if (j->kept_cap < r->nrequests) {
        j->kept_cap = r->nrequests;
        j->kept = realloc(j->kept, (size_t)j->kept_cap * sizeof *j->kept);
        if (!j->kept) abort();
    }
    int n = 0;
    for (int i = 0; i < r->nrequests; i++) {
        map_request q = r->requests[i];
        if (j->o.schedules_now) q.schedule_key = q.due = NULL;
        char key[OUTBOX_DEDUP_MAX];
        if (outbox_dedup_key(q.profile, q.body, q.body_len, key, sizeof key) == 0) {
            if (store_outbox_has(j->db, j->o.tenant->id, key)) { j->present++; continue; }
        }
        j->kept[n++] = q;
    }
    k.requests = j->kept;
    k.nrequests = n;
    if (j->o.schedules_now) k.ncancels = 0;
    return k;
}

static int save_outcome(job *j, long long event_id, const map_result *r) {
    map_result k = keep_new(j, r);
    outbox_target t = { .tenant = j->o.tenant->id, .version = j->version, .job = j->id,
                        .record_outcome = j->o.journal };
    return outbox_write(j->writer, &t, event_id, &k);
}

static void defer(job *j, long long event_id, const char *text, size_t len, const char *label) {
    if (j->ndeferred == j->cap) {
        j->cap = j->cap ? 2 * j->cap : 64;
        j->deferred = realloc(j->deferred, j->cap * sizeof *j->deferred);
        if (!j->deferred) abort();
    }
    pending *p = &j->deferred[j->ndeferred++];
    p->event_id = event_id;
    p->len = len;
    p->text = malloc(len + 1);
    p->label = strdup(label);
    if (!p->text || !p->label) abort();
    memcpy(p->text, text, len);
    p->text[len] = 0;
}

/* One mapped event's outcome: printed (dry), deferred, or stored with its requests. */
static int take_outcome(job *j, const pending *p, const map_result *r, const char *doc, size_t doclen) {
    if (j->o.dry) {                               /* as `returnflow map` prints it */
        if (r->status == MAP_DEFERRED) { defer(j, 0, p->text, p->len, p->label); return 0; }
        fwrite(doc, 1, doclen, stdout);
        fputc('\n', stdout);
        j->counts[r->status]++;
        if (r->status == MAP_FAILED) note_reason(j, r->reason);
        return 0;
    }
    if (r->status == MAP_DEFERRED) {              /* maybe its return comes later in the input */
        defer(j, p->event_id, p->text, p->len, p->label);
    } else {
        if (save_outcome(j, p->event_id, r) != 0) { store_log_error("cannot store the event's requests", j->db); return -1; }
        j->counts[r->status]++;
        if (r->status == MAP_FAILED) note_reason(j, r->reason);
    }
    j->batch++;
    j->done_through = p->seq;
    return 0;
}

/* Maps the queued events in the worker, a batch at a time (one round trip each, not one an event),
 * takes their outcomes in input order, then commits when a commit is due: only here, with nothing
 * queued. (A dry job, or one whose mapping thread would not start.) */
static int flush_here(job *j) {
    int rc = 0, done = 0, waits = 0;
    mapworker_event events[MAP_BATCH];
    while (done < j->nqueue && rc == 0) {
        int n = j->nqueue - done < MAP_BATCH ? j->nqueue - done : MAP_BATCH;
        for (int i = 0; i < n; i++) {
            const pending *p = &j->queue[done + i];
            events[i] = (mapworker_event){ p->event_id, p->text, p->len, p->label };
        }
        int k = mapworker_map_batch(j->m, events, n, j->o.dry);
        if (k < 0) {                              /* no worker now: its restart backs off */
            if (++waits > 600) {
                for (int i = done; i < j->nqueue && rc == 0; i++) {
                    map_result failed = { .status = MAP_FAILED, .reason = "no mapping worker would start" };
                    rc = take_outcome(j, &j->queue[i], &failed, "", 0);
                }
                break;
            }
            sleep_ms(100);
            continue;
        }
        for (int i = 0; i < k && rc == 0; i++) {
            size_t dlen = 0;
            const char *doc = mapworker_doc(j->m, i, &dlen);
            const map_result *r = mapworker_result(j->m, i);
            j->doc.len = 0;
            if (!doc && j->o.dry) {                /* the worker died on it: the document says so */
                const char *label = j->queue[done + i].label;
                strbuf_adds(&j->doc, "{\"input\":");
                json_append_string(&j->doc, label, strlen(label));
                strbuf_adds(&j->doc, ",\"trigger\":null,\"status\":\"failed\",\"reason\":");
                json_append_string(&j->doc, r->reason, strlen(r->reason));
                strbuf_adds(&j->doc, ",\"requests\":[],\"scheduled\":[],\"cancelled\":[]}");
                doc = j->doc.data;
                dlen = j->doc.len;
            }
            rc = take_outcome(j, &j->queue[done + i], r, doc ? doc : "", dlen);
        }
        done += k;
    }
    for (int i = 0; i < j->nqueue; i++) {
        free(j->queue[i].text);
        free(j->queue[i].label);
    }
    j->nqueue = 0;
    if (rc == 0 && !j->o.dry && j->batch >= COMMIT_EVERY && commit(j) != 0) rc = -1;
    progress(j, 0);
    return rc;
}

/* ------------------------------- piped ------------------------------------ */

/* Stores outcomes [from, from + n) of rs for the events at held (journaling each first, when the
 * job journals), in input order. */
static int store_range(job *j, pending *held, const map_results *rs, int from, int n) {
    for (int i = 0; i < n; i++) {
        pending *p = &held[i];
        if (!j->in_tx) {
            if (store_begin(j->db) != 0) { store_log_error("cannot store the job's batch", j->db); return -1; }
            j->in_tx = 1;
        }
        if (j->o.journal && store_journal_held(j->db, j->o.tenant->id, clock_now_ms(), p->text, p->len,
                                               &p->event_id) != 0) {
            store_log_error("cannot journal the event", j->db);
            return -1;
        }
        map_result r = map_results_get(rs, from + i, &j->view);
        if (take_outcome(j, p, &r, "", 0) != 0) return -1;
    }
    return 0;
}

/* Stores the mapped chunk in slot s, in one transaction, committed. Its events from the first that
 * may have read memory the chunk stored before it wrote (it was mapped meanwhile: job_pipe.c) are
 * mapped again first, once that chunk is committed; the chunk in the thread then is mapped again
 * after this one. */
static int store_slot(job *j, int s) {
    pipe_chunk *c = &j->chunk[s];
    pending *held = j->held[s];
    int n = c->n, rc = 0, taken = -1;
    int from = pipe_first_stale(c, j->clean[s] ? NULL : j->wrote);
    strmap *wrote = strmap_new();
    rc = store_range(j, held, &c->rs, 0, from);
    pipe_add_writes(c, from, wrote);
    while (rc == 0 && from < n) {
        if (taken < 0 && j->inflight >= 0) {      /* mapped before this chunk is stored: again, after */
            job_pipe_wait(j->pipe);
            taken = j->inflight;
            j->inflight = -1;
        }
        if (commit(j) != 0) { rc = -1; break; }
        pipe_chunk *again = &j->chunk[2];
        again->n = n - from;
        memcpy(again->ev, c->ev + from, (size_t)again->n * sizeof *again->ev);
        job_pipe_submit(j->pipe, again);
        job_pipe_wait(j->pipe);
        int ok = pipe_first_stale(again, NULL);   /* all before it committed: only its own batches */
        if (ok == 0) ok = 1;                      /* the first's reads all saw the store whole */
        rc = store_range(j, held + from, &again->rs, 0, ok);
        pipe_add_writes(again, ok, wrote);
        from += ok;
    }
    strmap_free(j->wrote);
    j->wrote = wrote;
    if (rc == 0 && commit(j) != 0) rc = -1;
    for (int i = 0; i < n; i++) {
        free(held[i].text);
        free(held[i].label);
    }
    if (taken >= 0) {
        j->clean[taken] = 1;
        job_pipe_submit(j->pipe, &j->chunk[taken]);
        j->inflight = taken;
    }
    return rc;
}

/* Hands the queued events to the mapping thread as a chunk, after taking back the chunk it mapped
 * before, which is then stored while the new one is mapped. With `drain`, until nothing is left. */
static int flush_piped(job *j, int drain) {
    int rc = 0;
    do {
        int prev = j->inflight, s = -1;
        if (j->nqueue) {
            s = prev == 0 ? 1 : 0;
            pipe_chunk *c = &j->chunk[s];
            memcpy(j->held[s], j->queue, (size_t)j->nqueue * sizeof *j->queue);
            c->n = j->nqueue;
            for (int i = 0; i < c->n; i++) {
                const pending *p = &j->held[s][i];
                /* the journal's id is given when it is stored: a worker's strike count goes by the place */
                c->ev[i] = (mapworker_event){ p->event_id ? p->event_id : -p->seq, p->text, p->len, p->label };
            }
            j->nqueue = 0;
        }
        if (prev >= 0) job_pipe_wait(j->pipe);
        j->inflight = -1;
        if (s >= 0) {
            j->clean[s] = 0;
            job_pipe_submit(j->pipe, &j->chunk[s]);
            j->inflight = s;
        }
        if (prev >= 0 && store_slot(j, prev) != 0) rc = -1;
        progress(j, 0);
    } while (drain && j->inflight >= 0);
    return rc;
}

static int flush(job *j) { return j->pipe ? flush_piped(j, 0) : flush_here(j); }

/* Everything read is mapped and stored. */
static int drain(job *j) { return j->pipe ? flush_piped(j, 1) : (j->nqueue ? flush_here(j) : 0); }

int job_event(job *j, long long event_id, const char *text, size_t len, const char *label) {
    if (j->o.interrupted && *j->o.interrupted) return -1;
    if (++j->seen <= j->skip) { j->done_through = j->seen; return 0; }
    if (!j->o.dry && !j->pipe && !j->in_tx) {
        if (store_begin(j->db) != 0) { store_log_error("cannot store the job's batch", j->db); return -1; }
        j->in_tx = 1;
    }
    if (!j->o.dry && !j->pipe && j->o.journal) {
        if (store_journal_held(j->db, j->o.tenant->id, clock_now_ms(), text, len, &event_id) != 0) {
            store_log_error("cannot journal the event", j->db);
            return -1;
        }
    }
    pending *p = &j->queue[j->nqueue++];
    p->event_id = event_id;
    p->seq = j->seen;
    p->len = len;
    p->text = malloc(len + 1);
    p->label = strdup(label);
    if (!p->text || !p->label) abort();
    memcpy(p->text, text, len);
    p->text[len] = 0;
    return j->nqueue == MAP_BATCH ? flush(j) : 0;
}

void job_invalid(job *j, const char *label, const char *reason) {
    drain(j);                                     /* its message after the events read before it */
    if (++j->seen <= j->skip) { j->done_through = j->seen; return; }
    j->done_through = j->seen;
    char why[600];
    snprintf(why, sizeof why, "invalid JSON: %s", reason);
    fprintf(stderr, "%s: %s\n", label, why);
    j->counts[MAP_FAILED]++;
    note_reason(j, why);
}

/* ------------------------------- the end ---------------------------------- */

/* Deferred events get one more try now that all input was read; still waiting is a failure. */
static void retry_deferred(job *j) {
    for (size_t i = 0; i < j->ndeferred; i++) {
        pending *p = &j->deferred[i];
        if (!j->in_tx && store_begin(j->db) == 0) j->in_tx = 1;
        j->doc.len = 0;
        map_status status = mapworker_map(j->m, p->text, p->len, p->label, &j->doc);
        map_result r = *mapworker_last(j->m);
        char why[800];
        if (status == MAP_DEFERRED) {
            snprintf(why, sizeof why, "still deferred at the end of the input: %.700s", r.reason);
            r = (map_result){ .status = MAP_FAILED, .reason = why };
            status = MAP_FAILED;
        }
        if (save_outcome(j, p->event_id, &r) != 0) store_log_error("cannot store the event's requests", j->db);
        j->counts[status]++;
        if (status == MAP_FAILED) note_reason(j, r.reason);
        free(p->text);
        free(p->label);
    }
    j->ndeferred = 0;
}

static void sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Until every request of the job is delivered or dead (or the tenant's key is refused). */
static int wait_delivered(job *j) {
    for (int round = 0;; round++) {
        if (j->o.interrupted && *j->o.interrupted) return -1;
        if (round % 5 == 0)                        /* serve may fire them too: a transaction a chunk */
            while (store_fire_schedules(j->db, j->o.tenant->id) >= STORE_FIRE_CHUNK) sleep_ms(2);
        if (tenant_is_dry(j->o.tenant)) while (dry_deliver(j->db, j->o.cfg->data_dir, j->o.tenant) > 0) {}
        /* An earlier run's rows of the job count too. A look-up, not a count: counting every row of
         * the job five times a second cost the job's thread as much CPU while a backfill at
         * Klaviyo's limits was delivered as reading its input had (10 s for 100,000 returns). */
        int waiting = store_job_waiting(j->db, j->id);
        if (waiting < 0) {                         /* the store could not say: the counts decide */
            long long queued, delivered, dead;
            job_counts(j, 0, &queued, &delivered, &dead);
            waiting = queued > 0;
        }
        if (!waiting) return 0;
        if (store_tenant_paused(j->db, j->o.tenant->id)) {
            long long queued, delivered, dead;
            job_counts(j, 0, &queued, &delivered, &dead);
            fprintf(stderr, "\n%s: Klaviyo refused tenant %s's key: %lld requests wait in the queue (fix the key; "
                            "serve or a rerun delivers them)\n", j->o.kind, j->o.tenant->id, queued);
            return -1;
        }
        progress(j, 0);
        sleep_ms(200);
    }
}

/* The metrics the job's delivered requests carry, with how many of each. */
typedef struct metric_counts { char names[64][200]; long long counts[64]; int n, profiles; } metric_counts;

static void count_metric(void *ud, const char *body, size_t len) {
    metric_counts *m = ud;
    char key[OUTBOX_DEDUP_MAX];
    if (bulk_event_key(body, len, key, sizeof key) != 0) {
        m->profiles++;
        return;
    }
    char *sep = strchr(key, 0x1f);
    if (sep) *sep = 0;
    if (key[0] == '"' && sep && sep[-1] == '"') {    /* the metric as JSON text: its quotes go */
        memmove(key, key + 1, strlen(key));
        key[strlen(key) - 1] = 0;
    }
    int i = 0;
    while (i < m->n && strcmp(m->names[i], key) != 0) i++;
    if (i == m->n && m->n < 64) { snprintf(m->names[m->n], sizeof m->names[m->n], "%.199s", key); m->counts[m->n++] = 0; }
    if (i < m->n) m->counts[i]++;
}

static void list_metrics(job *j) {
    metric_counts *m = calloc(1, sizeof *m);
    if (!m) abort();
    store_job_delivered(j->db, j->id, count_metric, m);
    if (m->n == 0 && m->profiles == 0) {
        fprintf(stderr, "%s: nothing new to send: every sample was delivered before from this data folder, so its "
                        "metric exists\n", j->o.kind);
        free(m);
        return;
    }
    fprintf(stderr, "%s: metrics sent (Klaviyo creates a metric with its first event):\n", j->o.kind);
    for (int i = 0; i < m->n; i++)
        fprintf(stderr, "  %-40s %lld event%s\n", m->names[i], m->counts[i], m->counts[i] == 1 ? "" : "s");
    if (m->profiles) fprintf(stderr, "  and %d profile update%s\n", m->profiles, m->profiles == 1 ? "" : "s");
    free(m);
}

static void print_dead_reason(void *ud, long long n, const char *reason) {
    (void)ud;
    fprintf(stderr, "  dead: %lld x %s\n", n, reason);
}

static void summary(job *j, int interrupted) {
    double secs = (double)(clock_now_ms() - j->started) / 1000.0;
    long long queued, delivered, dead;
    job_counts(j, j->started, &queued, &delivered, &dead);
    long long done = j->seen - (j->skip < j->seen ? j->skip : j->seen);
    if (j->tty && !j->o.quiet && !j->o.dry) fputs("\r\033[K", stderr);
    fprintf(stderr, "%s: %lld event%s read", j->o.kind, j->seen, j->seen == 1 ? "" : "s");
    if (j->skip) fprintf(stderr, " (%lld skipped: stored by an earlier run)", j->skip < j->seen ? j->skip : j->seen);
    fprintf(stderr, ": %lld mapped, %lld dropped, %lld failed", j->counts[MAP_MAPPED], j->counts[MAP_DROPPED],
            j->counts[MAP_FAILED]);
    if (j->ndeferred) fprintf(stderr, ", %zu deferred", j->ndeferred);
    fputc('\n', stderr);
    if (!j->o.dry) {
        fprintf(stderr, "%s: requests: %lld delivered, %lld dead letters, %lld queued, %lld already present "
                        "(delivered or queued before from this data folder)\n",
                j->o.kind, delivered, dead, queued, j->present);
        if (!j->o.live) fprintf(stderr, "%s: every event carries backfill: true (no flow fires)\n", j->o.kind);
    }
    for (int i = 0; i < j->nreasons; i++)
        fprintf(stderr, "  failed: %lld x %s\n", j->reasons[i].n, j->reasons[i].text);
    if (dead) store_job_dead_reasons(j->db, j->id, 5, print_dead_reason, NULL);
    if (j->o.list_metrics && !j->o.dry) list_metrics(j);
    if (j->o.dry)
        fprintf(stderr, "%s: dry: nothing was stored or sent\n", j->o.kind);
    else if (interrupted)
        fprintf(stderr, "%s: interrupted after %lld events; the same command with --resume continues there "
                        "(what is queued is delivered by serve or by that run)\n", j->o.kind, j->seen);
    else
        fprintf(stderr, "%s: done in %.1f s (%.0f events/s); job %s\n", j->o.kind, secs,
                secs > 0 ? (double)done / secs : 0, j->id);
}

int job_finish(job *j) {
    drain(j);                                     /* what was read is mapped, even when interrupted */
    if (j->pipe) {                                /* the deferred go on this thread, in order; the */
        mapworker_set_shared(j->m, 0);            /* mapping thread, idle, stays until the worker it may */
        mapworker_set_recall(j->m, recall, j);    /* have started is no longer used (it dies with it) */
    }
    int interrupted = j->o.interrupted && *j->o.interrupted;
    if (!j->o.dry) {
        if (!interrupted) retry_deferred(j);
        commit(j);
        if (!interrupted) {                       /* all input read: its schedules may fire */
            store_job_read_all(j->db, j->id, j->seen);
            if (wait_delivered(j) != 0) interrupted = j->o.interrupted && *j->o.interrupted;
            else store_job_finished(j->db, j->id, clock_now_ms());
        }
    } else {
        for (size_t i = 0; i < j->ndeferred; i++) {
            pending *p = &j->deferred[i];
            j->doc.len = 0;
            map_status status = mapworker_map(j->m, p->text, p->len, p->label, &j->doc);
            fwrite(j->doc.data, 1, j->doc.len, stdout);
            fputc('\n', stdout);
            j->counts[status]++;
            free(p->text);
            free(p->label);
        }
        j->ndeferred = 0;
    }
    if (j->d) deliver_stop(j->d);                 /* what is in flight stays queued */
    long long queued, delivered, dead;
    job_counts(j, j->started, &queued, &delivered, &dead);
    summary(j, interrupted);
    int rc = interrupted ? 130 : (j->counts[MAP_FAILED] || dead) ? 1 : 0;
    outbox_writer_free(j->writer);
    job_pipe_stop(j->pipe);
    for (int i = 0; i < 3; i++) pipe_chunk_free(&j->chunk[i]);
    map_results_view_free(&j->view);
    strmap_free(j->wrote);
    mapworker_free(j->m);
    checkpointer_stop(j->upkeep);
    store_db_close(j->db);
    strbuf_free(&j->doc);
    free(j->deferred);
    free(j->kept);
    free(j);
    return rc;
}
