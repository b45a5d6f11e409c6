/*
 * console.h: the operator's console in the browser, served by `serve` on a listener of its own
 * (off unless the config has console = { listen, token }; docs/console.md).
 *
 * It runs on its own thread with its own libuv loop and its own store connection, so a slow trace or
 * a browser that stops reading never delays a webhook's answer. It holds one secret, the admin token;
 * it shows no key, no webhook secret and no token.
 */
#ifndef RF_CONSOLE_H
#define RF_CONSOLE_H

#include <stddef.h>

#include "strbuf.h"

typedef struct console console;

typedef struct console_options {
    const char *listen;           /* HOST:PORT (port 0: any free one) */
    const char *token;            /* the admin token (copied) */
    const char *store;            /* the store's location: a data folder or a postgresql:// URL (copied) */
    const char *data_dir;         /* the data folder: DATA/scripts/TENANT/ holds the frozen versions (copied) */
    /* The service's counters as Prometheus text, callable from the console's thread. */
    void (*counters)(void *ud, strbuf *out);
    void *ud;
} console_options;

/* Binds the listener and starts the console's thread. NULL with err filled ("cannot listen on ..."). */
console *console_start(const console_options *o, char *err, size_t errlen);

/* The address it listens on ("127.0.0.1:8788"). */
const char *console_address(const console *c);

/* Closes every connection, stops the thread and frees the console. */
void console_stop(console *c);

#endif
