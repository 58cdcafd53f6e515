/* framing.h - 4-byte big-endian length-prefixed frames (PROTOCOL.md section 1).
 *
 * Sans-io: no sockets here. framing_encode() builds a whole frame in one buffer
 * (so it leaves in one write); a framing_decoder is fed whatever chunks the
 * network delivers and answers NEED_MORE / FRAME / TOO_LARGE / TOO_SMALL. It
 * checks the length prefix against its limits before it allocates or copies
 * a single body byte.
 */
#ifndef SECUREMSG_FRAMING_H
#define SECUREMSG_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#define FRAMING_HEADER_LEN 4
#define FRAMING_MAX_LEN 0xffffffffu

/* Writes the 4-byte big-endian length prefix. */
void framing_put_header(uint8_t out[FRAMING_HEADER_LEN], uint32_t payload_len);

/* Reads a 4-byte big-endian length prefix. */
uint32_t framing_get_header(const uint8_t in[FRAMING_HEADER_LEN]);

/* out receives header + payload (4 + len bytes); -1 if out_cap is too small
 * or len does not fit in 32 bits. out and payload must not overlap. */
int framing_encode(uint8_t *out, size_t out_cap, size_t *out_len,
                   const uint8_t *payload, size_t len);

typedef enum {
    FRAMING_NEED_MORE, /* every byte consumed; feed more */
    FRAMING_FRAME,     /* a frame is ready: framing_decoder_frame() */
    FRAMING_TOO_LARGE, /* length prefix above max_len; nothing allocated */
    FRAMING_TOO_SMALL, /* length prefix below min_len */
    FRAMING_NO_MEMORY  /* the body buffer could not be allocated */
} framing_status;

typedef struct {
    uint32_t min_len, max_len;       /* accepted payload lengths */
    uint8_t header[FRAMING_HEADER_LEN];
    size_t header_have;              /* 0..4 prefix bytes held */
    uint32_t length;                 /* payload length, once the header is in */
    size_t body_have;                /* payload bytes held */
    uint8_t *body;                   /* reused between frames; grows as bytes arrive */
    size_t body_cap;
    size_t body_dirty;               /* bytes of body written since it was wiped */
    const uint8_t *frame;            /* the last complete frame's payload */
    int frame_ready;
    uint64_t frames;                 /* complete frames so far */
} framing_decoder;

void framing_decoder_init(framing_decoder *d, uint32_t min_len, uint32_t max_len);

/* Changes the accepted lengths (e.g. handshake vs transport frames); applies
 * to the next length prefix. */
void framing_decoder_set_limits(framing_decoder *d, uint32_t min_len,
                                uint32_t max_len);

/*
 * Consumes bytes from data up to the end of at most one frame and reports
 * *consumed. On FRAME the payload is available through framing_decoder_frame()
 * until the next feed; it may point into data (a whole frame inside one chunk
 * is not copied), so keep data alive until then. On TOO_LARGE / TOO_SMALL,
 * framing_decoder_length() is the offending prefix; the decoder is then dead.
 */
framing_status framing_decoder_feed(framing_decoder *d, const uint8_t *data,
                                    size_t len, size_t *consumed);

void framing_decoder_frame(const framing_decoder *d, const uint8_t **payload,
                           size_t *len);

/* 1 when the last frame's payload is in the decoder's own body buffer (then
 * its owner may change it in place until the next feed), 0 when it points
 * into the caller's data. */
int framing_decoder_frame_in_body(const framing_decoder *d);

/* The capacity a buffer of cap bytes grows to when it must hold need bytes:
 * cap when it does already; else double, at least need, at most limit
 * (need <= limit). */
size_t framing_grow_size(size_t cap, size_t need, size_t limit);

/* Grows the body buffer (wiping the old block) so it holds at least len
 * bytes, at most the limit max_len: the room for a payload the caller
 * writes itself (see framing_decoder_body). -1 when out of memory. */
int framing_decoder_reserve(framing_decoder *d, size_t len);

/* Inside a frame's payload (its length known, not all of it held): the
 * capacity left for it in the body buffer, at *room (0 when the buffer must
 * grow first: framing_decoder_reserve(d, body bytes held + wanted)), and the
 * bytes of the payload still to come. Outside a payload both are 0. Reading
 * straight into *room bytes at *dst saves the copy through feed; then call
 * framing_decoder_commit. */
size_t framing_decoder_room(framing_decoder *d, uint8_t **dst, size_t *room);

/* Between frames: the body buffer grown to len bytes, for the caller to
 * write a payload of len bytes into (the bytes count as used: they are
 * wiped with the rest). NULL when out of memory. */
uint8_t *framing_decoder_scratch(framing_decoder *d, size_t len);

/* n bytes were written at the room's start: NEED_MORE or FRAME. */
framing_status framing_decoder_commit(framing_decoder *d, size_t n);

/* The body capacity once n more bytes have arrived, whatever they hold
 * (the growth feed or a reserve for them would make), for budgeting. */
size_t framing_decoder_cap_after(const framing_decoder *d, size_t n);

/* The length prefix most recently read (valid once 4 header bytes arrived). */
uint32_t framing_decoder_length(const framing_decoder *d);

/* What a partial frame holds, for the truncated-frame error: header bytes
 * (0..4) and payload bytes. Both 0 means the stream ended on a boundary. */
void framing_decoder_pending(const framing_decoder *d, size_t *header_bytes,
                             size_t *payload_bytes);

/* Frees the body buffer, its used bytes wiped, when it holds more than keep
 * bytes and no partial frame is held (so one large frame does not pin its
 * buffer for good). */
void framing_decoder_trim(framing_decoder *d, size_t keep);

/* Wipes the used bytes of the body and frees it. */
void framing_decoder_free(framing_decoder *d);

#endif
