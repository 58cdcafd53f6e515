/* test_noise.c - the Noise layer against known answers and attacks.
 *
 * Known answers: the cacophony vectors for Noise_NN and Noise_NNpsk0 with
 * 25519/ChaChaPoly/SHA256 (every message and the handshake hash) and the
 * Argon2id answers shared with the Python tests (tests/vectors/argon2id.json).
 * Negative cases: flipped bits, wrong PSK, replay, reordering, short and long
 * lengths, NN against NNpsk0, low-order points, nonce exhaustion.
 *
 * Vector files are found from the working directory or the test binary by
 * walking up to the repository root (the directory holding c/noise.h); all of
 * them live in tests/vectors/. A missing file is a failure, never a skip.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* readlink, access */
#endif
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "../noise.h"
#include "check.h"

#define PROLOGUE ((const uint8_t *)NOISE_PROLOGUE)
#define PROLOGUE_LEN (sizeof(NOISE_PROLOGUE) - 1)
#define BUF_CAP 1024

/* ---- finding and reading vector files ---------------------------------- */

static int file_exists(const char *path)
{
    return access(path, R_OK) == 0;
}

/* Walks up from start (at most 5 levels) to the directory holding c/noise.h. */
static int find_root_from(const char *start, char *root, size_t cap)
{
    char probe[PATH_MAX];
    char dir[PATH_MAX];
    char up[PATH_MAX];
    int level;

    if (snprintf(dir, sizeof(dir), "%s", start) >= (int)sizeof(dir))
        return -1;
    for (level = 0; level < 6; level++) {
        if (snprintf(probe, sizeof(probe), "%s/c/noise.h", dir) < (int)sizeof(probe) &&
            file_exists(probe))
            return snprintf(root, cap, "%s", dir) < (int)cap ? 0 : -1;
        if (snprintf(up, sizeof(up), "%s/..", dir) >= (int)sizeof(up))
            return -1;
        memcpy(dir, up, sizeof(dir));
    }
    return -1;
}

/* The repository root, from the working directory or else the binary's. */
static int find_root(char *root, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n;
    char *slash;

    if (find_root_from(".", root, cap) == 0)
        return 0;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    return find_root_from(exe, root, cap);
}

/* Loads a JSON file; on any problem prints why and counts a failure. */
static json_t *load_json(const char *path)
{
    json_error_t err;
    json_t *doc;

    if (path == NULL || !file_exists(path)) {
        fprintf(stderr, "FAIL vector file missing: %s\n", path ? path : "(repository root not found)");
        CHECK(!"vector file present");
        return NULL;
    }
    doc = json_load_file(path, 0, &err);
    if (doc == NULL) {
        fprintf(stderr, "FAIL %s:%d: %s\n", path, err.line, err.text);
        CHECK(!"vector file parses");
    }
    return doc;
}

static json_t *load_repo_vectors(const char *relative)
{
    static char path[PATH_MAX];
    char root[PATH_MAX];
    int n;

    if (find_root(root, sizeof(root)) != 0)
        return load_json(NULL);
    n = snprintf(path, sizeof(path), "%s/%s", root, relative);
    return load_json(n > 0 && n < (int)sizeof(path) ? path : NULL);
}

/* Decodes the hex string field `key` of obj into out; -1 if absent/bad. */
static int hex_field(const json_t *obj, const char *key, uint8_t *out,
                     size_t cap, size_t *len)
{
    const char *hex = json_string_value(json_object_get(obj, key));

    if (hex == NULL)
        return -1;
    return sodium_hex2bin(out, cap, hex, strlen(hex), NULL, len, NULL);
}

static int hex_string(const json_t *str, uint8_t *out, size_t cap, size_t *len)
{
    const char *hex = json_string_value(str);

    if (hex == NULL)
        return -1;
    return sodium_hex2bin(out, cap, hex, strlen(hex), NULL, len, NULL);
}

/* ---- helpers ------------------------------------------------------------ */

static const uint8_t PSK[NOISE_PSKLEN + 1] = "0123456789abcdef0123456789abcdef";

/* Initiator and responder after a complete NNpsk0 handshake, split. */
typedef struct {
    noise_cipher i_send, i_recv, r_send, r_recv;
    uint8_t i_hash[NOISE_HASHLEN], r_hash[NOISE_HASHLEN];
} pair;

