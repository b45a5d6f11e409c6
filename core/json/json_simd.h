/*
 * json_simd.h: the tail of a string, read 16 bytes at a time like the rest of it.
 *
 * Why: strings are most of the bytes the decoder (json.c) and the encoder (json_encode.c) walk,
 * and most are short, so their last (fewer than 16) bytes, walked one by one, cost as much as
 * all the 16-byte steps before them. A 16-byte load that starts and ends inside one 4 KiB page
 * cannot fault wherever the string ends in it (a page is the unit of memory protection), and
 * every byte past the end is masked off before the result is read: the technique of glibc's
 * strlen. Only the position of the first byte of interest comes out of it, never a byte beyond.
 *
 * Under AddressSanitizer, which rightly reports a read past an object, callers keep the byte loop.
 */
#ifndef RF_JSON_SIMD_H
#define RF_JSON_SIMD_H

#include <stdint.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define JSON_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JSON_SANITIZED 1
#endif
#endif

#if defined(__SSE2__) && !defined(JSON_SANITIZED)
#define JSON_TAIL_LOADS 1

/* May the 16 bytes at p be loaded, p being inside a readable object (its page is mapped)? */
static inline int json_tail_fits(const unsigned char *p) {
    return ((uintptr_t)p & 4095u) <= 4096u - 16u;
}

/* The bits of a 16-byte mask that lie past the end (end - p is 1..15): set, so the first set bit
 * of (mask | json_past_end(...)) is the first byte of interest, or the end. */
static inline unsigned json_past_end(const unsigned char *p, const unsigned char *end) {
    return 0xffffu << (unsigned)(end - p);
}
#else
#define JSON_TAIL_LOADS 0
#endif

#endif
