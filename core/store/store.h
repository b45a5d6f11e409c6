/*
 * store.h: the journal writer, serve's one writer of webhooks into the store (group commit on its
 * own thread). Every other use of the store goes through store_db.h.
 */
#ifndef RF_STORE_H
#define RF_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct store store;

/* Called on the loop thread once the append is durable (status 0, the
 * event's id) or has failed (status -1, id 0). */
typedef void (*store_journal_cb)(void *ud, int status, int64_t id);

/* Opens the store at location (store_db.h: a data folder, created if needed,
 * or a postgresql:// URL) for durable appends, creates or upgrades the schema,
 * and starts the writer thread, which reports back on loop. node: this node's
 * name (the config's `node`), kept with every row it journals, so `returnflow
 * trace` says which node acknowledged a webhook (NULL: none). Returns NULL
 * with err filled on failure. */
store *store_open(uv_loop_t *loop, const char *location, const char *node, char *err, size_t errlen);

/* Queues a raw webhook for the journal. Appends queued while a commit is in
 * flight share the next commit (one fsync for all of them). cb runs on the
 * loop thread; the body is copied. version: the tenant's scripts version now
 * (NULL: none), the row's script_version until a mapping records its own: of
 * the same length, so recording it rewrites a few bytes, not the body. */
void store_journal_append(store *s, const char *tenant, const char *version, const char *body, size_t len,
                          store_journal_cb cb, void *ud);

/* Calls committed(ud) on the writer thread after each successful commit
 * (the mapping threads wake on it). Set before the first append. */
void store_on_commit(store *s, void (*committed)(void *ud), void *ud);

/* Appends still waiting for their commit. */
size_t store_pending(const store *s);

/* Finishes every queued append, stops the writer, closes the database.
 * The loop must run until the close callback so the last callbacks run. */
void store_close(store *s, void (*closed)(void *ud), void *ud);

#endif
