/*
 * states.h: the state of a row, one enum per table, beside the schema (schema.c).
 *
 * The numbers are stored in the database (docs/store.md lists them too): never renumber a state,
 * only add one. Only core/store/ turns them into SQL; the rest of the code names them.
 */
#ifndef RF_STATES_H
#define RF_STATES_H

/* events.state: where a journaled webhook is on its way through the mapping. */
typedef enum event_state {
    EVENT_JOURNALED = 0,          /* waiting for the mapping threads */
    EVENT_MAPPED = 1,             /* its requests are in the outbox (or there were none) */
    EVENT_FAILED = 2,             /* a dead letter, with its reason */
    EVENT_DROPPED = 3,            /* dropped on purpose (or purged from the dead letters), with its reason */
    EVENT_DEFERRED = 4,           /* mapped again later; failed after a day */
    EVENT_HELD = 5,               /* journaled by a batch job, which maps it itself */
} event_state;

/* outbox.state: a request to Klaviyo. */
typedef enum request_state {
    REQUEST_QUEUED = 0,           /* waiting for its turn (next_at, its profile's order, the rate limits) */
    REQUEST_DELIVERED = 1,        /* Klaviyo answered 2xx (or a dry tenant's file has it) */
    REQUEST_DEAD = 2,             /* a dead letter, with Klaviyo's answer */
    REQUEST_SENDING = 3,          /* in flight; a start puts these back in the queue */
} request_state;

#endif
