/*
 * input.h: splitting input files into events (a JSON object, a JSON array of
 * events, or NDJSON; "-" is standard input).
 */
#ifndef RF_INPUT_H
#define RF_INPUT_H

#include <stddef.h>

typedef struct input_event {
    const char *text;          /* points into the file's buffer; text[len] is readable */
    size_t len;
    const char *error;         /* non-NULL: this slice could not be read as JSON */
    int index;                 /* 1-based position in the file */
} input_event;

/* Called once per event. Returns non-zero to stop. */
typedef int (*input_fn)(void *ud, const char *path, const input_event *ev);

/* Reads path and calls fn for every event. A JSON value that fails to parse
 * is passed with its error (byte offsets are from the file's start), and
 * reading goes on with the next NDJSON line where there is one. Returns 0,
 * or -1 with err filled when the file cannot be read at all. */
int input_each(const char *path, input_fn fn, void *ud, char *err, size_t errlen);

#endif