static int handshake_pair(pair *p)
{
    noise_handshake i, r;
    uint8_t msg[BUF_CAP];
    size_t len = 0, plen = 0;
    int rc = -1;

    if (noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) ||
        noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL))
        goto done;
    if (noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) ||
        len != NOISE_HANDSHAKE_MESSAGE_LEN ||
        noise_handshake_read(&r, NULL, &plen, 0, msg, len) ||
        noise_handshake_write(&r, msg, &len, sizeof(msg), NULL, 0) ||
        len != NOISE_HANDSHAKE_MESSAGE_LEN ||
        noise_handshake_read(&i, NULL, &plen, 0, msg, len))
        goto done;
    if (noise_handshake_split(&i, &p->i_send, &p->i_recv, p->i_hash) ||
        noise_handshake_split(&r, &p->r_send, &p->r_recv, p->r_hash))
        goto done;
    rc = 0;
done:
    noise_handshake_wipe(&i);
    noise_handshake_wipe(&r);
    return rc;
}

/* ---- known answers ------------------------------------------------------ */

/* One cacophony vector: the handshake, then transport messages alternating
 * initiator -> responder (even index) and back (odd), as cacophony does for
 * two-way patterns. */
static void run_cacophony_vector(const json_t *v)
{
    const char *name = json_string_value(json_object_get(v, "protocol_name"));
    const json_t *messages = json_object_get(v, "messages");
    const json_t *ipsks = json_object_get(v, "init_psks");
    const json_t *rpsks = json_object_get(v, "resp_psks");
    uint8_t iprol[BUF_CAP], rprol[BUF_CAP], ie[32], re[32], ipsk[32], rpsk[32];
    uint8_t payload[BUF_CAP], want[BUF_CAP], got[BUF_CAP], out[BUF_CAP];
    uint8_t hash[NOISE_HASHLEN], ihash[NOISE_HASHLEN], rhash[NOISE_HASHLEN];
    size_t iprol_len = 0, rprol_len = 0, klen = 0, payload_len = 0, want_len = 0;
    size_t got_len = 0, out_len = 0;
    noise_handshake i, r;
    noise_cipher i_send, i_recv, r_send, r_recv;
    int has_psk = json_array_size(ipsks) > 0;
    size_t m;

    memset(&i_send, 0, sizeof(i_send));
    memset(&i_recv, 0, sizeof(i_recv));
    memset(&r_send, 0, sizeof(r_send));
    memset(&r_recv, 0, sizeof(r_recv));
    CHECK(name != NULL && json_array_size(messages) >= 2);
    if (name == NULL || json_array_size(messages) < 2)
        return;
    fprintf(stderr, "  vector %s\n", name);
    CHECK(hex_field(v, "init_prologue", iprol, sizeof(iprol), &iprol_len) == 0);
    CHECK(hex_field(v, "resp_prologue", rprol, sizeof(rprol), &rprol_len) == 0);
    CHECK(hex_field(v, "init_ephemeral", ie, sizeof(ie), &klen) == 0 && klen == 32);
    CHECK(hex_field(v, "resp_ephemeral", re, sizeof(re), &klen) == 0 && klen == 32);
    if (has_psk) {
        CHECK(json_array_size(ipsks) == 1 && json_array_size(rpsks) == 1);
        CHECK(hex_string(json_array_get(ipsks, 0), ipsk, sizeof(ipsk), &klen) == 0 && klen == 32);
        CHECK(hex_string(json_array_get(rpsks, 0), rpsk, sizeof(rpsk), &klen) == 0 && klen == 32);
    }
    CHECK(hex_field(v, "handshake_hash", hash, sizeof(hash), &klen) == 0 && klen == 32);

    CHECK(noise_handshake_init(&i, 1, name, iprol, iprol_len, has_psk ? ipsk : NULL, ie) == 0);
    CHECK(noise_handshake_init(&r, 0, name, rprol, rprol_len, has_psk ? rpsk : NULL, re) == 0);

    for (m = 0; m < json_array_size(messages); m++) {
        const json_t *msg = json_array_get(messages, m);
        int from_initiator = (m % 2 == 0);

        CHECK(hex_field(msg, "payload", payload, sizeof(payload), &payload_len) == 0);
        CHECK(hex_field(msg, "ciphertext", want, sizeof(want), &want_len) == 0);
        if (m < 2) {
            noise_handshake *w = from_initiator ? &i : &r, *rd = from_initiator ? &r : &i;

            CHECK(noise_handshake_write(w, got, &got_len, sizeof(got), payload, payload_len) == 0);
            CHECK_BYTES(got, got_len, want, want_len);
            CHECK(noise_handshake_read(rd, out, &out_len, sizeof(out), want, want_len) == 0);
            CHECK_BYTES(out, out_len, payload, payload_len);
            if (m == 1) {
                CHECK(noise_handshake_complete(&i) && noise_handshake_complete(&r));
                CHECK(noise_handshake_split(&i, &i_send, &i_recv, ihash) == 0);
                CHECK(noise_handshake_split(&r, &r_send, &r_recv, rhash) == 0);
                CHECK_BYTES(ihash, sizeof(ihash), hash, sizeof(hash));
                CHECK_BYTES(rhash, sizeof(rhash), hash, sizeof(hash));
            }
        } else {
            noise_cipher *enc = from_initiator ? &i_send : &r_send;
            noise_cipher *dec = from_initiator ? &r_recv : &i_recv;

            CHECK(noise_cipher_encrypt(enc, got, NULL, 0, payload, payload_len) == 0);
            CHECK_BYTES(got, payload_len + NOISE_TAGLEN, want, want_len);
            CHECK(noise_cipher_decrypt(dec, out, NULL, 0, want, want_len) == 0);
            CHECK_BYTES(out, want_len - NOISE_TAGLEN, payload, payload_len);
        }
    }
    noise_cipher_wipe(&i_send);
    noise_cipher_wipe(&i_recv);
    noise_cipher_wipe(&r_send);
    noise_cipher_wipe(&r_recv);
}

