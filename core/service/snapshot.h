/*
 * snapshot.h: frozen, content-named copies of a tenant's scripts folder (what serve maps from).
 */
#ifndef RF_SNAPSHOT_H
#define RF_SNAPSHOT_H

#include <stddef.h>

#define SNAPSHOT_VERSION_LEN 12

/* The version the folder's files would get now, without copying. */
int snapshot_version(const char *src, char version[SNAPSHOT_VERSION_LEN + 1], char *err, size_t errlen);

/* Copies src to root/VERSION (whole, or not at all) unless that version is there already, and
 * gives the version, the copy's path and whether this call made it. Returns 0, or -1 with err. */
int snapshot_take(const char *src, const char *root, char version[SNAPSHOT_VERSION_LEN + 1], char *path, size_t pathlen,
                  int *created, char *err, size_t errlen);

/* Removes one frozen copy (a refused version), and its specs' log stays. */
void snapshot_remove(const char *path);

/* Removes all but the `keep` most recently used versions under root (never in_use), and the
 * specs' logs of versions no longer there. */
void snapshot_prune(const char *root, int keep, const char *in_use);

#endif
