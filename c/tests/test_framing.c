/* test_framing.c - frame encoding and the byte-fed decoder. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "framing.h"
#include "vectors.h"

/* Feeds data in chunks of `step` bytes; collects every frame's payload
 * (concatenated) and counts them. Returns the last status. */
static framing_status feed_all(framing_decoder *d, const uint8_t *data,
                               size_t len, size_t step, uint8_t *payloads,
                               size_t *payloads_len, int *frames)
{
    framing_status st = FRAMING_NEED_MORE;
    size_t off = 0, used, chunk, pos;
    const uint8_t *p;
    size_t plen;

    *payloads_len = 0;
    *frames = 0;
    while (off < len) {
        chunk = len - off < step ? len - off : step;
        for (pos = 0; pos < chunk; pos += used) {
            st = framing_decoder_feed(d, data + off + pos, chunk - pos, &used);
            if (st == FRAMING_FRAME) {
                framing_decoder_frame(d, &p, &plen);
                memcpy(payloads + *payloads_len, p, plen);
                *payloads_len += plen;
                (*frames)++;
            } else if (st != FRAMING_NEED_MORE) {
                return st;
            }
        }
        off += chunk;
    }
    return st;
}

static void test_encode_vectors(void)
{
    json_t *root, *cases = vectors_load("xor.json", &root), *c;
    size_t i, ct_len, frame_len, out_len;

    json_array_foreach(cases, i, c) {
        uint8_t *ct = vectors_hex(c, "ciphertext", &ct_len);
        uint8_t *frame = vectors_hex(c, "frame", &frame_len);
        uint8_t *out = malloc(ct_len + 4);

        CHECK(framing_encode(out, ct_len + 4, &out_len, ct, ct_len) == 0);
        CHECK_BYTES(out, out_len, frame, frame_len);
        CHECK(framing_encode(out, ct_len + 3, &out_len, ct, ct_len) == -1);
        free(out);
        free(ct);
        free(frame);
    }
    json_decref(root);
}

/* Every vector frame, fed 1, 2, 3, 5 bytes at a time and whole. */
static void test_decode_vectors_any_chunking(void)
{
    static const size_t steps[] = {1, 2, 3, 5, 1 << 20};
    json_t *root, *cases = vectors_load("xor.json", &root), *c;
    size_t i, s, ct_len, frame_len, got_len;
    uint8_t got[1024];
    int frames;

    json_array_foreach(cases, i, c) {
        uint8_t *ct = vectors_hex(c, "ciphertext", &ct_len);
        uint8_t *frame = vectors_hex(c, "frame", &frame_len);

        for (s = 0; s < sizeof steps / sizeof steps[0]; s++) {
            framing_decoder d;

            framing_decoder_init(&d, 0, 1024);
            CHECK(feed_all(&d, frame, frame_len, steps[s], got, &got_len,
                           &frames) == FRAMING_FRAME);
            CHECK(frames == 1);
            CHECK_BYTES(got, got_len, ct, ct_len);
            framing_decoder_free(&d);
        }
        free(ct);
        free(frame);
    }
    json_decref(root);
}

static void test_two_frames_in_one_chunk(void)
{
    const uint8_t wire[] = {0, 0, 0, 2, 'h', 'i', 0, 0, 0, 3, 'y', 'o', 'u'};
    framing_decoder d;
    const uint8_t *p;
    size_t used, len;

    framing_decoder_init(&d, 0, 64);
    CHECK(framing_decoder_feed(&d, wire, sizeof wire, &used) == FRAMING_FRAME);
    CHECK(used == 6);
    framing_decoder_frame(&d, &p, &len);
    CHECK_BYTES(p, len, "hi", 2);
    CHECK(p == wire + 4); /* a whole frame in the chunk is not copied */
    CHECK(framing_decoder_feed(&d, wire + 6, sizeof wire - 6, &used) == FRAMING_FRAME);
    CHECK(used == 7);
    framing_decoder_frame(&d, &p, &len);
    CHECK_BYTES(p, len, "you", 3);
    CHECK(d.body == NULL); /* nothing was ever allocated */
    framing_decoder_free(&d);
}

static void test_header_split(void)
{
    const uint8_t wire[] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    framing_decoder d;
    const uint8_t *p;
    size_t used, len, hdr, body;

    framing_decoder_init(&d, 0, 64);
    CHECK(framing_decoder_feed(&d, wire, 2, &used) == FRAMING_NEED_MORE);
    CHECK(used == 2);
    framing_decoder_pending(&d, &hdr, &body);
    CHECK(hdr == 2 && body == 0);
    CHECK(framing_decoder_feed(&d, wire + 2, 4, &used) == FRAMING_NEED_MORE);
    CHECK(used == 4);
    framing_decoder_pending(&d, &hdr, &body);
    CHECK(hdr == 4 && body == 2);
    CHECK(framing_decoder_length(&d) == 5);
    CHECK(framing_decoder_feed(&d, wire + 6, 3, &used) == FRAMING_FRAME);
    CHECK(used == 3);
    framing_decoder_frame(&d, &p, &len);
    CHECK_BYTES(p, len, "hello", 5);
    framing_decoder_pending(&d, &hdr, &body);
    CHECK(hdr == 0 && body == 0);
    framing_decoder_free(&d);
}

