/*
 * console.c: the console's listener and connections (console.h): its own thread and libuv loop, one
 * request a connection (Connection: close), except the live tail, which stays open as a stream of
 * server-sent events fed every 250 ms from the mapping threads' ring (tail.h).
 *
 * Lifecycle as libuv's: start binds on the new loop from the caller's thread (so a taken port is an
 * error serve can report) and only then starts the thread; stop wakes the loop (uv_async), which
 * closes every handle, returns from uv_run, and the thread is joined before anything is freed.
 */
#include "console.h"

#include <http_parser.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "console_http.h"
#include "json.h"
#include "log.h"
#include "tail.h"

#define MAX_REQUEST (64 * 1024)   /* headers and body: a login, a replay, a search */
#define MAX_CONNECTIONS 64

enum header { H_OTHER, H_COOKIE, H_CSRF, H_ORIGIN, H_HOST, H_CONTENT_TYPE, H_COUNT };

typedef struct conn {
    uv_tcp_t tcp;
    http_parser parser;
    struct console *c;
    struct conn *prev, *next;
    strbuf url, body, field, headers[H_COUNT];
    enum header header;
    int in_value, done, closing, event_stream;
    size_t received;
    unsigned long long tail_seq;  /* the live tail: the last item sent */
} conn;

struct console {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_async_t stop;
    uv_timer_t tick;
    pthread_t tid;
    http_parser_settings settings;
    console_state *state;
    conn *conns;
    int nconns;
    long long ticks;
    char address[80];
};

/* ------------------------------ connections ------------------------------- */

static void on_conn_closed(uv_handle_t *h) {
    conn *k = h->data;
    k->c->nconns--;
    strbuf_free(&k->url), strbuf_free(&k->body), strbuf_free(&k->field);
    for (int i = 0; i < H_COUNT; i++) strbuf_free(&k->headers[i]);
    free(k);
}

static void conn_close(conn *k) {
    if (k->closing) return;
    k->closing = 1;
    if (k->prev) k->prev->next = k->next; else k->c->conns = k->next;
    if (k->next) k->next->prev = k->prev;
    uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
}

typedef struct write_req { uv_write_t req; char *data; int close_after; conn *k; } write_req;

static void on_written(uv_write_t *req, int status) {
    write_req *w = (write_req *)req;
    if (status != 0 || w->close_after) conn_close(w->k);
    free(w->data);
    free(w);
}

/* Writes out's bytes (taking them over); closes the connection after them when close_after. */
static void send_bytes(conn *k, strbuf *out, int close_after) {
    write_req *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->data = out->data, w->close_after = close_after, w->k = k;
    uv_buf_t buf = uv_buf_init(out->data, (unsigned)out->len);
    out->data = NULL, out->len = out->cap = 0;
    if (uv_write(&w->req, (uv_stream_t *)&k->tcp, &buf, 1, on_written) != 0) {
        free(w->data);
        free(w);
        conn_close(k);
    }
}

static const char *reason_of(int status) {
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "OK";
    }
}

/* Every answer carries the same strict headers: nothing but the console's own script and style
 * may run or load, nothing may frame it, no referrer leaves it, nothing is cached. */
static const char security_headers[] =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Cross-Origin-Opener-Policy: same-origin\r\n"
    "Cross-Origin-Resource-Policy: same-origin\r\n"
    "Cache-Control: no-store\r\n";

static void respond(conn *k, console_response *rs) {
    strbuf out = {0};
    char head[512];
    snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", rs->status, reason_of(rs->status),
             rs->content_type ? rs->content_type : "application/json");
    strbuf_adds(&out, head);
    strbuf_adds(&out, security_headers);
    if (rs->set_cookie[0]) {
        strbuf_adds(&out, "Set-Cookie: ");
        strbuf_adds(&out, rs->set_cookie);
        strbuf_adds(&out, "\r\n");
    }
    if (rs->event_stream) {
        strbuf_adds(&out, "Connection: keep-alive\r\n\r\nretry: 1000\n\n");
        k->event_stream = 1;
        k->tail_seq = console_tail(0, NULL);      /* from now on */
        send_bytes(k, &out, 0);
        return;
    }
    snprintf(head, sizeof head, "Content-Length: %zu\r\nConnection: close\r\n\r\n", rs->body.len);
    strbuf_adds(&out, head);
    strbuf_add(&out, rs->body.data, rs->body.len);
    send_bytes(k, &out, 1);
}

