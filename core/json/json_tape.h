/*
 * json_tape.h: the validated shape of a JSON text, shared by json.c (which
 * writes it) and json_event.c (which reads an event from it lazily).
 *
 * One node per value, in document order; an object's members are a key node
 * followed by a value node. `end` is the index of the first node after a
 * value's whole subtree, so a reader can step over a container in one move.
 */
#ifndef RF_JSON_TAPE_H
#define RF_JSON_TAPE_H

#include <stddef.h>
#include <stdint.h>
#include "lua.h"

enum { JN_NULL, JN_FALSE, JN_TRUE, JN_NUMBER, JN_STRING, JN_ARRAY, JN_OBJECT };

typedef struct jnode {
    uint32_t pos;          /* first byte: of a string's content (after the quote), else of the value */
    uint32_t len;          /* bytes of a string's content or a number; members of a container */
    uint32_t end;          /* index of the node after this value's subtree */
    uint8_t type;
    uint8_t escaped;       /* a string holding backslash escapes */
} jnode;

/* Validates text (grammar, UTF-8, escapes, depth, trailing data) into this
 * thread's tape. Returns 0 with *nodes / *n set (valid until the next scan on
 * this thread) and *objects (if not NULL) the count of its object nodes, or -1
 * with err filled ("byte 41: ..."). */
int json_tape_scan(const char *text, size_t len, const jnode **nodes, size_t *n, size_t *objects, char *err,
                   size_t errlen);

/* Pushes the scalar at node (null, boolean, number or string; escapes decoded). */
void json_tape_push_scalar(lua_State *L, const char *text, const jnode *node);

/* Pushes the read-only event for the value at nodes[0] (json_event.c): a
 * lazy proxy for a container, the value itself for a scalar. Copies text and
 * nodes into memory the Lua state owns. */
void json_event_push(lua_State *L, const char *text, size_t len, const jnode *nodes, size_t n, size_t objects);

/* json_event_push on the state's one pooled document (json_decode_event): a new generation of it,
 * after which the tables of the previous one keep what was read of them and refuse to read more. */
void json_event_push_pooled(lua_State *L, const char *text, size_t len, const jnode *nodes, size_t n,
                            size_t objects);

/* For a read-only proxy at idx: pushes its data table (completed, every
 * member built, when `whole`) and returns JSON_KIND_READONLY_ARRAY or
 * _OBJECT. For anything else returns -1 and pushes nothing. */
int json_event_kind(lua_State *L, int idx, int whole);

/* Bulk reading of a read-only event by host code (loop_properties.c): the tape of the object
 * behind a proxy, read in place, with no proxy built and nothing cached. Valid while the proxy is
 * on the stack (it keeps the document alive). */
typedef struct json_view {
    const void *doc;
    const jnode *nodes;
    uint64_t serial;        /* the event's: no two events loaded in the process share one, so
                               (serial, node) names one object of one event for good */
    uint32_t node;          /* the object's node */
    int cache;              /* where the state's string cache is (an upvalue), or 0: the registry */
} json_view;

/* Fills v for the read-only object proxy at idx and returns 0 (cache 0); returns -1 for anything
 * else (a plain table, an array, an object already completed, which no longer knows its node, a
 * table kept from an earlier event). */
int json_event_view(lua_State *L, int idx, json_view *v);

/* Pushes the state's string cache (a table json_view_push may be pointed at, as an upvalue of the
 * C function that reads: one table read a string less than through the registry). */
void json_push_string_cache(lua_State *L);

/* The value node of member key of object node obj (as a read of the event finds it: the last of
 * duplicates), or 0. */
uint32_t json_view_member(lua_State *L, const json_view *v, uint32_t obj, const char *key);

/* found[k] = json_view_member(L, v, obj, names[k]) for each of the n names (of lens[k] bytes), in one pass over obj's
 * members rather than an index built for it: for an object read once for several of its fields
 * (an item of a return, for loop.properties). */
void json_view_members(lua_State *L, const json_view *v, uint32_t obj, const char *const *names,
                       const size_t *lens, int n, uint32_t *found);

/* Pushes the scalar at node i (null, boolean, number or string, as a read gives it). */
void json_view_push(lua_State *L, const json_view *v, uint32_t i);

#endif
