/*
 * signature.c: Loop's webhook signature, X-Loop-Signature = base64(HMAC-SHA256(secret, raw body)).
 *
 * Why a file of its own: ingest checks it on every webhook and `returnflow post` makes it, and both
 * must agree byte for byte with Loop. The signature is over the raw bytes as received, never a
 * re-encoding (Loop signs compact JSON with escaped slashes).
 *
 * The invariant: verification compares in constant time (CRYPTO_memcmp), so an attacker cannot learn
 * a valid signature one byte at a time from response times. The only thing a wrong header leaks early
 * is that its length is not 44. Nothing here prints or keeps the secret; the MAC is wiped from the
 * stack after use.
 */
#include "signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

void signature_sign(const char *secret, size_t secret_len, const char *body, size_t len,
                    char out[SIGNATURE_B64_LEN + 1]) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    /* HMAC() takes an int key length; a key longer than that is not a Loop secret. */
    if (secret_len > 0x7fffffff) secret_len = 0x7fffffff;
    if (!HMAC(EVP_sha256(), secret ? secret : "", (int)secret_len,
              (const unsigned char *)(body ? body : ""), len, mac, &mac_len) || mac_len != 32) {
        /* Only on an OpenSSL failure: an output that can never verify (not valid base64). */
        for (int i = 0; i < SIGNATURE_B64_LEN; i++) out[i] = '!';
        out[SIGNATURE_B64_LEN] = 0;
        return;
    }
    EVP_EncodeBlock((unsigned char *)out, mac, 32);      /* 44 characters and a NUL */
    OPENSSL_cleanse(mac, sizeof mac);
}

int signature_verify(const char *secret, size_t secret_len, const char *body, size_t len,
                     const char *header, size_t header_len) {
    if (!header || header_len != SIGNATURE_B64_LEN) return 0;
    char want[SIGNATURE_B64_LEN + 1];
    signature_sign(secret, secret_len, body, len, want);
    int ok = want[0] != '!' && CRYPTO_memcmp(want, header, SIGNATURE_B64_LEN) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}
