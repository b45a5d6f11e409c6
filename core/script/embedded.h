/*
 * embedded.h: returnflow's own Lua modules, compiled into the binary.
 *
 * The binary carries the modules of core/lua/returnflow (generated into
 * build/embedded.c by tools/embed.lua), so the host and its Lua half can never
 * be out of step, and an installed binary needs no search path to find them.
 */
#ifndef RF_EMBEDDED_H
#define RF_EMBEDDED_H

#include <stddef.h>

typedef struct embedded_file {
    const char *name;         /* module name, "returnflow.loop" */
    const char *source;
    size_t len;
} embedded_file;

extern const embedded_file embedded_lua[];        /* ends with a NULL name */
extern const embedded_file embedded_host_lua[];   /* host-only: render, testing, cli.* */

/* A module a sandbox may load (never a host-only one). */
const embedded_file *embedded_find(const char *name);

/* Any module, host-only ones included: for the host's own tool states, never a sandbox. */
const embedded_file *embedded_host_find(const char *name);

#endif
