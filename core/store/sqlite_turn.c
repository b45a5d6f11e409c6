/*
 * sqlite_turn.c: the write transactions of this process's SQLite connections take turns: the
 * journal first, and every other writer, in the order it asked, at least every TURN_AGING_US.
 *
 * Why: SQLite has one write lock per database, and a connection that finds it taken sleeps in its
 * busy handler (1 ms, 2 ms, ... 100 ms) and tries again. The journal writer asks again the instant
 * it commits (under a burst its queue is never empty), so a mapping thread asleep in that handler
 * almost never finds the lock free: during a 10 s burst at the full ack rate, 24 events were mapped
 * (issue 14). Plain arrival order went too far the other way: every journal commit then waited for a
 * mapping transaction, and the acks per second halved. So the journal (whose commit a webhook's 202
 * waits for) goes first: the others (mapping threads, delivery, schedules) take the lock when the
 * journal has been quiet for JOURNAL_QUIET_US, and at the latest after TURN_AGING_US at the head of
 * their queue. Under a burst a mapping thread then commits a chunk of its batch every 12 ms (a
 * thousand and more events a second), and a webhook waits for at most one such chunk. Other processes (a batch job, `returnflow dlq`) still meet
 * the busy handler, as before; they are rare writers.
 */
#include "store_sqlite.h"

#include <pthread.h>
#include <time.h>

#define TURN_AGING_US 12000       /* the longest a writer other than the journal waits behind it: at
                                     20 ms a burst left mapping 0.21x of its idle rate, at 12 ms 0.33x
                                     with acks still >= 20,000/s at p99 <= 10 ms (bench/serve.sh) */
#define JOURNAL_QUIET_US 2000     /* the journal counts as busy this long after its last commit */

static pthread_mutex_t turn_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cv;                  /* on CLOCK_MONOTONIC (turn_init) */
static pthread_once_t turn_once = PTHREAD_ONCE_INIT;
static int turn_taken;                          /* a write transaction is open */
static int journal_waiting;
static long long journal_done_at;               /* us: the journal's last turn ended */
static unsigned long long next_ticket, now_serving;   /* the other writers, in arrival order */
static long long head_since;                    /* us: when now_serving's holder came to the head */

static void turn_init(void) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&turn_cv, &attr);
    pthread_condattr_destroy(&attr);
}

static long long mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void wait_until(long long us) {
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };
    pthread_cond_timedwait(&turn_cv, &turn_mu, &ts);
}

static void take_turn(store_db *db) {
    pthread_once(&turn_once, turn_init);
    pthread_mutex_lock(&turn_mu);
    if (db->journal) {
        journal_waiting++;
        /* Behind the other writers only when the first of them has waited its TURN_AGING_US. */
        while (turn_taken || (next_ticket != now_serving && mono_us() - head_since >= TURN_AGING_US))
            pthread_cond_wait(&turn_cv, &turn_mu);
        journal_waiting--;
    } else {
        unsigned long long ticket = next_ticket++;
        if (ticket == now_serving) head_since = mono_us();
        for (;;) {
            if (turn_taken || ticket != now_serving) { pthread_cond_wait(&turn_cv, &turn_mu); continue; }
            long long now = mono_us(), aged = head_since + TURN_AGING_US, quiet = journal_done_at + JOURNAL_QUIET_US;
            if (now >= aged || (!journal_waiting && now >= quiet)) break;
            wait_until(journal_waiting || quiet > aged ? aged : quiet);
        }
        now_serving++;
        head_since = mono_us();                 /* the next in line comes to the head now */
    }
    turn_taken = 1;
    pthread_mutex_unlock(&turn_mu);
    db->holds_turn = 1;
}

static void give_turn(store_db *db) {
    if (!db->holds_turn) return;
    db->holds_turn = 0;
    pthread_mutex_lock(&turn_mu);
    turn_taken = 0;
    if (db->journal) journal_done_at = mono_us();
    pthread_cond_broadcast(&turn_cv);
    pthread_mutex_unlock(&turn_mu);
}

/* Asked by a writer holding its turn: it commits early when another waits (store_write_wanted). Other
 * processes' writers are not seen here: they wait in the busy handler, as they always did. */
int store_sqlite_write_wanted(store_db *db) {
    (void)db;
    pthread_once(&turn_once, turn_init);
    pthread_mutex_lock(&turn_mu);
    int wanted = journal_waiting > 0 || next_ticket != now_serving;
    pthread_mutex_unlock(&turn_mu);
    return wanted;
}

/* The turn without a transaction, as any writer other than the journal takes it: for the checkpoint
 * that lets the WAL start again (store_db.c), which must not run beside this process's writers. */
void store_sqlite_turn_take(store_db *db) { take_turn(db); }
void store_sqlite_turn_end(store_db *db) { give_turn(db); }

long long store_sqlite_journal_quiet_ms(void) {
    pthread_once(&turn_once, turn_init);
    pthread_mutex_lock(&turn_mu);
    long long quiet = journal_waiting ? 0 : (mono_us() - journal_done_at) / 1000;
    pthread_mutex_unlock(&turn_mu);
    return quiet;
}

int store_sqlite_write_begin(store_db *db) {
    take_turn(db);
    if (sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) return 0;
    store_sqlite_keep_error(db, sqlite3_extended_errcode(db->db), sqlite3_errmsg(db->db));
    give_turn(db);
    return -1;
}

int store_sqlite_write_commit(store_db *db) {
    if (sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) return -1;   /* the caller rolls back */
    give_turn(db);
    return 0;
}

void store_sqlite_write_rollback(store_db *db) {
    sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
    give_turn(db);
}
