/*
 * loop_properties.c: loop.properties (and loop.profile, loop.email) for the common shape of a Loop
 * event, read in place.
 *
 * Why: loop.properties (core/lua/returnflow/loop.lua) reads some forty fields of the event, about
 * half of them absent from any one return, and builds nine lists over its items. Through the
 * read-only event each first read and each miss is a metamethod call into json_event.c, and every
 * object reached is a proxy: a third of the default scripts' instructions. Here the same fields
 * are read from the event's tape (json_event_view): no proxy, no metamethod, nothing cached but
 * where the last profile's values lie on its event's tape (a second loop.profile of one event, the
 * emitter's and then a script's, builds its fresh table from them without looking again).
 *
 * Invariant: the table built is the one loop.lua's own code builds, value for value (return_by
 * aside: loop.lua adds it, so its date arithmetic lives in one place), or there is none. Wherever
 * the event leaves the common shape (a list that is not a list of objects, a table where loop.lua
 * would pass one on, a hole it would leave in a list, a destination, a last label that is not an
 * object) this returns nothing and loop.lua's code runs, with whatever it does there (errors
 * included). spec/lua/loop_properties_spec.lua compares the two over every fixture and variants.
 */
#include "loop_properties.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "json_tape.h"
#include "lauxlib.h"

/* The keys the readers set (and ""), made Lua strings once per state (each reader's second upvalue,
 * a list of them): lua_setfield with a C string finds it in Lua's cache of C strings (a strcmp) or
 * interns it again, some sixty times an event. */
enum {
    K_EVENT_ID = 1,
    K_RETURN_ID,
    K_RETURN_STATUS,
    K_ORDER,
    K_PROVIDER_ORDER_ID,
    K_STATUS_PAGE_URL,
    K_RETURN_REASONS,
    K_RETURN_REASON_PARENTS,
    K_RETURN_OUTCOME,
    K_RETURN_DESTINATION,
    K_LABELS_ENABLED,
    K_KEEP_ITEM,
    K_LABEL,
    K_CARRIER,
    K_TRACKING_URL,
    K_TRACKING_NUMBER,
    K_TRACKING_STATUS,
    K_PRODUCT_NAMES,
    K_PRODUCT_IMAGES,
    K_PRODUCT_SKUS,
    K_PRODUCT_VARIANT_TITLES,
    K_RETURNED_PRODUCT_NAMES,
    K_RETURNED_PRODUCT_IMAGES,
    K_RETURNED_PRODUCT_SKUS,
    K_RETURNED_PRODUCT_VARIANT_TITLES,
    K_RETURNED_PRODUCT_TYPES,
    K_EMAIL,
    K_FIRST_NAME,
    K_LAST_NAME,
    K_LOCATION,
    K_ADDRESS1,
    K_ADDRESS2,
    K_CITY,
    K_REGION,
    K_ZIP,
    K_COUNTRY,
    K_EMPTY,                       /* "": text() of a missing value, a title with no variant */
    K_COUNT = K_EMPTY
};
static const char *const key_names[K_COUNT + 1] = {
    NULL,
    "event_id", "return_id", "return_status", "order", "provider_order_id", "status_page_url",
    "return_reasons", "return_reason_parents", "return_outcome", "return_destination", "labels_enabled",
    "keep_item", "label", "carrier", "tracking_url", "tracking_number", "tracking_status", "product_names",
    "product_images", "product_skus", "product_variant_titles", "returned_product_names",
    "returned_product_images", "returned_product_skus", "returned_product_variant_titles",
    "returned_product_types", "email", "first_name", "last_name", "location", "address1", "address2",
    "city", "region", "zip", "country", "",
};

typedef struct reader {
    lua_State *L;
    json_view v;
    int keys;                      /* stack index of the list of key strings */
    int marker;                    /* index of the array marker (properties' upvalue), or 0 */
} reader;

/* Pushes the string K_* (a key: pushed first, then its value, then lua_rawset saves set's rotate). */
static void push_key(const reader *r, int key) { lua_rawgeti(r->L, r->keys, key); }

/* No object (the last label of a return without labels); a value node is never 0 (the root's). */
#define NO_OBJECT UINT32_MAX

