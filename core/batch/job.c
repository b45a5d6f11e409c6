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
 * Historical events carry backfill: true unless --live, so no flow fires.
 * Their scheduled events (the day-21 reminder of a return two years old) are
 * held until all input is read, so a later event's cancel still applies.
 */
#include "job.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "bulk.h"
#include "deliver.h"
#include "json.h"
#include "mapper.h"
#include "outbox.h"
#include "snapshot.h"
#include "store.h"

#define COMMIT_EVERY 250
#define MAX_REASONS 8

typedef struct pending { long long event_id; char *text, *label; size_t len; } pending;
typedef struct reason { char text[240]; long long n; } reason;

struct job {
    job_options o;
    sqlite3 *db;
    outbox_writer *writer;
    mapper *m;
    deliverer *d;
    char id[48], version[SNAPSHOT_VERSION_LEN + 1];
    long long skip, seen, counts[4], present, batch;
    int in_tx, tty;
    pending *deferred;
    size_t ndeferred, cap;
    reason reasons[MAX_REASONS];
    int nreasons;
    strbuf doc;
    sqlite3_stmt *insert_event, *is_present;
    map_request *kept;
    int kept_cap;
    long long started, last_progress;
    long long base_queued, base_delivered, base_dead;   /* the job's rows before this run */
};

static int exec(sqlite3 *db, const char *sql) {
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static long long scalar(sqlite3 *db, const char *sql, const char *arg) {
    sqlite3_stmt *st;
    long long v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return 0;
    if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int recall(void *ud, const char *key, size_t klen, strbuf *out) {
    job *j = ud;
    return j->db ? outbox_recall(j->db, j->o.tenant->id, key, klen, out) : 0;
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
    long long now = outbox_now_ms();
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT next_input, finished_at IS NOT NULL FROM jobs WHERE id = ?", -1, &st, NULL)
        != SQLITE_OK) { snprintf(err, errlen, "cannot read the jobs: %s", sqlite3_errmsg(j->db)); return -1; }
    sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
    int existed = sqlite3_step(st) == SQLITE_ROW;
    long long stored = existed ? sqlite3_column_int64(st, 0) : 0;
    int finished = existed && sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
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
    if (sqlite3_prepare_v2(j->db, "INSERT INTO jobs(id, tenant, kind, input, next_input, reading, started_at, updated_at) "
                                  "VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6) ON CONFLICT(id) DO UPDATE SET "
                                  "next_input = ?5, reading = 1, updated_at = ?6, finished_at = NULL", -1, &st, NULL)
        != SQLITE_OK) { snprintf(err, errlen, "cannot record the job: %s", sqlite3_errmsg(j->db)); return -1; }
    sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->o.tenant->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, j->o.kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, j->o.identity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, j->skip);
    sqlite3_bind_int64(st, 6, now);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    if (!ok) { snprintf(err, errlen, "cannot record the job: %s", sqlite3_errmsg(j->db)); return -1; }
    return 0;
}

static void job_counts(job *j, long long since, long long *queued, long long *delivered, long long *dead);
static void sleep_ms(long ms);

