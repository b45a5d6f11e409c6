/*
 * process_metrics.c: process_* read from /proc/self (process_metrics.h), with the names, units and
 * types of the Prometheus client libraries' process collector (client_golang's, client_python's):
 * process_cpu_seconds_total counts user plus system time; process_start_time_seconds is since the
 * epoch, from the boot time in /proc/stat plus the start tick in /proc/self/stat.
 *
 * The mapping workers are processes of their own (mapworker.c): their CPU and memory are not in these
 * figures; returnflow_worker_restarts_total says when one was replaced.
 */
#include "process_metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "version.h"

static void add_sample(strbuf *out, const char *name, const char *type, const char *help, double value) {
    char line[320];
    snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name, value);
    strbuf_adds(out, line);
}

/* Boot time, seconds since the epoch (/proc/stat's btime), or -1. */
static long long boot_time(void) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    char line[256];
    long long btime = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lld", &btime) == 1) break;
    fclose(f);
    return btime;
}

/* The fields of /proc/self/stat this needs (proc(5): utime 14, stime 15, starttime 22, vsize 23,
 * rss 24). The command name (field 2) may hold spaces and parentheses: read after its last ')'. */
static int read_stat(unsigned long long *utime, unsigned long long *stime, unsigned long long *start,
                     unsigned long long *vsize, long long *rss) {
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    if (!p) return -1;
    /* After ')': field 3 (state) on. */
    int got = sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
                     utime, stime, start, vsize, rss);
    return got == 5 ? 0 : -1;
}

static long count_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;                                 /* the one opendir holds */
}

void process_metrics(strbuf *out) {
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double page = (double)sysconf(_SC_PAGESIZE);
    unsigned long long utime, stime, start, vsize;
    long long rss;
    if (ticks > 0 && read_stat(&utime, &stime, &start, &vsize, &rss) == 0) {
        add_sample(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                   (double)(utime + stime) / ticks);
        add_sample(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", (double)rss * page);
        add_sample(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", (double)vsize);
        long long btime = boot_time();
        if (btime >= 0)
            add_sample(out, "process_start_time_seconds", "gauge",
                       "Start time of the process since unix epoch in seconds.", (double)btime + (double)start / ticks);
    }
    long fds = count_open_fds();
    if (fds >= 0) add_sample(out, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        add_sample(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.", (double)rl.rlim_cur);
    strbuf_adds(out, "# HELP returnflow_build_info The running build: its version and the Klaviyo API revision it "
                     "sends by default (always 1).\n# TYPE returnflow_build_info gauge\n"
                     "returnflow_build_info{version=\"" RETURNFLOW_VERSION "\",klaviyo_revision=\"" KLAVIYO_REVISION "\"} 1\n");
}