static void test_cacophony_vectors(void)
{
    json_t *doc = load_repo_vectors("tests/vectors/noise-cacophony.json");
    const json_t *vectors = json_object_get(doc, "vectors");
    int saw_nn = 0, saw_nnpsk0 = 0;
    size_t k;

    CHECK(json_array_size(vectors) > 0);
    for (k = 0; k < json_array_size(vectors); k++) {
        const json_t *v = json_array_get(vectors, k);
        const char *name = json_string_value(json_object_get(v, "protocol_name"));

        if (name != NULL && strcmp(name, NOISE_PROTOCOL_NAME_NN) == 0)
            saw_nn = 1;
        if (name != NULL && strcmp(name, NOISE_PROTOCOL_NAME) == 0)
            saw_nnpsk0 = 1;
        run_cacophony_vector(v);
    }
    CHECK(saw_nn && saw_nnpsk0); /* both suites must be covered */
    json_decref(doc);
}

static void test_argon2id_known_answers(void)
{
    json_t *doc = load_repo_vectors("tests/vectors/argon2id.json");
    const json_t *cases = json_object_get(doc, "cases");
    uint8_t salt[32], pass[BUF_CAP], want[64], psk[NOISE_PSKLEN];
    size_t salt_len = 0, pass_len, want_len, k;

    /* The file's parameters must be the ones noise.h compiles in. */
    CHECK(hex_field(doc, "salt", salt, sizeof(salt), &salt_len) == 0);
    CHECK_BYTES(salt, salt_len, NOISE_PWHASH_SALT, sizeof(NOISE_PWHASH_SALT) - 1);
    CHECK(json_integer_value(json_object_get(doc, "opslimit")) == (json_int_t)NOISE_PWHASH_OPSLIMIT);
    CHECK(json_integer_value(json_object_get(doc, "memlimit")) == (json_int_t)NOISE_PWHASH_MEMLIMIT);
    CHECK(json_integer_value(json_object_get(doc, "output_len")) == NOISE_PSKLEN);
    CHECK(json_array_size(cases) > 0);
    for (k = 0; k < json_array_size(cases); k++) {
        const json_t *c = json_array_get(cases, k);

        CHECK(hex_field(c, "passphrase", pass, sizeof(pass), &pass_len) == 0);
        CHECK(hex_field(c, "psk", want, sizeof(want), &want_len) == 0);
        CHECK(noise_psk_from_passphrase(psk, pass, pass_len) == 0);
        CHECK_BYTES(psk, sizeof(psk), want, want_len);
    }
    json_decref(doc);
}

