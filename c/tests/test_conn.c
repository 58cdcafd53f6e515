/* test_conn.c - deadlines and the eviction choice (conn.h, PROTOCOL.md 9). */
#include <stdint.h>

#include "check.h"
#include "conn.h"

static const conn_limits defaults = {.idle_timeout = 300, .frame_timeout = 10,
                                     .min_rate = 65536};

/* A connection accepted at t = 1000 ms, quiet since then. */
static conn_timing quiet_at(int64_t t)
{
    conn_timing c = {.accepted = t, .quiet_since = t, .last_bytes = t,
                     .frame_start = -1};

    return c;
}

static void test_frame_allowance(void)
{
    CHECK(conn_frame_allowance_ms(10, 65536, 0) == 10000);
    CHECK(conn_frame_allowance_ms(10, 65536, 65536) == 11000);
    CHECK(conn_frame_allowance_ms(10, 65536, 1) == 10001); /* rounded up */
    CHECK(conn_frame_allowance_ms(0, 1, 3) == 3000);
    CHECK(conn_frame_allowance_ms(10, 65536, 1048576) == 26000);
    /* the largest length prefix at the slowest rate: no overflow */
    CHECK(conn_frame_allowance_ms(86400, 1, UINT32_MAX) ==
          86400000ull + (uint64_t)UINT32_MAX * 1000);
    CHECK(conn_ceil_seconds(0) == 0);
    CHECK(conn_ceil_seconds(1) == 1);
    CHECK(conn_ceil_seconds(10000) == 10);
    CHECK(conn_ceil_seconds(10001) == 11);
}

static void test_idle_between_frames(void)
{
    conn_timing t = quiet_at(1000);
    conn_deadline d = conn_next_deadline(&defaults, &t);

    CHECK(d.kind == CONN_WAIT_IDLE);
    CHECK(d.at == 1000 + 300000);
    CHECK(d.seconds == 300);
    /* after a frame: counted from its end, not from accept */
    t.quiet_since = 5000;
    t.last_bytes = 4000;
    d = conn_next_deadline(&defaults, &t);
    CHECK(d.at == 5000 + 300000);
    CHECK(conn_quiet(&t));

    conn_limits never = defaults;
    never.idle_timeout = 0;
    d = conn_next_deadline(&never, &t);
    CHECK(d.kind == CONN_WAIT_NONE);
    CHECK(d.at == CONN_NEVER);
}

static void test_frame_deadline(void)
{
    conn_timing t = quiet_at(1000);
    conn_deadline d;

    /* two header bytes: the length is unknown, 10 s from the first byte */
    t.frame_start = 2000;
    t.last_bytes = 2500;
    d = conn_next_deadline(&defaults, &t);
    CHECK(d.kind == CONN_WAIT_FRAME);
    CHECK(d.at == 12000);
    CHECK(d.seconds == 10);
    CHECK(!conn_quiet(&t));
    /* more bytes do not move it; the length, once known, adds len / rate */
    t.last_bytes = 9000;
    t.frame_len = 100000;
    d = conn_next_deadline(&defaults, &t);
    CHECK(d.at == 2000 + 10000 + 1526); /* 100000 / 65536 s = 1525.9 ms */
    CHECK(d.seconds == 12);
    /* a short idle timeout does not cut a frame in progress */
    conn_limits short_idle = defaults;
    short_idle.idle_timeout = 1;
    d = conn_next_deadline(&short_idle, &t);
    CHECK(d.kind == CONN_WAIT_FRAME);
    /* --frame-timeout 0: no frame deadline; each wait may last the idle timeout */
    conn_limits no_frame = defaults;
    no_frame.frame_timeout = 0;
    d = conn_next_deadline(&no_frame, &t);
    CHECK(d.kind == CONN_WAIT_IDLE);
    CHECK(d.at == 9000 + 300000);
}

