/*
 * lazy_libs.c: libcurl and libpq, opened the first time one of their functions is called.
 *
 * Why: most runs of returnflow never speak HTTP or PostgreSQL: a mapping worker (the process that
 * runs merchants' scripts), map, check, status, trace on SQLite, and the dozens of short commands a
 * spec starts. Linked, the two libraries bring 29 of the binary's 41 libraries with them, loaded and
 * relocated at every start: `returnflow --version` spent 9.2 ms of CPU (22 ms under ASan), almost all
 * of it in the dynamic loader, and every mapping worker had TLS, Kerberos and LDAP code mapped in.
 *
 * How: each function below has the library's own name and prototype (the compiler checks them
 * against its header), so callers are unchanged; the first call opens the library by its soname
 * and finds the real function with dlsym, later calls go straight to it. The variadic setters pass
 * their one argument on by the type its option number says (curl.h's CURLOPTTYPE_* ranges), as
 * libcurl reads it. A library that cannot be opened is the missing package the dynamic loader
 * would have refused to start without: serve, delivery, post and the PostgreSQL store open theirs
 * first (lazy_libs.h) and report it as an error; a call that finds it missing says so and exits 2.
 *
 * Not here: returnflow.native (the Lua module, Makefile's NATIVE_SO) links libcurl itself.
 */
#define CURL_DISABLE_TYPECHECK          /* the setters below are the functions, not curl.h's macros */
#include <curl/curl.h>
#include <dlfcn.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "lazy_libs.h"

typedef struct lazy_lib {
    const char *soname;
    void *handle;
} lazy_lib;

static lazy_lib curl_lib = { "libcurl.so.4", NULL }, pq_lib = { "libpq.so.5", NULL };
static pthread_mutex_t opening = PTHREAD_MUTEX_INITIALIZER;

/* Opens lib if it is not yet: 0, or -1 with why. */
static int lazy_open(lazy_lib *lib, char *why, size_t len) {
    pthread_mutex_lock(&opening);
    if (!lib->handle && !(lib->handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL))) {
        const char *e = dlerror();
        snprintf(why, len, "cannot load %s: %s (is its package installed?)", lib->soname, e ? e : "not found");
    }
    int ok = lib->handle != NULL;
    pthread_mutex_unlock(&opening);
    return ok ? 0 : -1;
}

int lazy_libs_curl(char *why, size_t len) { return lazy_open(&curl_lib, why, len); }
int lazy_libs_pq(char *why, size_t len) { return lazy_open(&pq_lib, why, len); }

/* The real function `name` of lib, the library opened first if it is not yet; exits if it cannot
 * (a command that expects to need it opened it first: lazy_libs.h). */
static void *lazy_symbol(lazy_lib *lib, const char *name) {
    char why[512];
    if (lazy_open(lib, why, sizeof why) != 0) {
        fprintf(stderr, "returnflow: %s\n", why);
        exit(2);
    }
    pthread_mutex_lock(&opening);
    void *sym = dlsym(lib->handle, name);
    pthread_mutex_unlock(&opening);
    if (!sym) {
        fprintf(stderr, "returnflow: %s has no %s (an older version?)\n", lib->soname, name);
        exit(2);
    }
    return sym;
}

/* The pointer `real` to the function, found once; threads may race to find it, and find the same. */
#define REAL(lib, real, name)                                                                     \
    do {                                                                                          \
        if (!__atomic_load_n(&(real), __ATOMIC_ACQUIRE)) {                                        \
            void *sym = lazy_symbol(&(lib), name);                                                \
            __atomic_store_n((void **)&(real), sym, __ATOMIC_RELEASE);                            \
        }                                                                                         \
    } while (0)

