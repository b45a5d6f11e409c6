/*
 * strmap.h: a general map from strings to strings (bytes, copied in): the mapper's memory keeps
 * out:remember's JSON text in one, delivery its busy profiles (a string set). Not the store's
 * memory table, which is what a tenant remembers across restarts (store_memory_recall).
 */
#ifndef RF_STRMAP_H
#define RF_STRMAP_H

#include <stddef.h>

typedef struct strmap strmap;

strmap *strmap_new(void);
void strmap_free(strmap *m);

/* Stores a copy of the value under key, replacing any earlier value. */
void strmap_put(strmap *m, const char *key, size_t keylen, const char *json, size_t len);

/* The value stored under key, or NULL; valid until the next put or del of that key. */
const char *strmap_get(const strmap *m, const char *key, size_t keylen, size_t *len);

/* Entries held, and removal of one (nothing happens if it is absent). */
size_t strmap_count(const strmap *m);
void strmap_del(strmap *m, const char *key, size_t keylen);

#endif
