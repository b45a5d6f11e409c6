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

extern const embedded_file embedded_lua[];   /* ends with a NULL name */

const embedded_file *embedded_find(const char *name);

#endif
