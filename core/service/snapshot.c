/*
 * snapshot.c: a tenant's scripts folder, frozen and named by its content.
 *
 * serve never maps from the folder a merchant edits. A script may `require`
 * a file of its folder at any moment, so mapping from a folder being saved
 * could run half of one version and half of the next. Instead every version
 * is copied to DATA/scripts/TENANT/VERSION, VERSION being the first 12 hex
 * digits of a SHA-256 over the files' paths and bytes; the copy is made
 * under a temporary name and renamed into place, so it is whole or absent.
 * The same text always gets the same version, which is what each mapped
 * event records, so "which scripts mapped this?" has a folder for an answer.
 */
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#define MAX_FILES 2000
#define MAX_DEPTH 8

typedef struct file_list {
    char *rel[MAX_FILES];
    int n;
} file_list;

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file under root/rel, hidden names skipped, as paths relative to root. */
static int collect(const char *root, const char *rel, int depth, file_list *out, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char child[4096], full[8192];
        snprintf(child, sizeof child, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, child);
        struct stat st;
        if (stat(full, &st) != 0) continue;                /* vanished meanwhile: the next look sees it */
        if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH) {
            rc = collect(root, child, depth + 1, out, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            if (out->n == MAX_FILES) { snprintf(err, errlen, "%s: more than %d files", root, MAX_FILES); rc = -1; }
            else if (!(out->rel[out->n++] = strdup(child))) abort();
        }
    }
    closedir(d);
    return rc;
}

static void list_free(file_list *l) {
    for (int i = 0; i < l->n; i++) free(l->rel[i]);
    l->n = 0;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf) abort();
    *len = n;
    return buf;
}

/* Reads the folder's files in name order, hashing them and, if copy_to is set, writing them there. */
static int walk(const char *src, const char *copy_to, char version[SNAPSHOT_VERSION_LEN + 1], char *err, size_t errlen) {
    static file_list files;                     /* one walk at a time: serve's loop thread */
    list_free(&files);
    if (collect(src, "", 0, &files, err, errlen) != 0) { list_free(&files); return -1; }
    qsort(files.rel, (size_t)files.n, sizeof files.rel[0], by_name);
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
    int rc = 0;
    for (int i = 0; rc == 0 && i < files.n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", src, files.rel[i]);
        size_t len;
        char *text = read_all(path, &len);
        if (!text) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); rc = -1; break; }
        unsigned char size[8];
        for (int b = 0; b < 8; b++) size[b] = (unsigned char)((unsigned long long)len >> (8 * b));
        EVP_DigestUpdate(sha, files.rel[i], strlen(files.rel[i]) + 1);
        EVP_DigestUpdate(sha, size, sizeof size);
        EVP_DigestUpdate(sha, text, len);
        if (copy_to) {
            char dest[8192];
            snprintf(dest, sizeof dest, "%s/%s", copy_to, files.rel[i]);
            for (char *p = dest + strlen(copy_to) + 1; (p = strchr(p, '/')); p++) {
                *p = 0;
                mkdir(dest, 0755);
                *p = '/';
            }
            FILE *f = fopen(dest, "wb");
            if (!f || fwrite(text, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
                snprintf(err, errlen, "%s: %s", dest, strerror(errno));
                rc = -1;
            }
            if (f) fclose(f);
        }
        free(text);
    }
    unsigned char digest[32];
    EVP_DigestFinal_ex(sha, digest, NULL);
    EVP_MD_CTX_free(sha);
    for (int i = 0; i < SNAPSHOT_VERSION_LEN / 2; i++) snprintf(version + 2 * i, 3, "%02x", digest[i]);
    list_free(&files);
    return rc;
}

int snapshot_version(const char *src, char version[SNAPSHOT_VERSION_LEN + 1], char *err, size_t errlen) {
    return walk(src, NULL, version, err, errlen);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path) {
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; (p = strchr(p, '/')); p++) {
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int snapshot_take(const char *src, const char *root, char version[SNAPSHOT_VERSION_LEN + 1], char *path, size_t pathlen,
                  int *created, char *err, size_t errlen) {
    if (created) *created = 0;
    if (mkdirs(root) != 0) { snprintf(err, errlen, "%s: %s", root, strerror(errno)); return -1; }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/.incoming-%ld-%ld", root, (long)getpid(), (long)time(NULL));
    remove_tree(tmp);
    if (mkdir(tmp, 0755) != 0) { snprintf(err, errlen, "%s: %s", tmp, strerror(errno)); return -1; }
    if (walk(src, tmp, version, err, errlen) != 0) { remove_tree(tmp); return -1; }
    snprintf(path, pathlen, "%s/%s", root, version);
    struct stat st;
    if (stat(path, &st) == 0) {                 /* this version was frozen before: same bytes */
        remove_tree(tmp);
        utimes(path, NULL);                     /* most recently used, for snapshot_prune */
        return 0;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        remove_tree(tmp);
        return -1;
    }
    if (created) *created = 1;
    return 0;
}

void snapshot_remove(const char *path) { remove_tree(path); }

typedef struct aged { char name[64]; time_t mtime; } aged;

static int newest_first(const void *a, const void *b) {
    time_t x = ((const aged *)a)->mtime, y = ((const aged *)b)->mtime;
    return x < y ? 1 : x > y ? -1 : 0;
}

void snapshot_prune(const char *root, int keep, const char *in_use) {
    DIR *d = opendir(root);
    if (!d) return;
    aged list[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        if (e->d_name[0] == '.' || strlen(e->d_name) != SNAPSHOT_VERSION_LEN) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        memcpy(list[n].name, e->d_name, SNAPSHOT_VERSION_LEN + 1);   /* its length was checked above */
        list[n++].mtime = st.st_mtime;
    }
    closedir(d);
    qsort(list, (size_t)n, sizeof list[0], newest_first);
    for (int i = keep; i < n; i++) {
        if (in_use && strcmp(list[i].name, in_use) == 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, list[i].name);
        remove_tree(path);
    }
    d = opendir(root);                        /* specs' logs whose version is gone */
    while (d && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len != SNAPSHOT_VERSION_LEN + 9 || strcmp(e->d_name + SNAPSHOT_VERSION_LEN, ".spec.log") != 0) continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%.*s", root, SNAPSHOT_VERSION_LEN, e->d_name);
        if (stat(path, &st) != 0) {
            snprintf(path, sizeof path, "%s/%s", root, e->d_name);
            remove(path);
        }
    }
    if (d) closedir(d);
}
