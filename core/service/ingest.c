/*
 * ingest.c: Loop's webhooks in over HTTP/1.1 (libuv + http_parser).
 *
 * Invariant: 202 is written only from the store's callback, after the raw
 * body's transaction committed. Every refusal (401, 404, 405, 413, 415, 400)
 * is decided before the store is touched, so a refused webhook journals
 * nothing, and a store failure answers 503 so Loop retries.
 *
 * The signature is checked over the bytes exactly as received, in constant
 * time, before the body is parsed. One request per connection is in flight
 * at a time: while its commit is pending the connection stops reading, and
 * pipelined bytes wait in the connection until the answer is written.
 *
 * Slow clients: a timer per connection bounds the time to send headers, the
 * time to send the body and the time a keep-alive connection may idle; the
 * number of connections is capped. Nothing a client does blocks the loop.
 *
 * Handles: each connection owns a uv_tcp_t and a uv_timer_t; it is freed in
 * the close callback of the second of the two, never earlier.
 */
#include "ingest.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "log.h"
#include "signature.h"
#include "store_health.h"

enum outcome { OUT_ACCEPTED, OUT_UNAUTHORIZED, OUT_NOT_FOUND, OUT_TOO_LARGE, OUT_MALFORMED,
               OUT_UNSUPPORTED, OUT_METHOD, OUT_UNAVAILABLE, OUT_BAD_REQUEST, OUT_TIMEOUT, OUT_COUNT };
static const char *const outcome_names[OUT_COUNT] = {
    "accepted", "unauthorized", "unknown_tenant", "too_large", "malformed_json",
    "unsupported_media_type", "method_not_allowed", "unavailable", "bad_request", "timeout",
};

enum header { H_OTHER, H_SIGNATURE, H_CONTENT_TYPE };

typedef struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    http_parser parser;
    struct ingest *in;
    struct conn *prev, *next;
    strbuf url, body, signature, content_type, field, pending;
    enum header header;
    int in_value;                 /* the parser is inside a header value */
    int waiting;                  /* a commit is in flight for this request */
    int closing;
    int closed_handles;
    int refused;                  /* an answer was decided before the body ended */
} conn;

struct ingest {
    uv_loop_t *loop;
    uv_tcp_t server;
    const config *cfg;
    store *st;
    int (*health)(void *ud, strbuf *body);
    void (*metrics)(void *ud, strbuf *out);
    void *ud;
    http_parser_settings settings;
    conn *conns;
    int nconns;
    int stopping;
    char address[64];
    unsigned long long outcomes[OUT_COUNT];
    void (*done)(void *ud);
    void *done_ud;
};

static void conn_close(conn *c);
static void ingest_metrics(const ingest *in, strbuf *out);
static void timer_set(conn *c, double seconds);

/* ------------------------------ answering --------------------------------- */

typedef struct write_req {
    uv_write_t req;
    conn *c;
    int keep_alive;
    char *data;
} write_req;

static void resume(conn *c);

static void on_written(uv_write_t *req, int status) {
    write_req *w = (write_req *)req;
    conn *c = w->c;
    int keep = w->keep_alive && status == 0 && !c->in->stopping;
    free(w->data);
    free(w);
    if (!keep) { conn_close(c); return; }
    resume(c);
}

static const char *reason_phrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void respond(conn *c, int status, const char *content_type, const char *body, size_t len,
                    const char *extra_headers, int keep_alive) {
    if (c->closing) return;
    write_req *w = malloc(sizeof *w);
    if (!w) abort();
    strbuf out = {0};
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n", status,
                     reason_phrase(status), content_type, len, extra_headers ? extra_headers : "",
                     keep_alive ? "" : "Connection: close\r\n");
    strbuf_add(&out, head, (size_t)n);
    strbuf_add(&out, body, len);
    w->c = c;
    w->keep_alive = keep_alive;
    w->data = out.data;
    uv_buf_t buf = uv_buf_init(out.data, (unsigned)out.len);
    uv_timer_stop(&c->timer);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
        free(w->data);
        free(w);
        conn_close(c);
    }
}

