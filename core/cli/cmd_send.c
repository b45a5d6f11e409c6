/*
 * cmd_send.c: `returnflow send`, `replay` and `test-integration`: the batch jobs (job.c) a
 * merchant runs by hand.
 *
 * send backfills history from files (webhook bodies, or Loop's detailed-returns records, which are
 * the same return objects); replay runs events already in the journal through the current scripts;
 * test-integration sends one sample of every metric the scripts emit, as Loop's "Test the
 * integration" button does. All three store and deliver exactly as serve does, beside it or alone.
 */
#include "cmd.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "input.h"
#include "json.h"
#include "job.h"
#include "share.h"
#include "store_db.h"
#include "strbuf.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct common {
    const char *config_path, *tenant;
    int live, dry, resume, quiet;
    config *cfg;
    const tenant_config *tc;
} common;

static void usage_error(const char *cmd, const char *msg) {
    fprintf(stderr, "returnflow %s: %s\nTry 'returnflow help %s'.\n", cmd, msg, cmd);
}

/* The config and the tenant; 0, or the exit status after saying what is wrong. */
static int load(const char *cmd, common *c) {
    if (!c->tenant) { usage_error(cmd, "--tenant T is required (a tenant of the config)"); return 2; }
    char err[8192];
    c->cfg = config_load_secrets(c->config_path ? c->config_path : "returnflow.conf.lua", CONFIG_KLAVIYO_KEYS, err, sizeof err);
    if (!c->cfg) { fprintf(stderr, "%sreturnflow %s: the config does not load\n", err, cmd); return 2; }
    for (int i = 0; i < c->cfg->ntenants; i++)
        if (strcmp(c->cfg->tenants[i].id, c->tenant) == 0) c->tc = &c->cfg->tenants[i];
    if (!c->tc) {
        fprintf(stderr, "returnflow %s: no tenant '%s' in %s\n", cmd, c->tenant, c->cfg->path);
        config_free(c->cfg);
        return 2;
    }
    if (c->live && !c->quiet)
        fprintf(stderr, "returnflow %s: --live: these events will trigger Klaviyo flows, as if they happened now\n", cmd);
    return 0;
}

static void catch_signals(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static job *open_job(const char *cmd, common *c, const char *identity, int journal, int schedules_now) {
    job_options o = { .cfg = c->cfg, .tenant = c->tc, .kind = cmd, .identity = identity, .live = c->live,
                      .dry = c->dry, .resume = c->resume, .quiet = c->quiet, .journal = journal,
                      .schedules_now = schedules_now, .list_metrics = schedules_now, .interrupted = &interrupted };
    char err[8192] = "";
    job *j = job_open(&o, err, sizeof err);
    if (!j) fprintf(stderr, "returnflow %s: %s\n", cmd, err);
    return j;
}

/* Options every job command takes; returns 0, or the exit status. */
static int parse_common(const char *cmd, int argc, char **argv, common *c, const struct option *extra, int *extra_opt,
                        const char **extra_val) {
    enum { O_TENANT = 256, O_LIVE, O_DRY, O_RESUME };
    struct option opts[16] = {
        { "config", required_argument, 0, 'c' }, { "tenant", required_argument, 0, O_TENANT },
        { "live", no_argument, 0, O_LIVE }, { "dry", no_argument, 0, O_DRY }, { "resume", no_argument, 0, O_RESUME },
        { "quiet", no_argument, 0, 'q' }, { "help", no_argument, 0, 'h' },
    };
    int n = 7;
    for (int i = 0; extra && extra[i].name && n < 15; i++) opts[n++] = extra[i];
    opts[n] = (struct option){ 0, 0, 0, 0 };
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:qh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': c->config_path = optarg; break;
        case O_TENANT: c->tenant = optarg; break;
        case O_LIVE: c->live = 1; break;
        case O_DRY: c->dry = 1; break;
        case O_RESUME: c->resume = 1; break;
        case 'q': c->quiet = 1; break;
        case 'h': cmd_help(cmd); exit(0);
        default:
            if (ch >= 512 && extra_opt) {
                extra_opt[ch - 512] = 1;
                if (extra_val) extra_val[ch - 512] = optarg;
                break;
            }
            {
                char msg[128];
                snprintf(msg, sizeof msg, "unknown option '%s'", argv[optind - 1]);
                usage_error(cmd, msg);
            }
            return 2;
        }
    }
    return 0;
}

