/*
 * clock.h: wall-clock time in milliseconds since the epoch, the one unit of time in the store
 * (received_at, next_at, due_at...), and ISO 8601 times read into it.
 */
#ifndef RF_CLOCK_H
#define RF_CLOCK_H

/* Now, in ms since the epoch (CLOCK_REALTIME: rows keep it across restarts). */
long long clock_now_ms(void);

/* An ISO 8601 date or time ("2026-10-01", "2026-10-01T12:00:00.5+02:00") in ms since the epoch;
 * -1 if it is not one. A time without an offset is UTC. */
long long clock_iso_ms(const char *iso);

#endif
