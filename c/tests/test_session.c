/* test_session.c - the message layer: xor frames, and noise handshake,
 * chunking and every way a noise stream can be attacked (PROTOCOL.md 8). */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "session.h"
#include "vectors.h"

/* Linked with -Wl,--wrap=free (see the Makefile): when the block `watched`
 * is freed, records whether it had been wiped first. */
static const uint8_t *watched;
static size_t watched_len;
static int watched_freed, watched_wiped;

void __real_free(void *p);
void __wrap_free(void *p);

void __wrap_free(void *p)
{
    if (p != NULL && p == watched) {
        watched_freed = 1;
        watched_wiped = sodium_is_zero(watched, watched_len);
        watched = NULL;
    }
    __real_free(p);
}

/* Feeds all of data (stopping at an error); returns the last event other
 * than NEED_MORE (or NEED_MORE) and how many events of the kind `count`. */
static session_event feed_all(session *s, const uint8_t *data, size_t len,
                              session_event count, int *counted)
{
    session_event ev, last = SESSION_NEED_MORE;
    size_t off = 0, used;

    if (counted != NULL)
        *counted = 0;
    while (off < len) {
        ev = session_feed(s, data + off, len - off, &used);
        off += used;
        if (ev != SESSION_NEED_MORE)
            last = ev;
        if (counted != NULL && ev == count)
            (*counted)++;
        if (ev == SESSION_ERROR)
            break;
    }
    return last;
}

/* ---- xor ------------------------------------------------------------- */

static void test_xor_vectors(void)
{
    json_t *root, *cases = vectors_load("xor.json", &root), *c;
    size_t i, key_len, pt_len, frame_len, out_len;
    const uint8_t *out, *msg;
    size_t msg_len;

    json_array_foreach(cases, i, c) {
        uint8_t *key = vectors_hex(c, "key", &key_len);
        uint8_t *pt = vectors_hex(c, "plaintext", &pt_len);
        uint8_t *frame = vectors_hex(c, "frame", &frame_len);
        session cl, sv;

        CHECK(session_init(&cl, SESSION_XOR, 1, key, key_len, 1 << 20) == 0);
        CHECK(session_init(&sv, SESSION_XOR, 0, key, key_len, 1 << 20) == 0);
        CHECK(session_ready(&cl) && session_ready(&sv));
        CHECK(session_start(&cl, &out, &out_len) == 0 && out_len == 0);
        CHECK(session_seal(&cl, pt, pt_len, &out, &out_len) == 0);
        CHECK_BYTES(out, out_len, frame, frame_len);
        CHECK(session_sealed_payload(&cl) == pt_len);
        CHECK(feed_all(&sv, frame, frame_len, SESSION_MESSAGE, NULL) == SESSION_MESSAGE);
        session_message(&sv, &msg, &msg_len);
        CHECK_BYTES(msg, msg_len, pt, pt_len);
        session_free(&cl);
        session_free(&sv);
        free(key);
        free(pt);
        free(frame);
    }
    json_decref(root);
}

/* Two messages in one chunk, then the same bytes one at a time. */
static void test_xor_chunking(void)
{
    const uint8_t key[] = "k3y!";
    uint8_t wire[64];
    const uint8_t *out, *msg;
    size_t wire_len = 0, out_len, msg_len, i, used;
    session cl, sv;
    int messages;

    session_init(&cl, SESSION_XOR, 1, key, 4, 64);
    session_seal(&cl, (const uint8_t *)"first", 5, &out, &out_len);
    memcpy(wire, out, out_len);
    wire_len += out_len;
    session_seal(&cl, (const uint8_t *)"", 0, &out, &out_len);
    memcpy(wire + wire_len, out, out_len);
    wire_len += out_len;

    session_init(&sv, SESSION_XOR, 0, key, 4, 64);
    CHECK(feed_all(&sv, wire, wire_len, SESSION_MESSAGE, &messages) == SESSION_MESSAGE);
    CHECK(messages == 2);
    session_message(&sv, &msg, &msg_len);
    CHECK(msg_len == 0 && msg != NULL); /* the last one: the empty message */
    session_free(&sv);

    session_init(&sv, SESSION_XOR, 0, key, 4, 64);
    messages = 0;
    for (i = 0; i < wire_len; i++) {
        session_event ev = session_feed(&sv, wire + i, 1, &used);

        CHECK(used == 1);
        if (ev == SESSION_MESSAGE && messages++ == 0) {
            session_message(&sv, &msg, &msg_len);
            CHECK_BYTES(msg, msg_len, "first", 5);
        }
    }
    CHECK(messages == 2);
    session_free(&sv);
    session_free(&cl);
}

