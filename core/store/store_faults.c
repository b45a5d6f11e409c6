/*
 * store_faults.c: a store that refuses on purpose, for the fault suite (spec/lua/faults_*_spec.lua).
 *
 * With RETURNFLOW_STORE_FAULTS=FILE in the environment, every connection of the process goes through
 * a SQLite VFS shim over the default one, which reads FILE before each read, write and sync of the
 * database and its WAL (every time: a spec that writes FILE and then posts must find the fault on,
 * which a cached reading raced). FILE holds a kind and, optionally, which threads it
 * hits (by the names the service gives them: journal, map, deliver); no FILE, or an empty one, is
 * a healthy disk:
 *     full [journal|map|deliver]...     writes fail as on a full disk (SQLITE_FULL, ENOSPC's code)
 *     ioerr [...]                       writes fail with an I/O error (SQLITE_IOERR_WRITE)
 *     readerr [...]                     reads fail with an I/O error (SQLITE_IOERR_READ)
 *     garbage [...]                     pages read back as garbage (what a damaged disk returns)
 * A small filesystem would need a privileged mount, which a CI container run as root does not
 * give; this needs nothing. Without the variable nothing here runs: the default VFS is untouched.
 */
#include "store_faults.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fault_file {
    sqlite3_file base;
    sqlite3_file *real;           /* the default VFS's file, allocated right after this struct */
} fault_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs faults_vfs;
static sqlite3_io_methods faults_methods;
static const char *trigger;

/* Whether FILE asks for `kind` on this thread now. */
static int asked(const char *kind) {
    char text[256], name[32] = "";
    FILE *f = fopen(trigger, "rb");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    char *save, *word = strtok_r(text, " \t\r\n", &save);
    if (!word || strcmp(word, kind) != 0) return 0;
    char *who = strtok_r(NULL, " \t\r\n", &save);
    if (!who) return 1;                                   /* every thread */
    pthread_getname_np(pthread_self(), name, sizeof name);
    for (; who; who = strtok_r(NULL, " \t\r\n", &save))
        if (strstr(name, who)) return 1;
    return 0;
}

static int f_close(sqlite3_file *f) {
    sqlite3_file *r = ((fault_file *)f)->real;
    return r->pMethods ? r->pMethods->xClose(r) : SQLITE_OK;
}
static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off) {
    sqlite3_file *r = ((fault_file *)f)->real;
    if (asked("readerr")) return SQLITE_IOERR_READ;
    int rc = r->pMethods->xRead(r, buf, n, off);
    if (rc == SQLITE_OK && n >= 512 && off > 0 && asked("garbage")) memset(buf, 0xA5, (size_t)n);
    return rc;
}
static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off) {
    sqlite3_file *r = ((fault_file *)f)->real;
    if (asked("full")) return SQLITE_FULL;
    if (asked("ioerr")) return SQLITE_IOERR_WRITE;
    return r->pMethods->xWrite(r, buf, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size) {
    sqlite3_file *r = ((fault_file *)f)->real;
    return r->pMethods->xTruncate(r, size);
}
static int f_sync(sqlite3_file *f, int flags) {
    sqlite3_file *r = ((fault_file *)f)->real;
    if (asked("ioerr")) return SQLITE_IOERR_FSYNC;
    return r->pMethods->xSync(r, flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size) {
    sqlite3_file *r = ((fault_file *)f)->real;
    return r->pMethods->xFileSize(r, size);
}
static int f_lock(sqlite3_file *f, int l) { sqlite3_file *r = ((fault_file *)f)->real; return r->pMethods->xLock(r, l); }
static int f_unlock(sqlite3_file *f, int l) { sqlite3_file *r = ((fault_file *)f)->real; return r->pMethods->xUnlock(r, l); }
static int f_check(sqlite3_file *f, int *out) {
    sqlite3_file *r = ((fault_file *)f)->real;
    return r->pMethods->xCheckReservedLock(r, out);
}
static int f_control(sqlite3_file *f, int op, void *arg) {
    sqlite3_file *r = ((fault_file *)f)->real;
    return r->pMethods->xFileControl(r, op, arg);
}
static int f_sector(sqlite3_file *f) { sqlite3_file *r = ((fault_file *)f)->real; return r->pMethods->xSectorSize(r); }
static int f_caps(sqlite3_file *f) {
    sqlite3_file *r = ((fault_file *)f)->real;
    return r->pMethods->xDeviceCharacteristics(r);
}
static int f_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp) {
    sqlite3_file *r = ((fault_file *)f)->real;
    return r->pMethods->xShmMap(r, pg, sz, extend, pp);
}
static int f_shm_lock(sqlite3_file *f, int off, int n, int flags) {
    sqlite3_file *r = ((fault_file *)f)->real;
    return r->pMethods->xShmLock(r, off, n, flags);
}
static void f_shm_barrier(sqlite3_file *f) { sqlite3_file *r = ((fault_file *)f)->real; r->pMethods->xShmBarrier(r); }
static int f_shm_unmap(sqlite3_file *f, int del) {
    sqlite3_file *r = ((fault_file *)f)->real;
    return r->pMethods->xShmUnmap(r, del);
}
/* No memory-mapped reads: every read goes through f_read. */
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) { (void)f; (void)off; (void)n; *pp = NULL; return SQLITE_OK; }
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) { (void)f; (void)off; (void)p; return SQLITE_OK; }

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags) {
    (void)vfs;
    fault_file *f = (fault_file *)file;
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    f->base.pMethods = f->real->pMethods ? &faults_methods : NULL;
    return rc;
}