/* The value node of member key of object node obj, or 0 (absent). */
static uint32_t member(reader *r, uint32_t obj, const char *key) {
    return obj == NO_OBJECT ? 0 : json_view_member(r->L, &r->v, obj, key);
}

static int type_of(const reader *r, uint32_t n) { return r->v.nodes[n].type; }

/* loop.missing: absent or null. */
static int missing(const reader *r, uint32_t n) { return !n || type_of(r, n) == JN_NULL; }

static int container(const reader *r, uint32_t n) {
    return n && (type_of(r, n) == JN_ARRAY || type_of(r, n) == JN_OBJECT);
}

/* Absent or false: where loop.lua's `a or b` takes b. */
static int falsy(const reader *r, uint32_t n) { return !n || type_of(r, n) == JN_FALSE; }

static void push_null(lua_State *L) { lua_pushlightuserdata(L, NULL); }

/* native(v): null for absent or null, else the scalar. -1 for a table (loop.lua passes it on). */
static int push_native(reader *r, uint32_t n) {
    if (missing(r, n)) { push_null(r->L); return 0; }
    if (container(r, n)) return -1;
    json_view_push(r->L, &r->v, n);
    return 0;
}

/* text(v): "" for absent or null, else the scalar; -1 for a table. */
static int push_text(reader *r, uint32_t n) {
    if (missing(r, n)) { push_key(r, K_EMPTY); return 0; }
    if (container(r, n)) return -1;
    json_view_push(r->L, &r->v, n);
    return 0;
}

/* Is node n the string lit (escapes decoded)? */
static int string_is(reader *r, uint32_t n, const char *lit) {
    if (!n || type_of(r, n) != JN_STRING) return 0;
    json_view_push(r->L, &r->v, n);
    size_t len;
    const char *s = lua_tolstring(r->L, -1, &len);
    int same = len == strlen(lit) && memcmp(s, lit, len) == 0;
    lua_pop(r->L, 1);
    return same;
}

/* M.id(v): pushes a string id and returns 1, or pushes nothing and returns 0 (not an id). */
static int push_id(reader *r, uint32_t n) {
    if (!n) return 0;
    int t = type_of(r, n);
    if (t == JN_STRING) { json_view_push(r->L, &r->v, n); return 1; }
    if (t != JN_NUMBER) return 0;
    json_view_push(r->L, &r->v, n);
    char buf[64];
    if (lua_isinteger(r->L, -1)) snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(r->L, -1));
    else snprintf(buf, sizeof buf, "%.0f", (double)lua_tonumber(r->L, -1));   /* string.format's %.0f */
    lua_pop(r->L, 1);
    lua_pushstring(r->L, buf);
    return 1;
}

/* M.return_id(ret), through native: null when there is none. */
static void push_return_id(reader *r, uint32_t ret) {
    uint32_t topic = member(r, ret, "topic");
    if (string_is(r, topic, "return") || string_is(r, topic, "label")) {
        if (!push_id(r, member(r, ret, "id"))) push_null(r->L);
        return;
    }
    if (!push_id(r, member(r, ret, "return_id")) && !push_id(r, member(r, ret, "id"))) push_null(r->L);
}

/* The k-th (0-based) item node of array node a. */
static uint32_t item_at(const reader *r, uint32_t a, uint32_t k) {
    uint32_t j = a + 1;
    while (k--) j = r->v.nodes[j].end;
    return j;
}

/* Is node n absent, null, or an array of objects only? (the lists loop.lua walks with ipairs) */
static int list_of_objects(const reader *r, uint32_t n) {
    if (missing(r, n)) return 1;
    if (type_of(r, n) != JN_ARRAY) return 0;
    uint32_t j = n + 1;
    for (uint32_t k = 0; k < r->v.nodes[n].len; k++, j = r->v.nodes[j].end)
        if (type_of(r, j) != JN_OBJECT) return 0;
    return 1;
}

/* t[key] = the value on top (popped), raw (t is a table made here, with no metatable); t is an
 * absolute index, key one of K_*. */
static void set(const reader *r, int t, int key) {
    lua_rawgeti(r->L, r->keys, key);
    lua_insert(r->L, -2);
    lua_rawset(r->L, t);
}

