/*
 * main.c: the `returnflow` binary: one entry point, subcommands, and their help.
 *
 * Help text lives here, next to the dispatch table, so a new command cannot
 * be added without saying what it does.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
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
      "  -s, --scripts DIR          scripts folder (default: ./scripts, else the installed defaults)\n"
      "      --key-kind KIND        private (default: /api/ endpoints) or public (/client/ endpoints)\n"
      "      --site-id ID           public key: the site id sent as company_id\n"
      "      --tenant NAME          tenant name, part of every default unique_id (default: default)\n"
      "      --revision REV         Klaviyo API revision header (default: 2026-07-15)\n"
      "      --segments-property P  profile property holding segments (default: returnflow_segments)\n"
      "      --backfill             mark every event backfill: true (no flow fires)\n"
      "      --pretty               indent the output for reading\n"
      "      --memory-cap MIB       memory cap of the scripts' state (default: 32)\n"
      "      --time-cap MS          CPU time per event (default: 500)\n"
      "  -q, --quiet                no summary line on standard error\n"
      "\n"
      "exit status: 0 every event mapped or was dropped, 1 some failed, 2 the scripts do not load.\n"
      "example: returnflow map --pretty ../shared/fixtures/loop/return.created.json\n" },
    { "check", cmd_check, "load a scripts folder and report every problem as file:line: message",
      "usage: returnflow check [options] [DIR]\n"
      "\n"
      "Loads every .lua file of DIR (default: ./scripts) in the sandbox, as the mapper would, and\n"
      "reports each problem as 'file:line: message': syntax errors, errors while loading, a file that\n"
      "does not return a table of handlers, a handler that is not a function, an unknown trigger.\n"
      "Takes the cap options of 'map'. Exit status 1 when there is any problem.\n" },
    { "help", NULL, "show the help of a command", "usage: returnflow help [COMMAND]\n" },
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
    for (size_t i = 0; i < NCOMMANDS; i++) printf("  %-8s %s\n", commands[i].name, commands[i].summary);
    printf("\n'returnflow help COMMAND' tells more. Also: --version.\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cmd_help(NULL);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("returnflow %s\n", RETURNFLOW_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0) return cmd_help(argc > 2 ? argv[2] : NULL);
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (commands[i].run && strcmp(commands[i].name, argv[1]) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "returnflow: no command '%s'; 'returnflow --help' lists them\n", argv[1]);
    return 2;
}
