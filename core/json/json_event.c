/*
 * json_event.c: the event a handler receives: read-only, and built only as far
 * as the handler reads it.
 *
 * Decoding a whole webhook into Lua tables costs as much as everything else
 * the mapping does: every key and string is interned, most never read. So the
 * event stays a validated tape (json_tape.h) in a userdata the state owns, and
 * each container becomes a table only when reached:
 *
 *   proxy P (always empty) --metatable--> M { __index = D, __newindex = refuse, ... }
 *   data  D (what was read so far) --metatable--> the document's one { __index = fill(doc) }
 *
 * A read of P falls through to D, a plain table lookup once the field is
 * there; the first read of a field falls through again to `fill`, which finds
 * it on the tape, builds it (scalars as values, containers as new proxies) and
 * stores it in D. Arrays are filled whole on first reach (ipairs walks them
 * anyway). pairs, and the encoder, complete an object first, after which D
 * loses its fallback. D holds nothing but members (a read of P reaches D, so any key of ours would
 * show): the document finds D's node by D's address, in a map of this generation's data tables
 * (doc.datas, grown as they are made). Duplicate keys: the last one wins, as
 * in json.c. An object of more than INDEX_FROM members gets a hash index of its
 * keys on its first read (built so a later duplicate takes the slot), so a read
 * costs the same whatever the object's size, not a scan of every key.
 *
 * The mapper's events share one document per state (json_decode_event): its
 * memory is taken again by the next event, not allocated and collected for each
 * (a 4 KB webhook made a 12 KB userdata an event). Each event is a new
 * generation of it, whose data tables alone are in its map (emptied as each
 * generation begins), so a table a script kept from an earlier event (in an
 * upvalue, a coroutine, a finalizer) keeps what was built of it (what was read,
 * and the planned members of the objects read: see read plans) and refuses to
 * read more: it never reads another event's tape, and the userdata it reaches
 * stays alive as long as it does. A document too small for the next event is
 * replaced, the old one's map emptied: all its tables stale.
 *
 * Strings read from the tape go through a cache of the state (one Lua table of
 * CACHE_SLOTS strings, slot by a hash of the bytes, a hit checked byte for
 * byte): a webhook's keys and most of its values are the same bytes event after
 * event, and a hit costs a table read instead of hashing and interning again.
 *
 * Invariants: P stays empty, so every write reaches __newindex and is refused
 * with the field's path; M is protected (__metatable), so a script can neither
 * see nor remove it; D never leaves C and never holds a child's data table,
 * only its proxy; a field once built keeps its identity (ev.address ==
 * ev.address); nothing reads a document of another generation.
 */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_tape.h"
#include "lauxlib.h"

static const char readonly_tag[] = "read-only";
static const char event_root_key = 0;
static const char pool_key = 0;           /* the registry's pooled document (json_decode_event) */
static const char cache_key = 0;          /* the registry's reference number of the string cache */
static const char map_key = 0;            /* a data metatable's field: the document's data table map */

/* The serial of the next event loaded into a document, in any state of the process (json_view):
 * a (document, generation) may come again, at an address a collected document had. */
static _Atomic uint64_t next_serial = 1;

/* Objects of more members than this get a hash index on their first read; smaller ones are
 * searched member by member (as fast for a few). */
#define INDEX_FROM 8

/* Fields an object's data table has room for at first (see push_proxy): a handler's reads, not
 * every member. */
#define DATA_ROOM 16

/* The string cache: slots (a power of two) and the longest string it keeps; at most
 * CACHE_SLOTS * (CACHE_MAX_LEN + a string's header) bytes, counted by the state's cap. */
#define CACHE_SLOTS 512
#define CACHE_MAX_LEN 64

/* Bytes past the text a cache hash may load (8 at a time): zeros. */
#define TEXT_PAD 8

/* A data table's node, found by the table's address (see doc.datas). */
typedef struct dslot {
    const void *data;              /* NULL: a free slot */
    uint32_t node;
    uint32_t class;                /* its object's read-plan class (CLASS_PLANNED set once planned
                                      members were built into it) */
} dslot;

/* ------------------------------ read plans ------------------------------- */

/* The members a state's handlers read are mostly the same, event after event: a handler of
 * return.created reads the same dozen fields of the return and five of each item. Built one by one
 * (each a call of `fill` through two metatables, and a search of the tape), those first reads were
 * a fifth of the mapping's instructions. So the state keeps a read plan: for each class of object
 * (its path from the root: member names, and [] for an array's items, hashed), the names of the
 * scalar members (strings, numbers, booleans, nulls) read of such objects before. The first read
 * of an object of a planned class builds every planned scalar member it has in one pass over its
 * members, and the handler's later reads of them are plain table reads.
 *
 * Bounded: PLAN_CLASSES classes of PLAN_KEYS names each, of PLAN_KEY_MAX bytes at most (past that a
 * read is done as before, unplanned), so a script reading every name it can think of costs at most
 * PLAN_KEYS values built per object it touches. Containers are never built ahead (an array of
 * thousands of items only when read). An object with a key written with escapes is read as before.
 * A class is a hash: two paths that collide share a plan, which costs a few values built for
 * nothing, never a wrong one (a member is built by its name, from its own object).
 *
 * What a script sees: the same values, the same tables. The one difference: a table kept from an
 * earlier event also keeps the planned members built with the ones read (its own event's values,
 * never another's). */
#define PLAN_CLASSES 32
#define PLAN_KEYS 24
#define PLAN_KEY_MAX 63
#define CLASS_PLANNED 0x80000000u
#define CLASS_ROOT 1u

typedef struct plan_key {
    const char *s;                 /* a Lua string the plan's anchor table keeps alive */
    uint64_t head;                 /* its first 8 bytes (fewer: zeros after them), compared first */
    uint32_t len;
    int ref;                       /* its index in the anchor table */
} plan_key;