job *job_open(const job_options *o, char *err, size_t errlen) {
    job *j = calloc(1, sizeof *j);
    if (!j) abort();
    j->o = *o;
    j->tty = isatty(2);
    j->started = j->last_progress = outbox_now_ms();
    job_id(o, j->id, sizeof j->id);
    if (snapshot_version(o->tenant->scripts, j->version, err, errlen) != 0) { free(j); return NULL; }
    char path[1100];
    snprintf(path, sizeof path, "%s/returnflow.db", o->cfg->data_dir);
    struct stat st;
    if (!o->dry || stat(path, &st) == 0) {
        if (!o->dry && mkdir(o->cfg->data_dir, 0750) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create the data directory %s: %s", o->cfg->data_dir, strerror(errno));
            free(j);
            return NULL;
        }
        int flags = o->dry ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
        if (sqlite3_open_v2(path, &j->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
            sqlite3_busy_timeout(j->db, 10000) != SQLITE_OK || (!o->dry && store_schema(j->db) != 0)) {
            snprintf(err, errlen, "cannot open the store %s: %s", path, sqlite3_errmsg(j->db));
            sqlite3_close(j->db);
            free(j);
            return NULL;
        }
        exec(j->db, "PRAGMA synchronous=NORMAL");
    }
    mapper_config mc = { .scripts_dir = o->tenant->scripts, .tenant = o->tenant->id, .key_kind = o->tenant->key_kind,
                         .site_id = o->tenant->site_id, .revision = o->tenant->revision,
                         .segments_property = o->tenant->segments_property, .backfill = !o->live, .caps = o->cfg->caps };
    strbuf problems = {0};
    j->m = mapper_new(&mc, &problems);
    if (!j->m) {
        snprintf(err, errlen, "the scripts in %s do not load:\n%.*s", o->tenant->scripts, (int)problems.len,
                 problems.data ? problems.data : "");
        strbuf_free(&problems);
        sqlite3_close(j->db);
        free(j);
        return NULL;
    }
    strbuf_free(&problems);
    mapper_set_recall(j->m, recall, j);
    if (o->dry) return j;
    if (register_job(j, err, errlen) != 0 ||
        !(j->writer = outbox_writer_new(j->db)) ||
        sqlite3_prepare_v2(j->db, "INSERT INTO events(tenant, received_at, body, state) VALUES (?, ?, ?, 5)", -1,
                           &j->insert_event, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(j->db, "SELECT 1 FROM outbox WHERE tenant = ? AND dedup = ? AND state IN (0, 1, 3) LIMIT 1",
                           -1, &j->is_present, NULL) != SQLITE_OK) {
        if (!err[0]) snprintf(err, errlen, "cannot prepare the job: %s", sqlite3_errmsg(j->db));
        outbox_writer_free(j->writer);
        sqlite3_finalize(j->insert_event);
        mapper_free(j->m);
        sqlite3_close(j->db);
        free(j);
        return NULL;
    }
    job_counts(j, 0, &j->base_queued, &j->base_delivered, &j->base_dead);
    /* The store turns automatic checkpoints off for serve's journal writer; a job writes a lot
     * and has no other checkpointer, so its connection checkpoints as SQLite does by default. */
    exec(j->db, "PRAGMA wal_autocheckpoint=4000");
    if (!tenant_is_dry(o->tenant)) {
        j->d = deliver_start(o->cfg, err, errlen);   /* waits for serve's lock if serve delivers */
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
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT state, count(*) FROM outbox WHERE job = ? GROUP BY state", -1, &st, NULL)
        != SQLITE_OK) return;
    sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        long long n = sqlite3_column_int64(st, 1);
        if (state == 1) *delivered += n;
        else if (state == 2) *dead += n;
        else *queued += n;
    }
    sqlite3_finalize(st);
    if (since) {                                  /* a row delivered now was queued before or now */
        *delivered -= j->base_delivered;
        *dead -= j->base_dead;
    }
}

static void progress(job *j, int final) {
    long long now = outbox_now_ms();
    if (j->o.quiet || j->o.dry) return;
    if (!final && now - j->last_progress < (j->tty ? 250 : 5000)) return;
    j->last_progress = now;
    long long queued, delivered, dead;
    job_counts(j, j->started, &queued, &delivered, &dead);
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
    sqlite3_stmt *st;
    int ok = sqlite3_prepare_v2(j->db, "UPDATE jobs SET next_input = ?, updated_at = ? WHERE id = ?", -1, &st, NULL)
             == SQLITE_OK;
    if (ok) {
        sqlite3_bind_int64(st, 1, j->seen);
        sqlite3_bind_int64(st, 2, outbox_now_ms());
        sqlite3_bind_text(st, 3, j->id, -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    ok = ok && exec(j->db, "COMMIT") == 0;
    if (!ok) {
        outbox_log_error("cannot store the job's batch", j->db);
        exec(j->db, "ROLLBACK");
    }
    j->in_tx = 0;
    j->batch = 0;
    /* Remembered values are in the store now; the mapper's copy is only a cache. */
    if (mapper_memory_count(j->m) > 4096) mapper_forget_memory(j->m);
    /* Let delivery (a thread here, or serve) take the write lock between two batches: back to back,
     * the next BEGIN would win every time and nothing would be sent until all input is read. */
    struct timespec pause = { 0, 2000000 };
    nanosleep(&pause, NULL);
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
            sqlite3_bind_text(j->is_present, 1, j->o.tenant->id, -1, SQLITE_STATIC);
            sqlite3_bind_text(j->is_present, 2, key, -1, SQLITE_STATIC);
            int present = sqlite3_step(j->is_present) == SQLITE_ROW;
            sqlite3_reset(j->is_present);
            if (present) { j->present++; continue; }
        }
        j->kept[n++] = q;
    }
    k.requests = j->kept;
    k.nrequests = n;
    if (j->o.schedules_now) k.ncancels = 0;
    return k;
}

static int store_outcome(job *j, long long event_id, const map_result *r) {
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

int job_event(job *j, long long event_id, const char *text, size_t len, const char *label) {
    if (j->o.interrupted && *j->o.interrupted) return -1;
    if (++j->seen <= j->skip) return 0;
    j->doc.len = 0;
    if (j->o.dry) {                               /* as `returnflow map` prints it */
        map_status status = mapper_map(j->m, text, len, label, &j->doc);
        if (status == MAP_DEFERRED) { defer(j, 0, text, len, label); return 0; }
        fwrite(j->doc.data, 1, j->doc.len, stdout);
        fputc('\n', stdout);
        j->counts[status]++;
        if (status == MAP_FAILED) note_reason(j, mapper_reason(j->m));
        return 0;
    }
    if (!j->in_tx) {
        if (exec(j->db, "BEGIN IMMEDIATE") != 0) { outbox_log_error("cannot store the job's batch", j->db); return -1; }
        j->in_tx = 1;
    }
    if (j->o.journal) {
        sqlite3_bind_text(j->insert_event, 1, j->o.tenant->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(j->insert_event, 2, outbox_now_ms());
        sqlite3_bind_blob(j->insert_event, 3, text, (int)len, SQLITE_STATIC);
        int ok = sqlite3_step(j->insert_event) == SQLITE_DONE;
        sqlite3_reset(j->insert_event);
        if (!ok) { outbox_log_error("cannot journal the event", j->db); return -1; }
        event_id = sqlite3_last_insert_rowid(j->db);
    }
    map_status status = mapper_map(j->m, text, len, label, &j->doc);
    const map_result *r = mapper_result(j->m);
    if (status == MAP_DEFERRED) {                 /* maybe its return comes later in the input */
        defer(j, event_id, text, len, label);
    } else {
        if (store_outcome(j, event_id, r) != 0) { outbox_log_error("cannot store the event's requests", j->db); return -1; }
        j->counts[status]++;
        if (status == MAP_FAILED) note_reason(j, r->reason);
    }
    if (++j->batch >= COMMIT_EVERY && commit(j) != 0) return -1;
    progress(j, 0);
    return 0;
}

void job_invalid(job *j, const char *label, const char *reason) {
    if (++j->seen <= j->skip) return;
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
        if (!j->in_tx && exec(j->db, "BEGIN IMMEDIATE") == 0) j->in_tx = 1;
        j->doc.len = 0;
        map_status status = mapper_map(j->m, p->text, p->len, p->label, &j->doc);
        map_result r = *mapper_result(j->m);
        char why[800];
        if (status == MAP_DEFERRED) {
            snprintf(why, sizeof why, "still deferred at the end of the input: %.700s", r.reason);
            r = (map_result){ .status = MAP_FAILED, .reason = why };
            status = MAP_FAILED;
        }
        if (store_outcome(j, p->event_id, &r) != 0) outbox_log_error("cannot store the event's requests", j->db);
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
            while (outbox_fire_schedules(j->db, j->o.tenant->id) >= OUTBOX_FIRE_CHUNK) sleep_ms(2);
        if (tenant_is_dry(j->o.tenant)) while (outbox_write_dry(j->db, j->o.cfg->data_dir, j->o.tenant) > 0) {}
        long long queued, delivered, dead;
        job_counts(j, 0, &queued, &delivered, &dead);     /* an earlier run's queue counts too */
        if (queued == 0) return 0;
        if (scalar(j->db, "SELECT count(*) FROM tenant_status WHERE tenant = ? AND paused = 1", j->o.tenant->id)) {
            fprintf(stderr, "\n%s: Klaviyo refused tenant %s's key: %lld requests wait in the queue (fix the key; "
                            "serve or a rerun delivers them)\n", j->o.kind, j->o.tenant->id, queued);
            return -1;
        }
        progress(j, 0);
        sleep_ms(200);
    }
}

/* The metrics the job's delivered requests carry, with how many of each. */
static void list_metrics(job *j) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT body FROM outbox WHERE job = ? AND state = 1 ORDER BY id", -1, &st, NULL)
        != SQLITE_OK) return;
    sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
    char names[64][200];
    long long counts[64];
    int n = 0, profiles = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char key[OUTBOX_DEDUP_MAX];
        if (bulk_event_key(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), key, sizeof key) != 0) {
            profiles++;
            continue;
        }
        char *sep = strchr(key, 0x1f);
        if (sep) *sep = 0;
        if (key[0] == '"' && sep && sep[-1] == '"') {    /* the metric as JSON text: its quotes go */
            memmove(key, key + 1, strlen(key));
            key[strlen(key) - 1] = 0;
        }
        int i = 0;
        while (i < n && strcmp(names[i], key) != 0) i++;
        if (i == n && n < 64) { snprintf(names[n], sizeof names[n], "%.199s", key); counts[n++] = 0; }
        if (i < n) counts[i]++;
    }
    sqlite3_finalize(st);
    if (n == 0 && profiles == 0) {
        fprintf(stderr, "%s: nothing new to send: every sample was delivered before from this data folder, so its "
                        "metric exists\n", j->o.kind);
        return;
    }
    fprintf(stderr, "%s: metrics sent (Klaviyo creates a metric with its first event):\n", j->o.kind);
    for (int i = 0; i < n; i++) fprintf(stderr, "  %-40s %lld event%s\n", names[i], counts[i], counts[i] == 1 ? "" : "s");
    if (profiles) fprintf(stderr, "  and %d profile update%s\n", profiles, profiles == 1 ? "" : "s");
}

