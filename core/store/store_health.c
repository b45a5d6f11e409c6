/*
 * store_health.c: see store_health.h.
 *
 * Invariant: a part's state changes only through store_health_failed and store_health_ok, each of
 * which logs exactly when the state changes; readers copy under the lock.
 */
#include "store_health.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "log.h"

static const char *const part_names[STORE_PARTS] = { "journal", "mapping", "delivery" };

static struct {
    pthread_mutex_t mu;
    int failing[STORE_PARTS];
    char why[STORE_PARTS][300];
    unsigned long long failures[STORE_PARTS];
    int damaged;
    char damage[300];
    char *file;
} health = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const char *fault_words(store_fault f) {
    switch (f) {
    case STORE_FAULT_BUSY: return "the store stayed locked past the busy timeout";
    case STORE_FAULT_FULL: return "the disk is full: the store refuses writes";
    case STORE_FAULT_IO: return "the system refused a read or a write (I/O error)";
    case STORE_FAULT_DAMAGED: return "the store file is damaged";
    default: return "the store refused the operation";
    }
}

/* Under the lock: the state and its reason. */
static store_health_state state_locked(char *why, size_t len) {
    if (health.damaged) { snprintf(why, len, "%s", health.damage); return STORE_DAMAGED; }
    for (int p = 0; p < STORE_PARTS; p++)
        if (health.failing[p]) { snprintf(why, len, "%s", health.why[p]); return STORE_DEGRADED; }
    if (len) why[0] = 0;
    return STORE_READY;
}

/* Under the lock: the file (the state's name, then its reason, a line each), written whole then
 * renamed; on a full disk this may fail, and the log has it. */
static void write_file_locked(void) {
    if (!health.file) return;
    char why[400], tmp[4200];
    store_health_state s = state_locked(why, sizeof why);
    for (char *c = why; *c; c++) if (*c == '\n' || *c == '\r') *c = ' ';
    snprintf(tmp, sizeof tmp, "%s.tmp", health.file);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fprintf(f, "%s\n%s\n", store_health_name(s), why) > 0;
    if (f && fclose(f) != 0) ok = 0;
    if (ok) ok = rename(tmp, health.file) == 0;
    if (!ok) unlink(tmp);
}

static void log_change(const char *level, const char *msg, store_part part, const char *why) {
    strbuf f = {0};
    strbuf_adds(&f, "\"part\":\"");
    strbuf_adds(&f, part_names[part]);
    strbuf_adds(&f, "\",\"reason\":");
    json_append_string(&f, why, strlen(why));
    strbuf_addc(&f, 0);
    log_line(level, msg, f.data);
    strbuf_free(&f);
}

void store_health_failed(store_part part, store_fault fault, const char *why) {
    char reason[300];
    snprintf(reason, sizeof reason, "%s: %s (%.160s)", part_names[part], fault_words(fault), why ? why : "");
    pthread_mutex_lock(&health.mu);
    int change = !health.failing[part], new_damage = fault == STORE_FAULT_DAMAGED && !health.damaged;
    if (change) {
        health.failing[part] = 1;
        health.failures[part]++;
        snprintf(health.why[part], sizeof health.why[part], "%s", reason);
    }
    if (new_damage) {
        health.damaged = 1;
        snprintf(health.damage, sizeof health.damage, "%s", reason);
    }
    if (change || new_damage) write_file_locked();
    pthread_mutex_unlock(&health.mu);
    if (new_damage)
        log_change("error", "the store is damaged: webhooks are refused (503) until it is checked and recovered "
                            "(returnflow store check; docs/operations.md)", part, reason);
    else if (change)
        log_change("error", "the store refuses this part's writes or reads: it keeps its work and tries again; "
                            "/healthz says degraded", part, reason);
}

void store_health_ok(store_part part) {
    char was[300];
    pthread_mutex_lock(&health.mu);
    int change = health.failing[part];
    if (change) {                             /* (called after every mapping commit: cheap when well) */
        snprintf(was, sizeof was, "%s", health.why[part]);
        health.failing[part] = 0;
        health.why[part][0] = 0;
        write_file_locked();
    }
    pthread_mutex_unlock(&health.mu);
    if (change) log_change("info", "the store takes this part's writes and reads again", part, was);
}

store_health_state store_health_get(char *why, size_t len) {
    pthread_mutex_lock(&health.mu);
    store_health_state s = state_locked(why, len);
    pthread_mutex_unlock(&health.mu);
    return s;
}

const char *store_health_name(store_health_state s) {
    return s == STORE_DAMAGED ? "damaged" : s == STORE_DEGRADED ? "degraded" : "ready";
}

void store_health_metrics(strbuf *out) {
    char why[400], line[256];
    pthread_mutex_lock(&health.mu);
    store_health_state s = state_locked(why, sizeof why);
    strbuf_adds(out, "# HELP returnflow_store_degraded 1 while a part of the service finds the store refusing "
                     "writes or reads (or damaged).\n# TYPE returnflow_store_degraded gauge\n");
    snprintf(line, sizeof line, "returnflow_store_degraded %d\n", s != STORE_READY);
    strbuf_adds(out, line);
    strbuf_adds(out, "# HELP returnflow_store_damaged 1 once the store was found damaged (until a restart).\n"
                     "# TYPE returnflow_store_damaged gauge\n");
    snprintf(line, sizeof line, "returnflow_store_damaged %d\n", s == STORE_DAMAGED);
    strbuf_adds(out, line);
    strbuf_adds(out, "# HELP returnflow_store_failures_total Times a part of the service found the store refusing "
                     "it, by part.\n# TYPE returnflow_store_failures_total counter\n");
    for (int p = 0; p < STORE_PARTS; p++) {
        snprintf(line, sizeof line, "returnflow_store_failures_total{part=\"%s\"} %llu\n", part_names[p],
                 health.failures[p]);
        strbuf_adds(out, line);
    }
    pthread_mutex_unlock(&health.mu);
}

void store_health_set_file(const char *path) {
    pthread_mutex_lock(&health.mu);
    free(health.file);
    health.file = path ? strdup(path) : NULL;
    if (path && !health.file) abort();
    write_file_locked();
    pthread_mutex_unlock(&health.mu);
}

int store_health_read_file(const char *path, char *state, size_t slen, char *reason, size_t rlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char line[512];
    int ok = fgets(line, sizeof line, f) != NULL;
    if (ok) snprintf(state, slen, "%.*s", (int)strcspn(line, "\n"), line);
    if (ok && fgets(line, sizeof line, f)) snprintf(reason, rlen, "%.*s", (int)strcspn(line, "\n"), line);
    else if (rlen) reason[0] = 0;
    fclose(f);
    return ok;
}
