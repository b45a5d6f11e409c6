/*
 * curl_uv.c: libcurl's multi interface on the delivery thread's libuv loop, as curl's multi-uv.c
 * example does it: curl says which sockets to watch and when to time out; libuv says when a socket
 * is ready; every finished transfer goes to deliver_finish, then is released.
 *
 * The key is added here, to the request headers only: it never reaches the store, the log or an
 * error message, and the header buffer is wiped after use.
 */
#include "deliverer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"

typedef struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct deliverer *d;
} poll_ctx;

static void check_multi_info(deliverer *d);

/* ------------------------------ curl <-> uv -------------------------------- */

static void on_poll(uv_poll_t *req, int status, int events) {
    poll_ctx *p = req->data;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(p->d->multi, p->fd, flags, &running);
    check_multi_info(p->d);
}

static void on_curl_timeout(uv_timer_t *t) {
    deliverer *d = t->data;
    int running;
    curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(d);
}

static int start_timeout(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    deliverer *d = userp;
    if (timeout_ms < 0) uv_timer_stop(&d->curl_timer);
    else uv_timer_start(&d->curl_timer, on_curl_timeout, timeout_ms ? (uint64_t)timeout_ms : 1, 0);
    return 0;
}

static int handle_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp) {
    (void)easy;
    deliverer *d = userp;
    poll_ctx *p = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (p) {
            uv_poll_stop(&p->poll);
            uv_close((uv_handle_t *)&p->poll, (uv_close_cb)free);
            curl_multi_assign(d->multi, fd, NULL);
        }
        return 0;
    }
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) abort();
        p->fd = fd;
        p->d = d;
        uv_poll_init_socket(&d->loop, &p->poll, fd);
        p->poll.data = p;
        curl_multi_assign(d->multi, fd, p);
    }
    int events = 0;
    if (action != CURL_POLL_IN) events |= UV_WRITABLE;
    if (action != CURL_POLL_OUT) events |= UV_READABLE;
    uv_poll_start(&p->poll, events, on_poll);
    return 0;
}

void deliver_poll_now(deliverer *d) {
    int running;
    curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(d);
}

void deliver_glue_init(deliverer *d) {
    d->multi = curl_multi_init();
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, handle_socket);
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, start_timeout);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
}

/* --------------------------------- requests -------------------------------- */

static size_t on_data(char *ptr, size_t size, size_t n, void *userp) {
    sending *s = userp;
    if (s->response.len < 64 * 1024) strbuf_add(&s->response, ptr, size * n);
    return size * n;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *userp) {
    sending *s = userp;
    size_t len = size * n;
    if (len > 13 && strncasecmp(ptr, "Content-Type:", 13) == 0)
        snprintf(s->content_type, sizeof s->content_type, "%.*s", (int)(len - 13), ptr + 13 + strspn(ptr + 13, " "));
    else if (len > 12 && strncasecmp(ptr, "Retry-After:", 12) == 0)
        snprintf(s->retry_after, sizeof s->retry_after, "%.*s", (int)(len - 12), ptr + 12);
    return len;
}

struct curl_slist *deliver_headers(const tenant_config *tc) {
    char header[512];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/vnd.api+json");
    h = curl_slist_append(h, "Accept: application/vnd.api+json");
    snprintf(header, sizeof header, "revision: %s", tc->revision);
    h = curl_slist_append(h, header);
    if (strcmp(tc->key_kind, "public") != 0) {
        snprintf(header, sizeof header, "Authorization: Klaviyo-API-Key %s", tc->key);
        h = curl_slist_append(h, header);
        memset(header, 0, sizeof header);                 /* the key leaves no copy behind */
    }
    return h;
}

/* The request built (headers, body, callbacks, timeouts), not yet sent: the multi handle takes it in
 * deliver_start_request, once its rows are marked in flight (settle.c). A bulk job, up to 5 MB that
 * Klaviyo reads and checks whole, has a longer timeout: a timed-out request counts as an attempt and
 * goes again, though Klaviyo may have taken it (a bulk job cut at 30 s by an overloaded server was
 * sent twice). */
void deliver_prepare_request(deliverer *d, sending *s, const char *url) {
    CURL *easy = curl_easy_init();
    if (!easy) abort();
    double timeout = s->bulk ? d->cfg->bulk_timeout : d->cfg->request_timeout;
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)s->body_len);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, s);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, s->error);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(d->cfg->connect_timeout * 1000));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "returnflow");
    /* TLS is verified (libcurl's default, said here so no one turns it off): a certificate that does
     * not verify fails the request, which is retried, never sent without the check. */
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    s->easy = easy;
}

void deliver_start_request(deliverer *d, sending *s) {
    s->next = d->in_flight;
    s->prev = NULL;
    if (d->in_flight) d->in_flight->prev = s;
    d->in_flight = s;
    curl_multi_add_handle(d->multi, s->easy);
}

static void check_multi_info(deliverer *d) {
    CURLMsg *msg;
    int pending, done = 0;
    while ((msg = curl_multi_info_read(d->multi, &pending))) {
        done++;
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        sending *s;
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&s);
        (void)easy;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        rate_answered(&s->ts->rate, s->cls, s->seq, clock_mono_ms());   /* counted by Klaviyo by now */
        deliver_finish(d, s, msg->data.result, status);
        deliver_release(d, s);
    }
    if (!done) return;
    /* The answers go to the store now, together (settle.c keeps them if it refuses); freed slots:
     * look for more work at once rather than at the next tick. */
    if (deliver_store_may_try(d, clock_mono_ms())) deliver_flush(d);
    if (!d->stopping) deliver_kick(d);
}

void deliver_release(deliverer *d, sending *s) {
    if (s->prev) s->prev->next = s->next;
    else d->in_flight = s->next;
    if (s->next) s->next->prev = s->prev;
    curl_multi_remove_handle(d->multi, s->easy);
    deliver_free_sending(s);
}

void deliver_free_sending(sending *s) {
    curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->headers);
    strbuf_free(&s->response);
    free(s->profile);
    free(s->body);
    for (int i = 0; i < s->nprofiles; i++) free(s->profiles[i]);
    free(s->profiles);
    free(s->created);
    free(s->row_attempts);
    bulk_free(s->bulk);
    free(s);
}
