/*
 * lazy_libs.h: libcurl and libpq are opened by the first call to one of their functions
 * (lazy_libs.c). A command that is about to need one opens it first with these, so a missing
 * library is an error it reports and unwinds like any other, not an exit from deep inside a call.
 */
#ifndef RF_LAZY_LIBS_H
#define RF_LAZY_LIBS_H

#include <stddef.h>

/* Opens libcurl (libpq): 0, or -1 with why ("cannot load libcurl.so.4: ..."). */
int lazy_libs_curl(char *why, size_t len);
int lazy_libs_pq(char *why, size_t len);

#endif
