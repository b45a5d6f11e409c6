/*
 * fuzz_ingest.c: libFuzzer target for ingest's HTTP request handling (core/service/ingest.c).
 *
 * Why: ingest is the one part of the service that anyone on the network can talk to, before any
 * signature is checked. Each input is what one client sends on one connection. It goes into a real
 * ingest (ingest_adopt on one end of a socketpair: no network, no port), on a real libuv loop,
 * with a real store in a scratch folder, so the parser's callbacks, the pause while an answer is
 * written, the pipelined bytes kept meanwhile and the journal all run as in `serve`.
 *
 * Input: byte 0 chooses how the stream is cut (below 128: one write; else writes of 1 + (b & 63)
 * bytes, the loop running between them, so callbacks see requests split anywhere); the rest is
 * the stream. An X-Loop-Signature value of 44 bytes starting "sign" is replaced by the true
 * signature of its request's body (same length, so nothing else moves): mutated bodies still get
 * past the signature, to the JSON check and the journal.
 *
 * Invariants: no crash, leak or undefined behaviour (ASan+UBSan); once the client has closed its
 * side the connection ends without waiting on a timer (libFuzzer's -timeout catches one that
 * does not); every byte ingest writes back parses as HTTP/1.1 responses with a status ingest is
 * meant to send, none after one that said Connection: close; and a whole request gets an answer.
 * FUZZ_INGEST_SHOW=1 prints the answers when replaying an input.
 */
#include <fcntl.h>
#include <http_parser.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "ingest.h"
#include "signature.h"
#include "store.h"
#include "strbuf.h"

static const char secret[] = "fuzz-secret";
static tenant_config tenant = { .id = "acme", .webhook_secret = (char *)secret };
static config cfg = {
    .listen = "127.0.0.1:0", .max_body = 4096, .max_connections = 8,
    .header_timeout = 10, .body_timeout = 30, .idle_timeout = 60, .tenants = &tenant, .ntenants = 1,
};
static uv_loop_t loop;
static ingest *in;
static char data_dir[64];
static int report_fd = 2;           /* stderr as it was before -close_fd_mask=2 closed it (ingest's log) */

__attribute__((noreturn)) static void broke(const char *what, const char *detail) {
    dprintf(report_fd, "fuzz_ingest: invariant broken: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void remove_data_dir(void) {
    static const char *const files[] = { "returnflow.db", "returnflow.db-wal", "returnflow.db-shm" };
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", data_dir, files[i]);
        unlink(path);
    }
    rmdir(data_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);       /* as serve: a client gone while its answer is written (an input that
                                       closes early) is an EPIPE, not the end of the process */
    report_fd = dup(2);             /* libFuzzer has not applied -close_fd_mask yet */
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";  /* fsync costs nothing there */
    snprintf(data_dir, sizeof data_dir, "%s/rf-fuzz-ingest-XXXXXX", tmp);
    if (!mkdtemp(data_dir)) { perror("mkdtemp"); abort(); }
    atexit(remove_data_dir);
    uv_loop_init(&loop);
    char err[256];
    store *st = store_open(&loop, data_dir, "fuzz", err, sizeof err);
    if (!st) { fprintf(stderr, "fuzz_ingest: %s\n", err); abort(); }
    in = ingest_start(&loop, &cfg, st, NULL, NULL, NULL, err, sizeof err);
    if (!in) { fprintf(stderr, "fuzz_ingest: %s\n", err); abort(); }
    return 0;
}

/* ------------------------- signing the placeholders ------------------------- */

typedef struct presign {
    strbuf field, body;
    int in_value;
    char *sig;                      /* the placeholder of the current request, or NULL */
    int complete;                   /* requests seen whole */
} presign;

static int ps_begin(http_parser *p) {
    presign *ps = p->data;
    ps->field.len = ps->body.len = 0;
    ps->in_value = 0;
    ps->sig = NULL;
    return 0;
}

static int ps_field(http_parser *p, const char *at, size_t len) {
    presign *ps = p->data;
    if (ps->in_value) { ps->field.len = 0; ps->in_value = 0; }
    strbuf_add(&ps->field, at, len);
    return 0;
}

static int ps_value(http_parser *p, const char *at, size_t len) {
    presign *ps = p->data;
    if (!ps->in_value && ps->field.len == 16 && strncasecmp(ps->field.data, "x-loop-signature", 16) == 0 &&
        len == SIGNATURE_B64_LEN && memcmp(at, "sign", 4) == 0)
        ps->sig = (char *)at;       /* at points into our own copy of the input */
    ps->in_value = 1;
    return 0;
}

static int ps_body(http_parser *p, const char *at, size_t len) {
    strbuf_add(&((presign *)p->data)->body, at, len);
    return 0;
}

