/* fuzz_session.c - libFuzzer target: the session layer's receive paths.
 *
 * Input: [mode] [chunk size] [limit selector] rest...
 *   mode 0: xor server; rest is the wire stream.
 *   mode 1: noise server after a real handshake; rest is the raw wire stream
 *           (framing, lengths and tag checks on hostile bytes).
 *   mode 2: noise server after a real handshake; rest is a list of chunks
 *           [marker] [len: 2 bytes] [data], each encrypted by the client's
 *           transport cipher, so that the fuzzer reaches reassembly, markers
 *           and the message limit behind the tag check.
 * Every message must fit the limit, and every ACK must seal.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"
#include "fuzz_keys.h"
#include "session.h"

#define XOR_KEY "MY_SECRET_KEY"

static void answer(session *s)
{
    const uint8_t *msg, *out;
    size_t len, out_len;

    session_message(s, &msg, &len);
    FUZZ_ASSERT(len <= s->max_message);
    FUZZ_ASSERT(session_seal(s, (const uint8_t *)"ACK", 3, &out, &out_len) == 0);
}

/* Feeds the stream in chunks of step, as the server loop does. */
static void feed(session *s, const uint8_t *data, size_t size, size_t step)
{
    size_t off = 0, n, used;
    session_event ev;

    while (off < size) {
        n = size - off < step ? size - off : step;
        ev = session_feed(s, data + off, n, &used);
        FUZZ_ASSERT(used <= n);
        off += used;
        if (ev == SESSION_ERROR) {
            FUZZ_ASSERT(session_error_info(s)->kind != SESSION_ERR_NONE);
            return;
        }
        FUZZ_ASSERT(ev != SESSION_SEND && ev != SESSION_READY);
        if (ev == SESSION_MESSAGE) {
            answer(s);
            session_trim(s, 64);
        }
    }
}

/* A client and a server session with the handshake done. */
static int connect_pair(session *client, session *server, uint32_t limit)
{
    const uint8_t *out;
    size_t out_len, used;

    if (session_init(client, SESSION_NOISE, 1, fuzz_psk, sizeof fuzz_psk, limit) < 0)
        return -1;
    if (session_init(server, SESSION_NOISE, 0, fuzz_psk, sizeof fuzz_psk, limit) < 0) {
        session_free(client);
        return -1;
    }
    FUZZ_ASSERT(session_start(client, &out, &out_len) == 0);
    FUZZ_ASSERT(session_feed(server, out, out_len, &used) == SESSION_SEND);
    session_output(server, &out, &out_len);
    FUZZ_ASSERT(session_feed(client, out, out_len, &used) == SESSION_READY);
    return 0;
}

/* mode 2: the chunks, encrypted as the client would, then fed. */
static void feed_sealed(session *client, session *server, const uint8_t *data,
                        size_t size, size_t step)
{
    uint8_t *wire = malloc(size / 3 * (FRAMING_HEADER_LEN + NOISE_TAGLEN) + size + 64);
    uint8_t *plain = malloc(NOISE_MAX_PLAINTEXT);
    size_t off = 0, wire_len = 0, len;

    if (wire == NULL || plain == NULL)
        goto done;
    while (size - off >= 3) {
        len = (size_t)data[off + 1] << 8 | data[off + 2];
        if (len > size - off - 3)
            len = size - off - 3;
        if (len + 1 > NOISE_MAX_PLAINTEXT)
            len = NOISE_MAX_PLAINTEXT - 1;
        plain[0] = data[off];
        memcpy(plain + 1, data + off + 3, len);
        framing_put_header(wire + wire_len, (uint32_t)(len + 1 + NOISE_TAGLEN));
        FUZZ_ASSERT(noise_cipher_encrypt(&client->tx, wire + wire_len + FRAMING_HEADER_LEN,
                                         NULL, 0, plain, len + 1) == 0);
        wire_len += FRAMING_HEADER_LEN + len + 1 + NOISE_TAGLEN;
        off += 3 + len;
    }
    feed(server, wire, wire_len, step);
done:
    free(wire);
    free(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    session client, server;
    size_t step;
    uint32_t limit;

    if (!ready) {
        FUZZ_ASSERT(session_global_init() == 0);
        ready = 1;
    }
    if (size < 3)
        return 0;
    step = data[1] == 0 ? size : data[1];
    limit = 64u + (uint32_t)data[2] * 512u; /* 64 .. ~128 KiB */
    if (data[0] % 3 == 0) {
        if (session_init(&server, SESSION_XOR, 0, (const uint8_t *)XOR_KEY,
                         strlen(XOR_KEY), limit) < 0)
            return 0;
        feed(&server, data + 3, size - 3, step);
        session_free(&server);
        return 0;
    }
    if (connect_pair(&client, &server, limit) < 0)
        return 0;
    if (data[0] % 3 == 1)
        feed(&server, data + 3, size - 3, step);
    else
        feed_sealed(&client, &server, data + 3, size - 3, step);
    session_free(&client);
    session_free(&server);
    return 0;
}
