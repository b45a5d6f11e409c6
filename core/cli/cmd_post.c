/*
 * cmd_post.c: `returnflow post`, Loop's side of a webhook, from the shell.
 *
 * Each event of the input files is posted as its own request body, byte for byte as it stands in
 * the file (a signature is over raw bytes, so nothing is re-encoded), signed the way Loop signs
 * (X-Loop-Signature, see signature.h). It is how the README's copy-paste line feeds a running
 * `returnflow serve`, and how the specs and benchmarks talk to it.
 *
 * The secret comes from --secret, else from the config's tenant named in the URL path
 * /v1/webhooks/{tenant}; it is never printed. One libcurl easy handle is reused for every event, so
 * the connection stays open between them; TLS verification stays on. A connection that cannot be
 * made at all stops the run (every other event would fail the same way); any other failure is
 * reported for its event and the next one is tried.
 *
 * Exit status: 0 every answer was 2xx, 1 some answer was not or some event was not sent (or a file
 * could not be read), 2 bad usage or no secret.
 */
#include "cmd.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "input.h"
#include "lazy_libs.h"
#include "signature.h"
#include "strbuf.h"
#include "version.h"

#define DEFAULT_CONFIG "returnflow.conf.lua"
#define ANSWER_KEPT (64 * 1024)      /* bytes of a response body kept for the snippet */
#define SNIPPET_MAX 200              /* bytes of it printed */

typedef struct poster {
    CURL *curl;
    const char *url;
    const char *secret;
    size_t secret_len;
    strbuf answer;
    char curl_err[CURL_ERROR_SIZE];
    int answered_2xx, answered_other, unsent;
    int stopped;                     /* the server could not be reached: the rest is not tried */
} poster;

static void usage_error(const char *msg) {
    fprintf(stderr, "returnflow post: %s\nTry 'returnflow help post'.\n", msg);
}

static size_t keep_answer(char *data, size_t size, size_t n, void *ud) {
    strbuf *b = ud;
    size_t len = size * n;
    if (b->len < ANSWER_KEPT) strbuf_add(b, data, len < ANSWER_KEPT - b->len ? len : ANSWER_KEPT - b->len);
    return len;
}

/* The answer on one line: control characters and runs of blanks become one space, cut at
 * SNIPPET_MAX bytes (on a UTF-8 character boundary) with "..." after. */
static void snippet(const strbuf *b, char *out, size_t size) {
    size_t n = 0, limit = size - 4 < SNIPPET_MAX ? size - 4 : SNIPPET_MAX;
    int space = 1, cut = 0;
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];
        if (c < 0x20 || c == 0x7f || c == ' ') {
            if (!space) { out[n++] = ' '; space = 1; }
        } else {
            out[n++] = (char)c;
            space = 0;
        }
        if (n >= limit) { cut = i + 1 < b->len; break; }
    }
    if (cut && n > 0 && ((unsigned char)out[n - 1] & 0x80)) {   /* drop a character cut in two */
        size_t k = n - 1;
        while (k > 0 && ((unsigned char)out[k] & 0xc0) == 0x80) k--;
        unsigned char lead = (unsigned char)out[k];
        size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
        if (n - k < want) n = k;
    }
    while (n > 0 && out[n - 1] == ' ') n--;
    if (cut) { memcpy(out + n, "...", 3); n += 3; }
    out[n] = 0;
}