typedef struct plan_class {
    uint32_t class;                /* 0: a free entry */
    uint32_t n;
    plan_key keys[PLAN_KEYS];
} plan_class;

typedef struct read_plan {
    plan_class classes[PLAN_CLASSES];
    int anchored;                  /* strings in the anchor table (its user value) */
} read_plan;

static const char plan_key_reg = 0;          /* the registry's read plan (a userdata) */

/* A class that is never 0 and never has CLASS_PLANNED set. */
static inline uint32_t class_of(uint64_t h) {
    uint32_t c = (uint32_t)(h >> 32) ^ (uint32_t)h;
    c &= ~CLASS_PLANNED;
    return c ? c : CLASS_ROOT + 1;
}

/* The tape and the text, copied into memory the state owns, and the objects' key indexes. */
typedef struct doc {
    lua_Integer gen;               /* the event it holds now (a pooled document's count) */
    uint64_t serial;               /* the event it holds now, unique in the process (json_view's) */
    size_t cap;                    /* bytes of mem */
    size_t n;
    dslot *datas;                  /* the object data tables of this generation by address, each
                                      with its node (one dead, its address taken by another of this
                                      generation, gives its slot to that one): a userdata its data
                                      metatable holds, grown as tables are made */
    size_t data_slots;             /* a power of two, at least twice data_used */
    size_t data_used;
    jnode *nodes;                  /* in mem: nodes[n], index_at[n], index[INDEX_ROOM(n)], the text */
    uint32_t *index_at;            /* per node: where its object's index starts in `index`, 0 none */
    uint32_t *index;               /* the indexes: slots holding a key node's number or 0 */
    const char *text;              /* NUL-terminated, then TEXT_PAD zeros */
    uint32_t index_used;
    int cache_ref;                 /* the string cache, in the registry */
    read_plan *plan;               /* the state's read plan (the mapper's pooled documents), or NULL */
    const void *fresh;             /* the root object's proxy as pushed, for json_set_event_root */
    lua_Integer fresh_gen;
    const void *root;              /* that proxy while the registry holds it as the event root (so no
                                      other table can take its address) and its object is not
                                      complete: json_event_view's quick answer */
    uint64_t mem[];
} doc;

static int ro_newindex(lua_State *L);
static int ro_len(lua_State *L);
static int ro_pairs(lua_State *L);
static int fill(lua_State *L);
static void push_proxy(lua_State *L, const doc *d, int dmt, int cache, uint32_t i, uint32_t class);
static int push_data(lua_State *L, int idx);

/* Are the len bytes at a and b the same? Up to 16 in a few loads that overlap (reading nothing
 * outside either), past that memcmp: keys and cached strings are mostly short, and a call to
 * memcmp cost more than the compare. */
static inline int same_bytes(const char *a, const char *b, size_t len) {
    if (len > 16) return memcmp(a, b, len) == 0;
    if (len >= 8) {
        uint64_t a1, a2, b1, b2;
        memcpy(&a1, a, 8); memcpy(&a2, a + len - 8, 8);
        memcpy(&b1, b, 8); memcpy(&b2, b + len - 8, 8);
        return ((a1 ^ b1) | (a2 ^ b2)) == 0;
    }
    if (len >= 4) {
        uint32_t a1, a2, b1, b2;
        memcpy(&a1, a, 4); memcpy(&a2, a + len - 4, 4);
        memcpy(&b1, b, 4); memcpy(&b2, b + len - 4, 4);
        return ((a1 ^ b1) | (a2 ^ b2)) == 0;
    }
    return !len || (a[0] == b[0] && a[len / 2] == b[len / 2] && a[len - 1] == b[len - 1]);
}

/* ------------------------------ string cache ------------------------------ */

/* A slot from the length and the first and last 8 bytes: the same cost for any length. */
static inline lua_Integer cache_slot(const char *p, size_t len) {
    uint64_t a, b = 0;
    memcpy(&a, p, 8);                                  /* the text is padded: always readable */
    if (len < 8) a &= ~(~(uint64_t)0 << (8 * len));
    else memcpy(&b, p + len - 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15u) ^ len) * 0xff51afd7ed558ccdu;
    return (lua_Integer)(h >> 55) + 1;                 /* 9 bits: 1..CACHE_SLOTS */
}

/* Pushes the string at node (escapes decoded): the cached one when it holds these bytes. cache: the
 * index of the cache table (fill's upvalue), or 0 to fetch it from the registry. */
static void push_string(lua_State *L, const doc *d, const jnode *node, int cache) {
    const char *s = d->text + node->pos;
    size_t len = node->len;
    if (node->escaped || len > CACHE_MAX_LEN) {
        json_tape_push_scalar(L, d->text, node);
        return;
    }
    lua_Integer slot = cache_slot(s, len);
    int fetched = !cache;
    if (fetched) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, d->cache_ref);
        cache = lua_gettop(L);
    }
    if (lua_rawgeti(L, cache, slot) == LUA_TSTRING) {
        size_t n;
        const char *c = lua_tolstring(L, -1, &n);
        if (n == len && same_bytes(c, s, len)) goto done;
    }
    lua_pop(L, 1);
    lua_pushlstring(L, s, len);
    lua_pushvalue(L, -1);
    lua_rawseti(L, cache, slot);
done:
    if (fetched) lua_replace(L, -2);
}

/* The state's string cache's reference number, made on first use. */
static int cache_ref(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);
    int ref = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (ref) return ref;
    lua_createtable(L, CACHE_SLOTS, 0);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushinteger(L, ref);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
    return ref;
}

void json_push_string_cache(lua_State *L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, cache_ref(L));
}

/* ------------------------------ reading the tape ------------------------------ */

/* Pushes the value of nodes[i]: a scalar, or a proxy for a container of read-plan class `class`
 * (dmt: the document's data metatable, on the stack; cache: as push_string's). */