static int f_delete(sqlite3_vfs *v, const char *n, int sync) { (void)v; return real_vfs->xDelete(real_vfs, n, sync); }
static int f_access(sqlite3_vfs *v, const char *n, int fl, int *out) {
    (void)v;
    return real_vfs->xAccess(real_vfs, n, fl, out);
}
static int f_full(sqlite3_vfs *v, const char *n, int len, char *out) {
    (void)v;
    return real_vfs->xFullPathname(real_vfs, n, len, out);
}
static int f_random(sqlite3_vfs *v, int n, char *out) { (void)v; return real_vfs->xRandomness(real_vfs, n, out); }
static int f_sleep(sqlite3_vfs *v, int us) { (void)v; return real_vfs->xSleep(real_vfs, us); }
static int f_time(sqlite3_vfs *v, double *t) { (void)v; return real_vfs->xCurrentTime(real_vfs, t); }
static int f_last_error(sqlite3_vfs *v, int n, char *out) {
    (void)v;
    return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}
static int f_time64(sqlite3_vfs *v, sqlite3_int64 *t) { (void)v; return real_vfs->xCurrentTimeInt64(real_vfs, t); }

static void install(void) {
    trigger = getenv("RETURNFLOW_STORE_FAULTS");
    if (!trigger || !*trigger || !(real_vfs = sqlite3_vfs_find(NULL))) return;
    faults_methods = (sqlite3_io_methods){
        3, f_close, f_read, f_write, f_truncate, f_sync, f_size, f_lock, f_unlock, f_check, f_control,
        f_sector, f_caps, f_shm_map, f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch,
    };
    faults_vfs = (sqlite3_vfs){
        .iVersion = 2, .szOsFile = (int)sizeof(fault_file) + real_vfs->szOsFile, .mxPathname = real_vfs->mxPathname,
        .zName = "returnflow-faults", .xOpen = f_open, .xDelete = f_delete, .xAccess = f_access,
        .xFullPathname = f_full, .xRandomness = f_random, .xSleep = f_sleep, .xCurrentTime = f_time,
        .xGetLastError = f_last_error, .xCurrentTimeInt64 = f_time64,
    };
    sqlite3_vfs_register(&faults_vfs, 1);
}

void store_faults_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install);
}