static int post_event(void *ud, const char *path, const input_event *ev) {
    poster *p = ud;
    if (p->stopped) return 1;
    char label[1100];
    snprintf(label, sizeof label, "%s#%d", path, ev->index);
    if (ev->error) fprintf(stderr, "%s: not valid JSON (%s); posted as it is\n", label, ev->error);

    char sig[SIGNATURE_B64_LEN + 1], sig_header[sizeof "X-Loop-Signature: " + SIGNATURE_B64_LEN];
    signature_sign(p->secret, p->secret_len, ev->text, ev->len, sig);
    snprintf(sig_header, sizeof sig_header, "X-Loop-Signature: %s", sig);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, sig_header);
    headers = curl_slist_append(headers, "Expect:");    /* no 100-continue round trip */
    if (!headers) { fputs("returnflow: out of memory\n", stderr); abort(); }

    p->answer.len = 0;
    p->curl_err[0] = 0;
    curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, ev->text);
    curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)ev->len);
    CURLcode rc = curl_easy_perform(p->curl);
    curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);

    if (rc != CURLE_OK) {
        long os_errno = 0;
        curl_easy_getinfo(p->curl, CURLINFO_OS_ERRNO, &os_errno);
        const char *why = p->curl_err[0] ? p->curl_err : curl_easy_strerror(rc);
        int unreachable = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                          rc == CURLE_COULDNT_RESOLVE_PROXY;
        if (rc == CURLE_COULDNT_CONNECT && os_errno == ECONNREFUSED) why = "connection refused";
        printf("%s: %s: %s (%s)\n", label, unreachable ? "not sent" : "no answer", why, p->url);
        fflush(stdout);
        p->unsent++;
        if (unreachable) {
            p->stopped = 1;
            fprintf(stderr, "returnflow post: cannot reach %s: %s; is the server running? Stopped at %s.\n",
                    p->url, why, label);
        }
        return p->stopped;
    }
    long status = 0;
    curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
    char snip[SNIPPET_MAX + 4];
    snippet(&p->answer, snip, sizeof snip);
    printf("%s: %ld%s%s\n", label, status, snip[0] ? " " : "", snip);
    fflush(stdout);
    if (status >= 200 && status < 300) p->answered_2xx++;
    else p->answered_other++;
    return 0;
}

/* The {tenant} of a URL whose path is /v1/webhooks/{tenant}, into out; 0 when there is none. */
static int tenant_of(const char *path, char *out, size_t size) {
    static const char prefix[] = "/v1/webhooks/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0) return 0;
    const char *t = path + sizeof prefix - 1;
    size_t n = strcspn(t, "/");
    if (n == 0 || n >= size || (t[n] == '/' && t[n + 1])) return 0;
    memcpy(out, t, n);
    out[n] = 0;
    return 1;
}

/* Checks the URL; fills tenant (empty when the path names none). Returns 0, or 2 after saying why. */
static int check_url(const char *url, char *tenant, size_t size) {
    tenant[0] = 0;
    CURLU *u = curl_url();
    if (!u) { fputs("returnflow: out of memory\n", stderr); abort(); }
    char *scheme = NULL, *path = NULL;
    int rc = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
        char msg[1200];
        snprintf(msg, sizeof msg, "'%s' is not an http:// or https:// URL "
                 "(for example http://127.0.0.1:8787/v1/webhooks/demo)", url);
        usage_error(msg);
        rc = 2;
    } else if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
        tenant_of(path, tenant, size);
    }
    curl_free(scheme);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

/* The tenant's webhook secret from the config, copied into *secret. Returns 0, or 2 after saying why. */
static int secret_from_config(const char *config_path, int explicit_path, const char *url, const char *tenant,
                              char **secret) {
    if (!explicit_path && access(config_path, F_OK) != 0) {
        fprintf(stderr, "returnflow post: no secret to sign with: give --secret SECRET, or -c CONFIG "
                        "(there is no ./%s here)\n", DEFAULT_CONFIG);
        return 2;
    }
    if (!tenant[0]) {
        fprintf(stderr, "returnflow post: %s does not end in /v1/webhooks/TENANT, so there is no tenant "
                        "to take the secret of from %s; give --secret SECRET\n", url, config_path);
        return 2;
    }
    char err[4096];
    config *c = config_load_secrets(config_path, CONFIG_WEBHOOK_SECRETS, err, sizeof err);   /* not the Klaviyo keys */
    if (!c) {
        fputs(err, stderr);
        fprintf(stderr, "returnflow post: %s does not load; nothing was sent\n", config_path);
        return 2;
    }
    const tenant_config *t = config_tenant(c, tenant, strlen(tenant));
    if (!t) {
        strbuf ids = {0};
        for (int i = 0; i < c->ntenants; i++) {
            if (i) strbuf_adds(&ids, ", ");
            strbuf_adds(&ids, c->tenants[i].id);
        }
        strbuf_addc(&ids, 0);
        fprintf(stderr, "returnflow post: tenant '%s' is not in %s (it has: %s)\n", tenant, config_path, ids.data);
        strbuf_free(&ids);
        config_free(c);
        return 2;
    }
    *secret = strdup(t->webhook_secret);
    config_free(c);
    if (!*secret) { fputs("returnflow: out of memory\n", stderr); abort(); }
    return 0;
}