/* Answers {"error": message} and counts the outcome. */
static void refuse(conn *c, int status, enum outcome why, const char *message, const char *extra, int keep_alive) {
    __atomic_fetch_add(&c->in->outcomes[why], 1, __ATOMIC_RELAXED);   /* the console reads them from its thread */
    strbuf body = {0};
    strbuf_adds(&body, "{\"error\":");
    json_append_string(&body, message, strlen(message));
    strbuf_adds(&body, "}");
    respond(c, status, "application/json", body.data, body.len, extra, keep_alive);
    strbuf_free(&body);
    if (status >= 400) {
        char fields[128];
        snprintf(fields, sizeof fields, "\"status\":%d,\"outcome\":\"%s\"", status, outcome_names[why]);
        log_line(status >= 500 ? "warn" : "info", "webhook refused", fields);
    }
}

/* ------------------------------- routing ---------------------------------- */

static void on_committed(void *ud, int status, int64_t id) {
    conn *c = ud;
    c->waiting = 0;
    if (status != 0) {
        refuse(c, 503, OUT_UNAVAILABLE, "the journal could not store the webhook; retry later", "Retry-After: 5\r\n", 0);
        return;
    }
    __atomic_fetch_add(&c->in->outcomes[OUT_ACCEPTED], 1, __ATOMIC_RELAXED);
    char body[96];
    int n = snprintf(body, sizeof body, "{\"status\":\"accepted\",\"id\":%lld}", (long long)id);
    respond(c, 202, "application/json", body, (size_t)n, NULL, http_should_keep_alive(&c->parser));
}

static int is_json_type(const strbuf *ct) {
    if (ct->len == 0) return 1;                     /* absent: judge the body itself */
    size_t n = ct->len;
    const char *s = ct->data;
    size_t base = 0;
    while (base < n && s[base] != ';') base++;
    while (base > 0 && s[base - 1] == ' ') base--;
    return (base == 16 && strncasecmp(s, "application/json", 16) == 0) ||
           (base == 24 && strncasecmp(s, "application/vnd.api+json", 24) == 0);
}

static void handle_webhook(conn *c, const char *tenant_id, size_t idlen) {
    ingest *in = c->in;
    int keep = http_should_keep_alive(&c->parser);
    const tenant_config *t = config_tenant(in->cfg, tenant_id, idlen);
    if (!t) { refuse(c, 404, OUT_NOT_FOUND, "unknown tenant", NULL, keep); return; }
    if (!is_json_type(&c->content_type)) {
        refuse(c, 415, OUT_UNSUPPORTED, "Content-Type must be application/json", NULL, keep);
        return;
    }
    if (!signature_verify(t->webhook_secret, strlen(t->webhook_secret), c->body.data ? c->body.data : "",
                          c->body.len, c->signature.data ? c->signature.data : "", c->signature.len)) {
        refuse(c, 401, OUT_UNAUTHORIZED, c->signature.len ? "X-Loop-Signature does not match the body"
                                                          : "X-Loop-Signature is missing", NULL, keep);
        return;
    }
    char err[256];
    size_t end;
    strbuf_addc(&c->body, 0);                      /* the scanner may read one byte past the end */
    c->body.len--;
    if (json_value_end(c->body.data, c->body.len, &end, err, sizeof err) != 0) {
        char msg[320];
        snprintf(msg, sizeof msg, "malformed JSON: %s", err);
        refuse(c, 400, OUT_MALFORMED, msg, NULL, keep);
        return;
    }
    for (size_t i = end; i < c->body.len; i++)
        if (!strchr(" \t\r\n", c->body.data[i])) { refuse(c, 400, OUT_MALFORMED, "malformed JSON: data after the value", NULL, keep); return; }
    size_t first = 0;
    while (first < c->body.len && strchr(" \t\r\n", c->body.data[first])) first++;
    if (c->body.data[first] != '{') { refuse(c, 400, OUT_MALFORMED, "a webhook body must be a JSON object", NULL, keep); return; }
    if (in->stopping) { refuse(c, 503, OUT_UNAVAILABLE, "shutting down; retry later", "Retry-After: 5\r\n", 0); return; }
    /* A damaged store is not written to: Loop keeps the webhook and sends it again later. (A store
     * that refuses writes is tried: its next success is how the journal finds it back.) */
    char why[8];
    if (store_health_get(why, sizeof why) == STORE_DAMAGED) {
        refuse(c, 503, OUT_UNAVAILABLE, "the store is damaged; retry later", "Retry-After: 30\r\n", 0);
        return;
    }
    c->waiting = 1;
    store_journal_append(in->st, t->id, t->scripts_version, c->body.data, c->body.len, on_committed, c);
}