/* PROTOCOL.md section 8.1: the walk-through's bytes, so the text stays true. */
static void test_walkthrough(void)
{
    static const char *passphrase = "correct horse battery staple";
    static const char *want_hex[] = {
        /* psk */ "614c77a0098faaaa823a60f4822af9197484c7308219e3f146b16a1c6f17598d",
        /* frame 1 */ "000000308f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e"
                      "2138285ff3d7801e213e281b23eb54402573d0bc",
        /* frame 2 */ "00000030358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2"
                      "cd16625499f07b16bbe2fa896c773b58ac894219",
        /* handshake hash */ "bb9b895be189c2eee2a5221980c3b383c30dddbe3214d16b14bd5b5dd5e684f8",
        /* "Hi" frame */ "00000013a8ae53ea7b9db530fb70cac7f6bbe6f6be9abc",
        /* ACK frame */ "000000265e69e458ef816b653a803f5f93c59d47f5119d5feac58a9d8411b6b7"
                        "578ef0a821c84e1bc27d",
    };
    static const char ack[] = "ACK: Received 2 bytes";
    uint8_t want[6][80], psk[NOISE_PSKLEN], ie[NOISE_DHLEN], re[NOISE_DHLEN];
    uint8_t frame[80], hash[NOISE_HASHLEN], plain[64];
    size_t want_len[6], len = 0, plen = 0, k;
    noise_handshake i, r;
    noise_cipher is, ir, rs, rr;

    for (k = 0; k < 6; k++)
        CHECK(sodium_hex2bin(want[k], sizeof(want[k]), want_hex[k], strlen(want_hex[k]),
                             NULL, &want_len[k], NULL) == 0);
    for (k = 0; k < NOISE_DHLEN; k++) {
        ie[k] = (uint8_t)k;
        re[k] = (uint8_t)(0x20 + k);
    }
    CHECK(noise_psk_from_passphrase(psk, (const uint8_t *)passphrase, strlen(passphrase)) == 0);
    CHECK_BYTES(psk, sizeof(psk), want[0], want_len[0]);
    CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, psk, ie) == 0);
    CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, psk, re) == 0);

    memcpy(frame, "\0\0\0\x30", 4); /* both handshake frames are 48 bytes */
    CHECK(noise_handshake_write(&i, frame + 4, &len, sizeof(frame) - 4, NULL, 0) == 0);
    CHECK_BYTES(frame, len + 4, want[1], want_len[1]);
    CHECK(noise_handshake_read(&r, NULL, &plen, 0, frame + 4, len) == 0);
    CHECK(noise_handshake_write(&r, frame + 4, &len, sizeof(frame) - 4, NULL, 0) == 0);
    CHECK_BYTES(frame, len + 4, want[2], want_len[2]);
    CHECK(noise_handshake_read(&i, NULL, &plen, 0, frame + 4, len) == 0);
    CHECK(noise_handshake_split(&i, &is, &ir, hash) == 0);
    CHECK_BYTES(hash, sizeof(hash), want[3], want_len[3]);
    CHECK(noise_handshake_split(&r, &rs, &rr, hash) == 0);
    CHECK_BYTES(hash, sizeof(hash), want[3], want_len[3]);

    memcpy(frame, "\0\0\0\x13", 4);
    CHECK(noise_cipher_encrypt(&is, frame + 4, NULL, 0, (const uint8_t *)"\x01Hi", 3) == 0);
    CHECK_BYTES(frame, 4 + 3 + NOISE_TAGLEN, want[4], want_len[4]);
    CHECK(noise_cipher_decrypt(&rr, plain, NULL, 0, frame + 4, 3 + NOISE_TAGLEN) == 0);
    CHECK_BYTES(plain, 3, "\x01Hi", 3);

    plain[0] = 0x01; /* marker: last chunk */
    memcpy(plain + 1, ack, sizeof(ack) - 1);
    memcpy(frame, "\0\0\0\x26", 4);
    CHECK(noise_cipher_encrypt(&rs, frame + 4, NULL, 0, plain, sizeof(ack)) == 0);
    CHECK_BYTES(frame, 4 + sizeof(ack) + NOISE_TAGLEN, want[5], want_len[5]);
    noise_cipher_wipe(&is);
    noise_cipher_wipe(&ir);
    noise_cipher_wipe(&rs);
    noise_cipher_wipe(&rr);
}