/* Refused on the prefix alone: no body allocated, body bytes not consumed. */
static void test_too_large(void)
{
    const uint8_t wire[] = {0x7f, 0xff, 0xff, 0xff, 'x', 'y'};
    const uint8_t just_over[] = {0, 0, 0, 65};
    const uint8_t at_limit[] = {0, 0, 0, 64};
    framing_decoder d;
    size_t used;

    framing_decoder_init(&d, 0, 64);
    CHECK(framing_decoder_feed(&d, wire, sizeof wire, &used) == FRAMING_TOO_LARGE);
    CHECK(used == 4);
    CHECK(framing_decoder_length(&d) == 0x7fffffffu);
    CHECK(d.body == NULL);
    framing_decoder_free(&d);

    framing_decoder_init(&d, 0, 64);
    CHECK(framing_decoder_feed(&d, just_over, 4, &used) == FRAMING_TOO_LARGE);
    framing_decoder_free(&d);

    framing_decoder_init(&d, 0, 64);
    CHECK(framing_decoder_feed(&d, at_limit, 4, &used) == FRAMING_NEED_MORE);
    CHECK(d.body == NULL); /* a length alone allocates nothing */
    framing_decoder_free(&d);
}

static void test_too_small(void)
{
    const uint8_t wire[] = {0, 0, 0, 16};
    framing_decoder d;
    size_t used;

    framing_decoder_init(&d, 17, 65535);
    CHECK(framing_decoder_feed(&d, wire, 4, &used) == FRAMING_TOO_SMALL);
    CHECK(framing_decoder_length(&d) == 16);
    framing_decoder_free(&d);
}

static void test_zero_length(void)
{
    const uint8_t wire[] = {0, 0, 0, 0, 0, 0, 0, 0};
    framing_decoder d;
    const uint8_t *p;
    size_t used, len;

    framing_decoder_init(&d, 0, 64);
    CHECK(framing_decoder_feed(&d, wire, sizeof wire, &used) == FRAMING_FRAME);
    CHECK(used == 4);
    framing_decoder_frame(&d, &p, &len);
    CHECK(len == 0 && p != NULL);
    CHECK(framing_decoder_feed(&d, wire + 4, 4, &used) == FRAMING_FRAME);
    CHECK(used == 4);
    framing_decoder_free(&d);
}

/* Many frames of varied sizes in one stream, cut at every chunk size 1..17:
 * the body buffer is reused and everything comes out in order. */
static void test_stream_of_frames(void)
{
    uint8_t wire[4096], want[4096], got[4096];
    size_t wire_len = 0, want_len = 0, got_len, n, step, k, out_len;
    framing_decoder d;
    int frames;

    for (n = 0; n < 40; n++) {
        uint8_t payload[100];

        for (k = 0; k < n * 2; k++)
            payload[k] = (uint8_t)(n + k);
        CHECK(framing_encode(wire + wire_len, sizeof wire - wire_len, &out_len,
                             payload, n * 2) == 0);
        wire_len += out_len;
        memcpy(want + want_len, payload, n * 2);
        want_len += n * 2;
    }
    for (step = 1; step <= 17; step++) {
        framing_decoder_init(&d, 0, 100);
        CHECK(feed_all(&d, wire, wire_len, step, got, &got_len, &frames) == FRAMING_FRAME);
        CHECK(frames == 40);
        CHECK_BYTES(got, got_len, want, want_len);
        framing_decoder_free(&d);
    }
}

/* A large frame fed in pieces grows the body buffer; trim frees it between
 * frames only, and counts stay right. */
static void test_trim_and_count(void)
{
    static uint8_t wire[FRAMING_HEADER_LEN + 100000];
    framing_decoder d;
    const uint8_t *payload;
    size_t used, len, off;
    framing_status st = FRAMING_NEED_MORE;

    memset(wire + FRAMING_HEADER_LEN, 'z', 100000);
    framing_put_header(wire, 100000);
    framing_decoder_init(&d, 0, 1 << 20);
    for (off = 0; off < sizeof wire; off += used) {
        st = framing_decoder_feed(&d, wire + off, off == 0 ? 10 : sizeof wire - off, &used);
        if (off == 0) {
            CHECK(st == FRAMING_NEED_MORE);
            framing_decoder_trim(&d, 0); /* mid-frame: kept */
            CHECK(d.body_cap == 6);      /* as much as arrived, not 100000 */
        }
    }
    CHECK(st == FRAMING_FRAME);
    CHECK(d.frames == 1);
    framing_decoder_frame(&d, &payload, &len);
    CHECK(len == 100000 && payload[99999] == 'z');
    framing_decoder_trim(&d, 65536);
    CHECK(d.body == NULL && d.body_cap == 0);
    CHECK(framing_decoder_feed(&d, wire, sizeof wire, &used) == FRAMING_FRAME);
    CHECK(d.frames == 2);
    framing_decoder_free(&d);
}

