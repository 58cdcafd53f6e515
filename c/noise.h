/* noise.h - the Noise Protocol Framework state machine (revision 34) for
 * Noise_NN_25519_ChaChaPoly_SHA256 and Noise_NNpsk0_25519_ChaChaPoly_SHA256.
 *
 * Sans-io: these functions turn handshake and transport messages into bytes
 * and back; they never touch a socket. Primitives come from libsodium:
 * X25519 (crypto_scalarmult_curve25519), ChaCha20-Poly1305 IETF
 * (crypto_aead_chacha20poly1305_ietf_*), SHA-256 (crypto_hash_sha256) and
 * HMAC-SHA256 (crypto_auth_hmacsha256_*) for Noise's HKDF.
 *
 * All functions return 0 on success and -1 on failure (bad length,
 * authentication failure, wrong state); on failure they leave no secret
 * behind in caller-visible buffers. Structs hold secrets: wipe them with
 * noise_handshake_wipe() / noise_cipher_wipe() when done.
 */
#ifndef SECUREMSG_NOISE_H
#define SECUREMSG_NOISE_H

#include <stddef.h>
#include <stdint.h>

#define NOISE_PROTOCOL_NAME "Noise_NNpsk0_25519_ChaChaPoly_SHA256"
#define NOISE_PROTOCOL_NAME_NN "Noise_NN_25519_ChaChaPoly_SHA256" /* tests only */
#define NOISE_PROLOGUE "securemsg-noise-v1"
#define NOISE_DHLEN 32
#define NOISE_HASHLEN 32
#define NOISE_KEYLEN 32
#define NOISE_PSKLEN 32
#define NOISE_TAGLEN 16
#define NOISE_MAX_MESSAGE 65535u
#define NOISE_MAX_PLAINTEXT (NOISE_MAX_MESSAGE - NOISE_TAGLEN) /* 65519 */
#define NOISE_HANDSHAKE_MESSAGE_LEN (NOISE_DHLEN + NOISE_TAGLEN) /* 48, NNpsk0 */

/* Argon2id parameters for noise_psk_from_passphrase (PROTOCOL.md section 8). */
#define NOISE_PWHASH_SALT "securemsg-noise1" /* 16 bytes */
#define NOISE_PWHASH_OPSLIMIT 2ULL
#define NOISE_PWHASH_MEMLIMIT 67108864UL /* 64 MiB */

typedef struct {
    uint8_t k[NOISE_KEYLEN];
    uint64_t n;
    int has_key;
} noise_cipher;

typedef struct {
    noise_cipher cipher;
    uint8_t ck[NOISE_HASHLEN];
    uint8_t h[NOISE_HASHLEN];
} noise_symmetric;

typedef struct {
    noise_symmetric sym;
    int initiator;
    int has_psk;
    uint8_t psk[NOISE_PSKLEN];
    uint8_t e_priv[NOISE_DHLEN];
    uint8_t e_pub[NOISE_DHLEN];
    uint8_t re[NOISE_DHLEN]; /* the remote ephemeral public key */
    int message_index;       /* 0: -> psk?, e   1: <- e, ee   2: done */
} noise_handshake;

/* Calls sodium_init(); 0 on success. Call once before anything else. */
int noise_global_init(void);

/*
 * Starts a handshake. protocol_name is NOISE_PROTOCOL_NAME or
 * "Noise_NN_25519_ChaChaPoly_SHA256" (psk must then be NULL). prologue may be
 * empty. fixed_ephemeral is a test-only hook for known-answer vectors: NULL in
 * production (a fresh X25519 key pair is generated), else the 32-byte private key.
 */
int noise_handshake_init(noise_handshake *hs, int initiator,
                         const char *protocol_name,
                         const uint8_t *prologue, size_t prologue_len,
                         const uint8_t *psk /* NOISE_PSKLEN or NULL */,
                         const uint8_t *fixed_ephemeral /* NOISE_DHLEN or NULL */);

/*
 * Writes the next handshake message (payload may be empty) into out; out_cap
 * must be at least 32 + payload_len + 16 (NNpsk0: NOISE_HANDSHAKE_MESSAGE_LEN
 * for an empty payload). A bad argument or a too small out_cap returns -1 and
 * leaves hs usable; any other failure (the responder's DH(e, re) is all zero:
 * the initiator sent a low-order point) fails the handshake for good.
 */
int noise_handshake_write(noise_handshake *hs, uint8_t *out, size_t *out_len,
                          size_t out_cap, const uint8_t *payload,
                          size_t payload_len);

/*
 * Reads the next handshake message; its payload goes to payload_out
 * (payload_out may be NULL with payload_cap 0 when the payload is empty).
 * A message shorter than 32 bytes + tag (NNpsk0: 48) or larger than 65535
 * returns -1 and leaves hs usable; an authentication failure (wrong PSK,
 * tampering, a peer speaking the other protocol) or an all-zero DH fails the
 * handshake for good: every later call on hs returns -1.
 */
int noise_handshake_read(noise_handshake *hs, uint8_t *payload_out,
                         size_t *payload_len, size_t payload_cap,
                         const uint8_t *message, size_t message_len);

/* 1 once both handshake messages have been processed. */
int noise_handshake_complete(const noise_handshake *hs);

/*
 * Split(): the transport ciphers for this side (send = what we encrypt with,
 * recv = what we decrypt with) and the handshake hash. Wipes the handshake.
 */
int noise_handshake_split(noise_handshake *hs, noise_cipher *send,
                          noise_cipher *recv,
                          uint8_t handshake_hash[NOISE_HASHLEN]);

/* EncryptWithAd: out receives plaintext_len + NOISE_TAGLEN bytes.
 * plaintext_len must be <= NOISE_MAX_PLAINTEXT; a cipher without a key (no
 * Split() yet) or with an exhausted nonce returns -1. */
int noise_cipher_encrypt(noise_cipher *c, uint8_t *out, const uint8_t *ad,
                         size_t ad_len, const uint8_t *plaintext,
                         size_t plaintext_len);

/* DecryptWithAd: out receives ciphertext_len - NOISE_TAGLEN bytes (out may be
 * NULL for a bare tag). ciphertext_len must be 16..65535. The nonce advances
 * only on success: after a failure (tampering, replay, reordering, a dropped
 * frame) the connection must be closed, as PROTOCOL.md section 8 says. */
int noise_cipher_decrypt(noise_cipher *c, uint8_t *out, const uint8_t *ad,
                         size_t ad_len, const uint8_t *ciphertext,
                         size_t ciphertext_len);

void noise_handshake_wipe(noise_handshake *hs);
void noise_cipher_wipe(noise_cipher *c);

/* Argon2id (crypto_pwhash) with the NOISE_PWHASH_* parameters. */
int noise_psk_from_passphrase(uint8_t psk[NOISE_PSKLEN],
                              const uint8_t *passphrase, size_t passphrase_len);

#endif
