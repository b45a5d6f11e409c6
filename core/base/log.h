/*
 * log.h: the service's structured log, one JSON object a line on standard error.
 */
#ifndef RF_LOG_H
#define RF_LOG_H

/* Writes {"ts":..., "level":..., "msg":..., FIELDS} where fields is NULL or
 * already-encoded JSON members ("\"tenant\":\"demo\""). Never give it a
 * secret: nothing here redacts. */
void log_line(const char *level, const char *msg, const char *fields);

#endif
