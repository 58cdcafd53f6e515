/* crypto.h - the seed's xor "cipher" (PROTOCOL.md section 2).
 *
 * out[i] = in[i] XOR key[i mod key_len]; the key position restarts at key[0]
 * on every call, i.e. at the start of every frame. The same call encrypts and
 * decrypts. This is not encryption: see section 8 for the real thing.
 *
 * In both functions out may equal in (in place); otherwise they must not
 * overlap. key_len > 0.
 */
#ifndef SECUREMSG_CRYPTO_H
#define SECUREMSG_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* The reference: the rule above, byte by byte. */
void crypto_xor(uint8_t *out, const uint8_t *in, size_t len, const uint8_t *key,
                size_t key_len);

/* What the programs call for every frame: the same result, computed by the
 * fast path (crypto_fast.c). */
void crypto_xor_apply(uint8_t *out, const uint8_t *in, size_t len,
                      const uint8_t *key, size_t key_len);

#endif