static const char *text_of(strbuf *b) {
    strbuf_addc(b, 0);
    b->len--;
    return b->data;
}

static void handle(conn *k) {
    console_request rq = {0};
    rq.method = http_method_str((enum http_method)k->parser.method);
    char *url = (char *)text_of(&k->url);
    char *q = strchr(url, '?');
    rq.query = "";
    if (q) *q = 0, rq.query = q + 1;
    rq.path = url;
    rq.cookie = text_of(&k->headers[H_COOKIE]);
    rq.csrf = text_of(&k->headers[H_CSRF]);
    rq.origin = text_of(&k->headers[H_ORIGIN]);
    rq.host = text_of(&k->headers[H_HOST]);
    rq.content_type = text_of(&k->headers[H_CONTENT_TYPE]);
    rq.body = text_of(&k->body);
    rq.body_len = k->body.len;
    console_response rs = { .status = 200 };
    console_route(k->c->state, &rq, &rs);
    respond(k, &rs);
    strbuf_free(&rs.body);
}

static void refuse(conn *k, int status, const char *message) {
    console_response rs = { .status = status };
    strbuf_adds(&rs.body, "{\"error\":\"");
    strbuf_adds(&rs.body, message);
    strbuf_adds(&rs.body, "\"}");
    respond(k, &rs);
    strbuf_free(&rs.body);
}

/* ------------------------------- the parser ------------------------------- */

