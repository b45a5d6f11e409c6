/*
 * reload.h: serve's hot reload: watch each tenant's scripts folder, check a new version, hand it over.
 */
#ifndef RF_RELOAD_H
#define RF_RELOAD_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "strbuf.h"

typedef struct reloader reloader;

/* Puts tenant `tenant` on the frozen copy at path, version `version`, between two batches, and
 * then, on the loop's thread, calls reload_swapped() with the outcome. */
typedef void (*reload_swap_fn)(void *ud, int tenant, const char *version, const char *path);

/* Freezes every tenant's scripts folder (DATA/scripts/TENANT/VERSION): scripts_source keeps the
 * folder as configured, scripts becomes the frozen copy, scripts_version its version. */
int reload_freeze(config *cfg, char *err, size_t errlen);

/* Removes the frozen copies reload_freeze made for a config that is then refused. */
void reload_unfreeze(config *cfg);

/* Watches the tenants of cfg (frozen by reload_freeze) on loop; cfg must outlive the reloader. */
reloader *reload_start(uv_loop_t *loop, config *cfg, reload_swap_fn swap, void *ud);

/* Closes every handle; the reloader frees itself once they are closed. */
void reload_stop(reloader *r);

/* The outcome of a swap: ok, or not with the reason (the running version then stays). */
void reload_swapped(reloader *r, int tenant, int ok, const char *err);

void reload_metrics(reloader *r, strbuf *out);

#endif