/* Sets t[key] = native(member name of obj); -1 for a table. */
static int set_native(reader *r, int t, int key, uint32_t obj, const char *name) {
    push_key(r, key);
    if (push_native(r, member(r, obj, name))) return -1;
    lua_rawset(r->L, t);
    return 0;
}

/* The fields of an item (of line_items or exchanges) read here, found in one pass over each item
 * (json_view_members) instead of an index built for each: an item has some thirty members. */
enum { F_TITLE, F_IMAGE, F_PRODUCT_IMAGE, F_SKU, F_VARIANT_TITLE, F_PRODUCT_TYPE, F_RETURN_REASON,
       F_PARENT_RETURN_REASON, F_OUTCOME, F_COUNT };
static const char *const item_names[F_COUNT] = {
    "title", "image", "product_image", "sku", "variant_title", "product_type", "return_reason",
    "parent_return_reason", "outcome",
};
static const size_t item_name_lens[F_COUNT] = {
    sizeof "title" - 1, sizeof "image" - 1, sizeof "product_image" - 1, sizeof "sku" - 1,
    sizeof "variant_title" - 1, sizeof "product_type" - 1, sizeof "return_reason" - 1,
    sizeof "parent_return_reason" - 1, sizeof "outcome" - 1,
};
typedef uint32_t item_row[F_COUNT];

/* Fills rows[k] with the fields of the k-th item of array node list (absent or null: none). */
static void item_rows(reader *r, uint32_t list, item_row *rows) {
    if (missing(r, list)) return;
    uint32_t j = list + 1;
    for (uint32_t k = 0; k < r->v.nodes[list].len; k++, j = r->v.nodes[j].end)
        json_view_members(r->L, &r->v, j, item_names, item_name_lens, F_COUNT, rows[k]);
}

/* variant_title(item): its variant_title, else what follows the last " - " of its title. */
static int push_variant_title(reader *r, const item_row row) {
    uint32_t v = row[F_VARIANT_TITLE];
    if (!missing(r, v)) {
        if (container(r, v)) return -1;
        json_view_push(r->L, &r->v, v);
        return 0;
    }
    uint32_t title = row[F_TITLE];
    if (!title || type_of(r, title) != JN_STRING) { push_key(r, K_EMPTY); return 0; }
    json_view_push(r->L, &r->v, title);
    size_t len;
    const char *s = lua_tolstring(r->L, -1, &len);
    const char *last = NULL;
    for (const char *p = s; len >= 3 && p <= s + len - 3; p++)
        if (p[0] == ' ' && p[1] == '-' && p[2] == ' ') last = p;
    if (last) lua_pushlstring(r->L, last + 3, len - (size_t)(last + 3 - s));
    else push_key(r, K_EMPTY);
    lua_remove(r->L, -2);
    return 0;
}

/* Sets lists[col][n] (and also[col][an], when there are those lists) to the value on top, popped;
 * a list of index 0 (no types among the product_* lists) takes nothing. */
static void put_item(lua_State *L, const int lists[5], const int *also, int col, lua_Integer n,
                     lua_Integer an) {
    if (also && also[col]) {
        lua_pushvalue(L, -1);
        lua_rawseti(L, also[col], an);
    }
    if (lists[col]) lua_rawseti(L, lists[col], n);
    else lua_pop(L, 1);
}

/* product_lists(into, prefix, items): appends each item's name, image, sku, variant title (and
 * type) to the lists at lists[0..4] (types 0: none), and when `also` is given the same values to
 * the lists there too (product_* and returned_product_* both list the line items: each item is
 * read once for both). */
static int product_lists(reader *r, const int lists[5], const int *also, uint32_t items, const item_row *rows) {
    lua_State *L = r->L;
    if (missing(r, items)) return 0;
    for (uint32_t k = 0; k < r->v.nodes[items].len; k++) {
        const uint32_t *row = rows[k];
        lua_Integer n = (lua_Integer)lua_rawlen(L, lists[0]) + 1;
        lua_Integer an = also ? (lua_Integer)lua_rawlen(L, also[0]) + 1 : 0;
        if (push_text(r, row[F_TITLE])) return -1;
        put_item(L, lists, also, 0, n, an);
        uint32_t image = row[F_IMAGE];
        if (falsy(r, image)) image = row[F_PRODUCT_IMAGE];
        if (push_text(r, image)) return -1;
        put_item(L, lists, also, 1, n, an);
        if (push_text(r, row[F_SKU])) return -1;
        put_item(L, lists, also, 2, n, an);
        if (push_variant_title(r, row)) return -1;
        put_item(L, lists, also, 3, n, an);
        if (lists[4] || (also && also[4])) {
            if (push_text(r, row[F_PRODUCT_TYPE])) return -1;
            put_item(L, lists, also, 4, n, an);
        }
    }
    return 0;
}

