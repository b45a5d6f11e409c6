/*
 * checkpointer.c: the store's upkeep on a thread of its own.
 *
 * SQLite copies the WAL back into the database (a checkpoint) inside whichever commit crosses its
 * threshold, so a writer that commits often stalls for it: serve's journal writer (whose
 * acknowledgements would wait) and a batch job's mapping thread (13% of its time in `send`, perf).
 * Here a thread with its own connection runs store_maintain once a second instead: passive
 * checkpoints, which never wait on a writer, and a restart of the WAL when it grew and the journal
 * is quiet (store_db.c says when). Writers then turn their own automatic checkpoints off.
 *
 * Lifecycle: start opens the connection, then the thread; stop sets `stopping`, signals, joins,
 * then closes the connection. The connection is the thread's alone between the two.
 */
#include "checkpointer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_db.h"

struct checkpointer {
    store_db *db;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;            /* signalled only to stop */
    int stopping;
};

static void *checkpointer_main(void *arg) {
    checkpointer *c = arg;
    pthread_setname_np(pthread_self(), "rf-checkpoint");
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);      /* cv's clock: a step of the wall clock cannot stretch it */
        until.tv_sec += 1;
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0 || c->stopping) continue;
        pthread_mutex_unlock(&c->mu);
        store_maintain(c->db);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

checkpointer *checkpointer_start(const char *location, char *err, size_t errlen) {
    checkpointer *c = calloc(1, sizeof *c);
    if (!c) abort();
    if (!(c->db = store_db_open(location, 0, err, errlen))) goto fail_db;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &attr);
    pthread_condattr_destroy(&attr);
    int rc = pthread_create(&c->thread, NULL, checkpointer_main, c);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the store's upkeep thread: %s", strerror(rc));
        goto fail_thread;
    }
    return c;
fail_thread:
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    store_db_close(c->db);
fail_db:
    free(c);
    return NULL;
}

void checkpointer_stop(checkpointer *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    store_db_close(c->db);
    free(c);
}
