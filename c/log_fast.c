/* log_fast.c - the fast path of log_escape() for the log lines (PROTOCOL.md
 * section 6): the same text, for messages of up to 1 MiB.
 *
 * Read log_escape() in log.c for the rule; this file only makes it fast.
 * log_emit() in log.c is the one place that chooses it, and
 * tests/test_log.c checks it against the reference on random inputs.
 *
 * It works on "units": one input byte, or one well-formed multi-byte UTF-8
 * sequence. Two facts keep it fast:
 * - A sequence that is escaped (C1 controls, U+2028, U+2029) prints exactly as
 *   its bytes would one at a time: its lead byte does not start a sequence we
 *   copy, and continuation bytes alone are always "\xHH". So every unit is
 *   either a copied sequence or one byte whose printed form a 256-entry table
 *   holds, and random binary data runs through a table lookup with few
 *   branches (it would mispredict nearly every one).
 * - Runs of printable ASCII, by far the most common, are checked and copied a
 *   word (8 bytes) at a time.
 */
#include "log_fast.h"

#include <pthread.h>
#include <string.h>

typedef struct {
    char text[LOG_ESCAPE_MAX_PER_BYTE]; /* the byte's printed form ... */
    uint8_t len;                        /* ... of 1, 2 or 4 bytes */
    uint8_t need;                       /* lead byte: its sequence's length */
    uint8_t lo, span;                   /* lead byte: 2nd byte in lo..lo+span */
} escape_entry;

static escape_entry escape_table[256];
static pthread_once_t escape_table_once = PTHREAD_ONCE_INIT;

static void put_hex(char *dst, uint8_t byte)
{
    static const char hex[] = "0123456789abcdef";

    dst[0] = '\\';
    dst[1] = 'x';
    dst[2] = hex[byte >> 4];
    dst[3] = hex[byte & 0x0f];
}

/* Lead bytes (RFC 3629): c0, c1 (overlong) and f5.. (above U+10FFFF) lead
 * nothing; e0, f0 exclude overlongs, ed surrogates, f4 above U+10FFFF. And
 * c2 80..c2 9f (C1 controls) print escaped, so c2 copies only c2 a0..c2 bf. */
static void escape_table_lead(escape_entry *e, unsigned b)
{
    uint8_t lo = 0x80, hi = 0xbf;

    if (b >= 0xc2 && b <= 0xdf)
        e->need = 2;
    else if (b >= 0xe0 && b <= 0xef)
        e->need = 3;
    else if (b >= 0xf0 && b <= 0xf4)
        e->need = 4;
    if (b == 0xc2 || b == 0xe0)
        lo = 0xa0;
    else if (b == 0xed)
        hi = 0x9f;
    else if (b == 0xf0)
        lo = 0x90;
    else if (b == 0xf4)
        hi = 0x8f;
    e->lo = lo;
    e->span = (uint8_t)(hi - lo);
}

/* Each byte on its own: rules 1, 2 and 4 of PROTOCOL.md section 6. */
static void escape_table_build(void)
{
    static const char pairs[] = "\\\\\nn\rr\tt"; /* byte, then its letter */
    unsigned b;
    size_t k;

    for (b = 0; b < 256; b++) {
        escape_entry *e = &escape_table[b];

        if (b >= 0x20 && b <= 0x7e) {
            e->text[0] = (char)b;
            e->len = 1;
        } else {
            put_hex(e->text, (uint8_t)b);
            e->len = 4;
        }
        escape_table_lead(e, b);
    }
    for (k = 0; k < sizeof pairs - 1; k += 2) {
        escape_entry *e = &escape_table[(uint8_t)pairs[k]];

        e->text[0] = '\\';
        e->text[1] = pairs[k + 1];
        e->len = 2;
    }
}

#define WORD_ONES 0x0101010101010101ull
#define WORD_HIGHS 0x8080808080808080ull

/* Whether all 8 bytes of w print as themselves (0x20..0x7e but '\'). Each
 * test is exact for the word as a whole, whatever the byte order. */
static int word_is_plain(uint64_t w)
{
    uint64_t below_space = (w - WORD_ONES * 0x20) & ~w & WORD_HIGHS;
    uint64_t above_tilde = ((w + WORD_ONES) | w) & WORD_HIGHS;
    uint64_t bs = w ^ (WORD_ONES * 0x5c);
    uint64_t backslash = (bs - WORD_ONES) & ~bs & WORD_HIGHS;

    return (below_space | above_tilde | backslash) == 0;
}

/* The length (2..4) of the well-formed sequence at q that prints as itself
 * (rule 3), or 0 (also for any byte that leads no sequence). q holds 4
 * bytes; past the end of the input they must be 0, which no sequence
 * contains. The checks are combined without branches. */
static inline size_t utf8_copy_length(const escape_entry *e, const uint8_t *q)
{
    unsigned second_ok = (uint8_t)(q[1] - e->lo) <= e->span;
    unsigned third_ok = (e->need < 3) | ((q[2] & 0xc0) == 0x80);
    unsigned fourth_ok = (e->need < 4) | ((q[3] & 0xc0) == 0x80);
    unsigned separator = (q[0] == 0xe2) & (q[1] == 0x80) & ((q[2] | 1) == 0xa9);

    return (size_t)(second_ok & third_ok & fourth_ok & !separator) * e->need;
}

/* Prints the byte at q[0] into dst (4 bytes are stored, the returned count
 * of them is its printed form) when *owed bytes of a copied sequence are
 * still to come; q holds 4 bytes as for utf8_copy_length(). Each byte is
 * decided alone, with masks rather than branches, so the caller's loop
 * carries no data-dependent jump: in random data every branch would be a
 * coin toss for the predictor, and a unit-by-unit loop would wait for each
 * unit's length before it could start the next. */
static inline size_t escape_byte(char *dst, const uint8_t *q, size_t *owed)
{
    const escape_entry *e = &escape_table[q[0]];
    size_t n = utf8_copy_length(e, q);
    size_t copied = (size_t)((*owed != 0) | (n != 0));
    uint32_t mask = (uint32_t)0 - (uint32_t)copied, raw, text;

    memcpy(&raw, q, sizeof raw);
    memcpy(&text, e->text, sizeof text);
    text = (raw & mask) | (text & ~mask);
    memcpy(dst, &text, sizeof text);
    *owed = *owed != 0 ? *owed - 1 : n - (n != 0);
    return copied | (e->len & ~((size_t)0 - copied));
}

/* No byte prints more than 4, so after i input bytes at most 4 * i are
 * printed and the fixed-size stores below always fit. */
size_t log_fast_escape(char *out, const uint8_t *in, size_t len)
{
    size_t i = 0, pos = 0, owed = 0, k;
    uint8_t q[4];
    uint64_t w;

    pthread_once(&escape_table_once, escape_table_build);
    /* 16 bytes left: a whole word, and the 3 bytes escape_byte() reads
     * after its last byte, are there */
    while (len - i >= 2 * sizeof w) {
        memcpy(&w, in + i, sizeof w);
        if (word_is_plain(w)) {
            /* printable ASCII, copied at once (it never continues a sequence:
             * continuation bytes are not printable ASCII) */
            memcpy(out + pos, &w, sizeof w);
            pos += sizeof w;
        } else {
            for (k = 0; k < sizeof w; k++)
                pos += escape_byte(out + pos, in + i + k, &owed);
        }
        i += sizeof w;
    }
    for (; i < len; i++) {
        memset(q, 0, sizeof q);
        memcpy(q, in + i, len - i < sizeof q ? len - i : sizeof q);
        pos += escape_byte(out + pos, q, &owed);
    }
    return pos;
}
