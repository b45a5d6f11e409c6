/*
 * clock.c: see clock.h. One definition, so every row's times compare.
 */
#include "clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long ms_of(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long clock_mono_ms(void) { return ms_of(CLOCK_MONOTONIC); }

static pthread_once_t offset_once = PTHREAD_ONCE_INIT;
static const char *offset_file;                /* RETURNFLOW_CLOCK_OFFSET, or NULL: no offset */

static void offset_look(void) { offset_file = getenv("RETURNFLOW_CLOCK_OFFSET"); }

/* The seconds offset_file holds, in ms, read at each call: a spec that steps the clock knows every
 * reading after its write sees the step (a test's cost only: without the variable, nothing is read). */
static long long test_offset_ms(void) {
    pthread_once(&offset_once, offset_look);
    if (!offset_file) return 0;
    FILE *f = fopen(offset_file, "r");
    double seconds = 0;
    if (!f || fscanf(f, "%lf", &seconds) != 1) seconds = 0;
    if (f) fclose(f);
    return (long long)(seconds * 1000);
}

long long clock_now_ms(void) { return ms_of(CLOCK_REALTIME) + test_offset_ms(); }

long long clock_iso_ms(const char *s) {
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3) return -1;
    const char *p = s + n;
    if (*p == 'T' || *p == ' ') {
        if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3) return -1;
        p += 1 + n;
        if (*p == '.') while (*++p >= '0' && *p <= '9') {}
    }
    long offset = 0;
    if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 && sscanf(p + 1, "%2d%2d", &oh, &om) != 2) return -1;
        offset = (oh * 60L + om) * 60L * (*p == '-' ? -1 : 1);
    }
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec };
    return ((long long)timegm(&tm) - offset) * 1000;
}
