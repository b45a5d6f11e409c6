/*
 * log.c: one JSON object a line, written whole with one write so lines from
 * several threads never interleave.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "strbuf.h"

void log_line(const char *level, const char *msg, const char *fields) {
    char ts[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
    strbuf line = {0};
    strbuf_adds(&line, "{\"ts\":\"");
    strbuf_adds(&line, ts);
    strbuf_adds(&line, "\",\"level\":\"");
    strbuf_adds(&line, level);
    strbuf_adds(&line, "\",\"msg\":");
    json_append_string(&line, msg, strlen(msg));
    if (fields && *fields) {
        strbuf_addc(&line, ',');
        strbuf_adds(&line, fields);
    }
    strbuf_adds(&line, "}\n");
    ssize_t w = write(2, line.data, line.len);
    (void)w;
    strbuf_free(&line);
}
