/* crypto_fast.c - the fast path of crypto_xor() (crypto.c): the same result.
 *
 * crypto_xor() divides once per byte (i % key_len). Instead the key is
 * repeated into a pad whose length is a multiple of key_len, so the pad lines
 * up with the key at every pad boundary, and the data is xored with the pad
 * eight bytes at a time (the compiler turns the loop into vector code).
 */
#include "crypto_fast.h"

#include <sodium.h>
#include <string.h>

#define CRYPTO_PAD_MAX 4096

/* out = in ^ pad over n bytes, a machine word at a time. */
static void xor_block(uint8_t *out, const uint8_t *in, const uint8_t *pad,
                      size_t n)
{
    size_t i = 0;
    uint64_t a, b;

    for (; i + 8 <= n; i += 8) {
        memcpy(&a, in + i, 8); /* memcpy: unaligned-safe, compiles to a load */
        memcpy(&b, pad + i, 8);
        a ^= b;
        memcpy(out + i, &a, 8);
    }
    for (; i < n; i++)
        out[i] = in[i] ^ pad[i];
}

void crypto_fast_xor(uint8_t *out, const uint8_t *in, size_t len,
                     const uint8_t *key, size_t key_len)
{
    uint8_t pad_buf[CRYPTO_PAD_MAX];
    const uint8_t *pad = key;
    size_t pad_len = key_len, filled, step, done;

    if (len == 0 || key_len == 0)
        return;
    if (key_len < CRYPTO_PAD_MAX / 2) {
        /* The largest multiple of key_len that fits, but no more than the
         * data needs (short messages should not pay for a 4 KiB pad). */
        pad_len = (CRYPTO_PAD_MAX / key_len) * key_len;
        if (len < pad_len)
            pad_len = ((len + key_len - 1) / key_len) * key_len;
        memcpy(pad_buf, key, key_len);
        for (filled = key_len; filled < pad_len; filled += step) {
            step = filled <= pad_len - filled ? filled : pad_len - filled;
            memcpy(pad_buf + filled, pad_buf, step);
        }
        pad = pad_buf;
    }
    for (done = 0; done < len; done += step) {
        step = len - done < pad_len ? len - done : pad_len;
        xor_block(out + done, in + done, pad, step);
    }
    if (pad == pad_buf) /* copies of the key must not outlive the call */
        sodium_memzero(pad_buf, pad_len);
}