static void push_value(lua_State *L, const doc *d, int dmt, int cache, uint32_t i, uint32_t class) {
    const jnode *node = &d->nodes[i];
    if (node->type == JN_STRING) push_string(L, d, node, cache);
    else if (node->type == JN_ARRAY || node->type == JN_OBJECT) push_proxy(L, d, dmt, cache, i, class);
    else json_tape_push_scalar(L, d->text, node);
}

/* key_is for a key written with escapes: decoded, then compared. */
static __attribute__((noinline)) int escaped_key_is(lua_State *L, const doc *d, const jnode *key, const char *k,
                                                    size_t klen) {
    json_tape_push_scalar(L, d->text, key);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    int same = n == klen && memcmp(s, k, klen) == 0;
    lua_pop(L, 1);
    return same;
}

/* Does the key node hold exactly these bytes (escapes decoded)? Inline: a probe of the key index
 * mostly meets keys of another length. */
static inline int key_is(lua_State *L, const doc *d, const jnode *key, const char *k, size_t klen) {
    if (__builtin_expect(key->escaped, 0)) return escaped_key_is(L, d, key, k, klen);
    return key->len == klen && same_bytes(d->text + key->pos, k, klen);
}

/* A key's hash, from its length and its first and last 8 bytes (as many as it has): the same cost
 * for any length, and keys of one object that share a prefix ("return_reason", "return_type") or
 * a length still spread. k may be any string (a script's key): nothing past k[len - 1] is read. */
static inline uint32_t key_hash(const char *k, size_t len) {
    uint64_t a = 0, b = 0;
    if (len >= 8) {
        memcpy(&a, k, 8);
        memcpy(&b, k + len - 8, 8);
    } else if (len >= 4) {                           /* two loads that overlap */
        uint32_t x, y;
        memcpy(&x, k, 4);
        memcpy(&y, k + len - 4, 4);
        a = x;
        b = y;
    } else if (len) {
        const unsigned char *u = (const unsigned char *)k;
        a = (uint64_t)u[0] | (uint64_t)u[len / 2] << 8 | (uint64_t)u[len - 1] << 16;
    }
    uint64_t h = (a * 0x9e3779b97f4a7c15u) ^ (b * 0xc2b2ae3d27d4eb4fu) ^ len;
    return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

/* Slots of the index of an object of `members` members: the power of two at or past twice them. */
static inline uint32_t index_slots(uint32_t members) {
    uint32_t cap = 16;
    while (cap < 2 * members) cap *= 2;
    return cap;
}

/* Builds the index of object node i: open addressing, a power of two of slots at least twice its
 * members; a duplicate key keeps its slot and takes the later member's node, so the last one wins,
 * as in json.c. */
static void build_index(lua_State *L, doc *d, uint32_t i) {
    uint32_t cap = index_slots(d->nodes[i].len), mask = cap - 1, *slots = d->index + d->index_used;
    d->index_at[i] = d->index_used + 1;
    d->index_used += cap;
    memset(slots, 0, cap * sizeof *slots);
    uint32_t j = i + 1;
    for (uint32_t m = 0; m < d->nodes[i].len; m++) {
        const jnode *key = &d->nodes[j];
        size_t klen = key->len;
        const char *k = d->text + key->pos;
        if (key->escaped) {
            json_tape_push_scalar(L, d->text, key);
            k = lua_tolstring(L, -1, &klen);
        }
        uint32_t s = key_hash(k, klen) & mask;
        while (slots[s] && !key_is(L, d, &d->nodes[slots[s]], k, klen)) s = (s + 1) & mask;
        slots[s] = j;
        if (key->escaped) lua_pop(L, 1);
        j = d->nodes[j + 1].end;
    }
}

/* The value node of member k of object node i, or 0. */
static uint32_t find_member(lua_State *L, doc *d, uint32_t i, const char *k, size_t klen) {
    const jnode *obj = &d->nodes[i];
    if (obj->len > INDEX_FROM) {
        if (!d->index_at[i]) build_index(L, d, i);
        uint32_t mask = index_slots(obj->len) - 1, *slots = d->index + d->index_at[i] - 1;
        for (uint32_t s = key_hash(k, klen) & mask; slots[s]; s = (s + 1) & mask)
            if (key_is(L, d, &d->nodes[slots[s]], k, klen)) return slots[s] + 1;
        return 0;
    }
    uint32_t j = i + 1, found = 0;
    for (uint32_t m = 0; m < obj->len; m++) {
        if (key_is(L, d, &d->nodes[j], k, klen)) found = j + 1;   /* keep looking: the last one wins */
        j = d->nodes[j + 1].end;
    }
    return found;
}

/* The class of the members named k of objects of class c, and of the items of arrays of class c. */
static inline uint32_t member_class(uint32_t c, const char *k, size_t len) {
    return class_of((uint64_t)(c & ~CLASS_PLANNED) * 0x9e3779b97f4a7c15u ^ key_hash(k, len));
}

static inline uint32_t item_class(uint32_t c) {
    return class_of(((uint64_t)(c & ~CLASS_PLANNED) + 0x5b5d) * 0xc2b2ae3d27d4eb4fu);
}

/* The entry of class c in plan p (made, when `make`, if there is room), or NULL. */
static plan_class *plan_find(read_plan *p, uint32_t c, int make) {
    c &= ~CLASS_PLANNED;
    uint32_t s = c & (PLAN_CLASSES - 1);
    for (int k = 0; k < PLAN_CLASSES; k++, s = (s + 1) & (PLAN_CLASSES - 1)) {
        plan_class *pc = &p->classes[s];
        if (pc->class == c) return pc;
        if (!pc->class) {
            if (!make) return NULL;
            pc->class = c;
            pc->n = 0;
            return pc;
        }
    }
    return NULL;
}

/* Adds the name at idx (a string) to pc when it is new and there is room; the plan's anchor table
 * (at anchor) keeps the string alive, so its bytes stay where pc points. */
static void plan_note(lua_State *L, read_plan *p, int anchor, plan_class *pc, int idx) {
    size_t len;
    const char *k = lua_tolstring(L, idx, &len);
    if (pc->n >= PLAN_KEYS || len > PLAN_KEY_MAX) return;
    for (uint32_t m = 0; m < pc->n; m++)
        if (pc->keys[m].len == len && (pc->keys[m].s == k || memcmp(pc->keys[m].s, k, len) == 0)) return;
    lua_pushvalue(L, idx);
    lua_rawseti(L, anchor, ++p->anchored);
    uint64_t head = 0;
    memcpy(&head, k, len < 8 ? len : 8);
    pc->keys[pc->n++] = (plan_key){ .s = k, .head = head, .len = (uint32_t)len, .ref = p->anchored };
}

/* The first 8 bytes of a member's key on the tape, zeros past its len (the text is padded with
 * TEXT_PAD zeros, so 8 bytes can always be loaded). */
static inline uint64_t key_head(const char *p, size_t len) {
    uint64_t h;
    memcpy(&h, p, 8);
    return len >= 8 ? h : h & ~(~(uint64_t)0 << (8 * len));
}

/* The first read of object node i: builds into its data table (at 1, empty) every scalar member pc
 * names, in one pass over the members (the last of duplicates wins, as in find_member). An object
 * with a key written with escapes is left to be read key by key. */
static void prefill(lua_State *L, const doc *d, uint32_t i, const plan_class *pc, int cache, int anchor) {
    uint32_t found[PLAN_KEYS] = { 0 };
    signed char first[PLAN_KEY_MAX + 1], next[PLAN_KEYS];
    memset(first, -1, sizeof first);
    for (int k = (int)pc->n - 1; k >= 0; k--) {
        next[k] = first[pc->keys[k].len];
        first[pc->keys[k].len] = (signed char)k;
    }
    uint32_t j = i + 1;
    for (uint32_t m = 0; m < d->nodes[i].len; m++) {
        const jnode *key = &d->nodes[j];
        if (key->escaped) return;
        int k = key->len <= PLAN_KEY_MAX ? first[key->len] : -1;
        if (k >= 0) {
            const char *t = d->text + key->pos;
            uint64_t head = key_head(t, key->len);
            for (; k >= 0; k = next[k])
                if (pc->keys[k].head == head && (key->len <= 8 || same_bytes(t, pc->keys[k].s, key->len)))
                    found[k] = j + 1;
        }
        j = d->nodes[j + 1].end;
    }
    luaL_checkstack(L, 3, "JSON nesting");
    for (uint32_t k = 0; k < pc->n; k++) {
        if (!found[k]) continue;
        const jnode *v = &d->nodes[found[k]];
        if (v->type == JN_ARRAY || v->type == JN_OBJECT) continue;
        lua_rawgeti(L, anchor, pc->keys[k].ref);
        if (v->type == JN_STRING) push_string(L, d, v, cache);
        else json_tape_push_scalar(L, d->text, v);
        lua_rawset(L, 1);
    }
}

/* Pushes the state's read plan (made on first use: a userdata, its anchor table its user value). */
static read_plan *push_plan(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &plan_key_reg) == LUA_TUSERDATA) return lua_touserdata(L, -1);
    lua_pop(L, 1);
    read_plan *p = lua_newuserdatauv(L, sizeof *p, 1);
    memset(p, 0, sizeof *p);
    lua_createtable(L, 64, 0);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &plan_key_reg);
    return p;
}

