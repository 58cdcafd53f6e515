/* fuzz_framing.c - libFuzzer target: the frame decoder (framing.c).
 *
 * Input: [chunk size] [limit selector] stream... The stream is fed in chunks
 * of the chosen size, as the network would deliver it; every frame must be
 * exactly the bytes that followed its length prefix, and the bytes consumed
 * must add up. Every other stream writes payload bytes straight into the
 * decoder's buffer (room, reserve, commit: the server's path for large
 * payloads), which must never grow beyond what cap_after promised. Then the
 * rest is encoded as one frame and decoded back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"
#include "fuzz_keys.h"

/* Up to n payload bytes written in place; -1 when not inside a payload. */
static int write_in_place(framing_decoder *d, const uint8_t *data, size_t n,
                          size_t *used, framing_status *st)
{
    uint8_t *dst;
    size_t room, left = framing_decoder_room(d, &dst, &room), promised;

    if (left == 0)
        return -1;
    if (n > left)
        n = left;
    if (room < n) {
        promised = framing_decoder_cap_after(d, n);
        FUZZ_ASSERT(framing_decoder_reserve(d, d->body_have + n) == 0);
        FUZZ_ASSERT(d->body_cap <= promised);
        framing_decoder_room(d, &dst, &room);
    }
    FUZZ_ASSERT(room >= n && room <= left);
    memcpy(dst, data, n);
    *used = n;
    *st = framing_decoder_commit(d, n);
    return 0;
}

static void feed_stream(const uint8_t *data, size_t size, size_t step,
                        uint32_t min_len, uint32_t max_len, int in_place)
{
    framing_decoder d;
    const uint8_t *payload;
    size_t off = 0, used, n, header, body, frame_at = 0;
    framing_status st;

    framing_decoder_init(&d, min_len, max_len);
    while (off < size) {
        n = size - off < step ? size - off : step;
        if (!in_place || write_in_place(&d, data + off, n, &used, &st) < 0)
            st = framing_decoder_feed(&d, data + off, n, &used);
        FUZZ_ASSERT(used <= n);
        off += used;
        if (st == FRAMING_TOO_LARGE || st == FRAMING_TOO_SMALL) {
            FUZZ_ASSERT(framing_decoder_length(&d) > max_len ||
                        framing_decoder_length(&d) < min_len);
            break;
        }
        FUZZ_ASSERT(st != FRAMING_NO_MEMORY);
        if (st == FRAMING_FRAME) {
            framing_decoder_frame(&d, &payload, &n);
            FUZZ_ASSERT(n >= min_len && n <= max_len);
            FUZZ_ASSERT(frame_at + FRAMING_HEADER_LEN + n == off);
            FUZZ_ASSERT(n == 0 || memcmp(payload, data + frame_at + FRAMING_HEADER_LEN, n) == 0);
            frame_at = off;
            framing_decoder_trim(&d, 16);
            continue;
        }
        FUZZ_ASSERT(used == n || in_place); /* NEED_MORE takes everything */
        framing_decoder_pending(&d, &header, &body);
        FUZZ_ASSERT(header <= FRAMING_HEADER_LEN);
        FUZZ_ASSERT(frame_at + header + body == off);
    }
    framing_decoder_free(&d);
}

static void round_trip(const uint8_t *data, size_t size)
{
    framing_decoder d;
    uint8_t *wire = malloc(size + FRAMING_HEADER_LEN);
    const uint8_t *payload;
    size_t wire_len, used, n;

    if (wire == NULL)
        return;
    FUZZ_ASSERT(framing_encode(wire, size + FRAMING_HEADER_LEN, &wire_len, data, size) == 0);
    framing_decoder_init(&d, 0, FRAMING_MAX_LEN);
    FUZZ_ASSERT(framing_decoder_feed(&d, wire, wire_len, &used) == FRAMING_FRAME);
    FUZZ_ASSERT(used == wire_len);
    framing_decoder_frame(&d, &payload, &n);
    FUZZ_ASSERT(n == size && (n == 0 || memcmp(payload, data, n) == 0));
    framing_decoder_free(&d);
    free(wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t step;
    uint32_t max_len, min_len;

    if (size < 2)
        return 0;
    step = data[0] == 0 ? size : data[0];
    max_len = (uint32_t)data[1] * 64u; /* small: a hostile prefix is refused */
    min_len = data[1] & 1u ? 17u : 0u;
    if (min_len > max_len)
        min_len = max_len;
    feed_stream(data + 2, size - 2, step, min_len, max_len, (int)(size & 1u));
    round_trip(data + 2, size - 2);
    return 0;
}