static void handle_request(conn *c) {
    ingest *in = c->in;
    int keep = http_should_keep_alive(&c->parser);
    strbuf_addc(&c->url, 0);
    char *path = c->url.data;
    char *q = strchr(path, '?');
    if (q) *q = 0;
    static const char prefix[] = "/v1/webhooks/";
    if (strncmp(path, prefix, sizeof prefix - 1) == 0 && path[sizeof prefix - 1] && !strchr(path + sizeof prefix - 1, '/')) {
        if (c->parser.method != HTTP_POST) { refuse(c, 405, OUT_METHOD, "use POST", "Allow: POST\r\n", keep); return; }
        handle_webhook(c, path + sizeof prefix - 1, strlen(path + sizeof prefix - 1));
        return;
    }
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/metrics") == 0) {
        if (c->parser.method != HTTP_GET && c->parser.method != HTTP_HEAD) {
            refuse(c, 405, OUT_METHOD, "use GET", "Allow: GET\r\n", keep);
            return;
        }
        if (path[1] == 'h') {
            strbuf body = {0};
            int status = 200;
            if (in->health) status = in->health(in->ud, &body);
            else strbuf_adds(&body, "{\"status\":\"ready\"}");
            respond(c, status, "application/json", body.data, body.len, NULL, keep);
            strbuf_free(&body);
        } else {
            strbuf out = {0};
            ingest_metrics(in, &out);
            if (in->metrics) in->metrics(in->ud, &out);
            respond(c, 200, "text/plain; version=0.0.4", out.data ? out.data : "", out.len, NULL, keep);
            strbuf_free(&out);
        }
        return;
    }
    refuse(c, 404, OUT_NOT_FOUND, "no such path", NULL, keep);
}

/* ---------------------------- parser callbacks ---------------------------- */