/* The document behind the data metatable at dmt (its __index is fill, upvalue 1 the document), or
 * NULL. */
static doc *dmt_doc(lua_State *L, int dmt) {
    lua_pushliteral(L, "__index");
    lua_rawget(L, dmt);
    doc *d = NULL;
    if (lua_tocfunction(L, -1) == fill && lua_getupvalue(L, -1, 1)) {
        d = lua_touserdata(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return d;
}

/* The slot of a data table's address: a multiplicative hash of it (tables are 8-aligned). */
static inline size_t data_slot(const doc *d, const void *data) {
    return (size_t)(((uint64_t)(uintptr_t)data >> 3) * 0x9e3779b97f4a7c15u >> 32) & (d->data_slots - 1);
}

/* Gives d an empty data table map of `slots` slots (a power of two), a userdata the data metatable
 * at dmt holds, with the entries of the one it had when `keep`. */
static void map_new(lua_State *L, doc *d, int dmt, size_t slots, int keep) {
    dslot *m = lua_newuserdatauv(L, slots * sizeof *m, 0);
    memset(m, 0, slots * sizeof *m);
    const dslot *old = d->datas;
    size_t old_slots = d->data_slots;
    d->datas = m;
    d->data_slots = slots;
    if (keep) {
        for (size_t k = 0; k < old_slots; k++) {
            if (!old[k].data) continue;
            size_t s = data_slot(d, old[k].data);
            while (m[s].data) s = (s + 1) & (slots - 1);
            m[s] = old[k];
        }
    } else {
        d->data_used = 0;
    }
    lua_rawsetp(L, dmt, &map_key);                  /* the old one, if any, is garbage now */
}

/* Records the object data table at address data as node i's, of read-plan class `class`, for this
 * generation (the data metatable at dmt holds the map: grown to keep it at most half full, so a
 * probe always ends). */
static inline void data_record(lua_State *L, doc *d, int dmt, const void *data, uint32_t i, uint32_t class) {
    if (2 * (d->data_used + 1) > d->data_slots) map_new(L, d, dmt, 2 * d->data_slots, 1);
    size_t mask = d->data_slots - 1, s = data_slot(d, data);
    while (d->datas[s].data && d->datas[s].data != data) s = (s + 1) & mask;
    if (!d->datas[s].data) d->data_used++;
    d->datas[s].data = data;
    d->datas[s].node = i;
    d->datas[s].class = class;
}

/* The node of the incomplete object data table at idx (of document d: its data metatable's), or -1
 * when it is of an earlier generation: stale. (Its node is found by its address rather than kept
 * in it under a hidden key: no key set on each one made, none read on each first read of a field.
 * A data table still alive from an earlier generation holds its address since before this one
 * began, so no table of this one has it: it is not in the map, which each generation starts
 * empty.) */
static inline dslot *data_entry(lua_State *L, int idx, const doc *d) {
    const void *data = lua_topointer(L, idx);
    size_t mask = d->data_slots - 1;
    for (size_t s = data_slot(d, data); d->datas[s].data; s = (s + 1) & mask)
        if (d->datas[s].data == data) {
            uint32_t i = d->datas[s].node;
            return (size_t)i < d->n && d->nodes[i].type == JN_OBJECT ? &d->datas[s] : NULL;
        }
    return NULL;
}

static inline lua_Integer data_node(lua_State *L, int idx, const doc *d) {
    const dslot *e = data_entry(L, idx, d);
    return e ? (lua_Integer)e->node : -1;
}

static int stale(lua_State *L, const char *what) {
    return luaL_error(L, "event is no longer readable: %s of a table kept from an earlier event (read what "
                         "is needed while its own handler runs)", what);
}

/* D's __index: builds the field `key` of D's object (upvalues: doc, string cache, and the read
 * plan or nil). The first read of an object builds its planned members too (prefill). */
static int fill(lua_State *L) {
    if (lua_type(L, 1) != LUA_TTABLE || lua_type(L, 2) != LUA_TSTRING) return 0;
    doc *d = lua_touserdata(L, lua_upvalueindex(1));
    dslot *entry = data_entry(L, 1, d);
    if (!entry) {
        lua_pushfstring(L, "field '%s'", lua_tostring(L, 2));
        return stale(L, lua_tostring(L, -1));
    }
    uint32_t i = entry->node, class = entry->class;
    if (d->plan && !(class & CLASS_PLANNED)) {
        entry->class = class |= CLASS_PLANNED;          /* one pass an object, on its first read */
        const plan_class *pc = plan_find(d->plan, class, 0);
        if (pc && pc->n) {
            lua_getiuservalue(L, lua_upvalueindex(3), 1);
            prefill(L, d, i, pc, lua_upvalueindex(2), lua_gettop(L));
            lua_pop(L, 1);
            lua_pushvalue(L, 2);
            if (lua_rawget(L, 1) != LUA_TNIL) return 1;  /* a planned member */
            lua_pop(L, 1);
        }
    }
    size_t klen;
    const char *k = lua_tolstring(L, 2, &klen);
    uint32_t found = find_member(L, d, i, k, klen);
    if (!found) return 0;
    const jnode *node = &d->nodes[found];
    if (node->type == JN_ARRAY || node->type == JN_OBJECT) {
        lua_getmetatable(L, 1);                          /* the data metatable, for child proxies */
        push_proxy(L, d, lua_gettop(L), lua_upvalueindex(2), found, member_class(class, k, klen));
    } else {
        if (d->plan) {                                   /* read again next event: plan it */
            plan_class *pc = plan_find(d->plan, class, 1);
            if (pc && pc->n < PLAN_KEYS) {
                lua_getiuservalue(L, lua_upvalueindex(3), 1);
                plan_note(L, d->plan, lua_gettop(L), pc, 2);
                lua_pop(L, 1);
            }
        }
        if (node->type == JN_STRING) push_string(L, d, node, lua_upvalueindex(2));
        else json_tape_push_scalar(L, d->text, node);
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

/* A proxy's metatable's keys and its __metatable value, kept in the document's data metatable at
 * these integer slots (made once a document): set raw from there, not by name, which finds each C
 * string among Lua's strings again for every proxy. The data metatable's own lookups are by "__"
 * names alone, so the slots change nothing of it. */
enum { PK_INDEX = 1, PK_NEWINDEX, PK_PAIRS, PK_METATABLE, PK_LEN, PK_TAG, PK_COUNT = PK_TAG };
static const char *const proxy_keys[PK_COUNT] = {
    "__index", "__newindex", "__pairs", "__metatable", "__len", readonly_tag,
};

static void push_proxy(lua_State *L, const doc *d, int dmt, int cache, uint32_t i, uint32_t class) {
    luaL_checkstack(L, 8, "JSON nesting");
    const jnode *node = &d->nodes[i];
    int is_array = node->type == JN_ARRAY;
    lua_createtable(L, 0, 0);                                  /* P */
    lua_createtable(L, 0, 5);                                  /* P M */
    if (is_array) {
        lua_createtable(L, (int)node->len, 0);                 /* P M D, filled now */
        uint32_t j = i + 1, items = item_class(class);
        for (lua_Integer k = 1; k <= (lua_Integer)node->len; k++) {
            push_value(L, d, dmt, cache, j, items);
            lua_rawseti(L, -2, k);
            j = d->nodes[j].end;
        }
        lua_rawgeti(L, dmt, PK_LEN);
        lua_pushcfunction(L, ro_len);
        lua_rawset(L, -4);                                     /* __len marks an array proxy */
    } else {
        /* P M D, filled on demand: room for the fields a handler reads, not for every member (a
         * 41-member return was a 64-slot table of which reads fill a dozen); more grow it once */
        lua_createtable(L, 0, node->len < DATA_ROOM ? (int)node->len : DATA_ROOM);
        data_record(L, (doc *)d, dmt, lua_topointer(L, -1), i, class);
        lua_pushvalue(L, dmt);
        lua_setmetatable(L, -2);
    }
    lua_rawgeti(L, dmt, PK_INDEX);                             /* P M D "__index" */
    lua_insert(L, -2);
    lua_rawset(L, -3);                                         /* P M */
    lua_rawgeti(L, dmt, PK_NEWINDEX);
    lua_pushcfunction(L, ro_newindex);
    lua_rawset(L, -3);
    lua_rawgeti(L, dmt, PK_PAIRS);
    lua_pushcfunction(L, ro_pairs);
    lua_rawset(L, -3);
    lua_rawgeti(L, dmt, PK_METATABLE);
    lua_rawgeti(L, dmt, PK_TAG);
    lua_rawset(L, -3);
    lua_setmetatable(L, -2);                                   /* P */
}

/* Index slots n nodes may need: an indexed object has m > INDEX_FROM members, 2 nodes each, and
 * fewer than 4m slots (the power of two at or past 2m >= 18): fewer than 2n in all. */
#define INDEX_ROOM(n) (2 * (n) + 1)

/* Slots a document's data table map starts an event with, for a tape of `objects` object nodes:
 * room for all of them, up to MAP_START_MAX; an event that makes more tables grows it. */
#define MAP_START_MAX 64
static size_t map_start_slots(size_t objects) {
    size_t slots = 4;
    while (slots < 2 * objects && slots < MAP_START_MAX) slots *= 2;
    return slots;
}

/* Bytes of a document's mem for n nodes and len bytes of text. */
static size_t doc_bytes(size_t n, size_t len) {
    return n * sizeof(jnode) + (n + INDEX_ROOM(n)) * sizeof(uint32_t) + len + 1 + TEXT_PAD;
}

/* Pushes a new document userdata of cap bytes of mem (generation 0, no data table map yet), its
 * user value its data metatable { __index = fill(doc, string cache, plan) }, made once a document.
 * planned: the document is the mapper's pooled one, which reads with the state's read plan. */
static doc *new_doc(lua_State *L, size_t cap, int planned) {
    doc *d = lua_newuserdatauv(L, sizeof *d + cap, 1);
    d->gen = 0;
    d->fresh = d->root = NULL;
    d->cap = cap;
    d->datas = NULL;
    d->data_slots = d->data_used = 0;
    d->cache_ref = cache_ref(L);
    d->plan = NULL;
    lua_createtable(L, PK_COUNT, 2);                            /* doc dmt */
    for (int k = 0; k < PK_COUNT; k++) {
        lua_pushstring(L, proxy_keys[k]);
        lua_rawseti(L, -2, k + 1);
    }
    lua_pushvalue(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, d->cache_ref);
    if (planned) d->plan = push_plan(L);
    else lua_pushnil(L);
    lua_pushcclosure(L, fill, 3);
    lua_setfield(L, -2, "__index");
    lua_setiuservalue(L, -2, 1);                                /* doc */
    return d;
}

/* Copies the tape and the text into d (of a large enough cap), empties its data table map (the
 * tables of the generation before are stale from now on), and pushes the event's proxy. The
 * document is at docidx. */
static void load_and_push(lua_State *L, doc *d, int docidx, const char *text, size_t len, const jnode *nodes,
                          size_t n, size_t objects) {
    d->n = n;
    d->nodes = (jnode *)d->mem;
    memcpy(d->nodes, nodes, n * sizeof *nodes);
    d->index_at = (uint32_t *)(d->nodes + n);
    d->index = d->index_at + n;
    d->index_used = 0;
    memset(d->index_at, 0, n * sizeof *d->index_at);
    char *copy = (char *)(d->index + INDEX_ROOM(n));
    memcpy(copy, text, len);
    memset(copy + len, 0, 1 + TEXT_PAD);
    d->text = copy;
    d->serial = next_serial++;
    lua_getiuservalue(L, docidx, 1);                            /* doc dmt */
    int dmt = lua_gettop(L);
    size_t slots = map_start_slots(objects);
    if (d->data_slots == slots) {                               /* the map of the event before, emptied */
        memset(d->datas, 0, slots * sizeof *d->datas);
        d->data_used = 0;
    } else {
        map_new(L, d, dmt, slots, 0);
    }
    push_proxy(L, d, dmt, 0, 0, CLASS_ROOT);
    lua_replace(L, -2);
}

void json_event_push(lua_State *L, const char *text, size_t len, const jnode *nodes, size_t n, size_t objects) {
    if (nodes[0].type != JN_ARRAY && nodes[0].type != JN_OBJECT) {
        json_tape_push_scalar(L, text, &nodes[0]);
        return;
    }
    size_t need = doc_bytes(n, len);
    doc *d = new_doc(L, need, 0);
    load_and_push(L, d, lua_gettop(L), text, len, nodes, n, objects);
    lua_remove(L, -2);
}

void json_event_push_pooled(lua_State *L, const char *text, size_t len, const jnode *nodes, size_t n,
                            size_t objects) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &pool_key);
    doc *d = lua_touserdata(L, -1);
    if (d) d->fresh = d->root = NULL;        /* the event before's proxy is no longer the event */
    if (nodes[0].type != JN_ARRAY && nodes[0].type != JN_OBJECT) {
        lua_pop(L, 1);
        json_tape_push_scalar(L, text, &nodes[0]);
        return;
    }
    size_t need = doc_bytes(n, len);
    /* Too small, or four times what this event needs (one huge event must not keep its memory
     * for good): a new one, the old one's tables stale from now on. */
    if (!d || d->cap < need || (d->cap > 4 * need && d->cap > 65536)) {
        if (d) {                                     /* its data tables all stale */
            d->gen++;
            if (d->datas) memset(d->datas, 0, d->data_slots * sizeof *d->datas);
            d->data_used = 0;
        }
        lua_pop(L, 1);
        /* a little room for the next, slightly larger event; little, since it counts against the
         * memory cap as the document did when each event had its own */
        d = new_doc(L, need + (need / 4 < 16384 ? need / 4 : 16384), 1);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &pool_key);
    }
    d->gen++;
    load_and_push(L, d, lua_gettop(L), text, len, nodes, n, objects);
    if (nodes[0].type == JN_OBJECT) {
        d->fresh = lua_topointer(L, -1);
        d->fresh_gen = d->gen;
    }
    lua_remove(L, -2);
}

/* ---------------------------- bulk reading (view) ------------------------- */

int json_event_view(lua_State *L, int idx, json_view *v) {
    /* The mapper's event itself (most calls): its root object, known by its address, with no walk
     * through its metatables. */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &pool_key);
    const doc *pooled = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (pooled && pooled->root && pooled->root == lua_topointer(L, idx) && lua_type(L, idx) == LUA_TTABLE) {
        v->doc = pooled;
        v->nodes = pooled->nodes;
        v->serial = pooled->serial;
        v->node = 0;
        v->cache = 0;
        return 0;
    }
    int top = lua_gettop(L);
    idx = lua_absindex(L, idx);
    int ok = 0;
    if (push_data(L, idx) && lua_getmetatable(L, -1)) {          /* D Dmt: an object not complete */
        const doc *d = dmt_doc(L, lua_gettop(L));
        lua_Integer i = d ? data_node(L, top + 1, d) : -1;   /* -1: stale */
        if (i >= 0) {
            v->doc = d;
            v->nodes = d->nodes;
            v->serial = d->serial;
            v->node = (uint32_t)i;
            v->cache = 0;
            ok = 1;
        }
    }
    lua_settop(L, top);
    return ok ? 0 : -1;
}

