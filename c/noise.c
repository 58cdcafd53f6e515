/* noise.c - Noise Protocol Framework, revision 34, for NN and NNpsk0 with
 * 25519 / ChaChaPoly / SHA256. Section numbers (§) refer to the Noise spec.
 *
 * Layers, bottom up, as in the spec: CipherState (cipher_*), SymmetricState
 * (symmetric_*), HandshakeState (noise_handshake_*). Only the two patterns
 * this project speaks are implemented, so the token sequence is written out
 * instead of interpreted from a pattern table:
 *
 *   NN:      -> e            NNpsk0:  -> psk, e
 *            <- e, ee                 <- e, ee
 */
#include "noise.h"

#include <string.h>

#include <sodium.h>

#define NOISE_PROTOCOL_NAME_NN_LEN (sizeof(NOISE_PROTOCOL_NAME_NN) - 1)
#define NOISE_PROTOCOL_NAME_LEN (sizeof(NOISE_PROTOCOL_NAME) - 1)
#define NOISE_NONCE_MAX UINT64_MAX /* §5.1: 2^64-1 is reserved */
#define NOISE_HANDSHAKE_FAILED (-1)

/* ---- CipherState (§5.1) ------------------------------------------------ */

static void cipher_initialize_key(noise_cipher *c, const uint8_t k[NOISE_KEYLEN])
{
    memcpy(c->k, k, NOISE_KEYLEN);
    c->n = 0;
    c->has_key = 1;
}

/* §12.3: 32 bits of zeros, then the counter as 64-bit little-endian. */
static void cipher_nonce(uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES],
                         uint64_t n)
{
    size_t i;

    memset(nonce, 0, 4);
    for (i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

/* ENCRYPT(k, n, ad, plaintext); the caller has checked has_key and n. */
static int cipher_seal(noise_cipher *c, uint8_t *out, const uint8_t *ad,
                       size_t ad_len, const uint8_t *plaintext,
                       size_t plaintext_len)
{
    uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];

    cipher_nonce(nonce, c->n);
    if (crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, plaintext,
                                                  plaintext_len, ad, ad_len,
                                                  NULL, nonce, c->k) != 0)
        return -1;
    c->n++;
    return 0;
}

/* DECRYPT(k, n, ad, ciphertext); n advances only if the tag verifies
 * (libsodium zeroes `out` on failure, so no unauthenticated plaintext leaks). */
static int cipher_open(noise_cipher *c, uint8_t *out, const uint8_t *ad,
                       size_t ad_len, const uint8_t *ciphertext,
                       size_t ciphertext_len)
{
    uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];

    cipher_nonce(nonce, c->n);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, ciphertext,
                                                  ciphertext_len, ad, ad_len,
                                                  nonce, c->k) != 0)
        return -1;
    c->n++;
    return 0;
}

int noise_cipher_encrypt(noise_cipher *c, uint8_t *out, const uint8_t *ad,
                         size_t ad_len, const uint8_t *plaintext,
                         size_t plaintext_len)
{
    /* A transport cipher always has a key: refusing here (instead of the
     * spec's pass-through) makes a forgotten Split() fail loudly. */
    if (c == NULL || out == NULL || !c->has_key || c->n == NOISE_NONCE_MAX ||
        plaintext_len > NOISE_MAX_PLAINTEXT)
        return -1;
    return cipher_seal(c, out, ad, ad_len, plaintext, plaintext_len);
}

int noise_cipher_decrypt(noise_cipher *c, uint8_t *out, const uint8_t *ad,
                         size_t ad_len, const uint8_t *ciphertext,
                         size_t ciphertext_len)
{
    if (c == NULL || ciphertext == NULL || !c->has_key ||
        c->n == NOISE_NONCE_MAX || ciphertext_len < NOISE_TAGLEN ||
        ciphertext_len > NOISE_MAX_MESSAGE)
        return -1;
    if (out == NULL && ciphertext_len > NOISE_TAGLEN)
        return -1;
    return cipher_open(c, out, ad, ad_len, ciphertext, ciphertext_len);
}

