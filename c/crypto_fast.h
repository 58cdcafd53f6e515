/* crypto_fast.h - the fast path of crypto_xor() (crypto.h). */
#ifndef SECUREMSG_CRYPTO_FAST_H
#define SECUREMSG_CRYPTO_FAST_H

#include <stddef.h>
#include <stdint.h>

/* crypto_xor(out, in, len, key, key_len), a machine word at a time. */
void crypto_fast_xor(uint8_t *out, const uint8_t *in, size_t len,
                     const uint8_t *key, size_t key_len);

#endif