static int on_message_begin(http_parser *p) {
    conn *c = p->data;
    c->url.len = c->body.len = c->signature.len = c->content_type.len = c->field.len = 0;
    c->header = H_OTHER;
    c->in_value = 0;
    c->refused = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    if (c->url.len + len > 8192) return -1;
    strbuf_add(&c->url, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    if (c->in_value) { c->field.len = 0; c->in_value = 0; }
    if (c->field.len + len > 256) { c->header = H_OTHER; return 0; }
    strbuf_add(&c->field, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    if (!c->in_value) {
        c->in_value = 1;
        c->header = H_OTHER;
        if (c->field.len == 16 && strncasecmp(c->field.data, "x-loop-signature", 16) == 0) c->header = H_SIGNATURE;
        else if (c->field.len == 12 && strncasecmp(c->field.data, "content-type", 12) == 0) c->header = H_CONTENT_TYPE;
    }
    strbuf *dst = c->header == H_SIGNATURE ? &c->signature : c->header == H_CONTENT_TYPE ? &c->content_type : NULL;
    if (dst && dst->len + len <= 1024) strbuf_add(dst, at, len);
    return 0;
}

static int on_headers_complete(http_parser *p) {
    conn *c = p->data;
    if (p->content_length != ULLONG_MAX && p->content_length > c->in->cfg->max_body) {
        c->refused = 1;
        refuse(c, 413, OUT_TOO_LARGE, "body over the size limit", NULL, 0);
        return -1;                                  /* read no body: the answer closes the connection */
    }
    timer_set(c, c->in->cfg->body_timeout);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    if (c->body.len + len > c->in->cfg->max_body) {
        c->refused = 1;
        refuse(c, 413, OUT_TOO_LARGE, "body over the size limit", NULL, 0);
        return -1;
    }
    strbuf_add(&c->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p) {
    conn *c = p->data;
    if (c->refused) return 0;
    handle_request(c);
    http_parser_pause(p, 1);                      /* one request at a time */
    return 0;
}

/* ------------------------------ connections -------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void feed(conn *c, const char *data, size_t len) {
    size_t used = http_parser_execute(&c->parser, &c->in->settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {                        /* a request is being answered: keep the rest */
        strbuf_add(&c->pending, data + used, len - used);
        uv_read_stop((uv_stream_t *)&c->tcp);
        return;
    }
    if (e != HPE_OK) {
        if (!c->refused) refuse(c, 400, OUT_BAD_REQUEST, http_errno_description(e), NULL, 0);
        else if (!c->closing) uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn *c = s->data;
    if (nread > 0) feed(c, buf->base, (size_t)nread);
    else if (nread < 0) {
        if (!c->waiting) conn_close(c);
        else uv_read_stop(s);                     /* answer the pending request, then close */
    }
    free(buf->base);
}

/* After an answer on a kept-alive connection: next request, or idle. */
static void resume(conn *c) {
    if (c->closing) return;
    http_parser_pause(&c->parser, 0);
    timer_set(c, c->in->cfg->idle_timeout);
    if (c->pending.len) {
        strbuf rest = c->pending;
        c->pending = (strbuf){0};
        feed(c, rest.data, rest.len);
        strbuf_free(&rest);
        if (c->waiting || c->closing) return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_timeout(uv_timer_t *t) {
    conn *c = t->data;
    if (c->waiting) return;
    __atomic_fetch_add(&c->in->outcomes[OUT_TIMEOUT], 1, __ATOMIC_RELAXED);
    conn_close(c);
}

static void timer_set(conn *c, double seconds) {
    uv_timer_start(&c->timer, on_timeout, (uint64_t)(seconds * 1000), 0);
}

/* Once stopping and the last handle closed: report, then free. */
static void maybe_done(ingest *in) {
    if (!in->stopping || in->nconns != 0) return;
    void (*done)(void *) = in->done;
    void *ud = in->done_ud;
    free(in);
    if (done) done(ud);
}

static void on_conn_closed(uv_handle_t *h) {
    conn *c = h->data;
    if (++c->closed_handles < 2) return;
    ingest *in = c->in;
    if (c->prev) c->prev->next = c->next;
    else in->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    in->nconns--;
    strbuf_free(&c->url);
    strbuf_free(&c->body);
    strbuf_free(&c->signature);
    strbuf_free(&c->content_type);
    strbuf_free(&c->field);
    strbuf_free(&c->pending);
    free(c);
    maybe_done(in);
}

static void conn_close(conn *c) {
    if (c->closing) return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/* A new connection's handles, counted and linked; its socket is the caller's to attach. */
static conn *conn_new(ingest *in) {
    conn *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->in = in;
    uv_tcp_init(in->loop, &c->tcp);
    uv_timer_init(in->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->next = in->conns;
    if (in->conns) in->conns->prev = c;
    in->conns = c;
    in->nconns++;
    return c;
}

/* Starts reading requests from a connection whose socket is attached. */
static void conn_serve(conn *c) {
    ingest *in = c->in;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (in->nconns > in->cfg->max_connections) {
        refuse(c, 503, OUT_UNAVAILABLE, "too many connections", "Retry-After: 1\r\n", 0);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    timer_set(c, in->cfg->header_timeout);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connection(uv_stream_t *server, int status) {
    ingest *in = server->data;
    if (status < 0 || in->stopping) return;
    conn *c = conn_new(in);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) { conn_close(c); return; }
    conn_serve(c);
}

int ingest_adopt(ingest *in, uv_os_sock_t fd) {
    if (in->stopping) return UV_ECANCELED;
    conn *c = conn_new(in);
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc != 0) { conn_close(c); return rc; }
    conn_serve(c);
    return 0;
}

/* --------------------------------- life ----------------------------------- */

/* The server handle lives inside the ingest: the ingest is freed once the handle is closed. */
static void on_listen_failed(uv_handle_t *h) { free(h->data); }

ingest *ingest_start(uv_loop_t *loop, const config *cfg, store *st,
                     int (*health)(void *ud, strbuf *body), void (*metrics)(void *ud, strbuf *out), void *ud,
                     char *err, size_t errlen) {
    char host[64];
    int port;
    const char *colon = strrchr(cfg->listen, ':');
    if (!colon || colon - cfg->listen >= (long)sizeof host || sscanf(colon + 1, "%d", &port) != 1) {
        snprintf(err, errlen, "listen: '%s' is not HOST:PORT", cfg->listen);
        return NULL;
    }
    memcpy(host, cfg->listen, (size_t)(colon - cfg->listen));
    host[colon - cfg->listen] = 0;
    struct sockaddr_storage addr;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
        snprintf(err, errlen, "listen: '%s' is not an IP address", host);
        return NULL;
    }
    ingest *in = calloc(1, sizeof *in);
    if (!in) abort();
    in->loop = loop;
    in->cfg = cfg;
    in->st = st;
    in->health = health;
    in->metrics = metrics;
    in->ud = ud;
    in->settings.on_message_begin = on_message_begin;
    in->settings.on_url = on_url;
    in->settings.on_header_field = on_header_field;
    in->settings.on_header_value = on_header_value;
    in->settings.on_headers_complete = on_headers_complete;
    in->settings.on_body = on_body;
    in->settings.on_message_complete = on_message_complete;
    uv_tcp_init(loop, &in->server);
    in->server.data = in;
    int rc = uv_tcp_bind(&in->server, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&in->server, 511, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, uv_strerror(rc));
        uv_close((uv_handle_t *)&in->server, on_listen_failed);   /* the caller runs the loop */
        return NULL;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&in->server, (struct sockaddr *)&bound, &len);
    char ip[48] = "";
    if (bound.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof ip);
        snprintf(in->address, sizeof in->address, "[%s]:%d", ip, ntohs(((struct sockaddr_in6 *)&bound)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof ip);
        snprintf(in->address, sizeof in->address, "%s:%d", ip, ntohs(((struct sockaddr_in *)&bound)->sin_port));
    }
    return in;
}

const char *ingest_address(const ingest *in) { return in->address; }

void ingest_set_config(ingest *in, const config *cfg) { in->cfg = cfg; }

void ingest_counters(const ingest *in, strbuf *out) {
    strbuf_adds(out, "# HELP returnflow_webhooks_total Webhooks answered, by outcome.\n"
                     "# TYPE returnflow_webhooks_total counter\n");
    for (int i = 0; i < OUT_COUNT; i++) {
        char line[128];
        snprintf(line, sizeof line, "returnflow_webhooks_total{outcome=\"%s\"} %llu\n", outcome_names[i],
                 __atomic_load_n(&in->outcomes[i], __ATOMIC_RELAXED));
        strbuf_adds(out, line);
    }
}

static void ingest_metrics(const ingest *in, strbuf *out) {
    ingest_counters(in, out);
    char line[320];
    snprintf(line, sizeof line, "# HELP returnflow_connections Client connections open.\n"
                                "# TYPE returnflow_connections gauge\nreturnflow_connections %d\n"
                                "# HELP returnflow_journal_pending Webhooks waiting for their commit.\n"
                                "# TYPE returnflow_journal_pending gauge\nreturnflow_journal_pending %zu\n",
             in->nconns, store_pending(in->st));
    strbuf_adds(out, line);
}

static void on_server_closed(uv_handle_t *h) {
    ingest *in = h->data;
    in->nconns--;
    maybe_done(in);
}

void ingest_stop(ingest *in, void (*done)(void *ud), void *ud) {
    in->stopping = 1;
    in->done = done;
    in->done_ud = ud;
    in->nconns++;                                 /* the server handle counts until it is closed */
    uv_close((uv_handle_t *)&in->server, on_server_closed);
    for (conn *c = in->conns; c; c = c->next)
        if (!c->waiting) conn_close(c);           /* pending ones close after their answer */
}