static void summary(job *j, int interrupted) {
    double secs = (double)(outbox_now_ms() - j->started) / 1000.0;
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
    sqlite3_stmt *st;
    if (dead && sqlite3_prepare_v2(j->db, "SELECT count(*), substr(last_error, 1, 200) FROM outbox WHERE job = ? AND "
                                          "state = 2 GROUP BY 2 ORDER BY 1 DESC LIMIT 5", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW)
            fprintf(stderr, "  dead: %lld x %s\n", sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
        sqlite3_finalize(st);
    }
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
    int interrupted = j->o.interrupted && *j->o.interrupted;
    if (!j->o.dry) {
        if (!interrupted) retry_deferred(j);
        commit(j);
        if (!interrupted) {                       /* all input read: its schedules may fire */
            sqlite3_stmt *st;
            if (sqlite3_prepare_v2(j->db, "UPDATE jobs SET reading = 0, next_input = ? WHERE id = ?", -1, &st, NULL)
                == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, j->seen);
                sqlite3_bind_text(st, 2, j->id, -1, SQLITE_STATIC);
                sqlite3_step(st);
                sqlite3_finalize(st);
            }
            if (wait_delivered(j) != 0) interrupted = j->o.interrupted && *j->o.interrupted;
            else {
                sqlite3_stmt *fin;
                if (sqlite3_prepare_v2(j->db, "UPDATE jobs SET finished_at = ? WHERE id = ?", -1, &fin, NULL) == SQLITE_OK) {
                    sqlite3_bind_int64(fin, 1, outbox_now_ms());
                    sqlite3_bind_text(fin, 2, j->id, -1, SQLITE_STATIC);
                    sqlite3_step(fin);
                    sqlite3_finalize(fin);
                }
            }
        }
    } else {
        for (size_t i = 0; i < j->ndeferred; i++) {
            pending *p = &j->deferred[i];
            j->doc.len = 0;
            map_status status = mapper_map(j->m, p->text, p->len, p->label, &j->doc);
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
    sqlite3_finalize(j->insert_event);
    sqlite3_finalize(j->is_present);
    mapper_free(j->m);
    sqlite3_close(j->db);
    strbuf_free(&j->doc);
    free(j->deferred);
    free(j->kept);
    free(j);
    return rc;
}