/* ---------------------------------- send ----------------------------------- */

typedef struct feed { job *j; int stopped; } feed;

/* A record of Loop's returns API has no webhook envelope: it is the return as it stands. It is sent
 * as the webhooks would have told it: return.created, then return.updated with its state unless it is
 * still open (so a closed return gets its refund, a cancelled one its cancellation). */
static int send_record(feed *f, const char *text, size_t len, const char *label) {
    const char *state, *brace = memchr(text, '{', len);
    size_t slen;
    if (!brace || json_member(text, len, "state", &state, &slen) != 0 || json_member(text, len, "id", &state, &slen) != 0) {
        job_invalid(f->j, label, "neither a Loop webhook (no \"trigger\") nor a Loop return record (no \"id\" and \"state\")");
        return 0;
    }
    json_member(text, len, "state", &state, &slen);
    static const char *const triggers[] = { "return.created", "return.updated" };
    int n = slen == 6 && memcmp(state, "\"open\"", 6) == 0 ? 1 : 2;
    strbuf as = {0};
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        as.len = 0;
        strbuf_adds(&as, "{\"trigger\":\"");
        strbuf_adds(&as, triggers[i]);
        strbuf_adds(&as, "\",\"topic\":\"return\",");
        strbuf_add(&as, brace + 1, len - (size_t)(brace + 1 - text));
        strbuf_addc(&as, 0);
        char as_label[1200];
        snprintf(as_label, sizeof as_label, "%s (as %s)", label, triggers[i]);
        rc = job_event(f->j, 0, as.data, as.len - 1, as_label);
    }
    strbuf_free(&as);
    return rc;
}

static int on_event(void *ud, const char *path, const input_event *ev) {
    feed *f = ud;
    char label[1100];
    snprintf(label, sizeof label, "%s#%d", path, ev->index);
    if (ev->error) { job_invalid(f->j, label, ev->error); return 0; }
    const char *trigger;
    size_t tlen;
    int rc = json_member(ev->text, ev->len, "trigger", &trigger, &tlen) == 0
                 ? job_event(f->j, 0, ev->text, ev->len, label)
                 : send_record(f, ev->text, ev->len, label);
    if (rc != 0) { f->stopped = 1; return 1; }
    return 0;
}

int cmd_send(int argc, char **argv) {
    common c = {0};
    int rc = parse_common("send", argc, argv, &c, NULL, NULL, NULL);
    if (rc) return rc;
    if (optind >= argc) { usage_error("send", "no input: give files of events, or - for standard input"); return 2; }
    /* The job is its input: the files, as they are (path, size, time). */
    strbuf identity = {0};
    for (int i = optind; i < argc; i++) {
        struct stat st;
        char real[PATH_MAX], line[PATH_MAX + 64];
        if (strcmp(argv[i], "-") == 0) {
            if (c.resume) { usage_error("send", "--resume needs files: standard input cannot be read again"); return 2; }
            snprintf(line, sizeof line, "-:%ld\n", (long)time(NULL));
        } else if (stat(argv[i], &st) != 0 || !realpath(argv[i], real)) {
            fprintf(stderr, "returnflow send: %s: cannot read it\n", argv[i]);
            strbuf_free(&identity);
            return 2;
        } else {
            snprintf(line, sizeof line, "%s:%lld:%lld\n", real, (long long)st.st_size, (long long)st.st_mtime);
        }
        strbuf_adds(&identity, line);
    }
    strbuf_addc(&identity, 0);
    if ((rc = load("send", &c))) { strbuf_free(&identity); return rc; }
    catch_signals();
    job *j = open_job("send", &c, identity.data, 1, 0);
    strbuf_free(&identity);
    if (!j) { config_free(c.cfg); return 2; }
    feed f = { j, 0 };
    int unreadable = 0;
    for (int i = optind; i < argc && !f.stopped; i++) {
        char err[600];
        if (input_each(argv[i], on_event, &f, err, sizeof err)) {
            fprintf(stderr, "returnflow send: %s\n", err);
            unreadable++;
        }
    }
    rc = job_finish(j);
    config_free(c.cfg);
    return rc ? rc : unreadable ? 1 : 0;
}

