/* framing.c - length-prefixed frames as a byte-fed state machine. */
#include "framing.h"

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

static int reserve_body(framing_decoder *d)
{
    uint8_t *grown;

    if (d->body_cap >= d->length)
        return 0;
    grown = realloc(d->body, d->length);
    if (grown == NULL)
        return -1;
    d->body = grown;
    d->body_cap = d->length;
    return 0;
}

/* A non-NULL payload pointer for empty frames (memcpy(p, NULL, 0) is UB). */
static const uint8_t framing_empty[1];

static framing_status frame_done(framing_decoder *d, const uint8_t *payload)
{
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
    if (reserve_body(d) < 0)
        return FRAMING_NO_MEMORY;
    take = d->length - d->body_have;
    if (take > len - used)
        take = len - used;
    if (take > 0)
        memcpy(d->body + d->body_have, data + used, take);
    d->body_have += take;
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

/* Not sodium_memzero: framing has no libsodium; a volatile loop the
 * compiler cannot drop. */
static void wipe(uint8_t *p, size_t len)
{
    volatile uint8_t *v = p;

    while (len-- > 0)
        *v++ = 0;
}

void framing_decoder_trim(framing_decoder *d, size_t keep)
{
    if (d->body_cap <= keep || d->header_have > 0 || d->body_have > 0)
        return;
    wipe(d->body, d->body_cap);
    free(d->body);
    d->body = NULL;
    d->body_cap = 0;
    d->frame_ready = 0;
}

void framing_decoder_free(framing_decoder *d)
{
    free(d->body);
    memset(d, 0, sizeof *d);
}
