/*
 * checkpointer.h: the store's upkeep (store_maintain: SQLite's checkpoints) once a second, on a thread
 * and a connection of its own, so no writer pays for it inside a commit.
 */
#ifndef RF_CHECKPOINTER_H
#define RF_CHECKPOINTER_H

#include <stddef.h>

typedef struct checkpointer checkpointer;

/* Opens its connection to location and starts its thread ("rf-checkpoint"). NULL with err filled
 * when either fails (nothing is left open). */
checkpointer *checkpointer_start(const char *location, char *err, size_t errlen);

/* Wakes the thread, waits for it to end (a checkpoint under way finishes first) and closes its
 * connection. NULL is allowed. */
void checkpointer_stop(checkpointer *c);

#endif