void noise_cipher_wipe(noise_cipher *c)
{
    if (c != NULL)
        sodium_memzero(c, sizeof(*c));
}

/* ---- SymmetricState (§5.2) --------------------------------------------- */

/* §4.3 HKDF(chaining_key, input_key_material, num_outputs) with HMAC-SHA256;
 * out2 and out3 may be NULL when fewer outputs are wanted. */
static void hkdf(uint8_t out1[NOISE_HASHLEN], uint8_t out2[NOISE_HASHLEN],
                 uint8_t out3[NOISE_HASHLEN], const uint8_t ck[NOISE_HASHLEN],
                 const uint8_t *ikm, size_t ikm_len)
{
    crypto_auth_hmacsha256_state st;
    uint8_t temp_key[NOISE_HASHLEN];
    const uint8_t one = 0x01, two = 0x02, three = 0x03;

    crypto_auth_hmacsha256_init(&st, ck, NOISE_HASHLEN);
    if (ikm_len > 0) /* Split() passes zero-length input as NULL */
        crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
    crypto_auth_hmacsha256_final(&st, temp_key);

    crypto_auth_hmacsha256_init(&st, temp_key, sizeof(temp_key));
    crypto_auth_hmacsha256_update(&st, &one, 1);
    crypto_auth_hmacsha256_final(&st, out1);

    if (out2 != NULL) {
        crypto_auth_hmacsha256_init(&st, temp_key, sizeof(temp_key));
        crypto_auth_hmacsha256_update(&st, out1, NOISE_HASHLEN);
        crypto_auth_hmacsha256_update(&st, &two, 1);
        crypto_auth_hmacsha256_final(&st, out2);
    }
    if (out2 != NULL && out3 != NULL) {
        crypto_auth_hmacsha256_init(&st, temp_key, sizeof(temp_key));
        crypto_auth_hmacsha256_update(&st, out2, NOISE_HASHLEN);
        crypto_auth_hmacsha256_update(&st, &three, 1);
        crypto_auth_hmacsha256_final(&st, out3);
    }
    sodium_memzero(temp_key, sizeof(temp_key));
    sodium_memzero(&st, sizeof(st));
}

/* InitializeSymmetric(protocol_name): h = name padded or hashed, ck = h. */
static void symmetric_init(noise_symmetric *s, const char *name, size_t name_len)
{
    memset(s, 0, sizeof(*s));
    if (name_len <= NOISE_HASHLEN)
        memcpy(s->h, name, name_len);
    else
        crypto_hash_sha256(s->h, (const uint8_t *)name, name_len);
    memcpy(s->ck, s->h, NOISE_HASHLEN);
}

/* MixHash(data): h = HASH(h || data). */
static void symmetric_mix_hash(noise_symmetric *s, const uint8_t *data,
                               size_t data_len)
{
    crypto_hash_sha256_state st;

    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, s->h, NOISE_HASHLEN);
    if (data_len > 0) /* an empty prologue may come as NULL */
        crypto_hash_sha256_update(&st, data, data_len);
    crypto_hash_sha256_final(&st, s->h);
    sodium_memzero(&st, sizeof(st));
}

/* MixKey(ikm): ck, temp_k = HKDF(ck, ikm, 2); InitializeKey(temp_k). */
static void symmetric_mix_key(noise_symmetric *s, const uint8_t *ikm,
                              size_t ikm_len)
{
    uint8_t ck[NOISE_HASHLEN], temp_k[NOISE_HASHLEN];

    hkdf(ck, temp_k, NULL, s->ck, ikm, ikm_len);
    memcpy(s->ck, ck, NOISE_HASHLEN);
    cipher_initialize_key(&s->cipher, temp_k); /* HASHLEN == KEYLEN: no truncation */
    sodium_memzero(ck, sizeof(ck));
    sodium_memzero(temp_k, sizeof(temp_k));
}

