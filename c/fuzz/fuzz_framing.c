/* fuzz_framing.c - libFuzzer target: the frame decoder (framing.c).
 *
 * Input: [chunk size] [limit selector] stream... The stream is fed in chunks
 * of the chosen size, as the network would deliver it; every frame must be
 * exactly the bytes that followed its length prefix, and the bytes consumed
 * must add up. Then the rest is encoded as one frame and decoded back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"
#include "fuzz_keys.h"

static void feed_stream(const uint8_t *data, size_t size, size_t step,
                        uint32_t min_len, uint32_t max_len)
{
    framing_decoder d;
    const uint8_t *payload;
    size_t off = 0, used, n, header, body, frame_at = 0;
    framing_status st;

    framing_decoder_init(&d, min_len, max_len);
    while (off < size) {
        n = size - off < step ? size - off : step;
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
        FUZZ_ASSERT(used == n); /* NEED_MORE takes everything */
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
    feed_stream(data + 2, size - 2, step, min_len, max_len);
    round_trip(data + 2, size - 2);
    return 0;
}
