/*
 * memory.h: a small string -> JSON text table: what `map` remembers between events
 * (out:remember / out:recall), the service's cache of its store, and a string set.
 */
#ifndef RF_MEMORY_H
#define RF_MEMORY_H

#include <stddef.h>

typedef struct memory memory;

memory *memory_new(void);
void memory_free(memory *m);

/* Stores a copy of the JSON text under key, replacing any earlier value. */
void memory_put(memory *m, const char *key, size_t keylen, const char *json, size_t len);

/* The JSON text stored under key, or NULL; valid until the next put of that key. */
const char *memory_get(const memory *m, const char *key, size_t keylen, size_t *len);

/* Entries held, and removal of one (nothing happens if it is absent). */
size_t memory_count(const memory *m);
void memory_del(memory *m, const char *key, size_t keylen);

#endif