/* MixKeyAndHash(ikm), used for the psk token. */
static void symmetric_mix_key_and_hash(noise_symmetric *s, const uint8_t *ikm,
                                       size_t ikm_len)
{
    uint8_t ck[NOISE_HASHLEN], temp_h[NOISE_HASHLEN], temp_k[NOISE_HASHLEN];

    hkdf(ck, temp_h, temp_k, s->ck, ikm, ikm_len);
    memcpy(s->ck, ck, NOISE_HASHLEN);
    symmetric_mix_hash(s, temp_h, sizeof(temp_h));
    cipher_initialize_key(&s->cipher, temp_k);
    sodium_memzero(ck, sizeof(ck));
    sodium_memzero(temp_h, sizeof(temp_h));
    sodium_memzero(temp_k, sizeof(temp_k));
}

/* EncryptAndHash: without a key the payload goes out in clear (§5.2). out
 * must hold plaintext_len (+ NOISE_TAGLEN if a key is set). */
static int symmetric_encrypt_and_hash(noise_symmetric *s, uint8_t *out,
                                      size_t *out_len, const uint8_t *plaintext,
                                      size_t plaintext_len)
{
    size_t len = plaintext_len;

    if (s->cipher.has_key) {
        if (s->cipher.n == NOISE_NONCE_MAX ||
            cipher_seal(&s->cipher, out, s->h, NOISE_HASHLEN, plaintext,
                        plaintext_len) != 0)
            return -1;
        len += NOISE_TAGLEN;
    } else if (plaintext_len > 0) {
        memcpy(out, plaintext, plaintext_len);
    }
    symmetric_mix_hash(s, out, len);
    *out_len = len;
    return 0;
}

/* DecryptAndHash: h is the AD, then h absorbs the ciphertext. */
static int symmetric_decrypt_and_hash(noise_symmetric *s, uint8_t *out,
                                      const uint8_t *ciphertext,
                                      size_t ciphertext_len)
{
    if (s->cipher.has_key) {
        if (s->cipher.n == NOISE_NONCE_MAX ||
            cipher_open(&s->cipher, out, s->h, NOISE_HASHLEN, ciphertext,
                        ciphertext_len) != 0)
            return -1;
    } else if (ciphertext_len > 0) {
        memcpy(out, ciphertext, ciphertext_len);
    }
    symmetric_mix_hash(s, ciphertext, ciphertext_len);
    return 0;
}

/* ---- HandshakeState (§5.3) --------------------------------------------- */

int noise_global_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

/* The spec deletes a HandshakeState after any error: wipe it and mark it
 * failed so that no later call can use a half-mixed state. */
static void handshake_fail(noise_handshake *hs)
{
    noise_handshake_wipe(hs);
    hs->message_index = NOISE_HANDSHAKE_FAILED;
}

/* Which protocol: 1 = NNpsk0, 0 = NN, -1 = neither. */
static int protocol_has_psk(const char *protocol_name, size_t *name_len)
{
    if (strcmp(protocol_name, NOISE_PROTOCOL_NAME) == 0) {
        *name_len = NOISE_PROTOCOL_NAME_LEN;
        return 1;
    }
    if (strcmp(protocol_name, NOISE_PROTOCOL_NAME_NN) == 0) {
        *name_len = NOISE_PROTOCOL_NAME_NN_LEN;
        return 0;
    }
    return -1;
}

