/*
 * rate.h: Klaviyo's rate limits for one tenant, by endpoint class, as sliding windows; pure (the
 * caller passes the time), so a test drives them with a clock of its own.
 */
#ifndef RF_RATE_H
#define RF_RATE_H

/* Klaviyo's endpoint classes, each with its own burst and steady limit. */
typedef enum rate_class { CLASS_EVENTS, CLASS_BULK, CLASS_PROFILES, CLASS_OTHER, CLASSES } rate_class;

/* The last `cap` requests: pending until answered, then their answer time (monotonic ms); one
 * more may go when the oldest was answered over span_ms ago. */
typedef struct rate_window {
    long long *sent;
    int cap, head, count;
    long long span_ms;
    long long takes;                      /* requests taken: take number t has the slot of t % cap */
    long long last_sent;                  /* the newest send time (bulk jobs are spaced by sends) */
} rate_window;

typedef struct rate_limits {
    rate_window burst[CLASSES], steady[CLASSES];
    long long cooldown_until[CLASSES];    /* after a 429: nothing of the class before then */
} rate_limits;

/* The class of a request path ("/api/events", "/api/event-bulk-create-jobs", ...). */
rate_class rate_class_of(const char *path);

/* "events", "bulk", "profiles", "other": the class in metrics. */
const char *rate_class_name(rate_class c);

/* Klaviyo's limits times scale (config: rate_scale, 1 when <= 0). rate_free frees the windows. */
void rate_init(rate_limits *r, double scale);
void rate_free(rate_limits *r);

/* Takes one request's room in both windows of the class, or nothing: 1 taken, 0 not now. */
int rate_take(rate_limits *r, rate_class c, long long now);

/* The take numbers of the request just taken in class c, for rate_answered. */
void rate_taken(const rate_limits *r, rate_class c, long long seq[2]);

/* The request with those take numbers was answered at now: Klaviyo counted it at some instant
 * between its send and now, so from now on it counts from its answer. Until then it holds its
 * place in both windows, so every take must come here: a request chosen but never sent too (its
 * release, at the moment it was dropped). */
void rate_answered(rate_limits *r, rate_class c, const long long seq[2], long long now);

/* Whether a bulk job could leave now (nothing taken). */
int rate_bulk_room(const rate_limits *r, long long now);

/* A 429: the class waits until then. */
void rate_cool(rate_limits *r, rate_class c, long long until);

/* What outlives a deliverer (rate_keep.c): the requests of class c still counted at now, in take
 * order, each its answer time or RATE_PENDING (into `times`, room for the steady window's cap);
 * returns how many. The steady window holds the burst window's requests too. */
#define RATE_PENDING (-1)
int rate_history(const rate_limits *r, rate_class c, long long now, long long *times);

/* Counts those requests again, in order, in both windows of c (an earlier deliverer's, maybe of
 * another process): one pending, or answered after now, counts from now. */
void rate_replay(rate_limits *r, rate_class c, const long long *times, int n, long long now);

/* A single window, for tests: capacity per span_ms (plus slack_ms). */
void rate_window_init(rate_window *w, double capacity, long long span_ms, long long slack_ms);
int rate_window_room(const rate_window *w, long long now);
void rate_window_take(rate_window *w, long long now);
void rate_window_answered(rate_window *w, long long take, long long now);   /* take: 0 for the first */

#endif
