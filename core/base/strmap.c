/*
 * strmap.c: see strmap.h. A chained hash table that grows and never evicts: its owners keep it
 * small (the mapper drops its memory past 4096 keys; delivery's busy profiles are those in flight).
 *
 * Values are copies of bytes: the mapper keeps JSON text, never Lua values, so a recall always
 * hands the script a fresh copy and nothing a script holds can change what another event sees.
 */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    char *key, *json;
    size_t keylen, len;
} entry;

struct strmap {
    entry **buckets;
    size_t nbuckets, count;
};

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

static uint64_t hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;       /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

strmap *strmap_new(void) {
    strmap *m = xmalloc(sizeof *m);
    m->nbuckets = 64;
    m->count = 0;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets) abort();
    return m;
}

void strmap_free(strmap *m) {
    if (!m) return;
    for (size_t i = 0; i < m->nbuckets; i++)
        for (entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e->key);
            free(e->json);
            free(e);
        }
    free(m->buckets);
    free(m);
}

static entry **find(const strmap *m, const char *key, size_t keylen) {
    entry **slot = &m->buckets[hash(key, keylen) & (m->nbuckets - 1)];
    while (*slot && !((*slot)->keylen == keylen && memcmp((*slot)->key, key, keylen) == 0))
        slot = &(*slot)->next;
    return slot;
}

static void grow(strmap *m) {
    size_t n = m->nbuckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b) abort();
    for (size_t i = 0; i < m->nbuckets; i++)
        for (entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            entry **slot = &b[hash(e->key, e->keylen) & (n - 1)];
            e->next = *slot;
            *slot = e;
        }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void strmap_put(strmap *m, const char *key, size_t keylen, const char *json, size_t len) {
    entry **slot = find(m, key, keylen);
    char *copy = xmalloc(len + 1);
    memcpy(copy, json, len);
    copy[len] = 0;
    if (*slot) {
        free((*slot)->json);
        (*slot)->json = copy;
        (*slot)->len = len;
        return;
    }
    entry *e = xmalloc(sizeof *e);
    e->key = xmalloc(keylen + 1);
    memcpy(e->key, key, keylen);
    e->key[keylen] = 0;
    e->keylen = keylen;
    e->json = copy;
    e->len = len;
    e->next = NULL;
    *slot = e;
    if (++m->count > m->nbuckets) grow(m);
}

const char *strmap_get(const strmap *m, const char *key, size_t keylen, size_t *len) {
    entry *e = *find(m, key, keylen);
    if (!e) return NULL;
    *len = e->len;
    return e->json;
}

size_t strmap_count(const strmap *m) { return m->count; }

void strmap_del(strmap *m, const char *key, size_t keylen) {
    entry **slot = find(m, key, keylen);
    entry *e = *slot;
    if (!e) return;
    *slot = e->next;
    free(e->key);
    free(e->json);
    free(e);
    m->count--;
}
