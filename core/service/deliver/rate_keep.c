/*
 * rate_keep.c: the rate windows outlive their deliverer, so a new one does not spend again what the
 * old one spent. Klaviyo counts a minute of requests whoever sends them: a deliverer that started
 * with empty windows after a kill -9 (or SIGHUP's new deliverer) could send another full window on
 * top of the old one's, and Klaviyo answers 429.
 *
 * Two ways across:
 * - in the process (SIGHUP): at its stop a deliverer keeps each tenant's requests still counted, by
 *   tenant id, and the next deliverer of the process counts them again when it takes the lock;
 * - across processes (kill -9, serve after `returnflow send`): the lock holder writes them to
 *   DATA/delivery.rate before each launch of new requests (so a request is on file before it leaves),
 *   and a deliverer that takes the lock reads the file.
 * Whichever was saved later is used. Times are the monotonic clock's, which every process of the
 * machine shares until it reboots: the file names the boot, and a file of another boot counts its
 * requests as of the load and forgets its 429 cool-downs. A request still unanswered when saved
 * counts from the load (Klaviyo may have counted it any moment before): never less than it spent.
 *
 * The file: a header line, "boot BOOT_ID", "saved MONO_MS", then a line a tenant and class: TENANT
 * CLASS COOL_UNTIL N and N ages (ms before saved, in take order; "p": not answered yet).
 * It is written without fsync: a kill -9 keeps the page cache; a power loss reboots the
 * machine. Its size is bounded by the requests of the last minute (real limits: at most 4,550 a
 * tenant, about 30 KB). A file that cannot be written or read leaves the windows as they are (the
 * in-process handover still works); it is logged once.
 */
#include "deliverer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define KEEP_HEADER "returnflow delivery rate windows 1"

typedef struct kept_windows {
    char id[128];
    long long saved_at, cool[CLASSES];
    long long *times[CLASSES];
    int n[CLASSES];
} kept_windows;

static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;
static kept_windows *kept;
static int nkept;

static void boot_id(char *out, size_t len) {
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f || !fgets(out, (int)len, f)) snprintf(out, len, "unknown");
    if (f) fclose(f);
    out[strcspn(out, "\r\n")] = 0;
}

/* A tenant's windows as kept: its requests still counted at now, by class. */
static void snapshot(const tenant_state *ts, long long now, kept_windows *k) {
    snprintf(k->id, sizeof k->id, "%s", ts->tc->id);
    k->saved_at = now;
    for (int c = 0; c < CLASSES; c++) {
        free(k->times[c]);
        k->times[c] = malloc(((size_t)ts->rate.steady[c].cap + 1) * sizeof *k->times[c]);
        if (!k->times[c]) abort();
        k->n[c] = rate_history(&ts->rate, (rate_class)c, now, k->times[c]);
        k->cool[c] = ts->rate.cooldown_until[c];
    }
}

static void adopt(tenant_state *ts, const kept_windows *k, long long now, int same_boot) {
    for (int c = 0; c < CLASSES; c++) {
        if (!same_boot)
            for (int i = 0; i < k->n[c]; i++) k->times[c][i] = RATE_PENDING;   /* counts from now */
        rate_replay(&ts->rate, (rate_class)c, k->times[c], k->n[c], now);
        if (same_boot && k->cool[c] > ts->rate.cooldown_until[c]) ts->rate.cooldown_until[c] = k->cool[c];
    }
}

static void kept_free(kept_windows *k) {
    for (int c = 0; c < CLASSES; c++) free(k->times[c]);
    memset(k, 0, sizeof *k);
}

/* --------------------------------- the file -------------------------------- */