/* --------------------------------- replay ---------------------------------- */

/* "2026-10-01" or an ISO time, as epoch ms; -1 if neither. */
static long long parse_when(const char *s) {
    return clock_iso_ms(s);
}

typedef struct replaying { job *j; const char *tenant; } replaying;

static int replay_event(void *ud, const store_event *e) {
    replaying *r = ud;
    char label[64];
    snprintf(label, sizeof label, "%s#%lld", r->tenant, e->id);
    return job_event(r->j, e->id, e->body, e->len, label) != 0;
}

int cmd_replay(int argc, char **argv) {
    static const struct option extra[] = {
        { "since", required_argument, 0, 512 }, { "until", required_argument, 0, 513 },
        { "trigger", required_argument, 0, 514 }, { 0, 0, 0, 0 },
    };
    int given[3] = {0};
    const char *val[3] = {0};
    common c = {0};
    int rc = parse_common("replay", argc, argv, &c, extra, given, val);
    if (rc) return rc;
    if (optind < argc) { usage_error("replay", "takes no files: it reads the journal"); return 2; }
    if (!val[0]) { usage_error("replay", "--since DATE is required (2026-10-01, or an ISO time)"); return 2; }
    long long since = parse_when(val[0]), until = val[1] ? parse_when(val[1]) : clock_now_ms() + 1;
    if (since < 0 || until < 0) { usage_error("replay", "--since and --until take a date (2026-10-01) or an ISO time"); return 2; }
    if ((rc = load("replay", &c))) return rc;
    char identity[600];
    snprintf(identity, sizeof identity, "since=%lld until=%lld trigger=%s", since, until, val[2] ? val[2] : "*");
    catch_signals();
    /* The journal's events in order, read before the job writes (its own connection). */
    char why[1200];
    store_db *db = store_db_open(config_store_location(c.cfg), STORE_READ_ONLY, why, sizeof why);
    if (!db) {
        fprintf(stderr, "returnflow replay: %s\n", why);
        config_free(c.cfg);
        return 2;
    }
    job *j = open_job("replay", &c, identity, 0, 0);
    if (!j) { store_db_close(db); config_free(c.cfg); return 2; }
    replaying r = { j, c.tc->id };
    int found = store_journal_replay(db, c.tc->id, since, until, val[2], replay_event, &r);
    if (found < 0) {
        fprintf(stderr, "returnflow replay: cannot read the journal: %s\n", store_db_error(db));
        found = 0;
    }
    store_db_close(db);
    if (!found && !c.quiet)
        fprintf(stderr, "returnflow replay: no event of tenant %s in that window (the journal keeps %d days)\n",
                c.tc->id, c.cfg->retention_days);
    rc = job_finish(j);
    config_free(c.cfg);
    return rc;
}

/* ---------------------------- test-integration ----------------------------- */

/* Every string value of text that is an email address becomes `email` (the test profile). */
static void with_email(const char *text, size_t len, const char *email, strbuf *out) {
    out->len = 0;
    for (size_t i = 0; i < len;) {
        if (text[i] != '"') { strbuf_addc(out, text[i++]); continue; }
        size_t j = i + 1;
        int at = 0, space = 0;
        while (j < len && text[j] != '"') {
            if (text[j] == '\\') j++;
            else if (text[j] == '@') at = 1;
            else if (text[j] == ' ') space = 1;
            j++;
        }
        int is_key = 0;
        for (size_t k = j + 1; k < len && (text[k] == ' ' || text[k] == ':'); k++) if (text[k] == ':') is_key = 1;
        if (at && !space && !is_key) {
            strbuf_addc(out, '"');
            strbuf_adds(out, email);
            strbuf_addc(out, '"');
        } else {
            strbuf_add(out, text + i, j + 1 - i);
        }
        i = j + 1;
    }
    strbuf_addc(out, 0);
    out->len--;
}

