/* conn.c - deadlines and the eviction choice (see conn.h). */
#include "conn.h"

#include <time.h>

#define CONN_FD_RESERVE 64u

uint64_t conn_frame_allowance_ms(unsigned frame_timeout, uint32_t min_rate,
                                 uint64_t len)
{
    uint64_t rate = min_rate > 0 ? min_rate : 1;

    /* len < 2^32 and rate >= 1: len * 1000 cannot overflow. */
    return (uint64_t)frame_timeout * 1000u + (len * 1000u + rate - 1) / rate;
}

unsigned conn_ceil_seconds(uint64_t ms)
{
    return (unsigned)((ms + 999u) / 1000u);
}

static conn_deadline deadline(conn_wait_kind kind, int64_t at, unsigned seconds)
{
    conn_deadline d = {.kind = kind, .at = at, .seconds = seconds};

    return d;
}

/* The frame's deadline when one is in progress, else the idle one. */
static conn_deadline frame_or_idle(const conn_limits *l, const conn_timing *t)
{
    uint64_t ms;

    if (t->frame_start >= 0 && l->frame_timeout > 0) {
        ms = conn_frame_allowance_ms(l->frame_timeout, l->min_rate, t->frame_len);
        return deadline(CONN_WAIT_FRAME, t->frame_start + (int64_t)ms,
                        conn_ceil_seconds(ms));
    }
    if (l->idle_timeout == 0)
        return deadline(CONN_WAIT_NONE, CONN_NEVER, 0);
    /* Mid-message or mid-handshake with no frame deadline: each wait for
     * bytes may last the idle timeout, as before. */
    return deadline(CONN_WAIT_IDLE,
                    (conn_quiet(t) ? t->quiet_since : t->last_bytes) +
                        (int64_t)l->idle_timeout * 1000,
                    l->idle_timeout);
}

conn_deadline conn_next_deadline(const conn_limits *l, const conn_timing *t)
{
    conn_deadline d = frame_or_idle(l, t);
    int64_t hs_end;

    if (t->handshaking && l->frame_timeout > 0) {
        hs_end = t->accepted + (int64_t)l->frame_timeout * 1000;
        if (hs_end <= d.at)
            return deadline(CONN_WAIT_HANDSHAKE, hs_end, l->frame_timeout);
    }
    return d;
}

int conn_quiet(const conn_timing *t)
{
    return t->frame_start < 0 && !t->handshaking && !t->in_message;
}

uint64_t conn_unit_rate(uint64_t bytes, int64_t start, int64_t now)
{
    uint64_t elapsed = now > start ? (uint64_t)(now - start) : 0;

    if (elapsed < 1000)
        elapsed = 1000;
    /* bytes of one frame or message stay far below 2^54: no overflow */
    return bytes * 1000u / elapsed;
}

static conn_victim victim(long slot, conn_evict_reason reason, uint64_t value)
{
    conn_victim v = {.slot = slot, .reason = reason, .value = value};

    return v;
}

/* The QUIET slot quiet longest among those quiet since quiet_before or
 * earlier, -1 if none. */
static long quiet_longest(const conn_slot *slots, size_t n, int64_t quiet_before)
{
    long best = -1;
    size_t i;

    for (i = 0; i < n; i++) {
        if (slots[i].state != CONN_SLOT_QUIET || slots[i].quiet_since > quiet_before)
            continue;
        if (best < 0 || slots[i].quiet_since < slots[best].quiet_since)
            best = (long)i;
    }
    return best;
}

static conn_victim idle_victim(const conn_slot *slots, long i, int64_t now)
{
    return victim(i, CONN_EVICT_IDLE,
                  now > slots[i].quiet_since
                      ? (uint64_t)(now - slots[i].quiet_since) / 1000u : 0);
}

conn_victim conn_choose_victim(const conn_slot *slots, size_t n, int64_t now,
                               uint32_t min_rate)
{
    long best = quiet_longest(slots, n, now - CONN_QUIET_MIN_MS);
    uint64_t rate, best_rate = 0;
    size_t i;

    if (best >= 0)
        return idle_victim(slots, best, now);
    for (i = 0; i < n; i++) {
        if (slots[i].state != CONN_SLOT_BUSY || slots[i].unit_start < 0)
            continue;
        rate = conn_unit_rate(slots[i].unit_bytes, slots[i].unit_start, now);
        if (rate < min_rate && (best < 0 || rate < best_rate)) {
            best = (long)i;
            best_rate = rate;
        }
    }
    if (best >= 0)
        return victim(best, CONN_EVICT_SLOW, best_rate);
    /* a connection quiet for less than CONN_QUIET_MIN_MS: often a client
     * just accepted, about to send; only when nobody else qualifies */
    best = quiet_longest(slots, n, INT64_MAX);
    if (best >= 0)
        return idle_victim(slots, best, now);
    return victim(-1, CONN_EVICT_NONE, 0);
}

unsigned conn_default_max_clients(uint64_t soft_limit, unsigned max)
{
    if (soft_limit <= CONN_FD_RESERVE)
        return 1;
    if (soft_limit - CONN_FD_RESERVE > max)
        return max;
    return (unsigned)(soft_limit - CONN_FD_RESERVE);
}

int64_t conn_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
