/*
 * fsync_ceiling.c: what the disk under a folder allows a durable log, with no
 * database and no HTTP in the way: the ceiling `returnflow serve`'s acked
 * webhooks/s is printed against by bench/serve.sh.
 *
 *     build/fsync_ceiling DIR RECORD_BYTES GROUP SECONDS
 *
 * Writes records of RECORD_BYTES into a file in DIR and makes them durable
 * with fdatasync, GROUP records per fdatasync (1: one commit per record; 64:
 * a group commit of 64), for about SECONDS of wall time, and prints one line:
 *
 *     GROUP=G RECORD=B: C fdatasyncs in S s = X commits/s, Y records/s
 *
 * The file is written once and synced before the clock starts, then the loop
 * overwrites it front to back, wrapping around: a log that reuses its space,
 * as SQLite's WAL does after a checkpoint, so no fdatasync also has to persist
 * a larger file size. That is the cheaper case, so these are ceilings. The
 * file is removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES (64L * 1024 * 1024)

static double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long parse_count(const char *s, const char *what) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1) {
        fprintf(stderr, "fsync_ceiling: %s must be a positive count, got '%s'\n", what, s);
        exit(2);
    }
    return v;
}

static int write_all(int fd, const char *buf, size_t len, off_t at) {
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
        at += n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s DIR RECORD_BYTES GROUP SECONDS\n", argv[0]);
        return 2;
    }
    long record = parse_count(argv[2], "RECORD_BYTES");
    long group = parse_count(argv[3], "GROUP");
    double seconds = (double)parse_count(argv[4], "SECONDS");
    if (record * group > FILE_BYTES) {
        fprintf(stderr, "fsync_ceiling: a group of %ld records of %ld B does not fit in %ld B\n", group, record,
                FILE_BYTES);
        return 2;
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/fsync_ceiling.%ld", argv[1], (long)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        fprintf(stderr, "fsync_ceiling: cannot create %s: %s\n", path, strerror(errno));
        return 2;
    }
    char *buf = malloc((size_t)FILE_BYTES);
    if (!buf) { perror("fsync_ceiling: malloc"); unlink(path); return 2; }
    for (long i = 0; i < FILE_BYTES; i++) buf[i] = (char)('a' + i % 26);
    if (write_all(fd, buf, (size_t)FILE_BYTES, 0) != 0 || fsync(fd) != 0) {
        fprintf(stderr, "fsync_ceiling: cannot write %s: %s\n", path, strerror(errno));
        unlink(path);
        return 2;
    }

    long syncs = 0;
    off_t at = 0;
    double t0 = wall_seconds(), elapsed = 0;
    while (elapsed < seconds) {
        for (long r = 0; r < group; r++) {
            if (at + record > FILE_BYTES) at = 0;
            if (write_all(fd, buf + at, (size_t)record, at) != 0) {
                fprintf(stderr, "fsync_ceiling: write: %s\n", strerror(errno));
                unlink(path);
                return 1;
            }
            at += record;
        }
        if (fdatasync(fd) != 0) {
            fprintf(stderr, "fsync_ceiling: fdatasync: %s\n", strerror(errno));
            unlink(path);
            return 1;
        }
        syncs++;
        elapsed = wall_seconds() - t0;
    }
    close(fd);
    unlink(path);
    free(buf);
    printf("GROUP=%ld RECORD=%ld: %ld fdatasyncs in %.2f s = %.0f commits/s, %.0f records/s\n", group, record, syncs,
           elapsed, (double)syncs / elapsed, (double)(syncs * group) / elapsed);
    return 0;
}
