/*
 * clock.h: the two clocks. Wall-clock time in milliseconds since the epoch is the one unit of time
 * in the store (received_at, next_at, due_at...), and ISO 8601 times are read into it; it can be
 * stepped (NTP, an operator), so nothing that measures an interval inside one process uses it: rate
 * windows, cool-downs, retry timers and periodic chores use the monotonic clock, which never steps.
 *
 * The fault suite steps the wall clock of one process without touching the machine's: with
 * RETURNFLOW_CLOCK_OFFSET=FILE in the environment, clock_now_ms adds the seconds FILE holds (a signed
 * number, read at each reading; no FILE or no number: 0). Never set it in production.
 */
#ifndef RF_CLOCK_H
#define RF_CLOCK_H

/* Now, in ms since the epoch (CLOCK_REALTIME, plus the test offset: rows keep it across restarts). */
long long clock_now_ms(void);

/* Now on the monotonic clock, in ms: only differences mean anything, within this machine's uptime. */
long long clock_mono_ms(void);

/* An ISO 8601 date or time ("2026-10-01", "2026-10-01T12:00:00.5+02:00") in ms since the epoch;
 * -1 if it is not one. A time without an offset is UTC. */
long long clock_iso_ms(const char *iso);

#endif