static void test_xor_limits(void)
{
    const uint8_t key[] = "k", big[65] = {0};
    const uint8_t header[] = {0, 0, 0, 65, 'x'};
    const uint8_t *out;
    size_t out_len, used, hdr, payload;
    uint32_t frame_len;
    session s;

    session_init(&s, SESSION_XOR, 0, key, 1, 64);
    CHECK(session_seal(&s, big, 64, &out, &out_len) == 0);
    CHECK(session_seal(&s, big, 65, &out, &out_len) == -1);
    CHECK(session_feed(&s, header, sizeof header, &used) == SESSION_ERROR);
    CHECK(used == 4); /* the body is never read */
    CHECK(session_error_info(&s)->kind == SESSION_ERR_FRAME_TOO_LARGE);
    CHECK(session_error_info(&s)->length == 65);
    CHECK(session_error_info(&s)->limit == 64);
    CHECK(session_feed(&s, header, 1, &used) == SESSION_ERROR); /* stays failed */
    session_free(&s);

    /* what a truncated frame holds, for the server's error line */
    session_init(&s, SESSION_XOR, 0, key, 1, 64);
    session_feed(&s, (const uint8_t *)"\0\0", 2, &used);
    session_pending(&s, &hdr, &payload, &frame_len);
    CHECK(hdr == 2 && payload == 0 && frame_len == 0);
    session_feed(&s, (const uint8_t *)"\0\x0a" "abc", 5, &used);
    session_pending(&s, &hdr, &payload, &frame_len);
    CHECK(hdr == 4 && payload == 3 && frame_len == 10);
    CHECK(session_in_message(&s) == 0);
    session_free(&s);
}

/* ---- noise ------------------------------------------------------------- */

static uint8_t psk_a[NOISE_PSKLEN], psk_b[NOISE_PSKLEN];

/* Client and server sessions with the given PSKs and limits, handshake done
 * in memory. Returns 0 when both ends are ready. */
static int noise_pair(session *cl, session *sv, const uint8_t *cl_psk,
                      const uint8_t *sv_psk, uint32_t cl_max, uint32_t sv_max)
{
    const uint8_t *out;
    size_t out_len;

    if (session_init(cl, SESSION_NOISE, 1, cl_psk, NOISE_PSKLEN, cl_max) < 0 ||
        session_init(sv, SESSION_NOISE, 0, sv_psk, NOISE_PSKLEN, sv_max) < 0)
        return -1;
    if (session_start(cl, &out, &out_len) < 0 || out_len != 52)
        return -1;
    if (feed_all(sv, out, out_len, SESSION_SEND, NULL) != SESSION_SEND)
        return -1;
    session_output(sv, &out, &out_len);
    if (out_len != 52 || !session_ready(sv))
        return -1;
    if (feed_all(cl, out, out_len, SESSION_READY, NULL) != SESSION_READY)
        return -1;
    return session_ready(cl) ? 0 : -1;
}

/* Seals msg on `from` and delivers it to `to`; returns the event. */
static session_event transfer(session *from, session *to, const uint8_t *msg,
                              size_t len)
{
    const uint8_t *out;
    size_t out_len;

    if (session_seal(from, msg, len, &out, &out_len) < 0)
        return SESSION_ERROR;
    return feed_all(to, out, out_len, SESSION_MESSAGE, NULL);
}

static void test_noise_roundtrip(void)
{
    const uint8_t *msg;
    size_t len;
    session cl, sv;
    int i;

    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    for (i = 0; i < 3; i++) {
        CHECK(transfer(&cl, &sv, (const uint8_t *)"Hello", 5) == SESSION_MESSAGE);
        session_message(&sv, &msg, &len);
        CHECK_BYTES(msg, len, "Hello", 5);
        CHECK(session_sealed_payload(&cl) == 1 + 5 + 16);
        CHECK(transfer(&sv, &cl, (const uint8_t *)"ACK: Received 5 bytes", 21) ==
              SESSION_MESSAGE);
        session_message(&cl, &msg, &len);
        CHECK_BYTES(msg, len, "ACK: Received 5 bytes", 21);
    }
    /* the empty message: one 17-byte frame, marker only */
    CHECK(transfer(&cl, &sv, (const uint8_t *)"", 0) == SESSION_MESSAGE);
    CHECK(session_sealed_payload(&cl) == 17);
    session_message(&sv, &msg, &len);
    CHECK(len == 0);
    session_free(&cl);
    session_free(&sv);
}