static int ps_complete(http_parser *p) {
    presign *ps = p->data;
    if (ps->sig) {
        char sig[SIGNATURE_B64_LEN + 1];
        signature_sign(secret, strlen(secret), ps->body.data ? ps->body.data : "", ps->body.len, sig);
        memcpy(ps->sig, sig, SIGNATURE_B64_LEN);
    }
    ps->complete++;
    return 0;
}

/* Returns how many requests the stream holds whole, up to any error. */
static int sign_placeholders(char *stream, size_t len) {
    static http_parser_settings settings = {
        .on_message_begin = ps_begin, .on_header_field = ps_field, .on_header_value = ps_value,
        .on_body = ps_body, .on_message_complete = ps_complete,
    };
    presign ps = {0};
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &ps;
    http_parser_execute(&p, &settings, stream, len);
    strbuf_free(&ps.field);
    strbuf_free(&ps.body);
    return ps.complete;
}

/* ---------------------------- checking the answers ---------------------------- */

typedef struct answers {
    int count;
    int closed;                     /* an answer said "Connection: close" */
    int in_connection;              /* the header being read is Connection */
} answers;

static int an_begin(http_parser *p) {
    answers *a = p->data;
    if (a->closed) broke("ingest answered again after saying Connection: close", NULL);
    a->count++;
    return 0;
}

static int an_field(http_parser *p, const char *at, size_t len) {
    ((answers *)p->data)->in_connection = len == 10 && strncasecmp(at, "connection", 10) == 0;
    return 0;
}

static int an_value(http_parser *p, const char *at, size_t len) {
    answers *a = p->data;
    if (a->in_connection && len == 5 && strncasecmp(at, "close", 5) == 0) a->closed = 1;
    return 0;
}

static int an_status_done(http_parser *p) {
    static const unsigned known[] = { 200, 202, 400, 401, 404, 405, 413, 415, 503 };
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (p->status_code == known[i]) return 0;
    broke("ingest answered with a status it does not send", NULL);
}

/* Every byte written back is an HTTP/1.1 answer with a known status, none after one that said
 * Connection: close; a stream holding a whole request got at least one answer. */
static void check_answers(const strbuf *out, int requests) {
    static http_parser_settings settings = {
        .on_message_begin = an_begin, .on_header_field = an_field, .on_header_value = an_value,
        .on_headers_complete = an_status_done,
    };
    answers a = {0};
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &a;
    size_t used = http_parser_execute(&p, &settings, out->data ? out->data : "", out->len);
    if (HTTP_PARSER_ERRNO(&p) != HPE_OK || used != out->len)
        broke("ingest wrote what does not parse as HTTP responses", http_errno_description(HTTP_PARSER_ERRNO(&p)));
    if (requests > 0 && a.count == 0) broke("a whole request got no answer", NULL);
}

/* ------------------------------------ one run ------------------------------------ */

/* Reads what ingest wrote so far; returns 1 once ingest has closed the connection. */
static int drain(int fd, strbuf *out) {
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) { strbuf_add(out, buf, (size_t)n); continue; }
        if (n == 0) return 1;       /* closed */
        /* EAGAIN: nothing more yet. ECONNRESET: ingest closed with bytes of ours unread (after an
         * answer that said Connection: close), which a Unix socket reports instead of an end. */
        return errno != EAGAIN && errno != EWOULDBLOCK;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t chunk = data[0] < 128 ? size : 1 + (data[0] & 63u);
    size_t len = size - 1;
    char *stream = malloc(len + 1);
    if (!stream) abort();
    memcpy(stream, data + 1, len);
    int requests = sign_placeholders(stream, len);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) { perror("socketpair"); abort(); }
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    if (ingest_adopt(in, sv[0]) != 0) broke("ingest_adopt refused a socketpair", NULL);

    strbuf out = {0};
    int closed = 0;
    for (size_t off = 0; off < len && !closed;) {
        size_t n = len - off < chunk ? len - off : chunk;
        ssize_t w = write(sv[1], stream + off, n);
        if (w <= 0) break;          /* ingest stopped reading and the socket is full, or it closed */
        off += (size_t)w;
        uv_run(&loop, UV_RUN_NOWAIT);
        closed = drain(sv[1], &out);
    }
    shutdown(sv[1], SHUT_WR);       /* the client is done: ingest must finish and close */
    while (!closed) {
        uv_run(&loop, UV_RUN_ONCE);
        closed = drain(sv[1], &out);
    }
    uv_run(&loop, UV_RUN_NOWAIT);   /* the close callbacks: the connection is freed now */
    close(sv[1]);
    if (getenv("FUZZ_INGEST_SHOW"))   /* replaying one input: what ingest answered */
        dprintf(report_fd, "%.*s\n", (int)out.len, out.data ? out.data : "");
    check_answers(&out, requests);
    strbuf_free(&out);
    free(stream);
    return 0;
}