int noise_handshake_init(noise_handshake *hs, int initiator,
                         const char *protocol_name,
                         const uint8_t *prologue, size_t prologue_len,
                         const uint8_t *psk, const uint8_t *fixed_ephemeral)
{
    size_t name_len = 0;
    int has_psk;

    if (hs == NULL)
        return -1;
    if (protocol_name == NULL || (prologue == NULL && prologue_len > 0))
        goto fail;
    has_psk = protocol_has_psk(protocol_name, &name_len);
    if (has_psk < 0 || has_psk != (psk != NULL))
        goto fail; /* NN takes no PSK; NNpsk0 needs one */

    memset(hs, 0, sizeof(*hs));
    symmetric_init(&hs->sym, protocol_name, name_len);
    symmetric_mix_hash(&hs->sym, prologue, prologue_len);
    hs->initiator = initiator ? 1 : 0;
    hs->has_psk = has_psk;
    if (has_psk)
        memcpy(hs->psk, psk, NOISE_PSKLEN);

    /* The ephemeral key pair is made now; only its use waits for the e token. */
    if (fixed_ephemeral != NULL)
        memcpy(hs->e_priv, fixed_ephemeral, NOISE_DHLEN);
    else
        randombytes_buf(hs->e_priv, NOISE_DHLEN);
    if (crypto_scalarmult_curve25519_base(hs->e_pub, hs->e_priv) != 0)
        goto fail;
    hs->message_index = 0;
    return 0;

fail:
    handshake_fail(hs);
    return -1;
}

/* Is it this side's turn to write (want_write=1) or to read (0)? */
static int handshake_my_turn(const noise_handshake *hs, int want_write)
{
    int initiator_writes;

    if (hs->message_index == 0)
        initiator_writes = 1;
    else if (hs->message_index == 1)
        initiator_writes = 0;
    else
        return 0;
    return (hs->initiator == initiator_writes) == (want_write != 0);
}

/* Bytes of tag on this message's payload: whether a key exists by then. */
static size_t handshake_tag_len(const noise_handshake *hs)
{
    if (hs->message_index == 0)
        return hs->has_psk ? NOISE_TAGLEN : 0; /* psk mixes in a key; NN has none */
    return NOISE_TAGLEN;                       /* ee always mixes in a key */
}

/* The e token (§9.2: in a psk handshake, e also calls MixKey(e.public_key)). */
static void handshake_token_e(noise_handshake *hs, const uint8_t pub[NOISE_DHLEN])
{
    symmetric_mix_hash(&hs->sym, pub, NOISE_DHLEN);
    if (hs->has_psk)
        symmetric_mix_key(&hs->sym, pub, NOISE_DHLEN);
}

/* The ee token: MixKey(DH(e, re)); an all-zero result (a low-order point)
 * makes libsodium return -1, and the handshake fails. */
static int handshake_token_ee(noise_handshake *hs)
{
    uint8_t dh[NOISE_DHLEN];
    int rc = 0;

    if (crypto_scalarmult_curve25519(dh, hs->e_priv, hs->re) != 0)
        rc = -1;
    else
        symmetric_mix_key(&hs->sym, dh, sizeof(dh));
    sodium_memzero(dh, sizeof(dh));
    return rc;
}

int noise_handshake_write(noise_handshake *hs, uint8_t *out, size_t *out_len,
                          size_t out_cap, const uint8_t *payload,
                          size_t payload_len)
{
    size_t need, body_len = 0;

    if (hs == NULL || out == NULL || out_len == NULL ||
        (payload == NULL && payload_len > 0) || !handshake_my_turn(hs, 1))
        return -1;
    need = NOISE_DHLEN + handshake_tag_len(hs);
    if (payload_len > NOISE_MAX_MESSAGE - need || out_cap < need + payload_len)
        return -1; /* checked before any state changes: the call can be retried */

    if (hs->message_index == 0 && hs->has_psk)
        symmetric_mix_key_and_hash(&hs->sym, hs->psk, NOISE_PSKLEN);
    memcpy(out, hs->e_pub, NOISE_DHLEN);
    handshake_token_e(hs, hs->e_pub);
    if (hs->message_index == 1 && handshake_token_ee(hs) != 0)
        goto fail;
    if (symmetric_encrypt_and_hash(&hs->sym, out + NOISE_DHLEN, &body_len,
                                   payload, payload_len) != 0)
        goto fail;
    *out_len = NOISE_DHLEN + body_len;
    hs->message_index++;
    return 0;

fail:
    sodium_memzero(out, need + payload_len);
    handshake_fail(hs);
    return -1;
}