/* PROTOCOL.md 8.1 through the session layer: the same frames, byte for byte,
 * with the walk-through's fixed ephemeral keys injected. */
static void test_noise_walkthrough(void)
{
    static const uint8_t psk[32] = {
        0x61, 0x4c, 0x77, 0xa0, 0x09, 0x8f, 0xaa, 0xaa, 0x82, 0x3a, 0x60, 0xf4,
        0x82, 0x2a, 0xf9, 0x19, 0x74, 0x84, 0xc7, 0x30, 0x82, 0x19, 0xe3, 0xf1,
        0x46, 0xb1, 0x6a, 0x1c, 0x6f, 0x17, 0x59, 0x8d};
    static const uint8_t msg1[] = {
        0x00, 0x00, 0x00, 0x30, 0x8f, 0x40, 0xc5, 0xad, 0xb6, 0x8f, 0x25, 0x62,
        0x4a, 0xe5, 0xb2, 0x14, 0xea, 0x76, 0x7a, 0x6e, 0xc9, 0x4d, 0x82, 0x9d,
        0x3d, 0x7b, 0x5e, 0x1a, 0xd1, 0xba, 0x6f, 0x3e, 0x21, 0x38, 0x28, 0x5f,
        0xf3, 0xd7, 0x80, 0x1e, 0x21, 0x3e, 0x28, 0x1b, 0x23, 0xeb, 0x54, 0x40,
        0x25, 0x73, 0xd0, 0xbc};
    static const uint8_t msg2[] = {
        0x00, 0x00, 0x00, 0x30, 0x35, 0x80, 0x72, 0xd6, 0x36, 0x58, 0x80, 0xd1,
        0xae, 0xea, 0x32, 0x9a, 0xdf, 0x91, 0x21, 0x38, 0x38, 0x51, 0xed, 0x21,
        0xa2, 0x8e, 0x3b, 0x75, 0xe9, 0x65, 0xd0, 0xd2, 0xcd, 0x16, 0x62, 0x54,
        0x99, 0xf0, 0x7b, 0x16, 0xbb, 0xe2, 0xfa, 0x89, 0x6c, 0x77, 0x3b, 0x58,
        0xac, 0x89, 0x42, 0x19};
    static const uint8_t hi[] = {
        0x00, 0x00, 0x00, 0x13, 0xa8, 0xae, 0x53, 0xea, 0x7b, 0x9d, 0xb5, 0x30,
        0xfb, 0x70, 0xca, 0xc7, 0xf6, 0xbb, 0xe6, 0xf6, 0xbe, 0x9a, 0xbc};
    static const uint8_t ack[] = {
        0x00, 0x00, 0x00, 0x26, 0x5e, 0x69, 0xe4, 0x58, 0xef, 0x81, 0x6b, 0x65,
        0x3a, 0x80, 0x3f, 0x5f, 0x93, 0xc5, 0x9d, 0x47, 0xf5, 0x11, 0x9d, 0x5f,
        0xea, 0xc5, 0x8a, 0x9d, 0x84, 0x11, 0xb6, 0xb7, 0x57, 0x8e, 0xf0, 0xa8,
        0x21, 0xc8, 0x4e, 0x1b, 0xc2, 0x7d};
    uint8_t e_client[32], e_server[32];
    const uint8_t *out, *msg;
    size_t out_len, len, i;
    session cl, sv;

    for (i = 0; i < 32; i++) {
        e_client[i] = (uint8_t)i;
        e_server[i] = (uint8_t)(0x20 + i);
    }
    session_init(&cl, SESSION_NOISE, 1, psk, 32, 1 << 20);
    session_init(&sv, SESSION_NOISE, 0, psk, 32, 1 << 20);
    /* test-only: replace the fresh ephemeral keys with the fixed ones */
    noise_handshake_wipe(&cl.hs);
    noise_handshake_wipe(&sv.hs);
    CHECK(noise_handshake_init(&cl.hs, 1, NOISE_PROTOCOL_NAME,
                               (const uint8_t *)NOISE_PROLOGUE, 18, psk, e_client) == 0);
    CHECK(noise_handshake_init(&sv.hs, 0, NOISE_PROTOCOL_NAME,
                               (const uint8_t *)NOISE_PROLOGUE, 18, psk, e_server) == 0);

    CHECK(session_start(&cl, &out, &out_len) == 0);
    CHECK_BYTES(out, out_len, msg1, sizeof msg1);
    CHECK(feed_all(&sv, msg1, sizeof msg1, SESSION_SEND, NULL) == SESSION_SEND);
    session_output(&sv, &out, &out_len);
    CHECK_BYTES(out, out_len, msg2, sizeof msg2);
    CHECK(feed_all(&cl, msg2, sizeof msg2, SESSION_READY, NULL) == SESSION_READY);

    CHECK(session_seal(&cl, (const uint8_t *)"Hi", 2, &out, &out_len) == 0);
    CHECK_BYTES(out, out_len, hi, sizeof hi);
    CHECK(session_sealed_payload(&cl) == 19);
    CHECK(feed_all(&sv, hi, sizeof hi, SESSION_MESSAGE, NULL) == SESSION_MESSAGE);
    session_message(&sv, &msg, &len);
    CHECK_BYTES(msg, len, "Hi", 2);
    CHECK(session_seal(&sv, (const uint8_t *)"ACK: Received 2 bytes", 21, &out,
                       &out_len) == 0);
    CHECK_BYTES(out, out_len, ack, sizeof ack);
    session_free(&cl);
    session_free(&sv);
}