uint32_t json_view_member(lua_State *L, const json_view *v, uint32_t obj, const char *key) {
    if (v->nodes[obj].type != JN_OBJECT) return 0;
    return find_member(L, (doc *)v->doc, obj, key, strlen(key));
}

void json_view_members(lua_State *L, const json_view *v, uint32_t obj, const char *const *names,
                       const size_t *lens, int n, uint32_t *found) {
    doc *d = (doc *)v->doc;
    for (int k = 0; k < n; k++) found[k] = 0;
    if (v->nodes[obj].type != JN_OBJECT) return;
    /* the names by length (chains from first[len] through next[]): most members are passed over
     * on their length alone, the others compared with the one or two names of their length */
    signed char first[64], next[32];
    memset(first, -1, sizeof first);
    int indexed = d->index_at[obj] != 0 || n > 32;
    for (int k = n - 1; k >= 0 && !indexed; k--) {
        if (lens[k] >= 64) { indexed = 1; break; }
        next[k] = first[lens[k]];
        first[lens[k]] = (signed char)k;
    }
    uint32_t j = obj + 1;
    for (uint32_t m = 0; m < d->nodes[obj].len && !indexed; m++) {
        const jnode *key = &d->nodes[j];
        if (key->escaped) indexed = 1;                /* decoded to compare: the way of single reads */
        else if (key->len < 64)
            for (int k = first[key->len]; k >= 0; k = next[k])
                if (same_bytes(d->text + key->pos, names[k], key->len)) found[k] = j + 1;   /* the last wins */
        j = d->nodes[j + 1].end;
    }
    if (indexed)
        for (int k = 0; k < n; k++) found[k] = find_member(L, d, obj, names[k], lens[k]);
}

