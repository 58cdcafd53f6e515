/* crypto.c - xor with a repeating key (PROTOCOL.md section 2). */
#include "crypto.h"
#include "crypto_fast.h"

void crypto_xor(uint8_t *out, const uint8_t *in, size_t len, const uint8_t *key,
                size_t key_len)
{
    size_t i;

    for (i = 0; i < len; i++)
        out[i] = in[i] ^ key[i % key_len];
}

/* A division per byte limits crypto_xor() to a few hundred MB/s: the frames
 * of the programs take the fast path, chosen here and nowhere else
 * (tests/test_crypto.c checks it against crypto_xor()). */
void crypto_xor_apply(uint8_t *out, const uint8_t *in, size_t len,
                      const uint8_t *key, size_t key_len)
{
    crypto_fast_xor(out, in, len, key, key_len);
}