/* 65518 data bytes fill one chunk (a 65535-byte frame); one more byte needs
 * a second chunk. Frames are checked by walking the sealed bytes. */
static void test_noise_chunk_boundary(void)
{
    static const struct {
        size_t len, frames, last_frame;
    } cases[] = {
        {65517, 1, 65534}, {65518, 1, 65535}, {65519, 2, 18},
        {65520, 2, 19}, {3 * 65518, 3, 65535}, {200000, 4, 200000 - 3 * 65518 + 17},
    };
    uint8_t *data = malloc(200000);
    const uint8_t *out, *msg;
    size_t out_len, len, i, off, frames, flen = 0, total;
    session cl, sv;

    for (i = 0; i < 200000; i++)
        data[i] = (uint8_t)(i * 7);
    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(session_seal(&cl, data, cases[i].len, &out, &out_len) == 0);
        frames = 0;
        total = 0;
        for (off = 0; off < out_len; off += 4 + flen) {
            flen = framing_get_header(out + off);
            CHECK(flen >= 17 && flen <= 65535);
            frames++;
            total += flen;
        }
        CHECK(frames == cases[i].frames);
        CHECK(flen == cases[i].last_frame);
        CHECK(session_sealed_payload(&cl) == total);
        CHECK(total == cases[i].len + frames * 17);
        CHECK(feed_all(&sv, out, out_len, SESSION_MESSAGE, NULL) == SESSION_MESSAGE);
        session_message(&sv, &msg, &len);
        CHECK_BYTES(msg, len, data, cases[i].len);
    }
    session_free(&cl);
    session_free(&sv);
    free(data);
}

/* A flipped bit anywhere in either handshake message fails the handshake. */
static void test_noise_tampered_handshake(void)
{
    static const size_t bits[] = {0, 7, 100, 255, 256, 383};
    const uint8_t *out;
    uint8_t copy[52];
    size_t out_len, i;
    session cl, sv;

    for (i = 0; i < sizeof bits / sizeof bits[0]; i++) {
        session_init(&cl, SESSION_NOISE, 1, psk_a, 32, 1 << 20);
        session_init(&sv, SESSION_NOISE, 0, psk_a, 32, 1 << 20);
        session_start(&cl, &out, &out_len);
        memcpy(copy, out, sizeof copy);
        copy[4 + bits[i] / 8] ^= (uint8_t)(1u << (bits[i] % 8));
        CHECK(feed_all(&sv, copy, sizeof copy, SESSION_SEND, NULL) == SESSION_ERROR);
        CHECK(session_error_info(&sv)->kind == SESSION_ERR_HANDSHAKE);
        CHECK(!session_ready(&sv));
        session_free(&cl);
        session_free(&sv);

        session_init(&cl, SESSION_NOISE, 1, psk_a, 32, 1 << 20);
        session_init(&sv, SESSION_NOISE, 0, psk_a, 32, 1 << 20);
        session_start(&cl, &out, &out_len);
        CHECK(feed_all(&sv, out, out_len, SESSION_SEND, NULL) == SESSION_SEND);
        session_output(&sv, &out, &out_len);
        memcpy(copy, out, sizeof copy);
        copy[4 + bits[i] / 8] ^= (uint8_t)(1u << (bits[i] % 8));
        CHECK(feed_all(&cl, copy, sizeof copy, SESSION_READY, NULL) == SESSION_ERROR);
        CHECK(session_error_info(&cl)->kind == SESSION_ERR_HANDSHAKE);
        CHECK(strstr(session_error_info(&cl)->reason, "authentication failed") != NULL);
        CHECK(!session_ready(&cl));
        session_free(&cl);
        session_free(&sv);
    }
}

