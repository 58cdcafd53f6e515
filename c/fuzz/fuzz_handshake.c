/* fuzz_handshake.c - libFuzzer target: the Noise handshake message parser.
 *
 * Input: [role] message...
 *   role even: a responder reads message as handshake message 1, then (if it
 *              authenticated) writes message 2 and splits; the same bytes,
 *              framed, also go through a server session in handshake state.
 *   role odd:  an initiator writes message 1 and reads message as message 2.
 * Keys and ephemerals are fixed (fuzz_keys.h), so a seed holding a real
 * message gets past the tag check and the fuzzer explores both sides of it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"
#include "fuzz_keys.h"
#include "session.h"

static uint8_t payload[NOISE_MAX_MESSAGE];

static void finish(noise_handshake *hs)
{
    noise_cipher tx, rx;
    uint8_t hash[NOISE_HASHLEN];

    FUZZ_ASSERT(noise_handshake_complete(hs));
    FUZZ_ASSERT(noise_handshake_split(hs, &tx, &rx, hash) == 0);
    noise_cipher_wipe(&tx);
    noise_cipher_wipe(&rx);
}

static void as_responder(const uint8_t *msg, size_t len)
{
    noise_handshake hs;
    uint8_t out[NOISE_HANDSHAKE_MESSAGE_LEN];
    size_t payload_len = 0, out_len = 0;

    FUZZ_ASSERT(fuzz_handshake_init(&hs, 0, fuzz_e_resp) == 0);
    if (noise_handshake_read(&hs, payload, &payload_len, sizeof payload, msg, len) == 0) {
        FUZZ_ASSERT(payload_len + NOISE_HANDSHAKE_MESSAGE_LEN == len);
        if (noise_handshake_write(&hs, out, &out_len, sizeof out, NULL, 0) == 0)
            finish(&hs);
    }
    noise_handshake_wipe(&hs);
}

static void as_initiator(const uint8_t *msg, size_t len)
{
    noise_handshake hs;
    uint8_t out[NOISE_HANDSHAKE_MESSAGE_LEN];
    size_t payload_len = 0, out_len = 0;

    FUZZ_ASSERT(fuzz_handshake_init(&hs, 1, fuzz_e_init) == 0);
    FUZZ_ASSERT(noise_handshake_write(&hs, out, &out_len, sizeof out, NULL, 0) == 0);
    if (noise_handshake_read(&hs, payload, &payload_len, sizeof payload, msg, len) == 0)
        finish(&hs);
    noise_handshake_wipe(&hs);
}

/* The server's path: a length prefix, then the message, through session_feed. */
static void through_session(const uint8_t *msg, size_t len)
{
    session s;
    uint8_t *wire = malloc(len + FRAMING_HEADER_LEN);
    size_t wire_len, off = 0, used;
    session_event ev;

    if (wire == NULL)
        return;
    FUZZ_ASSERT(framing_encode(wire, len + FRAMING_HEADER_LEN, &wire_len, msg, len) == 0);
    if (session_init(&s, SESSION_NOISE, 0, fuzz_psk, sizeof fuzz_psk, 1024) == 0) {
        do {
            ev = session_feed(&s, wire + off, wire_len - off, &used);
            off += used;
        } while (ev == SESSION_NEED_MORE && off < wire_len);
        FUZZ_ASSERT(ev != SESSION_SEND || session_ready(&s));
        session_free(&s);
    }
    free(wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;

    if (!ready) {
        FUZZ_ASSERT(noise_global_init() == 0);
        ready = 1;
    }
    if (size < 1 || size - 1 > NOISE_MAX_MESSAGE)
        return 0;
    if (data[0] % 2 == 0) {
        as_responder(data + 1, size - 1);
        through_session(data + 1, size - 1);
    } else {
        as_initiator(data + 1, size - 1);
    }
    return 0;
}
