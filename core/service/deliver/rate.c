/*
 * rate.c: see rate.h.
 *
 * Klaviyo counts requests in any window of a second (burst) and of a minute (steady), as the
 * stand-in does: a token bucket that refills continuously lets twice the burst through in a second.
 * So each limit is a window of the last `cap` requests: one more may go when the oldest of them
 * was counted over a window ago. Klaviyo counts a request when it arrives, at some instant between
 * our send and its answer; network and server queues vary that instant, so a request sent a window
 * after another's send can arrive within a second of it (a burst that waited in Klaviyo's queue,
 * then one that did not: 11 429s in 1,000 /client/events before). So a request counts from its
 * answer (rate_answered), and until then it is pending: it holds its place in the window however
 * old it is, since Klaviyo may count it at any moment before it answers. Then for any two requests
 * a and b, b's arrival minus a's >= b's send minus a's answer >= the span, whatever the queues and
 * the network did, and whatever the time of the tick that chose b (a scan and the transaction that
 * marks rows in flight may take a while before the send). The windows are a little longer than
 * Klaviyo's too (WINDOW_SLACK_MS): Klaviyo's clock and its way of cutting windows are not ours.
 * Times are the monotonic clock's (clock_mono_ms): a step of the wall clock neither stalls the
 * windows for an hour nor opens them. Invariant: nothing is taken unless both windows of its class
 * have room, and every take is answered or released, so a healthy run sees no 429.
 */
#include "rate.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define PENDING LLONG_MAX             /* taken, not answered: Klaviyo may count it any moment */
#define WINDOW_SLACK_MS 100
#define BULK_SLACK_MS 250             /* a 5 MB job arrives later, and its lateness varies more */

static const double burst_per_s[CLASSES] = { 350, 10, 75, 10 };
static const double steady_per_min[CLASSES] = { 3500, 150, 750, 150 };
static const char *const class_names[CLASSES] = { "events", "bulk", "profiles", "other" };

rate_class rate_class_of(const char *path) {
    if (strstr(path, "event-bulk-create") || strstr(path, "profile-bulk-import")) return CLASS_BULK;
    if (strstr(path, "/events")) return CLASS_EVENTS;
    if (strstr(path, "profile-import") || strstr(path, "/profiles") || strstr(path, "subscription")) return CLASS_PROFILES;
    return CLASS_OTHER;
}

const char *rate_class_name(rate_class c) { return class_names[c]; }

void rate_window_init(rate_window *w, double capacity, long long span_ms, long long slack_ms) {
    w->cap = capacity >= 1 ? (int)capacity : 1;
    w->sent = calloc((size_t)w->cap, sizeof *w->sent);
    if (!w->sent) abort();
    w->head = w->count = 0;
    w->takes = w->last_sent = 0;
    w->span_ms = span_ms + slack_ms;
}

int rate_window_room(const rate_window *w, long long now) {
    return w->count < w->cap || (w->sent[w->head] != PENDING && now - w->sent[w->head] >= w->span_ms);
}

void rate_window_take(rate_window *w, long long now) {
    if (w->count < w->cap) {
        w->sent[(w->head + w->count++) % w->cap] = PENDING;
    } else {
        w->sent[w->head] = PENDING;               /* the oldest goes, this one is the newest */
        w->head = (w->head + 1) % w->cap;
    }
    w->last_sent = now;
    w->takes++;
}

/* Take number t was answered at now (a pending slot is never given to a later request). */
static void window_answered(rate_window *w, long long t, long long now) {
    if (t < 0 || w->takes - t > w->cap) return;
    int slot = (int)((w->head + w->count - (w->takes - t)) % w->cap);
    if (w->sent[slot] == PENDING || w->sent[slot] < now) w->sent[slot] = now;
}

void rate_window_answered(rate_window *w, long long t, long long now) { window_answered(w, t, now); }

void rate_taken(const rate_limits *r, rate_class c, long long seq[2]) {
    seq[0] = r->burst[c].takes - 1;
    seq[1] = r->steady[c].takes - 1;
}

void rate_answered(rate_limits *r, rate_class c, const long long seq[2], long long now) {
    window_answered(&r->burst[c], seq[0], now);
    window_answered(&r->steady[c], seq[1], now);
}

/* A bulk job is large and its burst small (10 a second): they leave evenly spaced, not ten at once,
 * so the jitter of their arrival cannot put eleven into one of Klaviyo's seconds. */
static int spaced(const rate_window *w, long long now) {
    if (w->count == 0) return 1;
    return now - w->last_sent >= w->span_ms / w->cap;
}

void rate_init(rate_limits *r, double scale) {
    if (scale <= 0) scale = 1;
    for (int c = 0; c < CLASSES; c++) {
        long long slack = c == CLASS_BULK ? BULK_SLACK_MS : WINDOW_SLACK_MS;
        rate_window_init(&r->burst[c], burst_per_s[c] * scale, 1000, slack);
        rate_window_init(&r->steady[c], steady_per_min[c] * scale, 60000, slack);
        r->cooldown_until[c] = 0;
    }
}

void rate_free(rate_limits *r) {
    for (int c = 0; c < CLASSES; c++) {
        free(r->burst[c].sent);
        free(r->steady[c].sent);
        r->burst[c].sent = r->steady[c].sent = NULL;
    }
}

int rate_bulk_room(const rate_limits *r, long long now) {
    return rate_window_room(&r->burst[CLASS_BULK], now) && rate_window_room(&r->steady[CLASS_BULK], now) &&
           r->cooldown_until[CLASS_BULK] <= now && spaced(&r->burst[CLASS_BULK], now);
}

int rate_take(rate_limits *r, rate_class c, long long now) {
    if (!rate_window_room(&r->burst[c], now) || !rate_window_room(&r->steady[c], now) || r->cooldown_until[c] > now)
        return 0;
    if (c == CLASS_BULK && !spaced(&r->burst[c], now)) return 0;
    rate_window_take(&r->burst[c], now);
    rate_window_take(&r->steady[c], now);
    return 1;
}

void rate_cool(rate_limits *r, rate_class c, long long until) { r->cooldown_until[c] = until; }

int rate_history(const rate_limits *r, rate_class c, long long now, long long *times) {
    const rate_window *w = &r->steady[c];
    int n = 0;
    for (int i = 0; i < w->count; i++) {
        long long t = w->sent[(w->head + i) % w->cap];
        if (t == PENDING) times[n++] = RATE_PENDING;
        else if (now - t < w->span_ms) times[n++] = t;   /* older ones no longer count anywhere */
    }
    return n;
}

static void replay_one(rate_window *w, long long t, long long now) {
    rate_window_take(w, now);
    window_answered(w, w->takes - 1, t == RATE_PENDING || t > now ? now : t);
}

void rate_replay(rate_limits *r, rate_class c, const long long *times, int n, long long now) {
    for (int i = 0; i < n; i++) {
        replay_one(&r->burst[c], times[i], now);
        replay_one(&r->steady[c], times[i], now);
    }
}