static void test_noise_tampered_transport(void)
{
    const uint8_t *out;
    uint8_t copy[64];
    size_t out_len, pos;
    session cl, sv;

    for (pos = 4; pos < 4 + 1 + 11 + 16; pos += 3) {
        CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
        session_seal(&cl, (const uint8_t *)"Hello there", 11, &out, &out_len);
        memcpy(copy, out, out_len);
        copy[pos] ^= 0x01;
        CHECK(feed_all(&sv, copy, out_len, SESSION_MESSAGE, NULL) == SESSION_ERROR);
        CHECK(session_error_info(&sv)->kind == SESSION_ERR_DECRYPT);
        CHECK(strcmp(session_error_info(&sv)->reason, "authentication failed") == 0);
        session_free(&cl);
        session_free(&sv);
    }
}

static void test_noise_replay_and_reorder(void)
{
    const uint8_t *out;
    uint8_t first[64], second[64];
    size_t first_len, second_len;
    session cl, sv;

    /* replay: the same frame twice */
    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    session_seal(&cl, (const uint8_t *)"pay 10", 6, &out, &first_len);
    memcpy(first, out, first_len);
    CHECK(feed_all(&sv, first, first_len, SESSION_MESSAGE, NULL) == SESSION_MESSAGE);
    CHECK(feed_all(&sv, first, first_len, SESSION_MESSAGE, NULL) == SESSION_ERROR);
    CHECK(session_error_info(&sv)->kind == SESSION_ERR_DECRYPT);
    session_free(&cl);
    session_free(&sv);

    /* reorder: the second frame first (also what a dropped frame looks like) */
    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    session_seal(&cl, (const uint8_t *)"one", 3, &out, &first_len);
    memcpy(first, out, first_len);
    session_seal(&cl, (const uint8_t *)"two", 3, &out, &second_len);
    memcpy(second, out, second_len);
    CHECK(feed_all(&sv, second, second_len, SESSION_MESSAGE, NULL) == SESSION_ERROR);
    CHECK(session_error_info(&sv)->kind == SESSION_ERR_DECRYPT);
    session_free(&cl);
    session_free(&sv);

    /* a frame of the other direction (reflected back) fails too */
    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    session_seal(&cl, (const uint8_t *)"mirror", 6, &out, &first_len);
    memcpy(first, out, first_len);
    CHECK(feed_all(&cl, first, first_len, SESSION_MESSAGE, NULL) == SESSION_ERROR);
    session_free(&cl);
    session_free(&sv);
}

/* Transport frames are 17..65535 bytes: others are refused on the prefix. */
static void test_noise_frame_lengths(void)
{
    static const uint8_t len16[] = {0, 0, 0, 16, 0xaa};
    static const uint8_t len17[] = {0, 0, 0, 17};
    static const uint8_t len65535[] = {0, 0, 0xff, 0xff};
    static const uint8_t len65536[] = {0, 1, 0, 0, 0xaa};
    static const uint8_t len0[] = {0, 0, 0, 0};
    session cl, sv;
    size_t used;

    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    CHECK(session_feed(&sv, len16, sizeof len16, &used) == SESSION_ERROR);
    CHECK(used == 4);
    CHECK(session_error_info(&sv)->kind == SESSION_ERR_DECRYPT);
    CHECK(strcmp(session_error_info(&sv)->reason,
                 "frame of 16 bytes is not a transport message (17..65535 bytes)") == 0);
    session_free(&sv);
    session_free(&cl);

    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    CHECK(session_feed(&sv, len65536, sizeof len65536, &used) == SESSION_ERROR);
    CHECK(used == 4);
    CHECK(session_error_info(&sv)->kind == SESSION_ERR_FRAME_TOO_LARGE);
    CHECK(session_error_info(&sv)->length == 65536);
    CHECK(session_error_info(&sv)->limit == 65535);
    session_free(&sv);
    session_free(&cl);

    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    CHECK(session_feed(&sv, len0, sizeof len0, &used) == SESSION_ERROR);
    session_free(&sv);
    session_free(&cl);

    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    CHECK(session_feed(&sv, len17, sizeof len17, &used) == SESSION_NEED_MORE);
    session_free(&sv);
    session_free(&cl);
    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    CHECK(session_feed(&sv, len65535, sizeof len65535, &used) == SESSION_NEED_MORE);
    session_free(&sv);
    session_free(&cl);
}

