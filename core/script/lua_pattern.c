/*
 * lua_pattern.c: Lua 5.4's pattern matching (string.find/match/gmatch/gsub), written for the
 * sandbox so that its work is bounded.
 *
 * Lua's own matcher backtracks: ("a"):rep(1e5):find((".-"):rep(50) .. "b") runs for minutes
 * inside one C call, where neither cap can see it (no Lua instruction runs, nothing is allocated).
 * This one follows the same grammar and semantics (classes, sets, the quantifiers * + - ?,
 * anchors, captures and position captures, back-references, %b and %f; find's init, gmatch's
 * init and empty-match rule, gsub's string/table/function replacements and its count), written
 * as a plain recursive matcher, and counts its steps: every CHECK_STEPS single-character tests it
 * asks the sandbox whether a cap broke (sandbox_check_broken), which raises the cap error. So a
 * pattern costs what a Lua loop would: it ends at the time cap.
 *
 * Invariant: every path that tests a character goes through single(), which counts the step;
 * the recursion depth is bounded (MAX_DEPTH) as in Lua, and nothing is allocated while matching
 * (captures are offsets on the C stack), so raising from a check leaks nothing.
 */
#include "lua_pattern.h"

#include <ctype.h>
#include <string.h>

#include "lauxlib.h"
#include "sandbox_lib.h"

#define ESC '%'
#define SPECIALS "^$*+?.([%-"
#define MAX_CAPTURES 32
#define MAX_DEPTH 200
#define CHECK_STEPS 4096
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

typedef struct mstate {
    const char *src_init, *src_end, *p_end;
    lua_State *L;
    int depth;                       /* calls left before "pattern too complex" */
    int level;                       /* captures open or closed so far */
    unsigned steps;
    struct { const char *init; ptrdiff_t len; } capture[MAX_CAPTURES];
} mstate;

static const char *do_match(mstate *ms, const char *s, const char *p);

static int class_matches(int c, int cl) {
    int res;
    switch (tolower(cl)) {
    case 'a': res = isalpha(c); break;
    case 'c': res = iscntrl(c); break;
    case 'd': res = isdigit(c); break;
    case 'g': res = isgraph(c); break;
    case 'l': res = islower(c); break;
    case 'p': res = ispunct(c); break;
    case 's': res = isspace(c); break;
    case 'u': res = isupper(c); break;
    case 'w': res = isalnum(c); break;
    case 'x': res = isxdigit(c); break;
    default: return cl == c;
    }
    if (isupper(cl)) res = !res;
    return res;
}

/* Does c belong to the set [...] from p (its '[') to ec (its ']')? */
static int set_matches(int c, const char *p, const char *ec) {
    int sig = 1;
    if (*(p + 1) == '^') { sig = 0; p++; }
    while (++p < ec) {
        if (*p == ESC) {
            p++;
            if (class_matches(c, (unsigned char)*p)) return sig;
        } else if (*(p + 1) == '-' && p + 2 < ec) {
            p += 2;
            if ((unsigned char)*(p - 2) <= c && c <= (unsigned char)*p) return sig;
        } else if ((unsigned char)*p == c) return sig;
    }
    return !sig;
}

/* The end of the single-character class starting at p. */
static const char *class_end(mstate *ms, const char *p) {
    switch (*p++) {
    case ESC:
        if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    case '[':
        if (*p == '^') p++;
        do {
            if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*(p++) == ESC && p < ms->p_end) p++;
        } while (*p != ']');
        return p + 1;
    default:
        return p;
    }
}

