/*
 * store_location.c: a store's location in a form safe to log (store_db.h).
 *
 * Why: a PostgreSQL URL may carry a password (postgresql://user:secret@host/db, or ?password=), and
 * every message that names the store (a failed open, serve's "listening" line, status) must name it
 * without that. The safe form keeps what an operator needs to tell stores apart: host, port, database.
 * libpq parses the URL (its own rules, escapes included): nothing here guesses where a password ends.
 */
#include "store_db.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

void store_location_safe(const char *location, char *out, size_t outlen) {
    const char *scheme_end = strstr(location, "://");
    if (!scheme_end) {
        snprintf(out, outlen, "%s", location);                  /* a data folder */
        return;
    }
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(location, &why);
    const char *host = "", *port = "", *db = "";
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!o->val) continue;
        if (strcmp(o->keyword, "host") == 0) host = o->val;
        else if (strcmp(o->keyword, "port") == 0) port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0) db = o->val;
    }
    if (!opts) snprintf(out, outlen, "postgresql://(a URL libpq cannot read)");
    else snprintf(out, outlen, "postgresql://%s%s%s/%s", host, *port ? ":" : "", port, db);
    PQconninfoFree(opts);
    PQfreemem(why);
}