/* The body grows as bytes arrive: doubling, at least what is needed, never
 * past the announced length, whatever the pieces. */
static void test_growth_as_bytes_arrive(void)
{
    static uint8_t wire[FRAMING_HEADER_LEN + 300000];
    framing_decoder d;
    size_t used, off, piece, last_cap = 0;
    framing_status st = FRAMING_NEED_MORE;

    CHECK(framing_grow_size(0, 10, 100) == 10);
    CHECK(framing_grow_size(10, 11, 100) == 20);
    CHECK(framing_grow_size(10, 50, 100) == 50);
    CHECK(framing_grow_size(60, 61, 100) == 100);
    CHECK(framing_grow_size(64, 64, 100) == 64);
    memset(wire, 0x5a, sizeof wire);
    framing_put_header(wire, 300000);
    framing_decoder_init(&d, 0, 1 << 20);
    for (off = 0; off < sizeof wire && st == FRAMING_NEED_MORE; off += used) {
        piece = sizeof wire - off < 16384 ? sizeof wire - off : 16384;
        /* the budget's view: what the next piece may grow the buffer to */
        size_t after = framing_decoder_cap_after(&d, piece);

        st = framing_decoder_feed(&d, wire + off, piece, &used);
        CHECK(d.body_cap <= after);
        CHECK(d.body_cap >= d.body_have);
        CHECK(d.body_cap <= 300000);
        CHECK(d.body_cap >= last_cap);
        CHECK(st == FRAMING_FRAME ||
              d.body_cap <= 2 * (d.body_have > 16384 ? d.body_have : 16384));
        last_cap = d.body_cap;
    }
    CHECK(st == FRAMING_FRAME);
    CHECK(d.body_cap == 300000);
    framing_decoder_free(&d);
}

/* Large payloads read straight into the body: room, reserve, commit. */
static void test_room_and_commit(void)
{
    uint8_t header[FRAMING_HEADER_LEN], *dst;
    const uint8_t *payload;
    framing_decoder d;
    size_t used, room, left, len;

    framing_decoder_init(&d, 0, 1000);
    CHECK(framing_decoder_room(&d, &dst, &room) == 0); /* no header yet */
    CHECK(room == 0 && dst == NULL);
    framing_put_header(header, 300);
    CHECK(framing_decoder_feed(&d, header, 4, &used) == FRAMING_NEED_MORE);
    CHECK(framing_decoder_feed(&d, (const uint8_t *)"ab", 2, &used) == FRAMING_NEED_MORE);
    left = framing_decoder_room(&d, &dst, &room);
    CHECK(left == 298);
    CHECK(framing_decoder_cap_after(&d, 100) >= 102);
    CHECK(framing_decoder_reserve(&d, 2 + 100) == 0);
    left = framing_decoder_room(&d, &dst, &room);
    CHECK(left == 298 && room >= 100 && room <= 298 && dst == d.body + 2);
    memset(dst, 'c', 100);
    CHECK(framing_decoder_commit(&d, 100) == FRAMING_NEED_MORE);
    CHECK(framing_decoder_reserve(&d, 5000) == 0); /* capped at the length */
    CHECK(d.body_cap == 300);
    left = framing_decoder_room(&d, &dst, &room);
    CHECK(left == 198 && room == 198);
    memset(dst, 'd', 198);
    CHECK(framing_decoder_commit(&d, 198) == FRAMING_FRAME);
    CHECK(framing_decoder_frame_in_body(&d));
    framing_decoder_frame(&d, &payload, &len);
    CHECK(len == 300 && payload[0] == 'a' && payload[2] == 'c' && payload[299] == 'd');
    CHECK(d.body_dirty == 300);
    CHECK(framing_decoder_room(&d, &dst, &room) == 0);
    /* between frames a scratch buffer, counted as used */
    CHECK(framing_decoder_scratch(&d, 700) == d.body);
    CHECK(d.body_cap >= 700 && d.body_dirty == 700);
    framing_decoder_free(&d);
}

static void test_header_helpers(void)
{
    uint8_t h[4];

    framing_put_header(h, 0x01020304u);
    CHECK(h[0] == 1 && h[1] == 2 && h[2] == 3 && h[3] == 4);
    CHECK(framing_get_header(h) == 0x01020304u);
    framing_put_header(h, 0xffffffffu);
    CHECK(framing_get_header(h) == 0xffffffffu);
}

int main(void)
{
    RUN_TEST(test_encode_vectors);
    RUN_TEST(test_decode_vectors_any_chunking);
    RUN_TEST(test_two_frames_in_one_chunk);
    RUN_TEST(test_header_split);
    RUN_TEST(test_too_large);
    RUN_TEST(test_too_small);
    RUN_TEST(test_zero_length);
    RUN_TEST(test_stream_of_frames);
    RUN_TEST(test_trim_and_count);
    RUN_TEST(test_growth_as_bytes_arrive);
    RUN_TEST(test_room_and_commit);
    RUN_TEST(test_header_helpers);
    return check_report("test_framing");
}
