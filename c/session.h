/* session.h - the cipher-specific message layer between framing and the
 * programs (sans-io: bytes in, bytes out, no sockets).
 *
 *   xor:   a message is one frame whose payload is the message xored with the
 *          key (PROTOCOL.md sections 1-3); no handshake.
 *   noise: a 48-byte handshake frame each way, then each message is one or
 *          more transport frames of marker byte + data (section 8).
 *
 * Use:
 *   session_init(&s, ...);
 *   session_start(&s, &out, &out_len);     initiator: handshake bytes to write
 *   loop: n = read(...); for (off = 0; off < n; off += used)
 *     switch (session_feed(&s, buf + off, n - off, &used)) {
 *     SESSION_NEED_MORE: nothing yet (read more once all n bytes are fed)
 *     SESSION_SEND:      write session_output(): the responder's handshake
 *                        reply; the responder is ready after it
 *     SESSION_READY:     the initiator's handshake is complete
 *     SESSION_MESSAGE:   session_message() is one whole message
 *     SESSION_ERROR:     session_error_info() says what; close the connection
 *     }
 *   session_seal(&s, msg, len, &out, &out_len);   frames to write, one buffer
 *   session_free(&s);                             wipes every secret
 */
#ifndef SECUREMSG_SESSION_H
#define SECUREMSG_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "framing.h"
#include "noise.h"

#define SESSION_CIPHER_NAME_XOR "xor"
#define SESSION_CIPHER_NAME_NOISE "noise (" NOISE_PROTOCOL_NAME ")"
#define SESSION_NOISE_CHUNK_DATA (NOISE_MAX_PLAINTEXT - 1) /* 65518 */
#define SESSION_NOISE_MIN_FRAME (NOISE_TAGLEN + 1)         /* 17 */

typedef enum { SESSION_XOR, SESSION_NOISE } session_cipher;

typedef enum {
    SESSION_NEED_MORE,
    SESSION_SEND,
    SESSION_READY,
    SESSION_MESSAGE,
    SESSION_ERROR
} session_event;

typedef enum {
    SESSION_ERR_NONE,
    SESSION_ERR_FRAME_TOO_LARGE,   /* length above limit (xor: --max-frame) */
    SESSION_ERR_HANDSHAKE,         /* reason */
    SESSION_ERR_DECRYPT,           /* reason */
    SESSION_ERR_MESSAGE_TOO_LARGE, /* reassembled message above limit */
    SESSION_ERR_NO_MEMORY
} session_error_kind;

typedef struct {
    session_error_kind kind;
    uint64_t length; /* FRAME_TOO_LARGE: the length prefix */
    uint64_t limit;  /* FRAME_TOO_LARGE, MESSAGE_TOO_LARGE */
    char reason[128];
} session_error;

typedef enum {
    SESSION_STATE_HANDSHAKE,
    SESSION_STATE_READY,
    SESSION_STATE_FAILED
} session_state;

typedef struct {
    session_cipher cipher;
    int initiator;
    session_state state;
    uint32_t max_message;
    uint8_t *key; /* xor key, heap copy */
    size_t key_len;
    noise_handshake hs;
    noise_cipher tx, rx;
    uint8_t *chunk; /* noise: one decrypted or to-be-encrypted chunk */
    framing_decoder decoder;
    uint8_t *msg; /* noise: the last received message (reassembled) */
    size_t msg_len, msg_cap, msg_dirty;
    const uint8_t *view; /* the last message: xor in the decoder's body, noise msg */
    int msg_complete;
    int in_message; /* noise: chunks of an unfinished message received */
    uint8_t *out; /* frames to write */
    size_t out_len, out_cap;
    size_t sealed_payload; /* payload bytes of the last sealed message */
    session_error error;
} session;

/* One-time library set-up (libsodium); 0 on success. */
int session_global_init(void);

/*
 * xor: key/key_len is the xor key (any non-empty bytes).
 * noise: key must be the NOISE_PSKLEN-byte PSK (see session_psk_from_key).
 * initiator: 1 for the client, 0 for the server. max_message: --max-frame.
 */
int session_init(session *s, session_cipher cipher, int initiator,
                 const uint8_t *key, size_t key_len, uint32_t max_message);

/* The initiator's first bytes to write (noise: handshake message 1 frame);
 * *out_len is 0 when there is nothing to send (xor, or the responder). */
int session_start(session *s, const uint8_t **out, size_t *out_len);

/* 1 once messages can be sealed and opened. */
int session_ready(const session *s);

/* Consumes input up to at most one event; see the loop above. */
session_event session_feed(session *s, const uint8_t *data, size_t len,
                           size_t *consumed);

/* After SESSION_MESSAGE: the message, valid until the next feed. */
void session_message(const session *s, const uint8_t **msg, size_t *len);

/* After SESSION_SEND: the bytes to write. */
void session_output(const session *s, const uint8_t **out, size_t *out_len);

/* Frames one message into a buffer owned by the session (valid until the
 * next seal); -1 (error set) if len is above max_message or on failure. */
int session_seal(session *s, const uint8_t *msg, size_t len,
                 const uint8_t **out, size_t *out_len);

/* Payload bytes of the frames of the last sealed message ([SEND] line). */
size_t session_sealed_payload(const session *s);

/* What a partial frame holds when the stream ends: header bytes (0..4),
 * payload bytes and, once the header is complete, the frame length. */
void session_pending(const session *s, size_t *header_bytes,
                     size_t *payload_bytes, uint32_t *frame_len);

/* Bytes received of the unit in progress: the partial frame's length and
 * payload bytes, plus (noise) the message data of its earlier chunks. */
uint64_t session_unit_bytes(const session *s);

/* 1 when the stream ended between the chunks of a noise message. */
int session_in_message(const session *s);

const session_error *session_error_info(const session *s);

/* Frames completed so far (handshake and transport). */
uint64_t session_frames(const session *s);

/* Reading straight into the frame buffer, for large payloads (no copy):
 * session_room() says how many payload bytes of the current frame are still
 * to come (0: not inside a payload, read and feed instead) and where *room
 * of them fit now; session_reserve_room(s, n) makes room for n of them
 * (the buffer grows); after writing k bytes at *dst, session_commit(s, k)
 * returns the event as session_feed would. */
size_t session_room(session *s, uint8_t **dst, size_t *room);
int session_reserve_room(session *s, size_t n);
session_event session_commit(session *s, size_t n);

/* The capacity of the buffer that holds a message as it arrives (xor: the
 * frame buffer, noise: the reassembly buffer), now and once n more bytes
 * of input have arrived: what the server's memory budget counts. */
size_t session_unit_cap(const session *s);
size_t session_cap_after(const session *s, size_t n);

/* Between messages: frees (wiped) every buffer above keep bytes, so that
 * one large message does not pin its memory for the connection's life. */
void session_trim(session *s, size_t keep);

/* Wipes keys and buffers and frees them. */
void session_free(session *s);

/*
 * The noise PSK for a configured key: raw32 (a key file of exactly 32 bytes)
 * when non-NULL, else Argon2id of the passphrase. 0 or -1.
 */
int session_psk_from_key(uint8_t psk[NOISE_PSKLEN], const uint8_t *key,
                         size_t key_len, const uint8_t *raw32);

#endif
