/*
 * signature.h: Loop's webhook signature, X-Loop-Signature = base64(HMAC-SHA256(secret, raw body)).
 */
#ifndef RF_SIGNATURE_H
#define RF_SIGNATURE_H

#include <stddef.h>

#define SIGNATURE_B64_LEN 44          /* base64 of 32 bytes, with padding */

/* Writes the NUL-terminated base64 signature of body into out (45 bytes). */
void signature_sign(const char *secret, size_t secret_len, const char *body, size_t len,
                    char out[SIGNATURE_B64_LEN + 1]);

/* 1 if header is the signature of body, compared in constant time; 0 otherwise
 * (also for a header of the wrong length, which leaks only that length). */
int signature_verify(const char *secret, size_t secret_len, const char *body, size_t len,
                     const char *header, size_t header_len);

#endif