void json_view_push(lua_State *L, const json_view *v, uint32_t i) {
    const doc *d = v->doc;
    if (d->nodes[i].type == JN_STRING) push_string(L, d, &d->nodes[i], v->cache);
    else json_tape_push_scalar(L, d->text, &d->nodes[i]);
}

/* ------------------------------ data tables ------------------------------- */

/* Pushes the data table behind a proxy at idx and returns 1, or returns 0. */
static int push_data(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
    lua_pushliteral(L, "__newindex");
    lua_rawget(L, -2);
    int ours = lua_tocfunction(L, -1) == ro_newindex;
    lua_pop(L, 1);
    if (!ours) { lua_pop(L, 1); return 0; }
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);
    lua_remove(L, -2);
    return 1;
}

/* Is the object data table at idx incomplete, of a generation before the document's own? */
static int is_stale(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx)) return 0;              /* complete: nothing more to read */
    const doc *d = dmt_doc(L, lua_gettop(L));
    lua_pop(L, 1);
    return !d || data_node(L, idx, d) < 0;
}

/* Builds every field of the object data table at idx not built yet. */
static void complete(lua_State *L, int data) {
    if (!lua_getmetatable(L, data)) return;               /* complete already (or an array) */
    int dmt = lua_gettop(L);
    doc *d = dmt_doc(L, dmt);
    const dslot *entry = d ? data_entry(L, data, d) : NULL;
    if (!entry) { stale(L, "the members"); return; }
    uint32_t i = entry->node, class = entry->class;       /* (the map may grow below: copied) */
    if (i == 0) d->root = NULL;                           /* json_event_view: not for a complete one */
    uint32_t n = d->nodes[i].len;
    /* the members' key nodes, in memory the state owns (an error below must not leak it) */
    uint32_t *keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0);
    uint32_t j = i + 1;
    for (uint32_t m = 0; m < n; m++) { keys[m] = j; j = d->nodes[j + 1].end; }
    lua_rawgeti(L, LUA_REGISTRYINDEX, d->cache_ref);
    int cache = lua_gettop(L);
    luaL_checkstack(L, 4, "JSON nesting");
    for (uint32_t m = n; m-- > 0;) {                      /* backwards: the last duplicate wins */
        push_string(L, d, &d->nodes[keys[m]], cache);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, data) != LUA_TNIL) { lua_pop(L, 2); continue; }
        lua_pop(L, 1);
        uint32_t child = 0;
        if (d->nodes[keys[m] + 1].type >= JN_ARRAY) {     /* a container: its class, by its name */
            size_t klen;
            const char *k = lua_tolstring(L, -1, &klen);
            child = member_class(class, k, klen);
        }
        push_value(L, d, dmt, cache, keys[m] + 1, child);
        lua_rawset(L, data);
    }
    lua_pop(L, 3);                                        /* dmt keys cache */
    lua_pushnil(L);
    lua_setmetatable(L, data);                            /* no more fallback: D holds the members alone */
}