/* Does the character at s match the class p..ep? Every step of every match passes here. */
static int single(mstate *ms, const char *s, const char *p, const char *ep) {
    if (++ms->steps % CHECK_STEPS == 0) sandbox_check_broken(ms->L);
    if (s >= ms->src_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case ESC: return class_matches(c, (unsigned char)*(p + 1));
    case '[': return set_matches(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *balance(mstate *ms, const char *s, const char *p) {
    if (p >= ms->p_end - 1) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p) return NULL;
    int b = *p, e = *(p + 1), open = 1;
    while (++s < ms->src_end) {
        if (++ms->steps % CHECK_STEPS == 0) sandbox_check_broken(ms->L);
        if (*s == e) { if (--open == 0) return s + 1; }
        else if (*s == b) open++;
    }
    return NULL;
}

static const char *max_expand(mstate *ms, const char *s, const char *p, const char *ep) {
    ptrdiff_t i = 0;
    while (single(ms, s + i, p, ep)) i++;
    while (i >= 0) {                                 /* try the longest first */
        const char *res = do_match(ms, s + i, ep + 1);
        if (res) return res;
        i--;
    }
    return NULL;
}

static const char *min_expand(mstate *ms, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *res = do_match(ms, s, ep + 1);
        if (res) return res;
        if (single(ms, s, p, ep)) s++;
        else return NULL;
    }
}

static const char *start_capture(mstate *ms, const char *s, const char *p, ptrdiff_t what) {
    if (ms->level >= MAX_CAPTURES) luaL_error(ms->L, "too many captures");
    ms->capture[ms->level].init = s;
    ms->capture[ms->level].len = what;
    ms->level++;
    const char *res = do_match(ms, s, p);
    if (!res) ms->level--;
    return res;
}

static const char *end_capture(mstate *ms, const char *s, const char *p) {
    int l = -1;
    for (int i = ms->level - 1; i >= 0; i--)
        if (ms->capture[i].len == CAP_UNFINISHED) { l = i; break; }
    if (l < 0) luaL_error(ms->L, "invalid pattern capture");
    ms->capture[l].len = s - ms->capture[l].init;
    const char *res = do_match(ms, s, p);
    if (!res) ms->capture[l].len = CAP_UNFINISHED;
    return res;
}

static const char *back_reference(mstate *ms, const char *s, int digit) {
    int l = digit - '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
        luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    size_t len = (size_t)ms->capture[l].len;
    ms->steps += (unsigned)(len / 16);
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0) return s + len;
    return NULL;
}

static const char *do_match(mstate *ms, const char *s, const char *p) {
    if (ms->depth-- == 0) luaL_error(ms->L, "pattern too complex");
    for (;;) {
        if (p == ms->p_end) break;
        const char *ep;
        switch (*p) {
        case '(':
            s = *(p + 1) == ')' ? start_capture(ms, s, p + 2, CAP_POSITION) : start_capture(ms, s, p + 1, CAP_UNFINISHED);
            goto done;
        case ')':
            s = end_capture(ms, s, p + 1);
            goto done;
        case '$':
            if (p + 1 != ms->p_end) goto plain;
            s = s == ms->src_end ? s : NULL;
            goto done;
        case ESC:
            switch (*(p + 1)) {
            case 'b':
                s = balance(ms, s, p + 2);
                if (s) { p += 4; continue; }
                goto done;
            case 'f': {
                p += 2;
                if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                ep = class_end(ms, p);
                int prev = s == ms->src_init ? 0 : (unsigned char)*(s - 1);
                int cur = s < ms->src_end ? (unsigned char)*s : 0;
                if (!set_matches(prev, p, ep - 1) && set_matches(cur, p, ep - 1)) { p = ep; continue; }
                s = NULL;
                goto done;
            }
            case '0': case '1': case '2': case '3': case '4':
            case '5': case '6': case '7': case '8': case '9':
                s = back_reference(ms, s, (unsigned char)*(p + 1));
                if (s) { p += 2; continue; }
                goto done;
            default:
                goto plain;
            }
        default:
        plain:
            ep = class_end(ms, p);
            if (!single(ms, s, p, ep)) {
                if (*ep == '*' || *ep == '?' || *ep == '-') { p = ep + 1; continue; }
                s = NULL;
                goto done;
            }
            switch (*ep) {
            case '?': {
                const char *res = do_match(ms, s + 1, ep + 1);
                if (res) { s = res; goto done; }
                p = ep + 1;
                continue;
            }
            case '+': s = max_expand(ms, s + 1, p, ep); goto done;
            case '*': s = max_expand(ms, s, p, ep); goto done;
            case '-': s = min_expand(ms, s, p, ep); goto done;
            default: s++; p = ep; continue;
            }
        }
    }
done:
    ms->depth++;
    return s;
}

/* ------------------------------- captures ---------------------------------- */

static void push_one(mstate *ms, int i, const char *s, const char *e) {
    if (i >= ms->level) {
        if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(ms->L, s, (size_t)(e - s));        /* the whole match */
        return;
    }
    ptrdiff_t l = ms->capture[i].len;
    if (l == CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
    if (l == CAP_POSITION) lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
    else lua_pushlstring(ms->L, ms->capture[i].init, (size_t)l);
}

static int push_captures(mstate *ms, const char *s, const char *e) {
    int n = ms->level == 0 && s ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++) push_one(ms, i, s, e);
    return n;
}

static void prepare(mstate *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
    ms->L = L;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->steps = 0;
}

static void restart(mstate *ms) {
    ms->level = 0;
    ms->depth = MAX_DEPTH;
}

