/*
 * main.c: the `returnflow` binary: one entry point, subcommands, and their help.
 *
 * Help text lives here, next to the dispatch table, so a new command cannot
 * be added without saying what it does.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "mapworker_child.h"
#include "sandbox.h"
#include "version.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *help;
} command;

static const command commands[] = {
    { "map", cmd_map, "print the Klaviyo requests the scripts make of Loop events (sends nothing)",
      "usage: returnflow map [options] FILE...\n"
      "\n"
      "Runs every event through the mapping scripts and prints, one JSON document a line, the exact\n"
      "HTTP requests returnflow would send to Klaviyo: method, path, headers (key redacted), body.\n"
      "A FILE holds one JSON event, a JSON array of events, or NDJSON; '-' reads standard input.\n"
      "Each document: {input, trigger, status, reason, requests, scheduled, cancelled}, where status is\n"
      "mapped, dropped (on purpose, with the reason), failed (with the error) or deferred.\n"
      "\n"
      "options:\n"
      "  -s, --scripts DIR          scripts folder (default: ./scripts, else the defaults compiled into\n"
      "                             the binary)\n"
      "      --key-kind KIND        private (default: /api/ endpoints) or public (/client/ endpoints)\n"
      "      --site-id ID           the public key (site id) sent as company_id; required with public\n"
      "      --tenant NAME          tenant name, part of every default unique_id (default: default)\n"
      "      --revision REV         Klaviyo API revision header (default: " KLAVIYO_REVISION ")\n"
      "      --segments-property P  profile property holding segments (default: returnflow_segments)\n"
      "      --backfill             mark every event backfill: true (no flow fires)\n"
      "      --pretty               indent the output for reading\n"
      "      --memory-cap MIB       memory cap of the scripts' state (default: 32)\n"
      "      --time-cap MS          CPU time per event (default: 500)\n"
      "  -q, --quiet                no summary line on standard error\n"
      "\n"
      "exit status: 0 every event mapped or was dropped, 1 some failed, 2 the scripts do not load.\n"
      "example: returnflow map --pretty fixtures/loop/return.created.json\n"
      "         returnflow map --key-kind public --site-id AbC123 fixtures/loop/return.created.json\n" },
    { "check", cmd_check, "load a scripts folder and report every problem as file:line: message",
      "usage: returnflow check [options] [DIR]\n"
      "\n"
      "Loads every .lua file of DIR (default: ./scripts) in the sandbox, as the mapper would, and\n"
      "reports each problem as 'file:line: message': syntax errors, errors while loading, a file that\n"
      "does not return a table of handlers, a handler that is not a function, an unknown trigger.\n"
      "Takes the cap options of 'map'. Exit status 1 when there is any problem.\n" },
    { "post", cmd_post, "sign Loop events as Loop does and POST them to a webhook URL",
      "usage: returnflow post [-c CONFIG | --secret SECRET] [-q] URL FILE...\n"
      "\n"
      "Posts every event to URL as its own request body, byte for byte as it stands in the file, with\n"
      "Content-Type: application/json and X-Loop-Signature: base64(HMAC-SHA256(secret, body)), the way\n"
      "Loop delivers a webhook. A FILE holds one JSON event, a JSON array of events, or NDJSON; '-' reads\n"
      "standard input. The connection is kept open between events; TLS certificates are verified.\n"
      "Prints one line per event: 'FILE#N: STATUS ANSWER' (the answer's body on one line, shortened).\n"
      "\n"
      "The secret is --secret, else the webhook_secret of the tenant named in the URL path\n"
      "/v1/webhooks/TENANT, read from CONFIG. It is never printed.\n"
      "\n"
      "options:\n"
      "  -c, --config CONFIG        config file to take the secret from (default: ./returnflow.conf.lua)\n"
      "      --secret SECRET        the webhook secret itself (other users may see it in 'ps'; prefer -c)\n"
      "  -q, --quiet                no summary line on standard error\n"
      "\n"
      "exit status: 0 every answer was 2xx, 1 some was not or some event could not be sent, 2 bad usage.\n"
      "example (with 'make run' serving returnflow.conf.lua):\n"
      "  returnflow post http://127.0.0.1:8787/v1/webhooks/demo fixtures/loop/return.created.json\n" },
    { "serve", cmd_serve, "receive Loop's signed webhooks, journal them durably, map them, deliver them to Klaviyo",
      "usage: returnflow serve [-c CONFIG] [--listen HOST:PORT] [--data DIR]\n"
      "\n"
      "Loads CONFIG (default: ./returnflow.conf.lua), checks every tenant's scripts, opens the store in the\n"
      "data directory and serves:\n"
      "  POST /v1/webhooks/{tenant}  a Loop webhook, signed with X-Loop-Signature; answered 202 only once its\n"
      "                              raw body is committed to disk (401 bad signature, 404 unknown tenant,\n"
      "                              413 too large, 415 not JSON, 400 malformed JSON: none of them stores anything)\n"
      "  GET /healthz                200 when ready\n"
      "  GET /metrics                Prometheus text\n"
      "Mapping threads turn the journal into Klaviyo requests; a tenant with no Klaviyo key runs dry and its\n"
      "requests are appended to DATA/dry/TENANT.ndjson exactly as they would be sent; the others' go to Klaviyo\n"
      "(rate-limited, retried, dead letters; see 'returnflow status' and 'returnflow dlq'). SIGTERM or Ctrl-C\n"
      "drains: webhooks in flight get their answer, then it stops. SIGHUP reads the config and every\n"
      "tenant's scripts again (a version that does not load is refused whole, the running one stays; a new\n"
      "listen address or data folder waits for a restart).\n"
      "Logs are one JSON object a line on standard error; keys and secrets never appear in them.\n"
      "\n"
      "options:\n"
      "  -c, --config FILE     the config file (see returnflow.conf.lua)\n"
      "  -l, --listen ADDR     overrides the config's listen address (port 0: any free port, logged)\n"
      "  -d, --data DIR        overrides the config's data directory\n"
      "\n"
      "exit status: 0 stopped by a signal, after draining; when it cannot start, it undoes what it began\n"
      "and says why: 1 the machine refused (the port is taken, the data folder cannot be written), 2 the\n"
      "config or a tenant's scripts do not load.\n" },
    { "status", cmd_status, "per tenant: journaled, deferred, failed, queued, retrying, delivered, dead, paused",
      "usage: returnflow status [-c CONFIG | --data DIR [--store URL]] [--tenant T]\n"
      "\n"
      "Reads the store of the data directory (from CONFIG, default ./returnflow.conf.lua, or --data; on\n"
      "PostgreSQL the config's store.url, or --store URL: mind that a password in it shows in ps) and\n"
      "prints a line per tenant: events journaled and not yet mapped, deferred, failed (dead letters);\n"
      "requests queued, retrying, delivered, dead; whether delivery is paused (Klaviyo refused the key),\n"
      "and the last error. Safe beside a running service.\n" },
    { "store", cmd_store, "the store: migrate its schema; the SQLite file: check it, back it up, recover it",
      "usage: returnflow store migrate|check|backup FILE|recover --into NEW_DATA [-c CONFIG | --data DIR]\n"
      "\n"
      "  migrate             creates or upgrades the store's schema (the config's store.url on PostgreSQL,\n"
      "                      else DATA/returnflow.db); serve does it too at start, under a lock, so nodes\n"
      "                      that start together do not race. --data takes a postgresql:// URL too.\n"
      "                      check, backup and recover are SQLite's: on PostgreSQL use pg_dump,\n"
      "                      pg_basebackup and PostgreSQL's own recovery (docs/scale-out.md).\n"
      "  check               reads the store (its log, then every page: SQLite's quick_check) and prints\n"
      "                      each damage found; --seconds N stops after N s (serve's start check does,\n"
      "                      with store.check_seconds). Exit status 1 when damaged.\n"
      "  backup FILE         a consistent copy of the store in FILE (which must not exist), made while\n"
      "                      serve runs (SQLite's online backup); restore: stop serve, put FILE in place\n"
      "                      as DATA/returnflow.db, start serve (docs/operations.md)\n"
      "  recover --into NEW_DATA\n"
      "                      copies what can be read into a new data folder: the journal first, then the\n"
      "                      outbox, schedules, memory and jobs; each acknowledged webhook that cannot be\n"
      "                      read is listed by id. Reads the old store only. Exit status 1 when anything\n"
      "                      was lost.\n"
      "Run check and recover with serve stopped (recover reads the old store as it is on disk).\n" },
    { "dlq", cmd_dlq, "dead letters: list, show, replay or purge them",
      "usage: returnflow dlq list|show|replay|purge [-c CONFIG | --data DIR [--store URL]] [--tenant T] [ID | --all]\n"
      "\n"
      "Dead letters are events whose mapping failed (ids event:N) and requests Klaviyo refused for good\n"
      "(ids request:N).\n"
      "  list          every dead letter, with its reason\n"
      "  show ID       one, whole: the reason and the raw event or the request body\n"
      "  replay ID     back to work: an event is mapped again with the current scripts, a request is sent\n"
      "                again; --all (with --tenant, only that tenant's) replays every one\n"
      "  purge ID      forget it (an event is kept in the journal as dropped); --all as above\n"
      "A running service takes replayed ones up within a second.\n" },
    { "trace", cmd_trace, "one return end to end: its webhooks, mappings, Klaviyo requests, schedules, memory",
      "usage: returnflow trace [-c CONFIG | --data DIR | --store URL] [--tenant T] [--json] RETURN_ID | event:N | EMAIL\n"
      "       returnflow trace [...] --return ID | --event N | --email EMAIL\n"
      "\n"
      "Answers \"did this customer's email go out, and if not, why?\" from the store, without SQL. Given a\n"
      "return id, a webhook's event id (the 202's \"id\") or a customer's email (all of that customer's\n"
      "returns), prints in time order every webhook received for it (time, trigger, tenant), what its\n"
      "mapping did (the scripts version, mapped, dropped, deferred or failed, with the reason), every\n"
      "Klaviyo request it produced (method, path, metric, attempts, Klaviyo's last answer, queued with its\n"
      "next try, delivered or dead with Klaviyo's error), its schedules (pending, cancelled by which event;\n"
      "one that fired is a request marked with its schedule) and the memory keys naming the return or the\n"
      "customer. --json prints the same as one JSON object (docs/trace.md). Safe beside a running service.\n"
      "The store: the config's (store.url, else its data folder), --data's folder, or --store's PostgreSQL URL.\n"
      "\n"
      "exit status: 0 found, 1 no webhook matched, 2 bad usage or the store cannot be read.\n"
      "example: returnflow trace maria.gonzalez@example.com\n"
      "         returnflow trace --tenant acme --json 8812745\n" },
    { "send", cmd_send, "backfill: map events from files with a tenant's scripts and deliver them (backfill: true)",
      "usage: returnflow send --tenant T [-c CONFIG] [--live] [--dry] [--resume] [-q] FILE...\n"
      "\n"
      "Maps every event of the files (Loop webhook bodies or Loop's detailed-returns records: one JSON object,\n"
      "a JSON array, or NDJSON, streamed; '-' reads standard input) with tenant T's scripts, stores the requests\n"
      "in the data folder as serve does, and waits until they are delivered: by serve if it runs beside it, else\n"
      "by this command. A backlog goes to Klaviyo in bulk jobs of up to 1,000 events, paced to its limits.\n"
      "Every event carries backfill: true, so no flow fires. Scheduled events (day-21 reminders) are held until\n"
      "all input is read, so a later event's cancel applies. A request already delivered or queued from this\n"
      "data folder (same profile, metric and unique_id) is not sent again, and Klaviyo counts each unique_id once.\n"
      "Progress: one updating line on a terminal, a line every 5 s otherwise; then a summary.\n"
      "\n"
      "options:\n"
      "      --tenant T        the tenant of the config whose scripts, key and limits apply (required)\n"
      "  -c, --config FILE     the config (default: ./returnflow.conf.lua)\n"
      "      --live            no backfill flag: flows fire as if the events happened now (a warning says so)\n"
      "      --dry             print the requests (as 'returnflow map' does); store and send nothing\n"
      "      --resume          after Ctrl-C or a crash: skip the events an earlier run of the same files stored\n"
      "  -q, --quiet           no progress, only the summary\n"
      "\n"
      "exit status: 0 all delivered, 1 some events failed or requests were dead-lettered (see 'returnflow dlq'),\n"
      "2 bad usage, 130 interrupted.\n" },
    { "replay", cmd_replay, "map retained events again with the current scripts and deliver what they make now",
      "usage: returnflow replay --tenant T --since DATE [--until DATE] [--trigger X] [--live] [--dry] [-c CONFIG]\n"
      "\n"
      "Runs the raw events journaled for tenant T (received from DATE, before --until; only trigger X if given)\n"
      "through the tenant's current scripts, and delivers what they produce now, with backfill: true unless\n"
      "--live: after adding a template or renaming a metric, the whole window gets the new metric. Requests\n"
      "already delivered (same profile, metric and unique_id) are not sent again. DATE: 2026-10-01 or an ISO time.\n"
      "The journal keeps events retention_days (config). Options as for send.\n" },
    { "test-integration", cmd_test_integration, "send one sample of every metric the scripts emit, to a test profile",
      "usage: returnflow test-integration --tenant T [--email E] [--fixtures DIR] [--live] [--dry] [-c CONFIG]\n"
      "\n"
      "Loop's \"Test the integration\" button: maps every shipped Loop fixture with tenant T's scripts, as if\n"
      "the customer were E (default returnflow-test@example.com), sends scheduled events at once, and delivers\n"
      "it all (backfill: true unless --live), so every metric the scripts can emit exists in Klaviyo and flows\n"
      "can be built on it. Prints the metrics it sent. The fixtures: --fixtures DIR, else ./fixtures/loop,\n"
      "else those of the checkout the binary was built in, else the installed ones.\n" },
    { "test", cmd_test, "run busted specs of a scripts folder with returnflow's testing module",
      "usage: returnflow test [--scripts DIR] [BUSTED ARGS...]\n"
      "\n"
      "Runs busted under Lua 5.4 with returnflow's testing module (require \"returnflow.testing\") on the\n"
      "path. Its mapper is the service's own C, sandbox and caps included, so a spec sees the exact\n"
      "Klaviyo requests 'serve' would send. With no argument busted reads ./.busted, else runs ./spec.\n"
      "--scripts DIR makes testing.load() with no folder load DIR (default: ./scripts).\n"
      "Exit status: busted's. Set RETURNFLOW_BUSTED to use another busted, RETURNFLOW_LUA another lua5.4.\n"
      "example: returnflow init shop && cd shop && returnflow test\n" },
    { "init", cmd_init, "write a starter folder: scripts building on the defaults, specs, .busted, .luacheckrc",
      "usage: returnflow init DIR\n"
      "\n"
      "Writes DIR/scripts (a file that keeps Loop's native events from the default scripts and an example\n"
      "of your own), DIR/spec (two busted specs), DIR/.busted and DIR/.luacheckrc (the sandbox's globals).\n"
      "'returnflow test' in DIR passes out of the box. Existing files are never overwritten.\n" },
    { "templates", cmd_templates, "prebuilt notification flows: list, show, preview, lint, install",
      "usage: returnflow templates list|show|preview|lint|install [options] [NAME]\n"
      "\n"
      "  list                      every template: name, kind, trigger metric, what it sends\n"
      "  show NAME                 one template whole: files, metric, flow or segment definition\n"
      "  preview NAME [--event FILE] [--out DIR] [--organization NAME]\n"
      "                            maps a fixture (or FILE) through the template's handlers and renders its\n"
      "                            email: DIR/NAME.html, .txt and .subject (default DIR: ./preview)\n"
      "  lint [NAME]               every variable an email reads is a property its mapping emits for the\n"
      "                            trigger metric; handlers and definitions load and validate\n"
      "  install NAME --tenant T [-c CONFIG] [--setup-email ADDRESS]\n"
      "                            finds the metrics the template names, then creates in Klaviyo the email\n"
      "                            template and the flow (a draft) or the segment; finds what exists by\n"
      "                            name, so twice is harmless; a dry tenant prints the requests instead.\n"
      "                            A metric not in the account yet stops it before anything is created;\n"
      "                            --setup-email creates it by one backfilled event on that profile (no\n"
      "                            profile is created without it; another integration's metric, never)\n"
      "  --templates DIR           the catalogue (default: ./templates, else the checkout's the binary was\n"
      "                            built in, else the installed one)\n"
      "  --fixtures DIR            the Loop fixtures the templates name (default: ./fixtures/loop, else\n"
      "                            the checkout's, else the installed ones)\n"
      "example: returnflow templates preview return-confirmation --out preview\n" },
    { "help", NULL, "show the help of a command", "usage: returnflow help [COMMAND]\n"
      "\n"
      "Prints what COMMAND does, its options and an example; with no COMMAND, every command.\n"
      "'returnflow COMMAND --help' prints the same.\n" },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

int cmd_help(const char *name) {
    if (name) {
        for (size_t i = 0; i < NCOMMANDS; i++)
            if (strcmp(commands[i].name, name) == 0) { fputs(commands[i].help, stdout); return 0; }
        fprintf(stderr, "returnflow: no command '%s'; 'returnflow --help' lists them\n", name);
        return 2;
    }
    printf("returnflow %s: Loop return events to Klaviyo, mapped by Lua scripts\n\n"
           "usage: returnflow COMMAND [options] [args]\n\ncommands:\n", RETURNFLOW_VERSION);
    for (size_t i = 0; i < NCOMMANDS; i++) printf("  %-17s %s\n", commands[i].name, commands[i].summary);
    printf("\n'returnflow help COMMAND' tells more. Also: --version.\n");
    return 0;
}

static int is_help_flag(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

/* `returnflow X --help` is `returnflow help X`, for every command and wherever the flag stands
 * (`dlq list --help` too), so no command can answer it differently; after `--` it is an argument. */
static int asks_help(int argc, char **argv) {
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (is_help_flag(argv[i])) return 1;
    return 0;
}

int main(int argc, char **argv) {
    /* serve's mapping workers: not a command (not listed), the child side of mapworker.c. */
    if (argc >= 2 && strcmp(argv[1], "__mapworker") == 0) return mapworker_child_main(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cmd_help(NULL);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("returnflow %s\n", RETURNFLOW_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0) {
        const char *name = argc > 2 ? argv[2] : NULL;
        if (name && is_help_flag(name)) name = "help";
        return cmd_help(name);
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (commands[i].run && strcmp(commands[i].name, argv[1]) == 0) {
            if (asks_help(argc - 2, argv + 2)) return cmd_help(commands[i].name);
            return commands[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "returnflow: no command '%s'; 'returnflow --help' lists them\n", argv[1]);
    return 2;
}
