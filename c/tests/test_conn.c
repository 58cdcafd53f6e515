/* test_conn.c - deadlines and the eviction choice (conn.h, PROTOCOL.md 9). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "conn.h"

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

/* ---- the shared case table (tests/vectors/conn_cases.tsv) ----------------- */

#define CASES_PATH "../tests/vectors/conn_cases.tsv"
#define CASE_FIELDS_MAX 64
#define CASE_LINE_MAX 4096

/* Splits line at tabs in place; returns the number of fields. */
static size_t split_tabs(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;

    while (n < max) {
        fields[n++] = p;
        p = strchr(p, '\t');
        if (p == NULL)
            break;
        *p++ = '\0';
    }
    return n;
}

/* A whole decimal integer, or the case fails. */
static int64_t num(const char *text, int *ok)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        *ok = 0;
    return (int64_t)v;
}

static conn_wait_kind wait_kind(const char *name, int *ok)
{
    static const char *const names[] = {"none", "idle", "frame", "handshake"};
    static const conn_wait_kind kinds[] = {CONN_WAIT_NONE, CONN_WAIT_IDLE,
                                           CONN_WAIT_FRAME, CONN_WAIT_HANDSHAKE};
    size_t i;

    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return kinds[i];
    *ok = 0;
    return CONN_WAIT_DRAIN;
}

static void deadline_case(char **f, size_t n)
{
    int ok = n == 15;
    conn_limits l;
    conn_timing t;
    conn_deadline d;
    conn_wait_kind kind;
    int64_t at;

    if (!ok)
        goto bad;
    l.idle_timeout = (unsigned)num(f[2], &ok);
    l.frame_timeout = (unsigned)num(f[3], &ok);
    l.min_rate = (uint32_t)num(f[4], &ok);
    t.accepted = num(f[5], &ok);
    t.quiet_since = num(f[6], &ok);
    t.last_bytes = num(f[7], &ok);
    t.frame_start = num(f[8], &ok);
    t.frame_len = (uint32_t)num(f[9], &ok);
    t.handshaking = (int)num(f[10], &ok);
    t.in_message = (int)num(f[11], &ok);
    kind = wait_kind(f[12], &ok);
    at = num(f[13], &ok);
    if (!ok)
        goto bad;
    d = conn_next_deadline(&l, &t);
    CHECK(d.kind == kind);
    CHECK(d.at == (kind == CONN_WAIT_NONE ? CONN_NEVER : at));
    CHECK(d.seconds == (unsigned)num(f[14], &ok));
    /* quiet exactly when nothing is in progress */
    CHECK(conn_quiet(&t) == (t.frame_start < 0 && !t.handshaking && !t.in_message));
    if (d.kind != kind || d.at != (kind == CONN_WAIT_NONE ? CONN_NEVER : at))
        fprintf(stderr, "  case: %s\n", f[1]);
    return;
bad:
    CHECK(!"malformed deadline row");
    fprintf(stderr, "  case: %s\n", n > 1 ? f[1] : f[0]);
}

/* One SLOT field of an evict row. */
static int parse_slot(conn_slot *slot, char *text)
{
    char *a, *b;
    int ok = 1;

    memset(slot, 0, sizeof *slot);
    slot->unit_start = -1;
    a = strchr(text, ':');
    if (a != NULL)
        *a++ = '\0';
    if (strcmp(text, "free") == 0 && a == NULL) {
        slot->state = CONN_SLOT_FREE;
    } else if (strcmp(text, "busy") == 0 && a == NULL) {
        slot->state = CONN_SLOT_BUSY;
    } else if (strcmp(text, "evicted") == 0 && a == NULL) {
        slot->state = CONN_SLOT_EVICTED;
    } else if (strcmp(text, "quiet") == 0 && a != NULL) {
        slot->state = CONN_SLOT_QUIET;
        slot->quiet_since = num(a, &ok);
    } else if (strcmp(text, "unit") == 0 && a != NULL &&
               (b = strchr(a, ':')) != NULL) {
        *b++ = '\0';
        slot->state = CONN_SLOT_BUSY;
        slot->unit_start = num(a, &ok);
        slot->unit_bytes = (uint64_t)num(b, &ok);
    } else {
        ok = 0;
    }
    return ok ? 0 : -1;
}

static void evict_case(char **f, size_t n)
{
    conn_slot slots[CASE_FIELDS_MAX];
    conn_evict_reason reason = CONN_EVICT_NONE;
    conn_victim v;
    int64_t now, want_slot, want_value;
    uint32_t min_rate;
    size_t i, count;
    int ok = n >= 8;

    if (!ok)
        goto bad;
    now = num(f[2], &ok);
    min_rate = (uint32_t)num(f[3], &ok);
    want_slot = num(f[4], &ok);
    if (strcmp(f[5], "idle") == 0)
        reason = CONN_EVICT_IDLE;
    else if (strcmp(f[5], "slow") == 0)
        reason = CONN_EVICT_SLOW;
    else if (strcmp(f[5], "none") != 0)
        ok = 0;
    want_value = num(f[6], &ok);
    count = n - 7;
    for (i = 0; i < count; i++)
        if (parse_slot(&slots[i], f[7 + i]) < 0)
            ok = 0;
    if (!ok)
        goto bad;
    v = conn_choose_victim(slots, count, now, min_rate);
    CHECK(v.slot == want_slot);
    CHECK(v.reason == reason);
    CHECK(v.value == (uint64_t)want_value);
    if (v.slot != want_slot || v.reason != reason || v.value != (uint64_t)want_value)
        fprintf(stderr, "  case: %s (got slot %ld, value %llu)\n", f[1], v.slot,
                (unsigned long long)v.value);
    return;
bad:
    CHECK(!"malformed evict row");
    fprintf(stderr, "  case: %s\n", n > 1 ? f[1] : f[0]);
}

static void test_case_table(void)
{
    FILE *fp = fopen(CASES_PATH, "r");
    char line[CASE_LINE_MAX], *fields[CASE_FIELDS_MAX + 8];
    size_t n, len, deadlines = 0, evictions = 0;

    CHECK(fp != NULL);
    if (fp == NULL)
        return;
    while (fgets(line, sizeof line, fp) != NULL) {
        len = strlen(line);
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        n = split_tabs(line, fields, sizeof fields / sizeof fields[0]);
        if (strcmp(fields[0], "deadline") == 0) {
            deadline_case(fields, n);
            deadlines++;
        } else if (strcmp(fields[0], "evict") == 0) {
            evict_case(fields, n);
            evictions++;
        } else {
            CHECK(!"unknown row kind");
        }
    }
    fclose(fp);
    /* the table was read, not just opened */
    CHECK(deadlines >= 10);
    CHECK(evictions >= 10);
}

static void test_unit_rate(void)
{
    CHECK(conn_unit_rate(2, 1000, 1000) == 2);       /* under 1 s: 1 s */
    CHECK(conn_unit_rate(65536, 0, 2000) == 32768);
    CHECK(conn_unit_rate(5, 2000, 1000) == 5);       /* clock behind: 1 s */
    CHECK(conn_unit_rate(UINT32_MAX, 0, 1000) == UINT32_MAX);
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
    RUN_TEST(test_case_table);
    RUN_TEST(test_unit_rate);
    RUN_TEST(test_default_max_clients);
    RUN_TEST(test_now_is_monotonic);
    return check_report("test_conn");
}
