/*
 * json.h: exact JSON <-> Lua conversion for events and Klaviyo bodies.
 */
#ifndef RF_JSON_H
#define RF_JSON_H

#include <stddef.h>
#include "lua.h"
#include "strbuf.h"

#define JSON_MAX_DEPTH 256   /* deeper input is refused, deeper output too (cycles) */
#define JSON_MAX_NUMBER 300  /* characters of a number; a longer one is refused */

enum {
    JSON_WRITABLE = 0,       /* plain tables, tagged array/object so [] and {} round-trip */
    JSON_READONLY = 1,       /* read-only proxies: what a handler receives as its event */
};

/* Registers the null sentinel and the array/object marker metatables in L.
 * Call once per state before any other function here. */
void json_open(lua_State *L);

/* Decodes text into one Lua value pushed on L's stack. On error pushes
 * nothing, fills err ("byte 41: expected ':' after object key") and returns -1.
 * text[len] must be readable (a NUL, or the byte after the slice). */
int json_decode(lua_State *L, const char *text, size_t len, int mode,
                char *err, size_t errlen);

/* json_decode read-only, for the event the mapper hands its handlers: its tape and text are kept
 * in memory the state reuses from event to event (json_event.c), so a table a script keeps from
 * this event keeps the fields read of it, and raises "event is no longer readable" on reading
 * more once the next event was decoded. Never for a script's own decode. */
int json_decode_event(lua_State *L, const char *text, size_t len, char *err, size_t errlen);

/* Validates text as one JSON value (whitespace around it allowed), as json_decode_event would, and
 * keeps its tape on this thread: a json_decode_event of these very bytes (the same pointer and
 * length, unchanged) that comes next on this thread builds from it instead of scanning again, as
 * `returnflow map` validates each NDJSON line and then maps it. Any other scan on the thread drops
 * it. Returns 0, or -1 (nothing kept: the caller says what is wrong its own way). */
int json_tape_keep(const char *text, size_t len);

/* Validates the first JSON value of text without building it; sets *end to
 * the offset just past it. Returns 0, or -1 with err filled. */
int json_value_end(const char *text, size_t len, size_t *end, char *err, size_t errlen);

/* The members of the JSON object text, without decoding it: found(key, value) for each (the key
 * without its quotes, still escaped; the value's raw text) until it returns non-zero. Returns 0
 * (all seen), 1 (found stopped it) or -1 (not an object). json_member: the first member named
 * name (0), or -1. */
int json_each_member(const char *text, size_t len,
                     int (*found)(void *ud, const char *key, size_t klen, const char *value, size_t vlen), void *ud);
int json_member(const char *text, size_t len, const char *name, const char **value, size_t *vlen);
/* Where the value of the first member named name begins (0), its end not looked for, or -1: to read
 * inside one member of a large object with no second walk over it. */
int json_member_start(const char *text, size_t len, const char *name, const char **value);

/* Appends the JSON text of the value at idx to out: keys sorted bytewise,
 * so equal values always give equal bytes. On error leaves out's length as
 * it was, fills err (naming the path, "items[2]: ...") and returns -1. */
int json_encode(lua_State *L, int idx, strbuf *out, char *err, size_t errlen);

/* Limits an encoding must respect (0 for none), checked as it is written. */
typedef struct json_rules {
    const char *owner;          /* whose limits, for messages ("Klaviyo's") */
    size_t max_string;          /* bytes of any string */
    size_t max_array;           /* items of any array */
    const char *scope_key;      /* objects under this key ("properties") are scoped: */
    size_t max_scope_keys;      /*   at most this many keys at their top, */
    int max_scope_depth;        /*   at most this many levels, counting their own */
} json_rules;

/* Bytes of scoped tables already encoded, reused for the same table. Reset it
 * whenever a table it saw may have been collected (between events). */
typedef struct json_memo json_memo;
json_memo *json_memo_new(void);
void json_memo_reset(json_memo *m);
void json_memo_free(json_memo *m);

/* json_encode with rules and a memo (either may be NULL). Errors inside a
 * scope name the path from the scope key ("properties.items: ..."). */
int json_encode_with(lua_State *L, int idx, strbuf *out, const json_rules *rules, json_memo *memo,
                     char *err, size_t errlen);