/* M.reasons, M.reason_parents, M.outcomes: the field of every item, as a list; -1 where one would
 * be a hole (absent) or a table. */
static int field_list(reader *r, int p, int key, uint32_t items, const item_row *rows, int field) {
    lua_State *L = r->L;
    uint32_t count = missing(r, items) ? 0 : r->v.nodes[items].len;
    push_key(r, key);
    json_push_array_marked(L, (int)count, r->marker);
    for (uint32_t k = 0; k < count; k++) {
        uint32_t v = rows[k][field];
        if (!v || container(r, v)) return -1;
        json_view_push(L, &r->v, v);
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    lua_rawset(L, p);
    return 0;
}

static int build(reader *r, int p) {
    lua_State *L = r->L;
    uint32_t ret = r->v.node;
    uint32_t labels = member(r, ret, "labels"), last = NO_OBJECT;
    if (!list_of_objects(r, labels)) return -1;
    if (!missing(r, labels) && r->v.nodes[labels].len > 0) last = item_at(r, labels, r->v.nodes[labels].len - 1);
    uint32_t items = member(r, ret, "line_items"), exchanges = member(r, ret, "exchanges");
    if (!list_of_objects(r, items) || !list_of_objects(r, exchanges)) return -1;

    /* the items' fields, on the C stack for the common few, else in a userdata the state counts */
    int n_items = missing(r, items) ? 0 : (int)r->v.nodes[items].len;
    int n_exchanges = missing(r, exchanges) ? 0 : (int)r->v.nodes[exchanges].len;
    item_row few[16], *rows = few;
    if (n_items + n_exchanges > 16)
        rows = lua_newuserdatauv(L, (size_t)(n_items + n_exchanges) * sizeof *rows, 0);
    item_rows(r, items, rows);
    item_rows(r, exchanges, rows + n_items);

    uint32_t trigger = member(r, ret, "trigger");
    if (container(r, trigger)) return -1;
    if (trigger) { json_view_push(L, &r->v, trigger); set(r, p, K_EVENT_ID); }
    push_return_id(r, ret);
    set(r, p, K_RETURN_ID);
    if (set_native(r, p, K_RETURN_STATUS, ret, "state") || set_native(r, p, K_ORDER, ret, "order_name")) return -1;
    if (!push_id(r, member(r, ret, "provider_order_id"))) push_null(L);
    set(r, p, K_PROVIDER_ORDER_ID);
    if (set_native(r, p, K_STATUS_PAGE_URL, ret, "status_page_url")) return -1;
    if (field_list(r, p, K_RETURN_REASONS, items, rows, F_RETURN_REASON) ||
        field_list(r, p, K_RETURN_REASON_PARENTS, items, rows, F_PARENT_RETURN_REASON) ||
        field_list(r, p, K_RETURN_OUTCOME, items, rows, F_OUTCOME))
        return -1;

    uint32_t destination = member(r, ret, "destination");     /* ret.destination or ret.return_destination */
    if (falsy(r, destination)) destination = member(r, ret, "return_destination");
    if (!missing(r, destination)) return -1;                  /* loop.lua builds the table */
    push_null(L);
    set(r, p, K_RETURN_DESTINATION);

    uint32_t enabled = member(r, ret, "labels_enabled"), status = member(r, ret, "label_status");
    if (!missing(r, enabled)) lua_pushboolean(L, type_of(r, enabled) == JN_TRUE);
    else if (missing(r, status)) lua_pushboolean(L, !missing(r, labels) && r->v.nodes[labels].len > 0);
    else lua_pushboolean(L, !string_is(r, status, "N/A"));
    set(r, p, K_LABELS_ENABLED);
    uint32_t keep = member(r, ret, "keep_item");
    lua_pushboolean(L, keep && type_of(r, keep) == JN_TRUE);
    set(r, p, K_KEEP_ITEM);

    if (set_native(r, p, K_LABEL, last, "url")) return -1;    /* no last label: absent, so null */
    static const int from_label[] = { K_CARRIER, K_TRACKING_URL };
    for (size_t k = 0; k < 2; k++) {                          /* ret.x or (last_label and last_label.x) */
        const char *name = key_names[from_label[k]];
        uint32_t v = member(r, ret, name);
        if (falsy(r, v)) v = member(r, last, name);
        if (push_native(r, v)) return -1;
        set(r, p, from_label[k]);
    }
    if (set_native(r, p, K_TRACKING_NUMBER, ret, "tracking_number") ||
        set_native(r, p, K_TRACKING_STATUS, ret, "label_status"))
        return -1;

    static const int names[] = {
        K_PRODUCT_NAMES, K_PRODUCT_IMAGES, K_PRODUCT_SKUS, K_PRODUCT_VARIANT_TITLES,
        K_RETURNED_PRODUCT_NAMES, K_RETURNED_PRODUCT_IMAGES, K_RETURNED_PRODUCT_SKUS,
        K_RETURNED_PRODUCT_VARIANT_TITLES, K_RETURNED_PRODUCT_TYPES,
    };
    int base = lua_gettop(L);
    for (size_t k = 0; k < sizeof names / sizeof *names; k++)  /* sized: product_* take both lists */
        json_push_array_marked(L, k < 4 ? n_items + n_exchanges : n_items, r->marker);
    int product[5] = { base + 1, base + 2, base + 3, base + 4, 0 };
    int returned[5] = { base + 5, base + 6, base + 7, base + 8, base + 9 };
    if (product_lists(r, product, returned, items, rows) ||
        product_lists(r, product, NULL, exchanges, rows + n_items))
        return -1;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        push_key(r, names[k]);
        lua_pushvalue(L, base + 1 + (int)k);
        lua_rawset(L, p);
    }
    lua_settop(L, base);
    return 0;
}