/* ---- the production handshake ------------------------------------------- */

static void test_nnpsk0_roundtrip(void)
{
    pair p;
    uint8_t ct[64], pt[64];
    const uint8_t chunk[] = {0x01, 'H', 'i'};

    CHECK(handshake_pair(&p) == 0);
    CHECK_BYTES(p.i_hash, NOISE_HASHLEN, p.r_hash, NOISE_HASHLEN);
    /* Orientation: initiator's send is responder's recv, and back. */
    CHECK(noise_cipher_encrypt(&p.i_send, ct, NULL, 0, chunk, sizeof(chunk)) == 0);
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, ct, sizeof(chunk) + NOISE_TAGLEN) == 0);
    CHECK_BYTES(pt, sizeof(chunk), chunk, sizeof(chunk));
    CHECK(noise_cipher_encrypt(&p.r_send, ct, NULL, 0, chunk, sizeof(chunk)) == 0);
    CHECK(noise_cipher_decrypt(&p.i_recv, pt, NULL, 0, ct, sizeof(chunk) + NOISE_TAGLEN) == 0);
    CHECK_BYTES(pt, sizeof(chunk), chunk, sizeof(chunk));
    /* An empty plaintext is a bare 16-byte tag. */
    CHECK(noise_cipher_encrypt(&p.i_send, ct, NULL, 0, NULL, 0) == 0);
    CHECK(noise_cipher_decrypt(&p.r_recv, NULL, NULL, 0, ct, NOISE_TAGLEN) == 0);
}

static void test_fresh_ephemerals(void)
{
    noise_handshake a, b;
    uint8_t m1[64], m2[64];
    size_t l1 = 0, l2 = 0;

    CHECK(noise_handshake_init(&a, 1, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_init(&b, 1, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_write(&a, m1, &l1, sizeof(m1), NULL, 0) == 0);
    CHECK(noise_handshake_write(&b, m2, &l2, sizeof(m2), NULL, 0) == 0);
    CHECK(l1 == 48 && l2 == 48 && memcmp(m1, m2, 32) != 0);
    noise_handshake_wipe(&a);
    noise_handshake_wipe(&b);
}

static void test_split_wipes_handshake(void)
{
    noise_handshake i, r;
    noise_cipher s, rv;
    uint8_t msg[64], zero[sizeof(noise_handshake)];
    size_t len = 0, plen = 0;

    CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_split(&i, &s, &rv, NULL) == -1); /* not complete */
    CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) == 0);
    CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, len) == 0);
    CHECK(noise_handshake_write(&r, msg, &len, sizeof(msg), NULL, 0) == 0);
    CHECK(noise_handshake_read(&i, NULL, &plen, 0, msg, len) == 0);
    CHECK(noise_handshake_split(&i, &s, &rv, NULL) == 0);
    memset(zero, 0, sizeof(zero));
    CHECK(memcmp(i.psk, zero, NOISE_PSKLEN) == 0 && memcmp(i.e_priv, zero, NOISE_DHLEN) == 0);
    CHECK(memcmp(i.sym.ck, zero, NOISE_HASHLEN) == 0);
    CHECK(noise_handshake_split(&i, &s, &rv, NULL) == -1); /* only once */
    noise_cipher_wipe(&s);
    CHECK(s.has_key == 0 && memcmp(s.k, zero, NOISE_KEYLEN) == 0);
    noise_cipher_wipe(&rv);
    noise_handshake_wipe(&r);
}

/* ---- negative cases ------------------------------------------------------ */

static void test_bad_init_arguments(void)
{
    noise_handshake hs;
    uint8_t buf[64] = {0};
    size_t len = 0;

    CHECK(noise_handshake_init(&hs, 1, NOISE_PROTOCOL_NAME_NN, NULL, 0, PSK, NULL) == -1);
    CHECK(noise_handshake_init(&hs, 1, NOISE_PROTOCOL_NAME, NULL, 0, NULL, NULL) == -1);
    CHECK(noise_handshake_init(&hs, 1, "Noise_XX_25519_ChaChaPoly_SHA256", NULL, 0, NULL, NULL) == -1);
    CHECK(noise_handshake_init(&hs, 1, NOISE_PROTOCOL_NAME, NULL, 5, PSK, NULL) == -1);
    CHECK(noise_handshake_write(&hs, buf, &len, sizeof(buf), NULL, 0) == -1); /* failed init */
    CHECK(noise_handshake_read(&hs, NULL, &len, 0, buf, 48) == -1);
    CHECK(noise_handshake_init(&hs, 1, NOISE_PROTOCOL_NAME_NN, NULL, 0, NULL, NULL) == 0);
    noise_handshake_wipe(&hs);
}

