/* framing.c - length-prefixed frames as a byte-fed state machine. */
#include "framing.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void framing_put_header(uint8_t out[FRAMING_HEADER_LEN], uint32_t payload_len)
{
    out[0] = (uint8_t)(payload_len >> 24);
    out[1] = (uint8_t)(payload_len >> 16);
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
}

uint32_t framing_get_header(const uint8_t in[FRAMING_HEADER_LEN])
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 |
           (uint32_t)in[2] << 8 | (uint32_t)in[3];
}

int framing_encode(uint8_t *out, size_t out_cap, size_t *out_len,
                   const uint8_t *payload, size_t len)
{
    if (len > FRAMING_MAX_LEN || out_cap < FRAMING_HEADER_LEN ||
        out_cap - FRAMING_HEADER_LEN < len)
        return -1;
    framing_put_header(out, (uint32_t)len);
    if (len > 0)
        memcpy(out + FRAMING_HEADER_LEN, payload, len);
    *out_len = FRAMING_HEADER_LEN + len;
    return 0;
}

void framing_decoder_init(framing_decoder *d, uint32_t min_len, uint32_t max_len)
{
    memset(d, 0, sizeof *d);
    d->min_len = min_len;
    d->max_len = max_len;
}

void framing_decoder_set_limits(framing_decoder *d, uint32_t min_len,
                                uint32_t max_len)
{
    d->min_len = min_len;
    d->max_len = max_len;
}

/* Called once the prefix is complete: the limit check comes before any
 * allocation, so a hostile prefix costs nothing. */
static framing_status check_length(framing_decoder *d)
{
    d->length = framing_get_header(d->header);
    if (d->length > d->max_len)
        return FRAMING_TOO_LARGE;
    if (d->length < d->min_len)
        return FRAMING_TOO_SMALL;
    return FRAMING_NEED_MORE;
}

size_t framing_grow_size(size_t cap, size_t need, size_t limit)
{
    size_t want;

    if (need <= cap)
        return cap;
    want = cap > limit / 2 ? limit : cap * 2;
    return want > need ? want : need;
}

/* Moves the body to a block of cap bytes; the old one is wiped (the bytes
 * written to it only) before it is freed: it may hold plaintext. */
static int move_body(framing_decoder *d, size_t cap)
{
    uint8_t *grown = malloc(cap);

    if (grown == NULL)
        return -1;
    if (d->body != NULL) {
        if (d->body_have > 0)
            memcpy(grown, d->body, d->body_have);
        sodium_memzero(d->body, d->body_dirty);
        free(d->body);
    }
    d->body = grown;
    d->body_cap = cap;
    d->body_dirty = d->body_have;
    return 0;
}

int framing_decoder_reserve(framing_decoder *d, size_t len)
{
    size_t limit = d->header_have == FRAMING_HEADER_LEN ? d->length : d->max_len;

    if (len > limit)
        len = limit;
    if (len <= d->body_cap)
        return 0;
    return move_body(d, framing_grow_size(d->body_cap, len, limit));
}

uint8_t *framing_decoder_scratch(framing_decoder *d, size_t len)
{
    if (d->header_have > 0 || d->body_have > 0)
        return NULL;
    /* exactly len: whole frames held in one read are short */
    if (len > d->body_cap && move_body(d, len) < 0)
        return NULL;
    if (len > d->body_dirty)
        d->body_dirty = len;
    return d->body;
}

/* Room for the payload bytes of this frame that arrive now (len more). */
static int reserve_body(framing_decoder *d, size_t more)
{
    size_t need = d->body_have + more;

    if (need <= d->body_cap)
        return 0;
    return move_body(d, framing_grow_size(d->body_cap, need, d->length));
}

size_t framing_decoder_cap_after(const framing_decoder *d, size_t n)
{
    size_t cap = d->body_cap, left, later;

    if (n > d->max_len)
        n = d->max_len;
    /* the rest of this frame's payload, and a later frame begun (or held
     * whole, see session.c) in the same bytes: at most n of either */
    if (d->header_have == FRAMING_HEADER_LEN) {
        left = d->length - d->body_have;
        cap = framing_grow_size(cap, d->body_have + (n < left ? n : left), d->length);
    }
    later = framing_grow_size(d->body_cap, n, d->max_len);
    return later > cap ? later : cap;
}