/* Lua 5.4's reading of a start position: 1-based, negative from the end, clamped to 1. */
static size_t start_at(lua_Integer pos, size_t len) {
    if (pos > 0) return (size_t)pos;
    if (pos == 0) return 1;
    if (pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

/* ---------------------------- the functions --------------------------------- */

static int find_aux(lua_State *L, int find) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) { lua_pushnil(L); return 1; }
    int anchor = *p == '^';
    if (anchor) { p++; lp--; }
    mstate ms;
    prepare(&ms, L, s, ls, p, lp);
    const char *s1 = s + init;
    do {
        restart(&ms);
        const char *e = do_match(&ms, s1, p);
        if (e) {
            if (find) {
                lua_pushinteger(L, (s1 - s) + 1);
                lua_pushinteger(L, e - s);
                return push_captures(&ms, NULL, NULL) + 2;
            }
            return push_captures(&ms, s1, e);
        }
    } while (s1++ < ms.src_end && !anchor);
    lua_pushnil(L);
    return 1;
}

int lua_pattern_find(lua_State *L) { return find_aux(L, 1); }
int lua_pattern_match(lua_State *L) { return find_aux(L, 0); }

/* gmatch's iterator. Upvalues: the subject, the pattern, the next start and the end of the last
 * match (-1 for none) as integers, so nothing but Lua values is kept between calls. */
static int gmatch_next(lua_State *L) {
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    lua_Integer from = lua_tointeger(L, lua_upvalueindex(3)), last = lua_tointeger(L, lua_upvalueindex(4));
    mstate ms;
    prepare(&ms, L, s, ls, p, lp);
    for (const char *src = s + from; src <= ms.src_end; src++) {
        restart(&ms);
        const char *e = do_match(&ms, src, p);
        if (e && (last < 0 || e != s + last)) {
            lua_pushinteger(L, e - s);
            lua_copy(L, -1, lua_upvalueindex(3));
            lua_replace(L, lua_upvalueindex(4));
            return push_captures(&ms, src, e);
        }
    }
    return 0;
}

int lua_pattern_gmatch(lua_State *L) {
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) init = ls + 1;                     /* starts after the end: no match */
    lua_settop(L, 2);
    lua_pushinteger(L, (lua_Integer)init);
    lua_pushinteger(L, -1);
    lua_pushcclosure(L, gmatch_next, 4);
    return 1;
}

static void add_string(mstate *ms, luaL_Buffer *b, const char *s, const char *e) {
    lua_State *L = ms->L;
    size_t l;
    const char *news = lua_tolstring(L, 3, &l);
    const char *p;
    while ((p = memchr(news, ESC, l)) != NULL) {
        luaL_addlstring(b, news, (size_t)(p - news));
        p++;
        if (*p == ESC) luaL_addchar(b, *p);
        else if (*p == '0') luaL_addlstring(b, s, (size_t)(e - s));
        else if (isdigit((unsigned char)*p)) {
            push_one(ms, *p - '1', s, e);
            luaL_tolstring(L, -1, NULL);
            lua_remove(L, -2);
            luaL_addvalue(b);
        } else luaL_error(L, "invalid use of '%c' in replacement string", ESC);
        l -= (size_t)(p + 1 - news);
        news = p + 1;
    }
    luaL_addlstring(b, news, l);
}

static int add_value(mstate *ms, luaL_Buffer *b, const char *s, const char *e, int tr) {
    lua_State *L = ms->L;
    switch (tr) {
    case LUA_TFUNCTION: {
        lua_pushvalue(L, 3);
        int n = push_captures(ms, s, e);
        lua_call(L, n, 1);
        break;
    }
    case LUA_TTABLE:
        push_one(ms, 0, s, e);
        lua_gettable(L, 3);
        break;
    default:
        add_string(ms, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));       /* keep the original text */
        return 0;
    }
    if (!lua_isstring(L, -1)) return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

int lua_pattern_gsub(lua_State *L) {
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *lastmatch = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    int anchor = *p == '^';
    lua_Integer n = 0;
    int changed = 0;
    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                     "string/function/table");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (anchor) { p++; lp--; }
    mstate ms;
    prepare(&ms, L, src, srcl, p, lp);
    while (n < max_s) {
        restart(&ms);
        const char *e = do_match(&ms, src, p);
        if (e && e != lastmatch) {
            n++;
            changed = add_value(&ms, &b, src, e, tr) | changed;
            src = lastmatch = e;
        } else if (src < ms.src_end) {
            luaL_addchar(&b, *src++);
        } else break;
        if (anchor) break;
    }
    if (!changed) lua_pushvalue(L, 1);
    else {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}