/* properties(ret) -> the table, or nothing. */
static int fast_properties(lua_State *L) {
    reader r = { L, { 0 }, lua_upvalueindex(2), lua_upvalueindex(3) };
    if (json_event_view(L, 1, &r.v)) return 0;
    r.v.cache = lua_upvalueindex(1);
    luaL_checkstack(L, 24, "loop.properties");
    lua_settop(L, 1);
    lua_createtable(L, 0, 28);
    if (build(&r, 2)) return 0;
    lua_settop(L, 2);
    return 1;
}

/* ------------------------------- the profile ------------------------------ */

/* Is node n the empty string? */
static int empty_string(const reader *r, uint32_t n) {
    return n && type_of(r, n) == JN_STRING && r->v.nodes[n].len == 0;
}

/* The members of customer_detail the profile reads, found in one pass over it (json_view_members):
 * detail[D_EMAIL] ... ; all 0 when it is missing. */
enum { D_EMAIL, D_FIRST_NAME, D_LAST_NAME, D_COUNT };
static void detail_members(reader *r, uint32_t detail, uint32_t found[D_COUNT]) {
    static const char *const names[D_COUNT] = { "email", "first_name", "last_name" };
    static const size_t lens[D_COUNT] = { 5, 10, 9 };
    if (missing(r, detail)) { for (int k = 0; k < D_COUNT; k++) found[k] = 0; return; }
    json_view_members(r->L, &r->v, detail, names, lens, D_COUNT, found);
}

/* M.email(ev): the customer_detail's email (its node given, detail_members), else customer, else
 * email, each taken when neither missing nor ""; 0 for none. (detail.email false reads as none, as
 * `detail.email or nil` does.) */
static uint32_t email_node(reader *r, uint32_t ev, uint32_t detail_email) {
    uint32_t email = detail_email;
    if (email && type_of(r, email) == JN_FALSE) email = 0;
    if (missing(r, email) || empty_string(r, email)) email = member(r, ev, "customer");
    if (missing(r, email) || empty_string(r, email)) email = member(r, ev, "email");
    if (missing(r, email) || empty_string(r, email)) return 0;
    return email;
}

