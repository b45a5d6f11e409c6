/*
 * input.c: how events arrive at the command line.
 *
 * A file is one JSON object (one event), one JSON array (a list of events, as
 * Loop's API and exports give them) or NDJSON (one event a line). The whole
 * file is tried as one JSON value first; if it is not one, it is read line by
 * line, so one bad line is reported with its offset and the other lines still
 * map. Nothing is silently skipped: every slice reaches the callback, bad ones
 * with their error.
 */
#include "input.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static char *read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) { free(buf); return NULL; }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) { free(buf); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* NDJSON if the first non-blank line is a whole JSON value by itself. */
static int first_line_is_value(const char *buf, size_t len) {
    size_t p = 0;
    while (p < len && (buf[p] == ' ' || buf[p] == '\t' || buf[p] == '\r' || buf[p] == '\n')) p++;
    const char *nl = memchr(buf + p, '\n', len - p);
    size_t e = nl ? (size_t)(nl - buf) : len, end;
    char msg[64];
    return nl && json_value_end(buf + p, e - p, &end, msg, sizeof msg) == 0 && is_blank(buf + p + end, e - p - end);
}

/* Shifts "byte N:" in msg by off, so offsets count from the file's start. */
static void shift_offset(char *msg, size_t size, size_t off) {
    unsigned long long at;
    int used;
    if (off == 0 || sscanf(msg, "byte %llu:%n", &at, &used) != 1) return;
    char rest[400];
    snprintf(rest, sizeof rest, "%s", msg + used);
    snprintf(msg, size, "byte %llu:%.300s", at + off, rest);
}

int input_each(const char *path, input_fn fn, void *ud, char *err, size_t errlen) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    size_t len;
    char *buf = read_all(f, &len);
    if (f != stdin) fclose(f);
    if (!buf) { snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno)); return -1; }

    /* Validate the whole file as one value with a scratch Lua-free scan. */
    char msg[400];
    size_t end = 0;
    int whole = json_value_end(buf, len, &end, msg, sizeof msg) == 0 && is_blank(buf + end, len - end);
    int stop = 0, index = 0;
    if (whole) {
        size_t p = 0;
        while (p < len && (buf[p] == ' ' || buf[p] == '\n' || buf[p] == '\r' || buf[p] == '\t')) p++;
        if (len - p >= 3 && memcmp(buf + p, "\xef\xbb\xbf", 3) == 0) p += 3;
        if (buf[p] == '[') {                      /* an array of events */
            p++;
            for (;;) {
                while (p < end && strchr(" \t\r\n,", buf[p])) p++;
                if (p >= end || buf[p] == ']') break;
                size_t vend;
                json_value_end(buf + p, end - p, &vend, msg, sizeof msg);
                input_event ev = { buf + p, vend, NULL, ++index };
                if ((stop = fn(ud, path, &ev))) break;
                p += vend;
            }
        } else {
            input_event ev = { buf, len, NULL, ++index };
            stop = fn(ud, path, &ev);
        }
    } else if (!first_line_is_value(buf, len)) {  /* one broken value: report it whole */
        input_event ev = { buf, len, msg, ++index };
        stop = fn(ud, path, &ev);
    } else {                                      /* NDJSON: one event a line */
        for (size_t p = 0; p < len && !stop;) {
            char *nl = memchr(buf + p, '\n', len - p);
            size_t e = nl ? (size_t)(nl - buf) : len;
            if (!is_blank(buf + p, e - p)) {
                char lmsg[400];
                size_t vend = 0;
                int bad = json_value_end(buf + p, e - p, &vend, lmsg, sizeof lmsg) != 0;
                if (!bad && !is_blank(buf + p + vend, e - p - vend)) {
                    bad = 1;
                    snprintf(lmsg, sizeof lmsg, "byte %zu: unexpected data after the JSON value", vend);
                }
                if (bad) shift_offset(lmsg, sizeof lmsg, p);
                input_event ev = { buf + p, e - p, bad ? lmsg : NULL, ++index };
                stop = fn(ud, path, &ev);
            }
            p = e + 1;
        }
    }
    free(buf);
    return 0;
}
