/*
 * utf8.h: the one UTF-8 check, shared by the JSON decoder (input must be valid)
 * and the encoder (output must be valid: Klaviyo refuses anything else).
 */
#ifndef RF_UTF8_H
#define RF_UTF8_H

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if it is not one:
 * overlong forms, surrogates and code points past U+10FFFF are invalid. */
static inline int utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    if (c < 0xc2 || c > 0xf4) return 0;
    int n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (end - p < n) return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3) {
        if (c == 0xe0 && p[1] < 0xa0) return 0;           /* overlong */
        if (c == 0xed && p[1] >= 0xa0) return 0;          /* surrogate */
    } else if (n == 4) {
        if (c == 0xf0 && p[1] < 0x90) return 0;           /* overlong */
        if (c == 0xf4 && p[1] >= 0x90) return 0;          /* > U+10FFFF */
    }
    return n;
}

#endif