void rate_keep_save(deliverer *d) {
    char path[1100], tmp[1110], boot[64];
    long long now = clock_mono_ms();
    snprintf(path, sizeof path, "%s/delivery.rate", d->cfg->data_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    boot_id(boot, sizeof boot);
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, KEEP_HEADER "\nboot %s\nsaved %lld\n", boot, now) > 0;
    kept_windows k = {0};
    for (int i = 0; ok && i < d->ntenants; i++) {
        snapshot(&d->tenants[i], now, &k);
        for (int c = 0; ok && c < CLASSES; c++) {
            ok = fprintf(f, "%s %s %lld %d", k.id, rate_class_name((rate_class)c), k.cool[c], k.n[c]) > 0;
            for (int j = 0; ok && j < k.n[c]; j++)      /* ages in ms (short), "p" for pending */
                ok = k.times[c][j] == RATE_PENDING ? fputs(" p", f) != EOF
                                                   : fprintf(f, " %lld", now - k.times[c][j]) > 0;
            ok = ok && fputc('\n', f) != EOF;
        }
    }
    kept_free(&k);
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) == 0) { d->rate_save_failed = 0; return; }
    unlink(tmp);
    if (!d->rate_save_failed++)
        log_line("warn", "cannot write DATA/delivery.rate: a restart starts with empty rate windows", NULL);
}

/* The file's windows of tenant id (k), and whether they are of this boot; 0 if the file has none. */
static int load_file(const deliverer *d, const char *id, kept_windows *k, int *same_boot) {
    char path[1100], boot[64], line_boot[64];
    snprintf(path, sizeof path, "%s/delivery.rate", d->cfg->data_dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char head[64];
    long long saved;
    int found = 0;
    if (!fgets(head, sizeof head, f) || strncmp(head, KEEP_HEADER, strlen(KEEP_HEADER)) != 0 ||
        fscanf(f, "boot %63s saved %lld", line_boot, &saved) != 2) { fclose(f); return 0; }
    boot_id(boot, sizeof boot);
    *same_boot = strcmp(boot, line_boot) == 0;
    char tenant[128], cls[16];
    long long cool;
    int n;
    while (fscanf(f, "%127s %15s %lld %d", tenant, cls, &cool, &n) == 4 && n >= 0 && n <= 1000000) {
        int c = 0;
        while (c < CLASSES && strcmp(rate_class_name((rate_class)c), cls) != 0) c++;
        int mine = c < CLASSES && strcmp(tenant, id) == 0;
        if (mine) {
            free(k->times[c]);
            k->times[c] = malloc(((size_t)n + 1) * sizeof *k->times[c]);
            if (!k->times[c]) abort();
            k->n[c] = 0;
            k->cool[c] = cool;
            found = 1;
        }
        for (int j = 0; j < n; j++) {
            char word[24];
            if (fscanf(f, "%23s", word) != 1) { fclose(f); return found; }
            if (mine) k->times[c][k->n[c]++] = word[0] == 'p' ? RATE_PENDING : saved - strtoll(word, NULL, 10);
        }
    }
    fclose(f);
    k->saved_at = saved;
    return found;
}

/* ------------------------------- the process ------------------------------- */

static kept_windows *kept_of(const char *id, int add) {
    for (int i = 0; i < nkept; i++) if (strcmp(kept[i].id, id) == 0) return &kept[i];
    if (!add) return NULL;
    kept = realloc(kept, (size_t)(nkept + 1) * sizeof *kept);
    if (!kept) abort();
    memset(&kept[nkept], 0, sizeof *kept);
    return &kept[nkept++];
}

void rate_keep_stop(deliverer *d) {
    if (!d->locked) return;                       /* it sent nothing: what is kept, or on file, stands */
    rate_keep_save(d);
    long long now = clock_mono_ms();
    pthread_mutex_lock(&kept_mu);
    for (int i = 0; i < d->ntenants; i++) snapshot(&d->tenants[i], now, kept_of(d->tenants[i].tc->id, 1));
    pthread_mutex_unlock(&kept_mu);
}

void rate_keep_restore(deliverer *d) {
    long long now = clock_mono_ms();
    for (int i = 0; i < d->ntenants; i++) {
        tenant_state *ts = &d->tenants[i];
        kept_windows from_file = {0};
        int same_boot = 1, on_file = load_file(d, ts->tc->id, &from_file, &same_boot);
        pthread_mutex_lock(&kept_mu);
        kept_windows *here = kept_of(ts->tc->id, 0);
        if (here && (!on_file || !same_boot || here->saved_at >= from_file.saved_at)) adopt(ts, here, now, 1);
        else if (on_file) adopt(ts, &from_file, now, same_boot);
        pthread_mutex_unlock(&kept_mu);
        kept_free(&from_file);
    }
}