static void test_turn_order(void)
{
    noise_handshake i, r;
    uint8_t msg[64];
    size_t len = 0, plen = 0;

    CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_write(&r, msg, &len, sizeof(msg), NULL, 0) == -1);
    memset(msg, 0x55, sizeof(msg));
    CHECK(noise_handshake_read(&i, NULL, &plen, 0, msg, 48) == -1);
    CHECK(noise_handshake_write(&i, msg, &len, 47, NULL, 0) == -1); /* too small: retryable */
    CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) == 0);
    CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) == -1);
    CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, len) == 0);
    CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, len) == -1);
    CHECK(!noise_handshake_complete(&i) && !noise_handshake_complete(&r));
    noise_handshake_wipe(&i);
    noise_handshake_wipe(&r);
}

/* Flips one bit of message 1 at each position of interest: the responder
 * must refuse it, and the failed handshake must stay dead. */
static void test_flipped_message1(void)
{
    static const size_t positions[] = {0, 17, 31, 32, 40, 47};
    size_t k;

    for (k = 0; k < sizeof(positions) / sizeof(positions[0]); k++) {
        noise_handshake i, r;
        uint8_t msg[64];
        size_t len = 0, plen = 0;

        CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
        CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
        CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) == 0);
        msg[positions[k]] ^= (uint8_t)(1u << (k % 8));
        CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, len) == -1);
        msg[positions[k]] ^= (uint8_t)(1u << (k % 8));
        CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, len) == -1); /* dead */
        CHECK(noise_handshake_write(&r, msg, &len, sizeof(msg), NULL, 0) == -1);
        noise_handshake_wipe(&i);
        noise_handshake_wipe(&r);
    }
}

static void test_flipped_message2(void)
{
    static const size_t positions[] = {0, 31, 32, 47};
    size_t k;

    for (k = 0; k < sizeof(positions) / sizeof(positions[0]); k++) {
        noise_handshake i, r;
        uint8_t msg[64];
        size_t len = 0, plen = 0;

        CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
        CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
        CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) == 0);
        CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, len) == 0);
        CHECK(noise_handshake_write(&r, msg, &len, sizeof(msg), NULL, 0) == 0);
        msg[positions[k]] ^= 0x80; /* even the ignored top bit of a u-coordinate */
        CHECK(noise_handshake_read(&i, NULL, &plen, 0, msg, len) == -1);
        CHECK(!noise_handshake_complete(&i));
        noise_handshake_wipe(&i);
        noise_handshake_wipe(&r);
    }
}

static void test_wrong_psk(void)
{
    noise_handshake i, r;
    uint8_t msg[64], other[NOISE_PSKLEN];
    size_t len = 0, plen = 0;

    memcpy(other, PSK, sizeof(other));
    other[31] ^= 1;
    CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, other, NULL) == 0);
    CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) == 0);
    CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, len) == -1);
    noise_handshake_wipe(&i);
    noise_handshake_wipe(&r);

    /* A different prologue is as fatal as a different key. */
    CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME, (const uint8_t *)"x", 1, PSK, NULL) == 0);
    CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) == 0);
    CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, len) == -1);
    noise_handshake_wipe(&i);
    noise_handshake_wipe(&r);
}

