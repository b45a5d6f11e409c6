/*
 * tail.h: the events just mapped, kept in a small ring for the console's live tail (server-sent
 * events, core/ops/console.c): tenant, event id, trigger, the customer, the outcome and its reason.
 *
 * Why a ring and not a queue: a slow or absent browser must never hold the mapping threads back;
 * a reader that falls more than TAIL_RING behind skips what was overwritten.
 */
#ifndef RF_TAIL_H
#define RF_TAIL_H

#include <stddef.h>

#define TAIL_RING 256

typedef struct tail_item {
    unsigned long long seq;       /* 1, 2, ... in publication order */
    long long event_id, at;       /* at: ms since the epoch */
    char tenant[72], trigger[64], customer[160], name[160], outcome[12], reason[240];
} tail_item;

/* Turns publishing on (the console does, once): with no console the mapping threads skip it. */
void tail_enable(void);

/* A mapping thread, after its batch committed: one event's outcome ("mapped", "failed", ...). */
void tail_publish(const char *tenant, long long event_id, const char *outcome, const char *reason,
                  const char *body, size_t len);

/* Copies the items published after seq `after`, oldest first, up to max; returns how many. */
int tail_since(unsigned long long after, tail_item *out, int max);

#endif
