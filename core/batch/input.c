/*
 * input.c: how events arrive at the command line.
 *
 * A file is one JSON object (one event), one JSON array (a list of events, as
 * Loop's API and exports give them) or NDJSON (one event a line). The whole
 * file is tried as one JSON value first; if it is not one, it is read line by
 * line, so one bad line is reported with its offset and the other lines still
 * map. Nothing is silently skipped: every slice reaches the callback, bad ones
 * with their error.
 *
 * NDJSON is streamed a line at a time (a backfill export may be gigabytes):
 * a file whose first line is a whole JSON object is taken for NDJSON.
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

/* Whether one NDJSON line (at offset in the file) is a JSON value, whitespace around it allowed: 0, or
 * -1 with msg saying why, its byte counted from the file's start. A good line is validated by a
 * scan whose tape mapping it next reuses (json_tape_keep); a bad one is read again for the message. */
static int check_line(const char *text, size_t len, size_t offset, char *msg, size_t size) {
    if (json_tape_keep(text, len) == 0) return 0;
    size_t vend = 0;
    int bad = json_value_end(text, len, &vend, msg, size) != 0;
    if (!bad && !is_blank(text + vend, len - vend)) {
        bad = 1;
        snprintf(msg, size, "byte %zu: unexpected data after the JSON value", vend);
    }
    if (bad) shift_offset(msg, size, offset);
    return bad ? -1 : 0;
}

/* One NDJSON line to the callback (offset: where it starts in the file). */
static int line_event(const char *path, char *text, size_t len, size_t offset, int index, input_fn fn, void *ud) {
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    if (is_blank(text, len)) return 0;
    char lmsg[400];
    int bad = check_line(text, len, offset, lmsg, sizeof lmsg) != 0;
    char saved = text[len];
    text[len] = 0;                                /* text[len] readable, as for the whole-file case */
    input_event ev = { text, len, bad ? lmsg : NULL, index };
    int stop = fn(ud, path, &ev);
    text[len] = saved;
    return stop;
}

/* NDJSON from the current position on, a line at a time; the first line is given. */
static void stream_lines(FILE *f, const char *path, char *line, size_t cap, ssize_t n, size_t offset, input_fn fn,
                         void *ud) {
    int index = 0, stop = 0;
    while (n >= 0 && !stop) {
        if (!is_blank(line, (size_t)n)) stop = line_event(path, line, (size_t)n, offset, ++index, fn, ud);
        offset += (size_t)n;
        n = getline(&line, &cap, f);
    }
    free(line);
}

int input_each(const char *path, input_fn fn, void *ud, char *err, size_t errlen) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    /* The first non-blank line decides: a whole JSON object alone on it means NDJSON, streamed. */
    char *line = NULL;
    size_t cap = 0, offset = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0 && is_blank(line, (size_t)n)) offset += (size_t)n;
    if (n > 0) {
        size_t vend, start = 0;
        char msg[64];
        while (start < (size_t)n && strchr(" \t", line[start])) start++;
        size_t end = (size_t)n;
        while (end > start && (line[end - 1] == '\n' || line[end - 1] == '\r')) end--;
        if (line[start] == '{' && json_value_end(line + start, end - start, &vend, msg, sizeof msg) == 0 &&
            is_blank(line + start + vend, end - start - vend) && line[n - 1] == '\n') {
            stream_lines(f, path, line, cap, n, offset, fn, ud);
            if (f != stdin) fclose(f);
            return 0;
        }
    }
    /* Anything else is read whole: what was read so far, then the rest. */
    size_t head_len = n > 0 ? (size_t)n : 0, rest_len;
    char *rest = read_all(f, &rest_len);
    if (f != stdin) fclose(f);
    size_t len = offset + head_len + (rest ? rest_len : 0);
    char *buf = rest ? malloc(len + 1) : NULL;
    if (buf) {
        memset(buf, '\n', offset);                /* the blank lines skipped, as blanks: offsets stay true */
        memcpy(buf + offset, line ? line : "", head_len);
        memcpy(buf + offset + head_len, rest, rest_len);
        buf[len] = 0;
    }
    free(rest);
    free(line);
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
                int bad = check_line(buf + p, e - p, p, lmsg, sizeof lmsg) != 0;
                input_event ev = { buf + p, e - p, bad ? lmsg : NULL, ++index };
                stop = fn(ud, path, &ev);
            }
            p = e + 1;
        }
    }
    free(buf);
    return 0;
}
