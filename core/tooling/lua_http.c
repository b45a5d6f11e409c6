/*
 * lua_http.c: native.http, one blocking HTTPS request for tooling commands.
 *
 * `returnflow templates install` makes a handful of calls to Klaviyo, one
 * after the other, each depending on the last (the template's id goes into the
 * flow). A blocking libcurl easy handle is the plain tool for that; the
 * service's delivery path is deliver.c's multi loop, not this. TLS peer and
 * host verification stay at libcurl's defaults (on), and nothing here logs:
 * the Authorization header is the caller's to keep out of its output.
 */
#include <string.h>
#include <curl/curl.h>

#include "lauxlib.h"
#include "lua_native.h"
#include "strbuf.h"

typedef struct response {
    strbuf body;
    lua_State *L;
    int headers;                     /* stack index of the response headers table */
} response;

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    strbuf_add(&((response *)ud)->body, data, size * n);
    return size * n;
}

/* "Name: value\r\n" -> headers[lower-case name] = value (the last one wins). */
static size_t on_header(char *data, size_t size, size_t n, void *ud) {
    response *r = ud;
    size_t len = size * n;
    char *colon = memchr(data, ':', len);
    if (!colon) return len;
    luaL_Buffer name;
    luaL_buffinit(r->L, &name);
    for (char *p = data; p < colon; p++) luaL_addchar(&name, (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
    luaL_pushresult(&name);
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    lua_pushlstring(r->L, v, (size_t)(end - v));
    lua_settable(r->L, r->headers);
    return len;
}

/* native.http{ method =, url =, headers = { [name] = value }, body =, timeout_ms = }
 *   -> status, body, headers  |  nil, error message, libcurl's error code (56: reset, 28: timeout) */
static int l_http(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "url");
    const char *url = luaL_checkstring(L, -1);
    lua_getfield(L, 1, "method");
    const char *method = luaL_optstring(L, -1, "GET");
    lua_getfield(L, 1, "body");
    size_t body_len = 0;
    const char *body = luaL_optlstring(L, -1, NULL, &body_len);
    lua_getfield(L, 1, "timeout_ms");
    long timeout_ms = (long)luaL_optinteger(L, -1, 30000);
    lua_pop(L, 1);

    CURL *h = curl_easy_init();
    if (!h) return luaL_error(L, "http: libcurl could not start");
    struct curl_slist *list = NULL;
    if (lua_getfield(L, 1, "headers") == LUA_TTABLE) {
        for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
                curl_slist_free_all(list);
                curl_easy_cleanup(h);
                return luaL_error(L, "http: header names and values must be strings");
            }
            lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
            list = curl_slist_append(list, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    list = curl_slist_append(list, "Expect:");           /* no 100-continue round trip */
    lua_newtable(L);
    response r = { .L = L, .headers = lua_gettop(L) };
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "returnflow");
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(list);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        strbuf_free(&r.body);
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", url, curl_easy_strerror(rc));
        lua_pushinteger(L, (lua_Integer)rc);
        return 3;
    }
    lua_pushinteger(L, status);
    lua_pushlstring(L, r.body.data ? r.body.data : "", r.body.len);
    strbuf_free(&r.body);
    lua_pushvalue(L, r.headers);
    return 3;
}

void lua_native_add_http(lua_State *L) {
    lua_pushcfunction(L, l_http);
    lua_setfield(L, -2, "http");
}