/* Where the values of the profile last built were on its event's tape, so that a second call for
 * the same object (the emitter's, then a script's: the default scripts remember the profile with
 * each return) builds the same table again from those nodes without finding them again: a fresh
 * table each call, which its caller may change as it likes. Slots below; `has` says which were set. */
enum { PV_EMAIL = 1, PV_FIRST_NAME, PV_LAST_NAME, PV_LOCATION, PV_ADDRESS1, PV_COUNT = PV_ADDRESS1 + 6 };
typedef struct profile_memo {
    uint64_t serial;               /* the event's (json_view): 0 for none */
    uint32_t node;                 /* the object the profile was read from */
    unsigned has;                  /* bit k: slot k was set (PV_LOCATION: a location table was) */
    uint32_t at[PV_COUNT];         /* the value node of each slot set */
} profile_memo;

/* The key of each slot, in the order fast_profile sets them (the same order makes the same table). */
static const int profile_slot_keys[PV_COUNT] = {
    0, K_EMAIL, K_FIRST_NAME, K_LAST_NAME, K_LOCATION, K_ADDRESS1, K_ADDRESS2, K_CITY, K_REGION, K_ZIP, K_COUNTRY,
};

/* t[the slot's key] = node n's value (a scalar), and the node noted in memo. */
static void set_kept(reader *r, profile_memo *memo, int t, int slot, uint32_t n) {
    json_view_push(r->L, &r->v, n);
    memo->at[slot] = n;
    memo->has |= 1u << slot;
    set(r, t, profile_slot_keys[slot]);
}

/* first_name or last_name: the detail's (M.value; its node given, detail_members), else the
 * event's; then dropped when "" or false (`x ~= "" and x or nil`). Sets t[key] or leaves it
 * absent; -1 for a table. */
static int set_name(reader *r, profile_memo *memo, int t, int slot, uint32_t ev, uint32_t detail_name) {
    const char *key = key_names[profile_slot_keys[slot]];
    uint32_t v = detail_name;
    if (missing(r, v) || type_of(r, v) == JN_FALSE) v = member(r, ev, key);   /* first or M.value(ev.x) */
    if (missing(r, v) || type_of(r, v) == JN_FALSE || empty_string(r, v)) return 0;
    if (container(r, v)) return -1;
    set_kept(r, memo, t, slot, v);
    return 0;
}

/* M.location(address): its six fields but "" ones, or nothing (pushes nil) when none is left. */
static int push_location(reader *r, profile_memo *memo, uint32_t address) {
    lua_State *L = r->L;
    if (missing(r, address)) { lua_pushnil(L); return 0; }
    /* the six found in one pass over the address (json_view_members) */
    static const char *const names[] = { "address1", "address2", "city", "state", "zip", "country" };
    static const size_t lens[] = { 8, 8, 4, 5, 3, 7 };
    enum { N = sizeof names / sizeof *names };
    uint32_t found[N];
    json_view_members(L, &r->v, address, names, lens, N, found);
    lua_createtable(L, 0, 6);
    int loc = lua_gettop(L), kept = 0;
    for (size_t k = 0; k < N; k++) {
        uint32_t v = found[k];
        if (missing(r, v) || empty_string(r, v)) continue;    /* M.value: absent; "": dropped */
        if (container(r, v)) return -1;
        set_kept(r, memo, loc, PV_ADDRESS1 + (int)k, v);
        kept++;
    }
    if (!kept) { lua_pop(L, 1); lua_pushnil(L); }
    else memo->has |= 1u << PV_LOCATION;
    return 0;
}

/* Pushes the profile table again from the nodes noted in memo, as fast_profile built it. */
static void push_kept_profile(reader *r, const profile_memo *memo) {
    lua_State *L = r->L;
    lua_createtable(L, 0, 4);
    int p = lua_gettop(L);
    for (int slot = PV_EMAIL; slot < PV_COUNT; slot++) {
        if (slot == PV_LOCATION) {
            if (!(memo->has & 1u << PV_LOCATION)) break;      /* the address fields go with it */
            push_key(r, K_LOCATION);
            lua_createtable(L, 0, 6);
            p = lua_gettop(L);                                /* the location's fields, then it */
            continue;
        }
        if (!(memo->has & 1u << slot)) continue;
        push_key(r, profile_slot_keys[slot]);
        json_view_push(L, &r->v, memo->at[slot]);
        lua_rawset(L, p);
    }
    if (memo->has & 1u << PV_LOCATION) lua_rawset(L, p - 2);
}