static int on_url(http_parser *p, const char *at, size_t len) {
    strbuf_add(&((conn *)p->data)->url, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    conn *k = p->data;
    if (k->in_value) { k->field.len = 0; k->in_value = 0; }
    strbuf_add(&k->field, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    conn *k = p->data;
    if (!k->in_value) {
        static const char *const names[H_COUNT] = { "", "cookie", "x-csrf-token", "origin", "host", "content-type" };
        k->in_value = 1;
        k->header = H_OTHER;
        for (int i = 1; i < H_COUNT; i++)
            if (k->field.len == strlen(names[i]) && strncasecmp(k->field.data, names[i], k->field.len) == 0) k->header = i;
    }
    if (k->header != H_OTHER) strbuf_add(&k->headers[k->header], at, len);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    strbuf_add(&((conn *)p->data)->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p) {
    conn *k = p->data;
    k->done = 1;
    http_parser_pause(p, 1);                      /* one request a connection */
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn *k = s->data;
    if (nread < 0 || k->done) {
        if (nread < 0) conn_close(k);
        free(buf->base);
        return;
    }
    k->received += (size_t)nread;
    size_t used = http_parser_execute(&k->parser, &k->c->settings, buf->base, (size_t)nread);
    free(buf->base);
    if (k->done) {
        uv_read_stop(s);
        handle(k);
    } else if (k->received > MAX_REQUEST) {
        uv_read_stop(s);
        refuse(k, 413, "request too large");
    } else if (used != (size_t)nread && HTTP_PARSER_ERRNO(&k->parser) != HPE_PAUSED) {
        uv_read_stop(s);
        refuse(k, 400, "not an HTTP request");
    }
}

static void on_connection(uv_stream_t *server, int status) {
    console *c = server->data;
    if (status != 0) return;
    conn *k = calloc(1, sizeof *k);
    if (!k) abort();
    k->c = c;
    uv_tcp_init(&c->loop, &k->tcp);
    k->tcp.data = k;
    c->nconns++;
    k->next = c->conns;
    if (c->conns) c->conns->prev = k;
    c->conns = k;
    if (uv_accept(server, (uv_stream_t *)&k->tcp) != 0 || c->nconns > MAX_CONNECTIONS) { conn_close(k); return; }
    http_parser_init(&k->parser, HTTP_REQUEST);
    k->parser.data = k;
    uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
}

/* ------------------------------ the live tail ----------------------------- */

static void on_tick(uv_timer_t *t) {
    console *c = t->data;
    c->ticks++;
    for (conn *k = c->conns, *next; k; k = next) {
        next = k->next;
        if (!k->event_stream || k->closing) continue;
        strbuf out = {0};
        k->tail_seq = console_tail(k->tail_seq, &out);
        if (!out.len && c->ticks % 60 == 0) strbuf_adds(&out, ": still here\n\n");   /* proxies' idle timeouts */
        if (out.len) send_bytes(k, &out, 0);
        strbuf_free(&out);
    }
}

/* --------------------------------- life ----------------------------------- */

static void on_stop(uv_async_t *a) {
    console *c = a->data;
    for (conn *k = c->conns, *next; k; k = next) { next = k->next; conn_close(k); }
    uv_close((uv_handle_t *)&c->server, NULL);
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_close((uv_handle_t *)&c->stop, NULL);
}

static void *thread_main(void *arg) {
    console *c = arg;
    uv_run(&c->loop, UV_RUN_DEFAULT);
    json_thread_done();                           /* the scratch json_member read bodies with */
    return NULL;
}

console *console_start(const console_options *o, char *err, size_t errlen) {
    char host[64];
    int port;
    const char *colon = strrchr(o->listen, ':');
    if (!colon || colon - o->listen >= (long)sizeof host || sscanf(colon + 1, "%d", &port) != 1) {
        snprintf(err, errlen, "console.listen: '%s' is not HOST:PORT", o->listen);
        return NULL;
    }
    memcpy(host, o->listen, (size_t)(colon - o->listen));
    host[colon - o->listen] = 0;
    struct sockaddr_storage addr;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
        snprintf(err, errlen, "console.listen: '%s' is not an IP address", host);
        return NULL;
    }
    console *c = calloc(1, sizeof *c);
    if (!c) abort();
    if (uv_loop_init(&c->loop) != 0) { snprintf(err, errlen, "console: cannot start a loop"); free(c); return NULL; }
    c->settings.on_url = on_url;
    c->settings.on_header_field = on_header_field;
    c->settings.on_header_value = on_header_value;
    c->settings.on_body = on_body;
    c->settings.on_message_complete = on_message_complete;
    uv_tcp_init(&c->loop, &c->server);
    c->server.data = c;
    int rc = uv_tcp_bind(&c->server, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&c->server, 64, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "console: cannot listen on %s: %s", o->listen, uv_strerror(rc));
        goto fail_server;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    char ip[48] = "";
    uv_tcp_getsockname(&c->server, (struct sockaddr *)&bound, &len);
    if (bound.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof ip);
        snprintf(c->address, sizeof c->address, "[%s]:%d", ip, ntohs(((struct sockaddr_in6 *)&bound)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof ip);
        snprintf(c->address, sizeof c->address, "%s:%d", ip, ntohs(((struct sockaddr_in *)&bound)->sin_port));
    }
    uv_async_init(&c->loop, &c->stop, on_stop);
    c->stop.data = c;
    uv_timer_init(&c->loop, &c->tick);
    c->tick.data = c;
    uv_timer_start(&c->tick, on_tick, 250, 250);
    c->state = console_state_new(o->token, o->store, o->data_dir, o->counters, o->ud);
    tail_enable();
    if (pthread_create(&c->tid, NULL, thread_main, c) != 0) {
        snprintf(err, errlen, "console: cannot start its thread");
        console_state_free(c->state);
        uv_close((uv_handle_t *)&c->stop, NULL);
        uv_close((uv_handle_t *)&c->tick, NULL);
        goto fail_server;
    }
    return c;
fail_server:
    uv_close((uv_handle_t *)&c->server, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    free(c);
    return NULL;
}

const char *console_address(const console *c) { return c->address; }

void console_stop(console *c) {
    if (!c) return;
    uv_async_send(&c->stop);
    pthread_join(c->tid, NULL);
    uv_loop_close(&c->loop);
    console_state_free(c->state);
    free(c);
}