/* json_encode, but a table the memo holds (encoded by json_encode_with since the memo's reset, at
 * this depth or deeper) is copied from it instead of encoded again: the same bytes, since rules
 * only refuse, never change, what is written. Adds nothing to the memo. The caller guarantees no
 * table the memo saw changed since (no Lua ran between: the mapper encodes an event's requests
 * and then its memory writes in one C call). */
int json_encode_reusing(lua_State *L, int idx, strbuf *out, const json_memo *memo, char *err, size_t errlen);

/* One member of a document the caller writes itself (a Klaviyo body built in C): encodes the value
 * at idx as if it sat at path[0].path[1]...path[depth-1] of one json_encode_with call, so the rules,
 * the scope (the value of the scope key is scoped), the memo and the error paths are the same.
 * limit: out->len may not pass it, json_encode_limit(L, the document's start) for the cap. */
int json_encode_member(lua_State *L, int idx, strbuf *out, const json_rules *rules, json_memo *memo,
                       const char *const *path, int depth, size_t limit, char *err, size_t errlen);
size_t json_encode_limit(lua_State *L, size_t mark);

/* Appends s as a JSON string literal; invalid UTF-8 becomes U+FFFD (for
 * messages and labels, which must always print). */
void json_append_string(strbuf *out, const char *s, size_t n);

/* Appends compact JSON text s re-indented for people (two spaces a level). */
void json_pretty(const char *s, size_t n, strbuf *out);

/* What the table at idx declares itself to be; pushes the table holding its
 * data (the table itself, or the data behind a read-only proxy). */
enum {
    JSON_KIND_PLAIN,            /* no marker: an array if its keys are exactly 1..n */
    JSON_KIND_ARRAY,            /* marked with returnflow.array */
    JSON_KIND_OBJECT,           /* marked with returnflow.object */
    JSON_KIND_READONLY_ARRAY,   /* a decoded event's array: keys 1..n, guaranteed */
    JSON_KIND_READONLY_OBJECT,
};
int json_kind(lua_State *L, int idx);

/* json_kind with the markers' metatables known by their addresses, in marks (both NULL at first:
 * then looked up and kept there, for one encoding, which holds the registry's markers alive). */
int json_kind_marked(lua_State *L, int idx, const void *marks[2]);

/* Pushes a new table marked as an array (returnflow.array), room for narr items. */
void json_push_array(lua_State *L, int narr);

/* Pushes the array marker (the metatable json_push_array sets), for json_push_array_marked: a C
 * function making many arrays holds it as an upvalue rather than reading the registry for each. */
void json_push_array_marker(lua_State *L);

/* json_push_array, the marker at index marker. */
void json_push_array_marked(lua_State *L, int narr, int marker);

/* 1 if the value at idx is an array (a decoded one, or marked, or a table
 * whose keys are exactly 1..n with n >= 1), else 0. */
int json_is_array(lua_State *L, int idx);

/* Pushes the table behind a read-only proxy (or the value itself otherwise). */
void json_unwrap(lua_State *L, int idx);

/* Remembers the value at idx as the event being mapped (0 forgets it), so a
 * refused write can name the field's full path. The proxy json_event_push_pooled
 * pushed, given here while its caller still holds it, is then read by its address
 * alone (json_event_view) until it is forgotten. */
void json_set_event_root(lua_State *L, int idx);

/* 1 if the value at idx is the object proxy json_event_push_pooled pushed last (its caller still
 * holding it), else 0: the mapper's event, known an object with no look at its metatables. */
int json_event_fresh_object(lua_State *L, int idx);

/* Pushes the dotted path from the table at root_idx to the table target_idx
 * ("customer_detail" or "line_items[2]"), or nil if not reachable. Used only
 * to word error messages, so it may be slow. */
void json_push_path(lua_State *L, int root_idx, int target_idx);

/* Frees this thread's scratch buffers; call before a thread that decoded or
 * encoded exits (they are reused, not freed, between calls). */
void json_thread_done(void);
void json_encode_thread_done(void);

/* Bytes an encoding (or a decoding's tape) made for the state L may still take, or NULL for no
 * bound. The sandbox sets it, so text a script causes is counted against its memory cap: an
 * encoding that would pass it fails with "cap: memory ..." as it is written. */
extern size_t (*json_output_budget)(lua_State *L);

/* Lua binding: the `returnflow.json` functions (encode, decode, null, array,
 * object, is_array). Pushes the module table. */
int json_luaopen(lua_State *L);

#endif