int cmd_post(int argc, char **argv) {
    enum { O_SECRET = 256 };
    static const struct option opts[] = {
        { "config", required_argument, 0, 'c' }, { "secret", required_argument, 0, O_SECRET },
        { "quiet", no_argument, 0, 'q' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *config_path = NULL, *secret_arg = NULL;
    int quiet = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case O_SECRET: secret_arg = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': cmd_help("post"); return 0;
        default: {
            char msg[256];
            if (optopt == 'c') snprintf(msg, sizeof msg, "-c takes a config file");
            else snprintf(msg, sizeof msg, "unknown option or missing value: '%s'", argv[optind - 1]);
            usage_error(msg);
            return 2;
        }
        }
    }
    if (config_path && secret_arg) { usage_error("give -c CONFIG or --secret SECRET, not both"); return 2; }
    if (secret_arg && !*secret_arg) { usage_error("--secret must not be empty"); return 2; }
    if (optind >= argc) { usage_error("no URL (for example http://127.0.0.1:8787/v1/webhooks/demo)"); return 2; }
    if (optind + 1 >= argc) { usage_error("no input: give event files, or - for standard input"); return 2; }
    const char *url = argv[optind];

    char why[512];
    if (lazy_libs_curl(why, sizeof why) != 0) {
        fprintf(stderr, "returnflow post: %s\n", why);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("returnflow post: libcurl does not start\n", stderr);
        return 1;
    }
    char tenant[128];
    char *secret = NULL;
    int rc = check_url(url, tenant, sizeof tenant);
    if (!rc) {
        if (secret_arg) secret = strdup(secret_arg);
        else rc = secret_from_config(config_path ? config_path : DEFAULT_CONFIG, config_path != NULL, url,
                                     tenant, &secret);
    }
    if (rc || !secret) { curl_global_cleanup(); return rc ? rc : 1; }

    poster p = { .url = url, .secret = secret, .secret_len = strlen(secret) };
    p.curl = curl_easy_init();
    if (!p.curl) {
        fputs("returnflow post: libcurl does not start\n", stderr);
        explicit_bzero(secret, p.secret_len);
        free(secret);
        curl_global_cleanup();
        return 1;
    }
    curl_easy_setopt(p.curl, CURLOPT_URL, url);
    curl_easy_setopt(p.curl, CURLOPT_POST, 1L);
    curl_easy_setopt(p.curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(p.curl, CURLOPT_USERAGENT, "returnflow-post/" RETURNFLOW_VERSION);
    curl_easy_setopt(p.curl, CURLOPT_WRITEFUNCTION, keep_answer);
    curl_easy_setopt(p.curl, CURLOPT_WRITEDATA, &p.answer);
    curl_easy_setopt(p.curl, CURLOPT_ERRORBUFFER, p.curl_err);
    curl_easy_setopt(p.curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(p.curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(p.curl, CURLOPT_TIMEOUT, 60L);

    int unreadable = 0;
    for (int i = optind + 1; i < argc && !p.stopped; i++) {
        char err[600];
        if (input_each(argv[i], post_event, &p, err, sizeof err)) {
            fprintf(stderr, "returnflow post: %s\n", err);
            unreadable++;
        }
    }
    int total = p.answered_2xx + p.answered_other + p.unsent;
    if (!quiet)
        fprintf(stderr, "post: %d event%s: %d answered 2xx, %d answered otherwise, %d not sent%s\n", total,
                total == 1 ? "" : "s", p.answered_2xx, p.answered_other, p.unsent,
                unreadable ? " (and some files could not be read)" : "");

    curl_easy_cleanup(p.curl);
    curl_global_cleanup();
    strbuf_free(&p.answer);
    explicit_bzero(secret, p.secret_len);
    free(secret);
    return p.answered_other || p.unsent || unreadable ? 1 : 0;
}