static void test_nn_against_nnpsk0(void)
{
    noise_handshake i, r;
    uint8_t msg[64], pl[16];
    size_t len = 0, plen = 0;

    /* NN initiator, NNpsk0 responder: 32 bytes is too short for NNpsk0. */
    CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME_NN, PROLOGUE, PROLOGUE_LEN, NULL, NULL) == 0);
    CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) == 0 && len == 32);
    CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, len) == -1);
    noise_handshake_wipe(&i);
    noise_handshake_wipe(&r);

    /* ... and a 48-byte NN message (16 bytes of clear payload) fails the tag. */
    memset(pl, 0, sizeof(pl));
    CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME_NN, PROLOGUE, PROLOGUE_LEN, NULL, NULL) == 0);
    CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), pl, sizeof(pl)) == 0 && len == 48);
    CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, len) == -1);
    noise_handshake_wipe(&i);
    noise_handshake_wipe(&r);

    /* NNpsk0 initiator, NN responder: the NN side reads message 1 as a clear
     * payload, but its message 2 cannot authenticate at the initiator. */
    CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME_NN, PROLOGUE, PROLOGUE_LEN, NULL, NULL) == 0);
    CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) == 0);
    CHECK(noise_handshake_read(&r, pl, &plen, sizeof(pl), msg, len) == 0 && plen == 16);
    CHECK(noise_handshake_write(&r, msg, &len, sizeof(msg), NULL, 0) == 0 && len == 48);
    CHECK(noise_handshake_read(&i, NULL, &plen, 0, msg, len) == -1);
    noise_handshake_wipe(&i);
    noise_handshake_wipe(&r);
}

static void test_handshake_lengths(void)
{
    noise_handshake i, r;
    static uint8_t big[NOISE_MAX_MESSAGE + 1];
    uint8_t msg[64], pl[8];
    size_t len = 0, plen = 0, short_len;

    CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME, PROLOGUE, PROLOGUE_LEN, PSK, NULL) == 0);
    CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) == 0);
    /* Too short (everything below 48) and too long: refused, hs still usable. */
    for (short_len = 0; short_len < NOISE_HANDSHAKE_MESSAGE_LEN; short_len++)
        CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, short_len) == -1);
    memset(big, 0, sizeof(big));
    CHECK(noise_handshake_read(&r, big, &plen, sizeof(big), big, sizeof(big)) == -1);
    /* A payload the caller has no room for: refused before mixing. */
    memcpy(big, msg, len);
    CHECK(noise_handshake_read(&r, pl, &plen, 0, big, len + 1) == -1);
    CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, len) == 0 && plen == 0);
    noise_handshake_wipe(&i);
    noise_handshake_wipe(&r);
}

/* An all-zero ephemeral (a low-order point) makes DH all zero: refused. */
static void test_low_order_point(void)
{
    noise_handshake i, r;
    uint8_t msg[64];
    size_t len = 0, plen = 0;

    /* Responder side: NN's message 1 is unauthenticated, so the zero point
     * gets through the read; the DH in message 2 must fail. */
    CHECK(noise_handshake_init(&r, 0, NOISE_PROTOCOL_NAME_NN, NULL, 0, NULL, NULL) == 0);
    memset(msg, 0, sizeof(msg));
    CHECK(noise_handshake_read(&r, NULL, &plen, 0, msg, 32) == 0);
    CHECK(noise_handshake_write(&r, msg, &len, sizeof(msg), NULL, 0) == -1);
    CHECK(noise_handshake_write(&r, msg, &len, sizeof(msg), NULL, 0) == -1);
    noise_handshake_wipe(&r);

    /* Initiator side: a zero point in message 2. */
    CHECK(noise_handshake_init(&i, 1, NOISE_PROTOCOL_NAME_NN, NULL, 0, NULL, NULL) == 0);
    CHECK(noise_handshake_write(&i, msg, &len, sizeof(msg), NULL, 0) == 0);
    memset(msg, 0, sizeof(msg));
    CHECK(noise_handshake_read(&i, NULL, &plen, 0, msg, 48) == -1);
    noise_handshake_wipe(&i);
}

static void test_flipped_transport(void)
{
    pair p;
    uint8_t ct[64], pt[64];
    const uint8_t chunk[] = {0x01, 'H', 'e', 'l', 'l', 'o'};
    const size_t ct_len = sizeof(chunk) + NOISE_TAGLEN;
    size_t pos;

    CHECK(handshake_pair(&p) == 0);
    CHECK(noise_cipher_encrypt(&p.i_send, ct, NULL, 0, chunk, sizeof(chunk)) == 0);
    for (pos = 0; pos < ct_len; pos++) { /* body bytes, then tag bytes */
        ct[pos] ^= 0x01;
        CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, ct, ct_len) == -1);
        ct[pos] ^= 0x01;
    }
    CHECK(p.r_recv.n == 0); /* failures leave the nonce alone */
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, ct, ct_len - 1) == -1); /* truncated */
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, ct, ct_len) == 0);
    CHECK_BYTES(pt, sizeof(chunk), chunk, sizeof(chunk));
}

