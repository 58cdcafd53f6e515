/* conn.h - the server's per-connection clocks and its eviction choice
 * (PROTOCOL.md section 9), kept free of sockets and threads so that the
 * rules can be tested on their own.
 *
 * Times are CLOCK_MONOTONIC milliseconds (conn_now_ms). A connection waits
 * for its next bytes until the earliest of:
 *   idle       between frames: quiet_since + --idle-timeout
 *   frame      a frame begun:  frame_start + --frame-timeout + length / --min-rate
 *   handshake  noise, until it completes: accepted + --frame-timeout
 * The server evicts, when full, the connection quiet longest among those
 * with no frame, message or handshake in progress (quiet for a second at
 * least), else the one inside a frame progressing slowest, below
 * --min-rate, else one quiet for less than a second.
 */
#ifndef SECUREMSG_CONN_H
#define SECUREMSG_CONN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CONN_NEVER INT64_MAX

typedef struct {
    unsigned idle_timeout;  /* seconds, 0 = none */
    unsigned frame_timeout; /* seconds, 0 = none */
    uint32_t min_rate;      /* bytes per second, >= 1 */
} conn_limits;

typedef struct {
    int64_t accepted;    /* accept() */
    int64_t quiet_since; /* end of the last frame (or accept) */
    int64_t last_bytes;  /* the last read that brought bytes */
    int64_t frame_start; /* the read that brought the partial frame's first byte; -1 = none */
    uint32_t frame_len;  /* its length prefix, 0 until all 4 bytes are in */
    int handshaking;     /* noise handshake not complete */
    int in_message;      /* noise: between the chunks of one message */
} conn_timing;

typedef enum {
    CONN_WAIT_NONE,      /* no deadline: wait forever */
    CONN_WAIT_IDLE,      /* "Idle timeout for PEER after N s" */
    CONN_WAIT_FRAME,     /* "Frame timeout for PEER after N s" */
    CONN_WAIT_HANDSHAKE, /* "Handshake timeout for PEER after N s" */
    CONN_WAIT_DRAIN      /* shutdown: close cleanly, no error line */
} conn_wait_kind;

typedef struct {
    conn_wait_kind kind;
    int64_t at;       /* CONN_NEVER for CONN_WAIT_NONE */
    unsigned seconds; /* N of the log line */
} conn_deadline;

/* Milliseconds a frame of len payload bytes may take: --frame-timeout plus
 * len / --min-rate, rounded up to the millisecond. */
uint64_t conn_frame_allowance_ms(unsigned frame_timeout, uint32_t min_rate,
                                 uint64_t len);

/* Whole seconds, rounded up. */
unsigned conn_ceil_seconds(uint64_t ms);

/* The deadline that applies now; the handshake wins a tie. */
conn_deadline conn_next_deadline(const conn_limits *l, const conn_timing *t);

/* 1 when nothing is in progress: the connection may be evicted. */
int conn_quiet(const conn_timing *t);

typedef enum {
    CONN_SLOT_FREE = 0, /* so that a zeroed table is all free */
    CONN_SLOT_BUSY,     /* a frame, message or handshake in progress */
    CONN_SLOT_QUIET,    /* between frames: may be evicted */
    CONN_SLOT_EVICTED   /* chosen; its thread ends without an error line */
} conn_slot_state;

/* The fields a connection's thread changes are atomic: it marks itself
 * busy or quiet without the server's lock, and the acceptor claims a victim
 * with a compare-and-exchange on state. */
typedef struct {
    _Atomic(conn_slot_state) state;
    int fd;
    _Atomic int64_t quiet_since;
    /* BUSY inside a unit (a frame begun, a noise message between chunks, a
     * noise handshake): the read that brought its first byte (handshake:
     * accept), -1 = not inside one; and the bytes of it received so far. */
    _Atomic int64_t unit_start;
    _Atomic uint64_t unit_bytes;
    const char *peer; /* for the eviction line */
} conn_slot;

typedef enum {
    CONN_EVICT_NONE, /* nobody qualifies: refuse the new client */
    CONN_EVICT_IDLE, /* "idle N s" */
    CONN_EVICT_SLOW  /* "R bytes/s in a frame" */
} conn_evict_reason;

typedef struct {
    long slot; /* -1 with CONN_EVICT_NONE */
    conn_evict_reason reason;
    uint64_t value; /* IDLE: whole seconds quiet; SLOW: R */
} conn_victim;

/* A unit's progress rate in bytes per second: floor(bytes * 1000 /
 * max(now - start, 1000)). */
uint64_t conn_unit_rate(uint64_t bytes, int64_t start, int64_t now);

/* Quiet this long before quiet comes first in the eviction order. */
#define CONN_QUIET_MIN_MS 1000

/* The connection a full server evicts (PROTOCOL.md 9): the QUIET slot with
 * the oldest quiet_since, if that is CONN_QUIET_MIN_MS ago or more; else
 * the BUSY slot inside a unit with the lowest rate, provided that rate is
 * below min_rate; else the QUIET slot quiet longest. The lowest index wins
 * a tie. */
conn_victim conn_choose_victim(const conn_slot *slots, size_t n, int64_t now,
                               uint32_t min_rate);

/* The --max-clients default for an open-file soft limit: the limit less 64
 * descriptors kept for the listener, stdio and pipes, within 1..max. */
unsigned conn_default_max_clients(uint64_t soft_limit, unsigned max);

int64_t conn_now_ms(void);

#endif