/* The limit applies to the reassembled message, chunk by chunk. */
static void test_noise_message_too_large(void)
{
    uint8_t *data = calloc(1, 150000);
    const uint8_t *out, *msg;
    size_t out_len, len;
    session cl, sv;

    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 200000, 100000) == 0);
    CHECK(transfer(&cl, &sv, data, 100000) == SESSION_MESSAGE); /* at the limit */
    session_message(&sv, &msg, &len);
    CHECK(len == 100000);
    CHECK(session_seal(&cl, data, 150000, &out, &out_len) == 0);
    CHECK(feed_all(&sv, out, out_len, SESSION_MESSAGE, NULL) == SESSION_ERROR);
    CHECK(session_error_info(&sv)->kind == SESSION_ERR_MESSAGE_TOO_LARGE);
    CHECK(session_error_info(&sv)->limit == 100000);
    /* and the sender refuses to seal above its own limit */
    CHECK(session_seal(&sv, data, 100001, &out, &out_len) == -1);
    session_free(&cl);
    session_free(&sv);
    free(data);
}

static void test_noise_in_message(void)
{
    uint8_t *data = calloc(1, 70000);
    const uint8_t *out;
    size_t out_len, used;
    session cl, sv;

    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    session_seal(&cl, data, 70000, &out, &out_len);
    CHECK(session_feed(&sv, out, 4 + 65535, &used) == SESSION_NEED_MORE);
    CHECK(used == 4 + 65535);
    CHECK(session_in_message(&sv) == 1);
    CHECK(session_feed(&sv, out + used, out_len - used, &used) == SESSION_MESSAGE);
    CHECK(session_in_message(&sv) == 0);
    session_free(&cl);
    session_free(&sv);
    free(data);
}

static void test_noise_bad_marker(void)
{
    const uint8_t plain[] = {0x02, 'x'};
    uint8_t frame[4 + 2 + 16];
    session cl, sv;

    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    framing_put_header(frame, 2 + 16);
    CHECK(noise_cipher_encrypt(&cl.tx, frame + 4, NULL, 0, plain, 2) == 0);
    CHECK(feed_all(&sv, frame, sizeof frame, SESSION_MESSAGE, NULL) == SESSION_ERROR);
    CHECK(strcmp(session_error_info(&sv)->reason, "bad chunk marker 0x02") == 0);
    session_free(&cl);
    session_free(&sv);
}

static void test_noise_wrong_key(void)
{
    const uint8_t *out;
    size_t out_len;
    session cl, sv;

    CHECK(noise_pair(&cl, &sv, psk_a, psk_b, 1 << 20, 1 << 20) == -1);
    CHECK(session_error_info(&sv)->kind == SESSION_ERR_HANDSHAKE);
    CHECK(!session_ready(&sv));
    CHECK(session_seal(&sv, (const uint8_t *)"x", 1, &out, &out_len) == -1);
    session_free(&cl);
    session_free(&sv);
}