static void test_replay_and_reorder(void)
{
    pair p;
    uint8_t a[32], b[32], pt[32];
    const uint8_t one[] = {0x01, 'A'}, two[] = {0x01, 'B'};
    const size_t n = sizeof(one) + NOISE_TAGLEN;

    CHECK(handshake_pair(&p) == 0);
    CHECK(noise_cipher_encrypt(&p.i_send, a, NULL, 0, one, sizeof(one)) == 0);
    CHECK(noise_cipher_encrypt(&p.i_send, b, NULL, 0, two, sizeof(two)) == 0);
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, b, n) == -1); /* reordered */
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, a, n) == 0);
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, a, n) == -1); /* replayed */
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, b, n) == 0);
    CHECK_BYTES(pt, sizeof(two), two, sizeof(two));
    /* A frame from the other direction never decrypts here. */
    CHECK(noise_cipher_encrypt(&p.r_send, a, NULL, 0, one, sizeof(one)) == 0);
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, a, n) == -1);
}

static void test_transport_lengths(void)
{
    static uint8_t pt[NOISE_MAX_MESSAGE + 1], ct[NOISE_MAX_MESSAGE + 1];
    pair p;
    size_t len;

    CHECK(handshake_pair(&p) == 0);
    for (len = 0; len < NOISE_TAGLEN; len++)
        CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, ct, len) == -1);
    /* The chunk boundary: 65519 bytes of plaintext fit, 65520 do not. */
    memset(pt, 0xab, sizeof(pt));
    CHECK(noise_cipher_encrypt(&p.i_send, ct, NULL, 0, pt, NOISE_MAX_PLAINTEXT) == 0);
    CHECK(noise_cipher_encrypt(&p.i_send, ct, NULL, 0, pt, NOISE_MAX_PLAINTEXT + 1) == -1);
    CHECK(p.i_send.n == 1);
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, ct, NOISE_MAX_MESSAGE + 1) == -1);
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, ct, NOISE_MAX_MESSAGE) == 0);
}

static void test_nonce_exhaustion(void)
{
    pair p;
    uint8_t ct[32], pt[32];
    const uint8_t one[] = {0x01};

    CHECK(handshake_pair(&p) == 0);
    p.i_send.n = UINT64_MAX - 1;
    p.r_recv.n = UINT64_MAX - 1;
    CHECK(noise_cipher_encrypt(&p.i_send, ct, NULL, 0, one, 1) == 0); /* last nonce */
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, ct, 1 + NOISE_TAGLEN) == 0);
    CHECK(noise_cipher_encrypt(&p.i_send, ct, NULL, 0, one, 1) == -1); /* 2^64-1 reserved */
    CHECK(noise_cipher_decrypt(&p.r_recv, pt, NULL, 0, ct, 1 + NOISE_TAGLEN) == -1);
    /* No key (no Split yet) is refused too. */
    noise_cipher_wipe(&p.i_send);
    CHECK(noise_cipher_encrypt(&p.i_send, ct, NULL, 0, one, 1) == -1);
}

int main(void)
{
    if (noise_global_init() != 0) {
        fprintf(stderr, "FAIL sodium_init\n");
        return 1;
    }
    RUN_TEST(test_cacophony_vectors);
    RUN_TEST(test_argon2id_known_answers);
    RUN_TEST(test_walkthrough);
    RUN_TEST(test_nnpsk0_roundtrip);
    RUN_TEST(test_fresh_ephemerals);
    RUN_TEST(test_split_wipes_handshake);
    RUN_TEST(test_bad_init_arguments);
    RUN_TEST(test_turn_order);
    RUN_TEST(test_flipped_message1);
    RUN_TEST(test_flipped_message2);
    RUN_TEST(test_wrong_psk);
    RUN_TEST(test_nn_against_nnpsk0);
    RUN_TEST(test_handshake_lengths);
    RUN_TEST(test_low_order_point);
    RUN_TEST(test_flipped_transport);
    RUN_TEST(test_replay_and_reorder);
    RUN_TEST(test_transport_lengths);
    RUN_TEST(test_nonce_exhaustion);
    return check_report("test_noise");
}