int json_event_kind(lua_State *L, int idx, int whole) {
    idx = lua_absindex(L, idx);
    if (!push_data(L, idx)) return -1;
    lua_getmetatable(L, idx);
    lua_pushliteral(L, "__len");
    int is_array = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    if (whole && !is_array) {
        if (is_stale(L, lua_gettop(L))) {
            /* The encoder asks: it must fail with its own error, not a raise, which would leave
             * what it allocated behind. A table it refuses, the reason as its key. */
            lua_pop(L, 1);
            lua_createtable(L, 0, 1);
            lua_pushcfunction(L, ro_len);
            lua_setfield(L, -2, "event is no longer readable (a table kept from an earlier event)");
            return JSON_KIND_PLAIN;
        }
        complete(L, lua_gettop(L));
    }
    return is_array ? JSON_KIND_READONLY_ARRAY : JSON_KIND_READONLY_OBJECT;
}

void json_unwrap(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (push_data(L, idx)) return;
    lua_pushvalue(L, idx);
}

/* ------------------------------ metamethods ------------------------------- */

static int ro_newindex(lua_State *L) {
    /* Word the path from the event root when the runtime registered one. */
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &event_root_key);
    const char *where = NULL;
    if (lua_istable(L, -1)) {
        json_push_path(L, lua_gettop(L), 1);
        where = lua_tostring(L, -1);
    }
    if (key)
        return luaL_error(L, "event is read-only: cannot set field '%s%s%s'",
                          where && *where ? where : "", where && *where ? "." : "", key);
    if (lua_isinteger(L, 2))
        return luaL_error(L, "event is read-only: cannot set field '%s[%d]'",
                          where ? where : "", (int)lua_tointeger(L, 2));
    return luaL_error(L, "event is read-only: cannot set a field of %s",
                      where && *where ? where : "the event");
}