/* profile(ev) -> M.profile's table, or nothing. Upvalues: the string cache, the keys, the state's
 * profile_memo. */
static int fast_profile(lua_State *L) {
    reader r = { L, { 0 }, lua_upvalueindex(2), 0 };
    if (json_event_view(L, 1, &r.v)) return 0;
    r.v.cache = lua_upvalueindex(1);
    luaL_checkstack(L, 8, "loop.profile");
    profile_memo *memo = lua_touserdata(L, lua_upvalueindex(3));
    if (memo->serial == r.v.serial && memo->node == r.v.node) {
        push_kept_profile(&r, memo);
        return 1;
    }
    memo->serial = 0;                                         /* noted only once built whole */
    memo->has = 0;
    lua_settop(L, 1);
    uint32_t ev = r.v.node;
    uint32_t detail = member(&r, ev, "customer_detail"), address = member(&r, ev, "address");
    if ((!missing(&r, detail) && type_of(&r, detail) != JN_OBJECT) ||
        (!missing(&r, address) && type_of(&r, address) != JN_OBJECT))
        return 0;
    lua_createtable(L, 0, 4);
    uint32_t in_detail[D_COUNT];
    detail_members(&r, detail, in_detail);
    uint32_t email = email_node(&r, ev, in_detail[D_EMAIL]);
    if (email) {
        if (container(&r, email)) return 0;
        set_kept(&r, memo, 2, PV_EMAIL, email);
    }
    if (set_name(&r, memo, 2, PV_FIRST_NAME, ev, in_detail[D_FIRST_NAME]) ||
        set_name(&r, memo, 2, PV_LAST_NAME, ev, in_detail[D_LAST_NAME]))
        return 0;
    if (push_location(&r, memo, address)) return 0;
    set(&r, 2, K_LOCATION);
    lua_settop(L, 2);
    memo->serial = r.v.serial;
    memo->node = r.v.node;
    return 1;
}

/* email(ev) -> true and M.email's answer (nil for none), or nothing. */
static int fast_email(lua_State *L) {
    reader r = { L, { 0 }, 0, 0 };
    if (json_event_view(L, 1, &r.v)) return 0;
    r.v.cache = lua_upvalueindex(1);
    uint32_t detail = member(&r, r.v.node, "customer_detail");
    if (!missing(&r, detail) && type_of(&r, detail) != JN_OBJECT) return 0;
    uint32_t email = email_node(&r, r.v.node, missing(&r, detail) ? 0 : member(&r, detail, "email"));
    if (container(&r, email)) return 0;
    lua_pushboolean(L, 1);
    if (email) json_view_push(L, &r.v, email);
    else lua_pushnil(L);
    return 2;
}

/* Pushes the state's profile memo, made on first use: one for the state, not one for each instance
 * of this module (the host's realm and the scripts' have one each, and the emitter's loop.profile is
 * the host's). It holds no Lua value: node numbers of an event, whose serial says which. */
static const char profile_memo_key = 0;
static void push_profile_memo(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &profile_memo_key) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        profile_memo *memo = lua_newuserdatauv(L, sizeof *memo, 0);
        memset(memo, 0, sizeof *memo);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &profile_memo_key);
    }
}

int loop_properties_luaopen(lua_State *L) {
    /* each reader holds the state's string cache as its upvalue (json_view's cache); properties
     * and profile the list of their keys too, properties the array marker of its lists, profile
     * the state's profile memo */
    lua_createtable(L, 0, 3);
    json_push_string_cache(L);
    lua_createtable(L, K_COUNT, 0);
    for (int k = 1; k <= K_COUNT; k++) {
        lua_pushstring(L, key_names[k]);
        lua_rawseti(L, -2, k);
    }
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, fast_email, 1);
    lua_setfield(L, -4, "email");
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    json_push_array_marker(L);
    lua_pushcclosure(L, fast_properties, 3);
    lua_setfield(L, -4, "properties");
    push_profile_memo(L);
    lua_pushcclosure(L, fast_profile, 3);
    lua_setfield(L, -2, "profile");
    return 1;
}