/* A non-NULL payload pointer for empty frames (memcpy(p, NULL, 0) is UB). */
static const uint8_t framing_empty[1];

static framing_status frame_done(framing_decoder *d, const uint8_t *payload)
{
    if (payload == d->body && d->body_have > d->body_dirty)
        d->body_dirty = d->body_have;
    d->frame = payload;
    d->frame_ready = 1;
    d->frames++;
    d->header_have = 0;
    d->body_have = 0;
    return FRAMING_FRAME;
}

framing_status framing_decoder_feed(framing_decoder *d, const uint8_t *data,
                                    size_t len, size_t *consumed)
{
    size_t used = 0, take;
    framing_status st;

    d->frame_ready = 0;
    *consumed = 0;
    if (len == 0)
        return FRAMING_NEED_MORE;
    if (d->header_have < FRAMING_HEADER_LEN) {
        take = FRAMING_HEADER_LEN - d->header_have;
        if (take > len)
            take = len;
        memcpy(d->header + d->header_have, data, take);
        d->header_have += take;
        used = take;
        *consumed = used;
        if (d->header_have < FRAMING_HEADER_LEN)
            return FRAMING_NEED_MORE;
        st = check_length(d);
        if (st != FRAMING_NEED_MORE)
            return st;
        if (d->length == 0)
            return frame_done(d, framing_empty);
        /* Fast path: the whole body is in this chunk, no copy. */
        if (len - used >= d->length) {
            *consumed = used + d->length;
            return frame_done(d, data + used);
        }
    }
    take = d->length - d->body_have;
    if (take > len - used)
        take = len - used;
    if (reserve_body(d, take) < 0)
        return FRAMING_NO_MEMORY;
    if (take > 0)
        memcpy(d->body + d->body_have, data + used, take);
    d->body_have += take;
    if (d->body_have > d->body_dirty)
        d->body_dirty = d->body_have;
    *consumed = used + take;
    if (d->body_have < d->length)
        return FRAMING_NEED_MORE;
    return frame_done(d, d->body);
}

void framing_decoder_frame(const framing_decoder *d, const uint8_t **payload,
                           size_t *len)
{
    *payload = d->frame_ready ? d->frame : NULL;
    *len = d->frame_ready ? d->length : 0;
}

uint32_t framing_decoder_length(const framing_decoder *d)
{
    return d->length;
}

void framing_decoder_pending(const framing_decoder *d, size_t *header_bytes,
                             size_t *payload_bytes)
{
    *header_bytes = d->header_have;
    *payload_bytes = d->body_have;
}

int framing_decoder_frame_in_body(const framing_decoder *d)
{
    return d->frame_ready && d->length > 0 && d->frame == d->body;
}

size_t framing_decoder_room(framing_decoder *d, uint8_t **dst, size_t *room)
{
    *dst = NULL;
    *room = 0;
    if (d->header_have < FRAMING_HEADER_LEN || d->body_have >= d->length)
        return 0;
    if (d->body_cap > d->body_have) {
        *dst = d->body + d->body_have;
        *room = d->body_cap - d->body_have;
        if (*room > d->length - d->body_have)
            *room = d->length - d->body_have;
    }
    return d->length - d->body_have;
}

framing_status framing_decoder_commit(framing_decoder *d, size_t n)
{
    d->frame_ready = 0;
    d->body_have += n;
    if (d->body_have > d->body_dirty)
        d->body_dirty = d->body_have;
    if (d->body_have < d->length)
        return FRAMING_NEED_MORE;
    return frame_done(d, d->body);
}

void framing_decoder_trim(framing_decoder *d, size_t keep)
{
    if (d->body_cap <= keep || d->header_have > 0 || d->body_have > 0)
        return;
    sodium_memzero(d->body, d->body_dirty);
    free(d->body);
    d->body = NULL;
    d->body_cap = 0;
    d->body_dirty = 0;
    d->frame_ready = 0;
}

void framing_decoder_free(framing_decoder *d)
{
    if (d->body != NULL)
        sodium_memzero(d->body, d->body_dirty);
    free(d->body);
    memset(d, 0, sizeof *d);
}
