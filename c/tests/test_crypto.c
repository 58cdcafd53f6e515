/* test_crypto.c - the xor cipher: the reference crypto_xor() and the fast
 * path behind crypto_xor_apply() against the shared vectors, and the fast
 * path against the reference (lengths, key lengths and alignments the fast
 * path treats differently). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crypto.h"
#include "vectors.h"

static void test_vectors(void)
{
    json_t *root, *cases = vectors_load("xor.json", &root), *c;
    size_t i, key_len, pt_len, ct_len;

    json_array_foreach(cases, i, c) {
        uint8_t *key = vectors_hex(c, "key", &key_len);
        uint8_t *pt = vectors_hex(c, "plaintext", &pt_len);
        uint8_t *ct = vectors_hex(c, "ciphertext", &ct_len);
        uint8_t *out = malloc(pt_len + 1);

        crypto_xor(out, pt, pt_len, key, key_len);
        CHECK_BYTES(out, pt_len, ct, ct_len);
        crypto_xor(out, out, pt_len, key, key_len); /* in place, back */
        CHECK_BYTES(out, pt_len, pt, pt_len);
        crypto_xor_apply(out, pt, pt_len, key, key_len);
        CHECK_BYTES(out, pt_len, ct, ct_len);
        crypto_xor_apply(out, out, pt_len, key, key_len);
        CHECK_BYTES(out, pt_len, pt, pt_len);
        free(out);
        free(key);
        free(pt);
        free(ct);
    }
    json_decref(root);
}

/* Pad boundaries, word tails, keys longer than the pad, unaligned buffers. */
static void test_against_reference(void)
{
    static const size_t lens[] = {0, 1, 7, 8, 9, 63, 64, 65, 4095, 4096, 4097,
                                  12289, 100000};
    static const size_t key_lens[] = {1, 2, 3, 7, 8, 13, 64, 1000, 2047, 2048,
                                      2049, 4096, 5000};
    size_t li, ki, i, offset, mismatches = 0;
    uint8_t *in = malloc(100000 + 3), *out = malloc(100000 + 3),
            *want = malloc(100000 + 3), key[5000];

    srand(7);
    for (i = 0; i < 100003; i++)
        in[i] = (uint8_t)rand();
    for (i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)rand();
    for (li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (ki = 0; ki < sizeof key_lens / sizeof key_lens[0]; ki++)
            for (offset = 0; offset < 3; offset++) {
                crypto_xor(want, in + offset, lens[li], key, key_lens[ki]);
                crypto_xor_apply(out + (2 - offset), in + offset, lens[li], key,
                                 key_lens[ki]);
                if (lens[li] > 0 && memcmp(out + (2 - offset), want, lens[li]) != 0) {
                    fprintf(stderr, "  mismatch len %zu key %zu offset %zu\n",
                            lens[li], key_lens[ki], offset);
                    mismatches++;
                }
            }
    CHECK(mismatches == 0);
    free(in);
    free(out);
    free(want);
}

/* The key position restarts with every call (every frame). */
static void test_key_restarts_per_call(void)
{
    const uint8_t key[] = "MY_SECRET_KEY";
    uint8_t a[5] = "Hello", b[5], c[5];

    crypto_xor_apply(b, a, 5, key, 13);
    crypto_xor_apply(c, a, 5, key, 13);
    CHECK_BYTES(b, 5, c, 5);
    CHECK(b[0] == ('H' ^ 'M'));
}

int main(void)
{
    RUN_TEST(test_vectors);
    RUN_TEST(test_against_reference);
    RUN_TEST(test_key_restarts_per_call);
    return check_report("test_crypto");
}