static int ro_len(lua_State *L) {
    if (!push_data(L, 1)) return luaL_error(L, "bad argument #1 to '__len' (read-only event table expected)");
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

/* The iterator pairs(proxy) returns: upvalue 1 is the data table, upvalue 2 the proxy. It walks
 * the data table, which never leaves C, and answers only for the proxy it was made for, so a
 * script calling it on a number, a string or another table gets an argument error. */
static int ro_next(lua_State *L) {
    if (!lua_rawequal(L, 1, lua_upvalueindex(2)))
        return luaL_argerror(L, 1, "the read-only table this iterator came from expected");
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1))) return 2;
    lua_pushnil(L);
    return 1;
}

/* pairs(proxy) returns ro_next, the proxy (never its data table: that one is writable) and nil. */
static int ro_pairs(lua_State *L) {
    if (!push_data(L, 1)) return luaL_error(L, "bad argument #1 to '__pairs' (read-only event table expected)");
    complete(L, lua_gettop(L));
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, ro_next, 2);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* ------------------------------ error paths ------------------------------- */

/* Nodes the path search may visit: it only words a message, so past this it gives up (the event
 * is a tree, but a bound keeps a graph a script might plant from costing more than a message). */
#define PATH_SEARCH_BUDGET 100000

/* Depth-first search for target among what was built under node. */
static int find_path(lua_State *L, int node, int target, strbuf *path, int depth, long *budget) {
    if (depth > JSON_MAX_DEPTH || --*budget < 0) return 0;
    if (lua_rawequal(L, node, target)) return 1;
    luaL_checkstack(L, 4, "path search");
    if (!push_data(L, node)) return 0;             /* only the event's own proxies are searched */
    int data = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, data)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            size_t mark = path->len;
            if (lua_type(L, -2) == LUA_TSTRING) {
                if (path->len) strbuf_addc(path, '.');
                strbuf_adds(path, lua_tostring(L, -2));
            } else if (lua_isinteger(L, -2)) {
                char ix[32];
                snprintf(ix, sizeof ix, "[%lld]", (long long)lua_tointeger(L, -2));
                strbuf_adds(path, ix);
            }
            if (find_path(L, lua_gettop(L), target, path, depth + 1, budget)) { lua_pop(L, 3); return 1; }
            path->len = mark;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

void json_push_path(lua_State *L, int root_idx, int target_idx) {
    root_idx = lua_absindex(L, root_idx);
    target_idx = lua_absindex(L, target_idx);
    strbuf path = {0};
    long budget = PATH_SEARCH_BUDGET;
    if (find_path(L, root_idx, target_idx, &path, 0, &budget)) lua_pushlstring(L, path.data ? path.data : "", path.len);
    else lua_pushnil(L);
    strbuf_free(&path);
}

int json_event_fresh_object(lua_State *L, int idx) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &pool_key);
    const doc *d = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return d && d->fresh && d->fresh_gen == d->gen && d->fresh == lua_topointer(L, idx);
}

void json_set_event_root(lua_State *L, int idx) {
    /* The pooled document's root proxy, while the registry holds it here, is known by its address
     * (json_event_view); never after, when another table could be made at that address. */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &pool_key);
    doc *d = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (d) d->root = NULL;
    if (idx) {
        lua_pushvalue(L, idx);
        /* the proxy json_event_push_pooled pushed for this generation, which its caller held since */
        if (d && d->fresh && d->fresh_gen == d->gen && d->fresh == lua_topointer(L, -1)) d->root = d->fresh;
    } else {
        lua_pushnil(L);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &event_root_key);
}