/* A peer speaking xor: its frame is not a 48-byte handshake message. */
static void test_noise_against_xor_peer(void)
{
    const uint8_t key[] = "MY_SECRET_KEY";
    uint8_t fake[48];
    const uint8_t *out;
    size_t out_len;
    session x, sv;

    session_init(&x, SESSION_XOR, 1, key, 13, 1 << 20);
    session_init(&sv, SESSION_NOISE, 0, psk_a, 32, 1 << 20);
    session_seal(&x, (const uint8_t *)"Hello from C", 12, &out, &out_len);
    CHECK(feed_all(&sv, out, out_len, SESSION_SEND, NULL) == SESSION_ERROR);
    CHECK(session_error_info(&sv)->kind == SESSION_ERR_HANDSHAKE);
    CHECK(strcmp(session_error_info(&sv)->reason,
                 "expected a 48-byte handshake message, got 12 bytes "
                 "(is the peer in xor mode?)") == 0);
    session_free(&sv);

    /* even a 48-byte xor message does not pass as a handshake */
    memset(fake, 'A', sizeof fake);
    session_init(&sv, SESSION_NOISE, 0, psk_a, 32, 1 << 20);
    session_seal(&x, fake, sizeof fake, &out, &out_len);
    CHECK(feed_all(&sv, out, out_len, SESSION_SEND, NULL) == SESSION_ERROR);
    CHECK(session_error_info(&sv)->kind == SESSION_ERR_HANDSHAKE);
    session_free(&sv);
    session_free(&x);
}

static void test_psk_from_key(void)
{
    static const uint8_t want[32] = {
        0x61, 0x4c, 0x77, 0xa0, 0x09, 0x8f, 0xaa, 0xaa, 0x82, 0x3a, 0x60, 0xf4,
        0x82, 0x2a, 0xf9, 0x19, 0x74, 0x84, 0xc7, 0x30, 0x82, 0x19, 0xe3, 0xf1,
        0x46, 0xb1, 0x6a, 0x1c, 0x6f, 0x17, 0x59, 0x8d};
    const char *pass = "correct horse battery staple";
    uint8_t psk[32], raw[32];

    CHECK(session_psk_from_key(psk, (const uint8_t *)pass, strlen(pass), NULL) == 0);
    CHECK_BYTES(psk, 32, want, 32);
    memset(raw, 0x5a, sizeof raw);
    CHECK(session_psk_from_key(psk, (const uint8_t *)"ignored", 7, raw) == 0);
    CHECK_BYTES(psk, 32, raw, 32);
}

/* ---- growth of the message buffer ------------------------------------- */

static void fill_pattern(uint8_t *buf, size_t len, unsigned seed)
{
    size_t i;

    for (i = 0; i < len; i++)
        buf[i] = (uint8_t)((i * 31u + seed) ^ (i >> 8));
}

/* Messages of rising size, each received into a bigger buffer, arrive
 * intact; a noise message of several chunks grows the buffer while it is
 * being reassembled, so the bytes already there must survive the move. */
static void expect_growth_keeps_content(session *from, session *to)
{
    static const size_t sizes[] = {10, 100, 1000, 70000, 300000, 5};
    const uint8_t *msg;
    uint8_t *want = malloc(300000);
    size_t i, len;

    CHECK(want != NULL);
    for (i = 0; want != NULL && i < sizeof sizes / sizeof sizes[0]; i++) {
        fill_pattern(want, sizes[i], (unsigned)i);
        CHECK(transfer(from, to, want, sizes[i]) == SESSION_MESSAGE);
        session_message(to, &msg, &len);
        CHECK_BYTES(msg, len, want, sizes[i]);
    }
    free(want);
}

/* The buffer that holds a received message's plaintext (xor: the frame
 * buffer, decrypted in place; noise: the reassembly buffer) and the bytes
 * of it ever written, which must be wiped before it is freed. */
static const uint8_t *plain_buffer(const session *s, size_t *used)
{
    if (s->cipher == SESSION_XOR) {
        *used = s->decoder.body_dirty;
        return s->decoder.body;
    }
    *used = s->msg_dirty;
    return s->msg;
}

/* Runs expect(client, server) on an xor pair, then on a noise pair. */
static void with_both_ciphers(void (*expect)(session *, session *))
{
    static const uint8_t key[] = "growth key";
    session cl, sv;

    CHECK(session_init(&cl, SESSION_XOR, 1, key, sizeof key - 1, 1 << 20) == 0);
    CHECK(session_init(&sv, SESSION_XOR, 0, key, sizeof key - 1, 1 << 20) == 0);
    expect(&cl, &sv);
    session_free(&cl);
    session_free(&sv);

    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    expect(&cl, &sv);
    session_free(&cl);
    session_free(&sv);
}

static void test_growth_keeps_content(void)
{
    with_both_ciphers(expect_growth_keeps_content);
}

