/*
 * console_assets.h: the console's page, script and style, compiled into the binary
 * (build/console_assets.c, made from core/ops/assets/ by tools/embed_assets.lua): no file to install,
 * no CDN, no build step but the C compiler.
 */
#ifndef RF_CONSOLE_ASSETS_H
#define RF_CONSOLE_ASSETS_H

#include <stddef.h>

typedef struct console_asset {
    const char *path;             /* "/index.html", "/console.js", "/console.css" */
    const char *content_type;
    const char *data;
    size_t len;
} console_asset;

/* The asset served at path, or NULL. */
const console_asset *console_asset_find(const char *path);

#endif
