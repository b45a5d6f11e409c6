/*
 * test_signature.c: what core/base/signature.c promises ingest and `returnflow post`.
 *
 * Why these tests: the signature is the only thing between the Internet and a tenant's journal. It
 * must be exactly Loop's (base64 of HMAC-SHA256 over the raw body, checked against a published
 * vector, RFC 4231 test case 2), and verification must refuse anything but that exact string: a
 * body changed by one byte, a signature changed by one character, cut short, empty or padded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "signature.h"

/* RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?",
 * HMAC-SHA-256 = 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843. */
static const char key[] = "Jefe";
static const char data[] = "what do ya want for nothing?";
static const char expected[] = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=";

static int verify(const char *body, size_t len, const char *header, size_t header_len) {
    return signature_verify(key, strlen(key), body, len, header, header_len);
}

static void signs_rfc_4231_case_2_as_base64(void **state) {
    (void)state;
    char out[SIGNATURE_B64_LEN + 1];
    memset(out, 'x', sizeof out);
    signature_sign(key, strlen(key), data, strlen(data), out);
    assert_string_equal(out, expected);
    assert_int_equal(strlen(out), SIGNATURE_B64_LEN);
}

static void signs_an_empty_body_with_an_empty_secret(void **state) {
    (void)state;
    char out[SIGNATURE_B64_LEN + 1];
    signature_sign("", 0, "", 0, out);           /* HMAC-SHA256("", "") */
    assert_string_equal(out, "thNnmggU2ex3L5XXeMNfxf8Wl8STcVZTxscSFEKSxa0=");
}

static void signs_the_bytes_given_not_up_to_a_nul(void **state) {
    (void)state;
    const char body[] = "{\"a\":1}\0{\"b\":2}";
    char whole[SIGNATURE_B64_LEN + 1], head[SIGNATURE_B64_LEN + 1];
    signature_sign(key, strlen(key), body, sizeof body - 1, whole);
    signature_sign(key, strlen(key), body, 7, head);
    assert_string_not_equal(whole, head);
    assert_true(verify(body, sizeof body - 1, whole, SIGNATURE_B64_LEN));
    assert_false(verify(body, 7, whole, SIGNATURE_B64_LEN));
}

static void verify_accepts_the_right_signature(void **state) {
    (void)state;
    assert_true(verify(data, strlen(data), expected, strlen(expected)));
}

static void verify_refuses_a_changed_body(void **state) {
    (void)state;
    char body[sizeof data];
    memcpy(body, data, sizeof data);
    body[5] ^= 0x20;                             /* "what Do ya ..." */
    assert_false(verify(body, strlen(body), expected, strlen(expected)));
    assert_false(verify(data, strlen(data) - 1, expected, strlen(expected)));   /* one byte short */
}

static void verify_refuses_a_changed_signature(void **state) {
    (void)state;
    char sig[sizeof expected];
    for (size_t i = 0; i < SIGNATURE_B64_LEN; i++) {   /* every position, one character changed */
        memcpy(sig, expected, sizeof expected);
        sig[i] = sig[i] == 'A' ? 'B' : 'A';
        assert_false(verify(data, strlen(data), sig, strlen(sig)));
    }
}

static void verify_refuses_another_secret(void **state) {
    (void)state;
    assert_false(signature_verify("Jeff", 4, data, strlen(data), expected, strlen(expected)));
}

static void verify_refuses_a_truncated_signature(void **state) {
    (void)state;
    assert_false(verify(data, strlen(data), expected, SIGNATURE_B64_LEN - 1));
    assert_false(verify(data, strlen(data), expected, SIGNATURE_B64_LEN - 2));   /* without the '=' either */
    assert_false(verify(data, strlen(data), expected, 1));
}

static void verify_refuses_an_empty_or_padded_signature(void **state) {
    (void)state;
    assert_false(verify(data, strlen(data), "", 0));
    assert_false(verify(data, strlen(data), NULL, 0));
    char padded[SIGNATURE_B64_LEN + 2];
    memcpy(padded, expected, SIGNATURE_B64_LEN);
    padded[SIGNATURE_B64_LEN] = ' ';
    padded[SIGNATURE_B64_LEN + 1] = 0;
    assert_false(verify(data, strlen(data), padded, strlen(padded)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signs_rfc_4231_case_2_as_base64),
        cmocka_unit_test(signs_an_empty_body_with_an_empty_secret),
        cmocka_unit_test(signs_the_bytes_given_not_up_to_a_nul),
        cmocka_unit_test(verify_accepts_the_right_signature),
        cmocka_unit_test(verify_refuses_a_changed_body),
        cmocka_unit_test(verify_refuses_a_changed_signature),
        cmocka_unit_test(verify_refuses_another_secret),
        cmocka_unit_test(verify_refuses_a_truncated_signature),
        cmocka_unit_test(verify_refuses_an_empty_or_padded_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