#define LAZY(lib, ret, name, params, args)                                                        \
    ret name params {                                                                             \
        static ret(*real) params;                                                                 \
        REAL(lib, real, #name);                                                                   \
        return real args;                                                                         \
    }

#define LAZY_VOID(lib, name, params, args)                                                        \
    void name params {                                                                            \
        static void(*real) params;                                                                \
        REAL(lib, real, #name);                                                                   \
        real args;                                                                                \
    }

/* --------------------------------- libcurl --------------------------------- */

LAZY(curl_lib, CURLcode, curl_global_init, (long flags), (flags))
LAZY_VOID(curl_lib, curl_global_cleanup, (void), ())
LAZY_VOID(curl_lib, curl_free, (void *p), (p))
LAZY(curl_lib, struct curl_slist *, curl_slist_append, (struct curl_slist *list, const char *data), (list, data))
LAZY_VOID(curl_lib, curl_slist_free_all, (struct curl_slist *list), (list))
LAZY(curl_lib, const char *, curl_easy_strerror, (CURLcode code), (code))
LAZY(curl_lib, CURL *, curl_easy_init, (void), ())
LAZY(curl_lib, CURLcode, curl_easy_perform, (CURL *curl), (curl))
LAZY_VOID(curl_lib, curl_easy_cleanup, (CURL *curl), (curl))
LAZY(curl_lib, CURLM *, curl_multi_init, (void), ())
LAZY(curl_lib, CURLMcode, curl_multi_add_handle, (CURLM *multi, CURL *easy), (multi, easy))
LAZY(curl_lib, CURLMcode, curl_multi_remove_handle, (CURLM *multi, CURL *easy), (multi, easy))
LAZY(curl_lib, CURLMcode, curl_multi_cleanup, (CURLM *multi), (multi))
LAZY(curl_lib, CURLMsg *, curl_multi_info_read, (CURLM *multi, int *msgs_in_queue), (multi, msgs_in_queue))
LAZY(curl_lib, CURLMcode, curl_multi_socket_action, (CURLM *multi, curl_socket_t s, int ev_bitmask, int *running),
     (multi, s, ev_bitmask, running))
LAZY(curl_lib, CURLMcode, curl_multi_assign, (CURLM *multi, curl_socket_t sockfd, void *sockp), (multi, sockfd, sockp))
LAZY(curl_lib, CURLU *, curl_url, (void), ())
LAZY_VOID(curl_lib, curl_url_cleanup, (CURLU *handle), (handle))
LAZY(curl_lib, CURLUcode, curl_url_get, (CURLU *handle, CURLUPart what, char **part, unsigned int flags),
     (handle, what, part, flags))
LAZY(curl_lib, CURLUcode, curl_url_set, (CURLU *handle, CURLUPart what, const char *part, unsigned int flags),
     (handle, what, part, flags))

typedef void (*any_function)(void);

/* curl_easy_setopt and curl_multi_setopt: the one argument after the option is read as libcurl
 * reads it, by the CURLOPTTYPE_* range its number falls in (the two setters' options share them),
 * and passed on. */
#define LAZY_SETOPT(ret, name, handle_type, option_type)                                          \
    ret name(handle_type *handle, option_type option, ...) {                                      \
        static ret (*real)(handle_type *, option_type, ...);                                      \
        REAL(curl_lib, real, #name);                                                              \
        va_list ap;                                                                               \
        va_start(ap, option);                                                                     \
        ret rc;                                                                                   \
        if (option < CURLOPTTYPE_OBJECTPOINT) rc = real(handle, option, va_arg(ap, long));         \
        else if (option < CURLOPTTYPE_FUNCTIONPOINT) rc = real(handle, option, va_arg(ap, void *)); \
        else if (option < CURLOPTTYPE_OFF_T) rc = real(handle, option, va_arg(ap, any_function));  \
        else if (option < CURLOPTTYPE_BLOB) rc = real(handle, option, va_arg(ap, curl_off_t));     \
        else rc = real(handle, option, va_arg(ap, void *));                                       \
        va_end(ap);                                                                               \
        return rc;                                                                                \
    }

LAZY_SETOPT(CURLcode, curl_easy_setopt, CURL, CURLoption)
LAZY_SETOPT(CURLMcode, curl_multi_setopt, CURLM, CURLMoption)

/* Every CURLINFO_* takes one pointer to where the answer goes. */
CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...) {
    static CURLcode (*real)(CURL *, CURLINFO, ...);
    REAL(curl_lib, real, "curl_easy_getinfo");
    va_list ap;
    va_start(ap, info);
    CURLcode rc = real(curl, info, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

/* ---------------------------------- libpq ---------------------------------- */

LAZY(pq_lib, PGconn *, PQconnectdbParams, (const char *const *keywords, const char *const *values, int expand_dbname),
     (keywords, values, expand_dbname))
LAZY(pq_lib, PGconn *, PQconnectdb, (const char *conninfo), (conninfo))
LAZY_VOID(pq_lib, PQfinish, (PGconn *conn), (conn))
LAZY_VOID(pq_lib, PQreset, (PGconn *conn), (conn))
LAZY(pq_lib, ConnStatusType, PQstatus, (const PGconn *conn), (conn))
LAZY(pq_lib, char *, PQerrorMessage, (const PGconn *conn), (conn))
LAZY(pq_lib, PQconninfoOption *, PQconninfoParse, (const char *conninfo, char **errmsg), (conninfo, errmsg))
LAZY_VOID(pq_lib, PQconninfoFree, (PQconninfoOption *options), (options))
LAZY_VOID(pq_lib, PQfreemem, (void *ptr), (ptr))
LAZY(pq_lib, PGresult *, PQexec, (PGconn *conn, const char *query), (conn, query))
LAZY(pq_lib, PGresult *, PQexecParams,
     (PGconn *conn, const char *command, int nParams, const Oid *paramTypes, const char *const *paramValues,
      const int *paramLengths, const int *paramFormats, int resultFormat),
     (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat))
LAZY(pq_lib, PGresult *, PQprepare, (PGconn *conn, const char *stmtName, const char *query, int nParams, const Oid *paramTypes),
     (conn, stmtName, query, nParams, paramTypes))
LAZY(pq_lib, PGresult *, PQexecPrepared,
     (PGconn *conn, const char *stmtName, int nParams, const char *const *paramValues, const int *paramLengths,
      const int *paramFormats, int resultFormat),
     (conn, stmtName, nParams, paramValues, paramLengths, paramFormats, resultFormat))
LAZY(pq_lib, int, PQsendQueryParams,
     (PGconn *conn, const char *command, int nParams, const Oid *paramTypes, const char *const *paramValues,
      const int *paramLengths, const int *paramFormats, int resultFormat),
     (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat))
LAZY(pq_lib, int, PQsendQueryPrepared,
     (PGconn *conn, const char *stmtName, int nParams, const char *const *paramValues, const int *paramLengths,
      const int *paramFormats, int resultFormat),
     (conn, stmtName, nParams, paramValues, paramLengths, paramFormats, resultFormat))
LAZY(pq_lib, PGresult *, PQgetResult, (PGconn *conn), (conn))
LAZY(pq_lib, int, PQenterPipelineMode, (PGconn *conn), (conn))
LAZY(pq_lib, int, PQexitPipelineMode, (PGconn *conn), (conn))
LAZY(pq_lib, int, PQpipelineSync, (PGconn *conn), (conn))
LAZY(pq_lib, PGpipelineStatus, PQpipelineStatus, (const PGconn *conn), (conn))
LAZY_VOID(pq_lib, PQclear, (PGresult *res), (res))
LAZY(pq_lib, ExecStatusType, PQresultStatus, (const PGresult *res), (res))
LAZY(pq_lib, char *, PQresultErrorMessage, (const PGresult *res), (res))
LAZY(pq_lib, char *, PQresultErrorField, (const PGresult *res, int fieldcode), (res, fieldcode))
LAZY(pq_lib, char *, PQcmdStatus, (PGresult *res), (res))
LAZY(pq_lib, char *, PQcmdTuples, (PGresult *res), (res))
LAZY(pq_lib, int, PQntuples, (const PGresult *res), (res))
LAZY(pq_lib, char *, PQgetvalue, (const PGresult *res, int tup_num, int field_num), (res, tup_num, field_num))
LAZY(pq_lib, int, PQgetlength, (const PGresult *res, int tup_num, int field_num), (res, tup_num, field_num))
LAZY(pq_lib, int, PQgetisnull, (const PGresult *res, int tup_num, int field_num), (res, tup_num, field_num))