static void test_handshake_deadline(void)
{
    conn_timing t = quiet_at(1000);
    conn_deadline d;

    t.handshaking = 1;
    CHECK(!conn_quiet(&t));
    d = conn_next_deadline(&defaults, &t);
    CHECK(d.kind == CONN_WAIT_HANDSHAKE);
    CHECK(d.at == 11000);
    CHECK(d.seconds == 10);
    /* a partial handshake frame: still the handshake deadline (earlier) */
    t.frame_start = 3000;
    d = conn_next_deadline(&defaults, &t);
    CHECK(d.kind == CONN_WAIT_HANDSHAKE);
    CHECK(d.at == 11000);
    /* an idle timeout shorter than the handshake deadline comes first */
    conn_limits short_idle = defaults;
    t.frame_start = -1;
    short_idle.idle_timeout = 2;
    d = conn_next_deadline(&short_idle, &t);
    CHECK(d.kind == CONN_WAIT_IDLE);
    CHECK(d.at == 3000);
    /* a tie goes to the handshake */
    short_idle.idle_timeout = 10;
    d = conn_next_deadline(&short_idle, &t);
    CHECK(d.kind == CONN_WAIT_HANDSHAKE);
    /* no frame timeout: no handshake deadline either */
    conn_limits none = defaults;
    none.frame_timeout = 0;
    d = conn_next_deadline(&none, &t);
    CHECK(d.kind == CONN_WAIT_IDLE);
}

static void test_noise_between_chunks(void)
{
    conn_timing t = quiet_at(1000);
    conn_deadline d;

    t.in_message = 1; /* a MORE chunk ended; the next has not begun */
    t.last_bytes = 4000;
    t.quiet_since = 1000;
    CHECK(!conn_quiet(&t));
    d = conn_next_deadline(&defaults, &t);
    CHECK(d.kind == CONN_WAIT_IDLE);
    CHECK(d.at == 4000 + 300000);
}

static void test_choose_victim(void)
{
    conn_slot slots[6] = {
        {.state = CONN_SLOT_BUSY, .quiet_since = 10},
        {.state = CONN_SLOT_QUIET, .quiet_since = 500},
        {.state = CONN_SLOT_FREE, .quiet_since = 0},
        {.state = CONN_SLOT_QUIET, .quiet_since = 300},
        {.state = CONN_SLOT_EVICTED, .quiet_since = 1},
        {.state = CONN_SLOT_QUIET, .quiet_since = 300},
    };

    CHECK(conn_choose_victim(slots, 6) == 3); /* oldest quiet, first on a tie */
    CHECK(conn_choose_victim(slots, 3) == 1);
    CHECK(conn_choose_victim(slots, 1) == -1);
    CHECK(conn_choose_victim(slots, 0) == -1);
    slots[1].state = slots[3].state = slots[5].state = CONN_SLOT_BUSY;
    CHECK(conn_choose_victim(slots, 6) == -1);
}

static void test_default_max_clients(void)
{
    CHECK(conn_default_max_clients(1024, 100000) == 960);
    CHECK(conn_default_max_clients(20000, 100000) == 19936);
    CHECK(conn_default_max_clients(1048576, 100000) == 100000);
    CHECK(conn_default_max_clients(65, 100000) == 1);
    CHECK(conn_default_max_clients(64, 100000) == 1);
    CHECK(conn_default_max_clients(0, 100000) == 1);
}

static void test_now_is_monotonic(void)
{
    int64_t a = conn_now_ms(), b = conn_now_ms();

    CHECK(a > 0);
    CHECK(b >= a);
}

int main(void)
{
    RUN_TEST(test_frame_allowance);
    RUN_TEST(test_idle_between_frames);
    RUN_TEST(test_frame_deadline);
    RUN_TEST(test_handshake_deadline);
    RUN_TEST(test_noise_between_chunks);
    RUN_TEST(test_choose_victim);
    RUN_TEST(test_default_max_clients);
    RUN_TEST(test_now_is_monotonic);
    return check_report("test_conn");
}
