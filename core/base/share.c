/*
 * share.c: the folder of shipped files, found from the binary's own path.
 *
 * A build in a checkout must work from any folder exactly as an installed one does: its own
 * templates and fixtures, not those of an older install (or none: "cannot read
 * /usr/local/share/returnflow/..."). So the checkout comes first, recognised by what it holds
 * (fixtures/loop/return.created.json and templates/), one folder above the binary's. An installed
 * binary (PREFIX/bin) has no such neighbours and gets the share folder compiled in.
 */
#include "share.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef RETURNFLOW_SHARE
#define RETURNFLOW_SHARE "/usr/local/share/returnflow"
#endif

/* The installed folder stays one string in the binary (a packager, and rockspec_spec, read it there). */
static const char installed[] = RETURNFLOW_SHARE;
static char checkout[PATH_MAX];
static const char *found = installed;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int exists(const char *dir, const char *rel, int want_dir) {
    char path[PATH_MAX + 64];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return stat(path, &st) == 0 && (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

static void find(void) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = 0;
    for (int up = 0; up < 2; up++) {               /* ROOT/BUILD/returnflow -> ROOT */
        char *slash = strrchr(exe, '/');
        if (!slash || slash == exe) return;
        *slash = 0;
    }
    if (exists(exe, "fixtures/loop/return.created.json", 0) && exists(exe, "templates", 1)) {
        snprintf(checkout, sizeof checkout, "%s", exe);
        found = checkout;
    }
}

const char *share_dir(void) {
    pthread_once(&once, find);
    return found;
}