int noise_handshake_read(noise_handshake *hs, uint8_t *payload_out,
                         size_t *payload_len, size_t payload_cap,
                         const uint8_t *message, size_t message_len)
{
    size_t need, body_len;

    if (hs == NULL || payload_len == NULL || message == NULL ||
        !handshake_my_turn(hs, 0))
        return -1;
    need = NOISE_DHLEN + handshake_tag_len(hs);
    if (message_len < need || message_len > NOISE_MAX_MESSAGE ||
        payload_cap < message_len - need ||
        (payload_out == NULL && message_len > need))
        return -1; /* a short or oversized message: refused before mixing */
    body_len = message_len - NOISE_DHLEN;

    if (hs->message_index == 0 && hs->has_psk)
        symmetric_mix_key_and_hash(&hs->sym, hs->psk, NOISE_PSKLEN);
    memcpy(hs->re, message, NOISE_DHLEN);
    handshake_token_e(hs, hs->re);
    if (hs->message_index == 1 && handshake_token_ee(hs) != 0)
        goto fail;
    if (symmetric_decrypt_and_hash(&hs->sym, payload_out, message + NOISE_DHLEN,
                                   body_len) != 0)
        goto fail;
    *payload_len = message_len - need;
    hs->message_index++;
    return 0;

fail:
    if (payload_out != NULL)
        sodium_memzero(payload_out, message_len - need);
    handshake_fail(hs);
    return -1;
}

int noise_handshake_complete(const noise_handshake *hs)
{
    return hs != NULL && hs->message_index == 2;
}

int noise_handshake_split(noise_handshake *hs, noise_cipher *send,
                          noise_cipher *recv,
                          uint8_t handshake_hash[NOISE_HASHLEN])
{
    uint8_t k1[NOISE_HASHLEN], k2[NOISE_HASHLEN];

    if (hs == NULL || send == NULL || recv == NULL ||
        !noise_handshake_complete(hs))
        return -1;
    hkdf(k1, k2, NULL, hs->sym.ck, NULL, 0);
    /* c1 carries initiator -> responder, c2 responder -> initiator. */
    cipher_initialize_key(send, hs->initiator ? k1 : k2);
    cipher_initialize_key(recv, hs->initiator ? k2 : k1);
    if (handshake_hash != NULL)
        memcpy(handshake_hash, hs->sym.h, NOISE_HASHLEN);
    sodium_memzero(k1, sizeof(k1));
    sodium_memzero(k2, sizeof(k2));
    noise_handshake_wipe(hs);
    hs->message_index = NOISE_HANDSHAKE_FAILED; /* used up: no second Split */
    return 0;
}

void noise_handshake_wipe(noise_handshake *hs)
{
    if (hs != NULL)
        sodium_memzero(hs, sizeof(*hs));
}

/* ---- PSK from a passphrase (PROTOCOL.md section 8) --------------------- */

int noise_psk_from_passphrase(uint8_t psk[NOISE_PSKLEN],
                              const uint8_t *passphrase, size_t passphrase_len)
{
    static const uint8_t salt[] = NOISE_PWHASH_SALT;

    _Static_assert(sizeof(salt) - 1 == crypto_pwhash_SALTBYTES,
                   "the Argon2id salt must be crypto_pwhash_SALTBYTES long");
    if (psk == NULL || (passphrase == NULL && passphrase_len > 0))
        return -1;
    if (passphrase == NULL)
        passphrase = (const uint8_t *)"";
    if (crypto_pwhash(psk, NOISE_PSKLEN, (const char *)passphrase,
                      passphrase_len, salt, NOISE_PWHASH_OPSLIMIT,
                      NOISE_PWHASH_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        sodium_memzero(psk, NOISE_PSKLEN);
        return -1;
    }
    return 0;
}
