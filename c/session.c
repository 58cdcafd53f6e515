/* session.c - xor and Noise message layers over framing (sans-io). */
#include "session.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

#define SESSION_MARKER_MORE 0x00
#define SESSION_MARKER_LAST 0x01

int session_global_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

static session_event fail(session *s, session_error_kind kind,
                          const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static session_event fail(session *s, session_error_kind kind,
                          const char *fmt, ...)
{
    va_list ap;

    s->state = SESSION_STATE_FAILED;
    s->error.kind = kind;
    va_start(ap, fmt);
    vsnprintf(s->error.reason, sizeof s->error.reason, fmt, ap);
    va_end(ap);
    return SESSION_ERROR;
}

/* Grows *buf to at least need bytes; the buffers are reused across messages,
 * so the hot path allocates nothing once they have reached their size. For
 * wire bytes only: realloc frees the old block without wiping it. */
static int reserve(uint8_t **buf, size_t *cap, size_t need)
{
    uint8_t *grown;
    size_t want;

    if (need <= *cap)
        return 0;
    want = framing_grow_size(*cap < 64 ? 64 : *cap, need, SIZE_MAX);
    grown = realloc(*buf, want);
    if (grown == NULL)
        return -1;
    *buf = grown;
    *cap = want;
    return 0;
}

/* The noise reassembly buffer grown to hold need bytes (at most the message
 * limit): keeps the bytes so far, and wipes the bytes the old block held
 * before freeing it so no copy of a message is left in the heap. */
static int reserve_msg(session *s, size_t need)
{
    uint8_t *grown;
    size_t want;

    if (need <= s->msg_cap)
        return 0;
    want = framing_grow_size(s->msg_cap, need, s->max_message);
    grown = malloc(want);
    if (grown == NULL)
        return -1;
    if (s->msg != NULL) {
        if (s->msg_len > 0)
            memcpy(grown, s->msg, s->msg_len);
        sodium_memzero(s->msg, s->msg_dirty);
        free(s->msg);
    }
    s->msg = grown;
    s->msg_cap = want;
    s->msg_dirty = s->msg_len;
    return 0;
}

static int noise_init(session *s, const uint8_t *psk, size_t psk_len)
{
    if (psk_len != NOISE_PSKLEN)
        return -1;
    s->chunk = malloc(NOISE_MAX_MESSAGE);
    if (s->chunk == NULL)
        return -1;
    if (noise_handshake_init(&s->hs, s->initiator, NOISE_PROTOCOL_NAME,
                             (const uint8_t *)NOISE_PROLOGUE,
                             strlen(NOISE_PROLOGUE), psk, NULL) < 0)
        return -1;
    /* Handshake messages are exactly 48 bytes: refuse anything else before
     * reading its body (a peer speaking xor fails here). */
    framing_decoder_init(&s->decoder, NOISE_HANDSHAKE_MESSAGE_LEN,
                         NOISE_HANDSHAKE_MESSAGE_LEN);
    s->state = SESSION_STATE_HANDSHAKE;
    return 0;
}

int session_init(session *s, session_cipher cipher, int initiator,
                 const uint8_t *key, size_t key_len, uint32_t max_message)
{
    memset(s, 0, sizeof *s);
    s->cipher = cipher;
    s->initiator = initiator;
    s->max_message = max_message;
    if (cipher == SESSION_NOISE) {
        if (noise_init(s, key, key_len) < 0)
            goto fail;
        return 0;
    }
    if (key_len == 0)
        goto fail;
    s->key = malloc(key_len);
    if (s->key == NULL)
        goto fail;
    memcpy(s->key, key, key_len);
    s->key_len = key_len;
    framing_decoder_init(&s->decoder, 0, max_message);
    s->state = SESSION_STATE_READY;
    return 0;

fail:
    session_free(s);
    return -1;
}

int session_ready(const session *s)
{
    return s->state == SESSION_STATE_READY;
}

void session_message(const session *s, const uint8_t **msg, size_t *len)
{
    static const uint8_t empty[1]; /* never hand out NULL, even for "" */

    *msg = s->msg_complete && s->view != NULL ? s->view : empty;
    *len = s->msg_complete ? s->msg_len : 0;
}

void session_output(const session *s, const uint8_t **out, size_t *out_len)
{
    *out = s->out;
    *out_len = s->out_len;
}

size_t session_sealed_payload(const session *s)
{
    return s->sealed_payload;
}

int session_in_message(const session *s)
{
    return s->in_message;
}

const session_error *session_error_info(const session *s)
{
    return &s->error;
}

void session_pending(const session *s, size_t *header_bytes,
                     size_t *payload_bytes, uint32_t *frame_len)
{
    framing_decoder_pending(&s->decoder, header_bytes, payload_bytes);
    *frame_len = *header_bytes == FRAMING_HEADER_LEN
                     ? framing_decoder_length(&s->decoder) : 0;
}

uint64_t session_unit_bytes(const session *s)
{
    size_t header, payload;

    framing_decoder_pending(&s->decoder, &header, &payload);
    return (uint64_t)header + payload + (s->in_message ? s->msg_len : 0);
}

/* ---- xor ---------------------------------------------------------------- */

/* The plaintext goes into the decoder's frame buffer: in place when the
 * frame was gathered there, else copied from the caller's bytes while
 * decrypting. One buffer per connection, whatever the frame size. */
static session_event xor_open(session *s, const uint8_t *payload, size_t len)
{
    uint8_t *plain;

    if (len == 0) {
        s->view = NULL;
    } else if (framing_decoder_frame_in_body(&s->decoder)) {
        plain = s->decoder.body;
        crypto_xor_apply(plain, plain, len, s->key, s->key_len);
        s->view = plain;
    } else {
        plain = framing_decoder_scratch(&s->decoder, len);
        if (plain == NULL)
            return fail(s, SESSION_ERR_NO_MEMORY, "out of memory");
        crypto_xor_apply(plain, payload, len, s->key, s->key_len);
        s->view = plain;
    }
    s->msg_len = len;
    s->msg_complete = 1;
    return SESSION_MESSAGE;
}

static int xor_seal(session *s, const uint8_t *msg, size_t len)
{
    if (reserve(&s->out, &s->out_cap, FRAMING_HEADER_LEN + len) < 0)
        return -1;
    framing_put_header(s->out, (uint32_t)len);
    crypto_xor_apply(s->out + FRAMING_HEADER_LEN, msg, len, s->key, s->key_len);
    s->out_len = FRAMING_HEADER_LEN + len;
    s->sealed_payload = len;
    return 0;
}

/* ---- noise -------------------------------------------------------------- */

static int put_frame_header(session *s, size_t payload_len)
{
    if (reserve(&s->out, &s->out_cap, s->out_len + FRAMING_HEADER_LEN + payload_len) < 0)
        return -1;
    framing_put_header(s->out + s->out_len, (uint32_t)payload_len);
    s->out_len += FRAMING_HEADER_LEN;
    return 0;
}

/* Appends one handshake message frame to s->out. */
static int handshake_write(session *s)
{
    size_t len = 0;

    if (put_frame_header(s, NOISE_HANDSHAKE_MESSAGE_LEN) < 0)
        return -1;
    if (noise_handshake_write(&s->hs, s->out + s->out_len, &len,
                              NOISE_HANDSHAKE_MESSAGE_LEN, NULL, 0) < 0 ||
        len != NOISE_HANDSHAKE_MESSAGE_LEN)
        return -1;
    s->out_len += len;
    return 0;
}

static int handshake_finish(session *s)
{
    uint8_t hash[NOISE_HASHLEN];
    int rc = noise_handshake_split(&s->hs, &s->tx, &s->rx, hash);

    sodium_memzero(hash, sizeof hash);
    if (rc < 0)
        return -1;
    framing_decoder_set_limits(&s->decoder, SESSION_NOISE_MIN_FRAME,
                               NOISE_MAX_MESSAGE);
    s->state = SESSION_STATE_READY;
    return 0;
}

static session_event noise_handshake_frame(session *s, const uint8_t *payload,
                                           size_t len)
{
    uint8_t empty[1];
    size_t payload_len = 0;

    if (noise_handshake_read(&s->hs, empty, &payload_len, 0, payload, len) < 0)
        return fail(s, SESSION_ERR_HANDSHAKE, "authentication failed (wrong key, "
                    "tampered message or other cipher)");
    if (s->initiator) {
        if (handshake_finish(s) < 0)
            return fail(s, SESSION_ERR_HANDSHAKE, "split failed");
        return SESSION_READY;
    }
    s->out_len = 0;
    if (handshake_write(s) < 0 || handshake_finish(s) < 0)
        return fail(s, SESSION_ERR_HANDSHAKE, "cannot write handshake message 2");
    return SESSION_SEND;
}

static session_event noise_transport_frame(session *s, const uint8_t *payload,
                                           size_t len)
{
    size_t plain_len = len - NOISE_TAGLEN, data_len = plain_len - 1;
    uint8_t marker;

    if (s->msg_complete) {
        s->msg_len = 0;
        s->msg_complete = 0;
    }
    if (noise_cipher_decrypt(&s->rx, s->chunk, NULL, 0, payload, len) < 0)
        return fail(s, SESSION_ERR_DECRYPT, "authentication failed");
    marker = s->chunk[0];
    if (marker != SESSION_MARKER_MORE && marker != SESSION_MARKER_LAST)
        return fail(s, SESSION_ERR_DECRYPT, "bad chunk marker 0x%02x", marker);
    if (data_len > s->max_message - s->msg_len) {
        s->error.limit = s->max_message;
        return fail(s, SESSION_ERR_MESSAGE_TOO_LARGE, "message too large");
    }
    if (reserve_msg(s, s->msg_len + data_len) < 0)
        return fail(s, SESSION_ERR_NO_MEMORY, "out of memory");
    if (data_len > 0)
        memcpy(s->msg + s->msg_len, s->chunk + 1, data_len);
    s->msg_len += data_len;
    if (s->msg_len > s->msg_dirty)
        s->msg_dirty = s->msg_len;
    s->view = s->msg;
    sodium_memzero(s->chunk, plain_len);
    if (marker == SESSION_MARKER_MORE) {
        s->in_message = 1;
        return SESSION_NEED_MORE;
    }
    s->in_message = 0;
    s->msg_complete = 1;
    return SESSION_MESSAGE;
}

static int noise_seal(session *s, const uint8_t *msg, size_t len)
{
    size_t done = 0, take;
    int rc = 0;

    s->out_len = 0;
    s->sealed_payload = 0;
    do {
        take = len - done < SESSION_NOISE_CHUNK_DATA ? len - done
                                                     : SESSION_NOISE_CHUNK_DATA;
        s->chunk[0] = done + take == len ? SESSION_MARKER_LAST : SESSION_MARKER_MORE;
        if (take > 0)
            memcpy(s->chunk + 1, msg + done, take);
        if (put_frame_header(s, 1 + take + NOISE_TAGLEN) < 0 ||
            noise_cipher_encrypt(&s->tx, s->out + s->out_len, NULL, 0, s->chunk,
                                 1 + take) < 0)
            rc = -1;
        /* wipe only what this chunk used: a full 64 KiB wipe per message
         * would cost more than the encryption of a short one */
        sodium_memzero(s->chunk, 1 + take);
        if (rc < 0)
            return -1;
        s->out_len += 1 + take + NOISE_TAGLEN;
        s->sealed_payload += 1 + take + NOISE_TAGLEN;
        done += take;
    } while (done < len);
    return 0;
}

int session_start(session *s, const uint8_t **out, size_t *out_len)
{
    s->out_len = 0;
    if (s->cipher == SESSION_NOISE && s->initiator &&
        s->state == SESSION_STATE_HANDSHAKE && handshake_write(s) < 0) {
        fail(s, SESSION_ERR_HANDSHAKE, "cannot write handshake message 1");
        return -1;
    }
    *out = s->out;
    *out_len = s->out_len;
    return 0;
}

/* A length prefix the decoder refused, turned into the right error (the
 * reasons read as in the Python implementation). */
static session_event bad_length(session *s)
{
    uint32_t len = framing_decoder_length(&s->decoder);

    if (s->cipher == SESSION_NOISE && s->state == SESSION_STATE_HANDSHAKE)
        return fail(s, SESSION_ERR_HANDSHAKE,
                    "expected a %u-byte handshake message, got %lu bytes "
                    "(is the peer in xor mode?)",
                    NOISE_HANDSHAKE_MESSAGE_LEN, (unsigned long)len);
    if (s->cipher == SESSION_NOISE && len < SESSION_NOISE_MIN_FRAME)
        return fail(s, SESSION_ERR_DECRYPT,
                    "frame of %lu bytes is not a transport message (%u..%u bytes)",
                    (unsigned long)len, SESSION_NOISE_MIN_FRAME, NOISE_MAX_MESSAGE);
    s->error.length = len;
    s->error.limit = s->decoder.max_len;
    return fail(s, SESSION_ERR_FRAME_TOO_LARGE, "frame too large");
}

/* What a decoder status means for the session. */
static session_event on_framing(session *s, framing_status st)
{
    const uint8_t *payload;
    size_t payload_len;

    switch (st) {
    case FRAMING_NEED_MORE:
        return SESSION_NEED_MORE;
    case FRAMING_TOO_LARGE:
    case FRAMING_TOO_SMALL:
        return bad_length(s);
    case FRAMING_NO_MEMORY:
        return fail(s, SESSION_ERR_NO_MEMORY, "out of memory");
    case FRAMING_FRAME:
        break;
    }
    framing_decoder_frame(&s->decoder, &payload, &payload_len);
    if (s->cipher == SESSION_XOR)
        return xor_open(s, payload, payload_len);
    if (s->state == SESSION_STATE_HANDSHAKE)
        return noise_handshake_frame(s, payload, payload_len);
    return noise_transport_frame(s, payload, payload_len);
}

session_event session_feed(session *s, const uint8_t *data, size_t len,
                           size_t *consumed)
{
    *consumed = 0;
    if (s->state == SESSION_STATE_FAILED)
        return SESSION_ERROR;
    if (s->cipher == SESSION_XOR)
        s->msg_complete = 0;
    return on_framing(s, framing_decoder_feed(&s->decoder, data, len, consumed));
}

size_t session_room(session *s, uint8_t **dst, size_t *room)
{
    if (s->state == SESSION_STATE_FAILED) {
        *dst = NULL;
        *room = 0;
        return 0;
    }
    return framing_decoder_room(&s->decoder, dst, room);
}

int session_reserve_room(session *s, size_t n)
{
    size_t header, payload;

    framing_decoder_pending(&s->decoder, &header, &payload);
    return framing_decoder_reserve(&s->decoder, payload + n);
}

session_event session_commit(session *s, size_t n)
{
    if (s->state == SESSION_STATE_FAILED)
        return SESSION_ERROR;
    if (s->cipher == SESSION_XOR)
        s->msg_complete = 0;
    return on_framing(s, framing_decoder_commit(&s->decoder, n));
}

size_t session_unit_cap(const session *s)
{
    return s->cipher == SESSION_XOR ? s->decoder.body_cap : s->msg_cap;
}

size_t session_cap_after(const session *s, size_t n)
{
    size_t base = s->in_message ? s->msg_len : 0, header, payload;

    if (s->cipher == SESSION_XOR)
        return framing_decoder_cap_after(&s->decoder, n);
    /* noise: the frame's payload so far and n more bytes, all message data
     * at most (the tag and marker only make it less) */
    framing_decoder_pending(&s->decoder, &header, &payload);
    n = n > SIZE_MAX - payload ? SIZE_MAX : n + payload;
    if (n > s->max_message - base)
        n = s->max_message - base;
    return framing_grow_size(s->msg_cap, base + n, s->max_message);
}

int session_seal(session *s, const uint8_t *msg, size_t len,
                 const uint8_t **out, size_t *out_len)
{
    int rc;

    if (s->state != SESSION_STATE_READY || len > s->max_message) {
        s->error.kind = SESSION_ERR_MESSAGE_TOO_LARGE;
        s->error.limit = s->max_message;
        return -1;
    }
    rc = s->cipher == SESSION_XOR ? xor_seal(s, msg, len) : noise_seal(s, msg, len);
    if (rc < 0)
        return -1;
    *out = s->out;
    *out_len = s->out_len;
    return 0;
}

uint64_t session_frames(const session *s)
{
    return s->decoder.frames;
}

void session_trim(session *s, size_t keep)
{
    framing_decoder_trim(&s->decoder, keep);
    if (s->cipher == SESSION_XOR && s->decoder.body == NULL) {
        s->view = NULL; /* the last message lived there */
        s->msg_complete = 0;
    }
    if (s->in_message)
        return; /* the message so far lives in s->msg */
    if (s->msg_cap > keep) {
        sodium_memzero(s->msg, s->msg_dirty);
        free(s->msg);
        s->msg = NULL;
        s->msg_cap = s->msg_dirty = s->msg_len = 0;
        s->msg_complete = 0;
        s->view = NULL;
    }
    if (s->out_cap > keep) {
        sodium_memzero(s->out, s->out_cap);
        free(s->out);
        s->out = NULL;
        s->out_cap = s->out_len = 0;
    }
}

void session_free(session *s)
{
    if (s->key != NULL)
        sodium_memzero(s->key, s->key_len);
    free(s->key);
    if (s->chunk != NULL)
        sodium_memzero(s->chunk, NOISE_MAX_MESSAGE);
    free(s->chunk);
    if (s->msg != NULL)
        sodium_memzero(s->msg, s->msg_dirty);
    free(s->msg);
    free(s->out);
    framing_decoder_free(&s->decoder);
    noise_handshake_wipe(&s->hs);
    noise_cipher_wipe(&s->tx);
    noise_cipher_wipe(&s->rx);
    sodium_memzero(s, sizeof *s);
}

int session_psk_from_key(uint8_t psk[NOISE_PSKLEN], const uint8_t *key,
                         size_t key_len, const uint8_t *raw32)
{
    if (raw32 != NULL) {
        memcpy(psk, raw32, NOISE_PSKLEN);
        return 0;
    }
    return noise_psk_from_passphrase(psk, key, key_len);
}