static int by_story(const void *a, const void *b) {
    /* Loop's order: a return, then its labels, updates and closing. */
    static const char *const order[] = { "return.created", "label.", "return.updated", "restock", "giftcard",
                                         "return.closed", "return.processing", NULL };
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int rx = 99, ry = 99;
    for (int i = 0; order[i]; i++) {
        if (rx == 99 && strncmp(x, order[i], strlen(order[i])) == 0) rx = i;
        if (ry == 99 && strncmp(y, order[i], strlen(order[i])) == 0) ry = i;
    }
    return rx != ry ? rx - ry : strcmp(x, y);
}

int cmd_test_integration(int argc, char **argv) {
    static const struct option extra[] = { { "email", required_argument, 0, 512 },
                                           { "fixtures", required_argument, 0, 513 }, { 0, 0, 0, 0 } };
    int given[2] = {0};
    const char *val[2] = {0};
    common c = {0};
    int rc = parse_common("test-integration", argc, argv, &c, extra, given, val);
    if (rc) return rc;
    const char *email = val[0] ? val[0] : "returnflow-test@example.com";
    if (!strchr(email, '@') || strchr(email, '"') || strchr(email, '\\')) {
        usage_error("test-integration", "--email takes an email address");
        return 2;
    }
    if ((rc = load("test-integration", &c))) return rc;
    char dir[PATH_MAX];
    struct stat st;
    if (val[1]) snprintf(dir, sizeof dir, "%s", val[1]);
    else if (stat("fixtures/loop", &st) == 0) snprintf(dir, sizeof dir, "fixtures/loop");
    else snprintf(dir, sizeof dir, "%s/fixtures/loop", share_dir());
    struct dirent **list = NULL;
    int found = scandir(dir, &list, NULL, alphasort);
    char *names[256];
    int n = 0;
    for (int i = 0; i < found; i++) {
        size_t l = strlen(list[i]->d_name);
        if (n < 256 && l > 5 && strcmp(list[i]->d_name + l - 5, ".json") == 0 && !(names[n++] = strdup(list[i]->d_name)))
            abort();
        free(list[i]);
    }
    free(list);
    if (!n) {
        fprintf(stderr, "returnflow test-integration: no Loop fixtures in %s%s%s (give --fixtures DIR)\n", dir,
                found < 0 ? ": " : "", found < 0 ? strerror(errno) : "");
        config_free(c.cfg);
        return 2;
    }
    qsort(names, (size_t)n, sizeof *names, by_story);
    char identity[700];
    snprintf(identity, sizeof identity, "email=%s at=%ld", email, (long)time(NULL));
    catch_signals();
    job *j = open_job("test-integration", &c, identity, 1, 1);
    if (!j) { config_free(c.cfg); return 2; }
    strbuf text = {0};
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 600], label[700];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(label, sizeof label, "%s#1", names[i]);
        FILE *f = fopen(path, "rb");
        char *buf = NULL;
        size_t len = 0;
        if (f) {
            fseek(f, 0, SEEK_END);
            long size = ftell(f);
            fseek(f, 0, SEEK_SET);
            buf = malloc((size_t)(size > 0 ? size : 0) + 1);
            len = buf ? fread(buf, 1, (size_t)(size > 0 ? size : 0), f) : 0;
            fclose(f);
        }
        if (buf) {
            with_email(buf, len, email, &text);
            job_event(j, 0, text.data, text.len, label);
        }
        free(buf);
        free(names[i]);
    }
    strbuf_free(&text);
    rc = job_finish(j);
    if (!c.dry) fprintf(stderr, "test-integration: the samples went to the profile %s; build flows on these metrics "
                                "in Klaviyo\n", email);
    config_free(c.cfg);
    return rc;
}