/* Sends a short message, then a long one, and checks that the short one's
 * buffer was wiped before it was freed (realloc would free it as it is). */
static void expect_growth_wipes(session *from, session *to)
{
    uint8_t big[10000];

    memset(big, 'x', sizeof big);
    CHECK(transfer(from, to, (const uint8_t *)"plaintext", 9) == SESSION_MESSAGE);
    watched = plain_buffer(to, &watched_len);
    watched_freed = watched_wiped = 0;
    CHECK(watched != NULL && watched_len >= 9 && watched_len < sizeof big);
    CHECK(transfer(from, to, big, sizeof big) == SESSION_MESSAGE);
    CHECK(watched_freed == 1);
    CHECK(watched_wiped == 1);
    watched = NULL;
}

static void test_growth_wipes_old_buffer(void)
{
    with_both_ciphers(expect_growth_wipes);
}

/* After a large message, session_trim frees (wiped) what grew above the
 * limit and keeps small buffers; the next message still arrives whole. */
static void expect_trim(session *from, session *to)
{
    static uint8_t big[300000];
    const uint8_t *msg, *small_buf;
    uint64_t frames = session_frames(to);
    size_t len;

    CHECK(transfer(from, to, (const uint8_t *)"short", 5) == SESSION_MESSAGE);
    CHECK(session_frames(to) == frames + 1);
    small_buf = plain_buffer(to, &len);
    session_trim(to, 65536);
    CHECK(small_buf != NULL);
    CHECK(plain_buffer(to, &len) == small_buf); /* nothing above the limit: kept */
    fill_pattern(big, sizeof big, 7);
    CHECK(transfer(from, to, big, sizeof big) == SESSION_MESSAGE);
    CHECK(session_frames(to) > frames + 1);
    watched = plain_buffer(to, &watched_len);
    watched_freed = watched_wiped = 0;
    CHECK(watched_len >= sizeof big); /* every byte written is wiped */
    CHECK(session_unit_cap(to) >= sizeof big);
    session_trim(to, 65536);
    CHECK(watched_freed == 1);
    CHECK(watched_wiped == 1);
    watched = NULL;
    CHECK(session_unit_cap(to) == 0);
    CHECK(to->decoder.body_cap <= 65536);
    CHECK(transfer(from, to, (const uint8_t *)"again", 5) == SESSION_MESSAGE);
    session_message(to, &msg, &len);
    CHECK_BYTES(msg, len, "again", 5);
}

static void test_trim_after_large_message(void)
{
    with_both_ciphers(expect_trim);
}

/* session_free leaves nothing behind in the struct (keys, states). */
static void test_free_wipes(void)
{
    static const uint8_t zero[sizeof(session)];
    session cl, sv;

    CHECK(noise_pair(&cl, &sv, psk_a, psk_a, 1 << 20, 1 << 20) == 0);
    transfer(&cl, &sv, (const uint8_t *)"secret", 6);
    session_free(&cl);
    session_free(&sv);
    CHECK(memcmp(&cl, zero, sizeof cl) == 0);
    CHECK(memcmp(&sv, zero, sizeof sv) == 0);
}

int main(void)
{
    if (session_global_init() < 0)
        return 1;
    randombytes_buf(psk_a, sizeof psk_a);
    randombytes_buf(psk_b, sizeof psk_b);
    RUN_TEST(test_xor_vectors);
    RUN_TEST(test_xor_chunking);
    RUN_TEST(test_xor_limits);
    RUN_TEST(test_noise_roundtrip);
    RUN_TEST(test_noise_walkthrough);
    RUN_TEST(test_noise_chunk_boundary);
    RUN_TEST(test_noise_tampered_handshake);
    RUN_TEST(test_noise_tampered_transport);
    RUN_TEST(test_noise_replay_and_reorder);
    RUN_TEST(test_noise_frame_lengths);
    RUN_TEST(test_noise_message_too_large);
    RUN_TEST(test_noise_in_message);
    RUN_TEST(test_noise_bad_marker);
    RUN_TEST(test_noise_wrong_key);
    RUN_TEST(test_noise_against_xor_peer);
    RUN_TEST(test_psk_from_key);
    RUN_TEST(test_growth_keeps_content);
    RUN_TEST(test_growth_wipes_old_buffer);
    RUN_TEST(test_trim_after_large_message);
    RUN_TEST(test_free_wipes);
    return check_report("test_session");
}
