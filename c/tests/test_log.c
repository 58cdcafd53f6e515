/* test_log.c - the escaping rule (shared vectors) and the line format. */
#define _XOPEN_SOURCE 600 /* posix_openpt: a terminal for the colour tests */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "log_fast.h"
#include "vectors.h"

static void test_escape_vectors(void)
{
    json_t *root, *cases = vectors_load("escape.json", &root), *c;
    size_t i, in_len, need;
    char out[256];

    json_array_foreach(cases, i, c) {
        uint8_t *in = vectors_hex(c, "input", &in_len);
        const char *want = vectors_string(c, "output");

        need = log_escape(out, sizeof out, in, in_len);
        CHECK_BYTES(out, strlen(out), want, strlen(want));
        CHECK(need == strlen(want));
        if (strcmp(out, want) != 0)
            fprintf(stderr, "  case %s\n", vectors_string(c, "name"));
        free(in);
    }
    json_decref(root);
}

/* A truncated result ends on a unit boundary and reports the full length. */
static void test_escape_truncation(void)
{
    const uint8_t in[] = {'a', 0x1b, 'b', 0xc3, 0xa9};
    char out[5];

    CHECK(log_escape(out, sizeof out, in, sizeof in) == 8);  /* a\x1bbé */
    CHECK(strcmp(out, "a") == 0);                            /* not "a\x1" */
    CHECK(log_escape(NULL, 0, in, sizeof in) == 8);
    CHECK(log_escape(out, 1, in, sizeof in) == 8 && out[0] == '\0');
}

/* Every byte value alone: printable ASCII as itself, the rest escaped. */
static void test_escape_every_single_byte(void)
{
    char out[8], want[8];
    unsigned b;
    int bad = 0;

    for (b = 0; b < 256; b++) {
        uint8_t byte = (uint8_t)b;

        log_escape(out, sizeof out, &byte, 1);
        if (b == '\\')
            snprintf(want, sizeof want, "\\\\");
        else if (b == '\n')
            snprintf(want, sizeof want, "\\n");
        else if (b == '\r')
            snprintf(want, sizeof want, "\\r");
        else if (b == '\t')
            snprintf(want, sizeof want, "\\t");
        else if (b >= 0x20 && b < 0x7f)
            snprintf(want, sizeof want, "%c", (char)b);
        else
            snprintf(want, sizeof want, "\\x%02x", b);
        if (strcmp(out, want) != 0) {
            fprintf(stderr, "  byte %02x: got %s want %s\n", b, out, want);
            bad++;
        }
    }
    CHECK(bad == 0);
}

/*
 * Differential tests: a second plain reading of PROTOCOL.md section 6, one
 * code point at a time (decoding first, unlike log_escape()), against both
 * log_escape() and the fast path log_fast_escape(), on many inputs from a
 * fixed-seed PRNG. It also marks where each printed unit ends ("\xHH", "\n",
 * one character), to check truncated results.
 */
typedef struct {
    char *text;
    size_t len;
    uint8_t *unit_end; /* unit_end[k]: a unit ends after k bytes of text */
} ref_escaped;

/* The code point of the well-formed UTF-8 sequence at p and its length, or 0
 * when none starts here (RFC 3629). */
static size_t ref_decode(const uint8_t *p, size_t avail, uint32_t *cp)
{
    size_t n, k;
    uint32_t min;

    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if ((p[0] & 0xe0) == 0xc0) {
        n = 2, min = 0x80, *cp = p[0] & 0x1fu;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3, min = 0x800, *cp = p[0] & 0x0fu;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4, min = 0x10000, *cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (k = 1; k < n; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (p[k] & 0x3fu);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return n;
}

static void ref_put(ref_escaped *r, const char *unit, size_t n)
{
    memcpy(r->text + r->len, unit, n);
    r->len += n;
    r->unit_end[r->len] = 1;
}

static void ref_hex(ref_escaped *r, uint8_t byte)
{
    char unit[5];

    snprintf(unit, sizeof unit, "\\x%02x", byte);
    ref_put(r, unit, 4);
}

/* Escapes in (free with ref_free). */
static ref_escaped ref_escape(const uint8_t *in, size_t len)
{
    ref_escaped r = {malloc(4 * len + 1), 0, calloc(1, 4 * len + 1)};
    size_t i = 0, n, k;
    uint32_t cp;

    r.unit_end[0] = 1;
    while (i < len) {
        n = ref_decode(in + i, len - i, &cp);
        if (n == 0) {
            ref_hex(&r, in[i]);
            n = 1;
        } else if (cp == '\\') {
            ref_put(&r, "\\\\", 2);
        } else if (cp == '\n') {
            ref_put(&r, "\\n", 2);
        } else if (cp == '\r') {
            ref_put(&r, "\\r", 2);
        } else if (cp == '\t') {
            ref_put(&r, "\\t", 2);
        } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) ||
                   cp == 0x2028 || cp == 0x2029) {
            for (k = 0; k < n; k++)
                ref_hex(&r, in[i + k]);
        } else {
            ref_put(&r, (const char *)in + i, n);
        }
        i += n;
    }
    r.text[r.len] = '\0';
    return r;
}

static void ref_free(ref_escaped *r)
{
    free(r->text);
    free(r->unit_end);
}

/* log_escape into a heap buffer of exactly cap bytes (so that ASan sees any
 * write past it) must return the full length and hold the longest run of
 * whole units that fits, NUL-terminated. Returns 0 when it does. */
static int escape_matches_at(const ref_escaped *r, const uint8_t *in, size_t len,
                             size_t cap)
{
    char *out = cap > 0 ? malloc(cap) : NULL;
    size_t need = log_escape(out, cap, in, len), fit = 0;
    int ok = need == r->len;

    if (cap > 0) {
        fit = r->len < cap ? r->len : cap - 1;
        while (!r->unit_end[fit])
            fit--;
        ok = ok && strlen(out) == fit && memcmp(out, r->text, fit) == 0;
    }
    free(out);
    return ok ? 0 : -1;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t rng_below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rng_next() % n);
}

/* log_fast_escape into a heap buffer of exactly the 4 * len bytes it may
 * use must give the reference's text. Returns 0 when it does. */
static int fast_escape_matches(const ref_escaped *r, const uint8_t *in, size_t len)
{
    char *out = malloc(4 * len + 1);
    int ok = log_fast_escape(out, in, len) == r->len && memcmp(out, r->text, r->len) == 0;

    free(out);
    return ok ? 0 : -1;
}

/* Compares log_escape with the test's reference at the caps that matter: no
 * room, the worst case (4 * len + 1), one less, the exact fit, one too few,
 * and random ones; and log_fast_escape. Prints the first few inputs that
 * differ. Returns 0 when all agree. */
static int escape_matches(const uint8_t *input, size_t len)
{
    static int reported;
    uint8_t *in = malloc(len > 0 ? len : 1); /* exactly len: reads past it show */
    ref_escaped r = ref_escape(input, len);
    size_t caps[] = {0, 1, 4 * len + 1, 4 * len, r.len + 1, r.len,
                     1 + rng_below(r.len + 1), 1 + rng_below(4 * len + 8)};
    size_t k, i;
    int bad = 0;

    memcpy(in, input, len);
    for (k = 0; k < sizeof caps / sizeof caps[0]; k++)
        if (escape_matches_at(&r, in, len, caps[k]) < 0)
            bad = 1;
    if (fast_escape_matches(&r, in, len) < 0)
        bad = 1;
    free(in);
    if (bad && reported++ < 5) {
        fprintf(stderr, "  differs from the reference (len %zu):", len);
        for (i = 0; i < len && i < 48; i++)
            fprintf(stderr, " %02x", input[i]);
        fprintf(stderr, "%s\n", len > 48 ? " ..." : "");
    }
    ref_free(&r);
    return bad ? -1 : 0;
}

/* Appends code point cp as UTF-8 (no checks: surrogates can be made). */
static size_t put_utf8(uint8_t *p, uint32_t cp)
{
    if (cp < 0x80) {
        p[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (uint8_t)(0xc0 | cp >> 6);
        p[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (uint8_t)(0xe0 | cp >> 12);
        p[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        p[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    p[0] = (uint8_t)(0xf0 | cp >> 18);
    p[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    p[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    p[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* Code points near every edge the rule has. */
static const uint32_t edge_code_points[] = {
    0x00, 0x09, 0x0a, 0x0d, 0x1b, 0x1f, 0x20, 0x5c, 0x7e, 0x7f, 0x80, 0x85,
    0x9b, 0x9f, 0xa0, 0xe9, 0x7ff, 0x800, 0x2027, 0x2028, 0x2029, 0x202a,
    0x202e, 0xd7ff, 0xe000, 0xfeff, 0xfffd, 0xffff, 0x10000, 0x1f510,
    0x10ffff,
};

/* Mostly valid UTF-8 text with controls, separators and edge code points,
 * and now and then a malformed piece (surrogate, overlong, cut sequence,
 * stray byte). Fills exactly len bytes. */
static void make_utf8(uint8_t *buf, size_t len)
{
    uint8_t piece[8];
    size_t i = 0, n;
    uint32_t cp;

    while (i < len) {
        switch (rng_below(8)) {
        case 0:
        case 1:
            n = put_utf8(piece, (uint32_t)(0x20 + rng_below(0x5f)));
            break;
        case 2:
            cp = edge_code_points[rng_below(sizeof edge_code_points /
                                            sizeof edge_code_points[0])];
            n = put_utf8(piece, cp);
            break;
        case 3:
            n = put_utf8(piece, (uint32_t)rng_below(0x800));
            break;
        case 4:
            n = put_utf8(piece, (uint32_t)(0x800 + rng_below(0x10000 - 0x800)));
            break;
        case 5:
            n = put_utf8(piece, (uint32_t)(0x10000 + rng_below(0x100000)));
            break;
        case 6: /* a sequence cut short, or a surrogate */
            n = put_utf8(piece, rng_below(2) ? (uint32_t)(0xd800 + rng_below(0x800))
                                             : (uint32_t)(0x80 + rng_below(0x10ff80)));
            if (n > 1 && rng_below(2))
                n = 1 + rng_below(n - 1);
            break;
        default: /* a stray byte, or an overlong / too large lead */
            piece[0] = (uint8_t)rng_next();
            piece[1] = (uint8_t)(0x80 | (rng_next() & 0x3f));
            n = 1 + rng_below(2);
            break;
        }
        if (n > len - i)
            n = len - i;
        memcpy(buf + i, piece, n);
        i += n;
    }
}

/* Printable ASCII with a special byte now and then: long plain runs that
 * end at every offset of a word. */
static void make_text(uint8_t *buf, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        buf[i] = rng_below(20) == 0 ? (uint8_t)rng_next()
                                    : (uint8_t)(0x20 + rng_below(0x5f));
}

static void make_random(uint8_t *buf, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        buf[i] = (uint8_t)rng_next();
}

static void (*const generators[])(uint8_t *, size_t) = {make_random, make_utf8,
                                                        make_text};
#define GENERATORS (sizeof generators / sizeof generators[0])

/* Lengths 0..100, many inputs of each kind. */
static void test_escape_matches_reference_short(void)
{
    uint8_t buf[100];
    size_t len, g, round;
    int bad = 0;

    for (len = 0; len <= sizeof buf; len++)
        for (g = 0; g < GENERATORS; g++)
            for (round = 0; round < 150; round++) {
                generators[g](buf, len);
                bad += escape_matches(buf, len) < 0;
            }
    CHECK(bad == 0);
}

/* Every byte value, and a few multi-byte pieces, at every position in a run
 * of plain text of 0..40 bytes starting at every alignment: each lane of the
 * 8-byte word scan, the switch to the byte-by-byte tail, and sequences cut by
 * the end of the input. */
static void test_escape_word_boundaries(void)
{
    static const struct {
        uint8_t bytes[4];
        size_t len;
    } pieces[] = {
        {{0xc3, 0xa9}, 2},       {{0xc2, 0x85}, 2},       {{0xc2, 0xa0}, 2},
        {{0xe2, 0x80, 0xa8}, 3}, {{0xe2, 0x80, 0xaa}, 3}, {{0xe2, 0x82, 0xac}, 3},
        {{0xed, 0xa0, 0x80}, 3}, {{0xf0, 0x9f, 0x94, 0x90}, 4},
        {{0xf4, 0x90, 0x80, 0x80}, 4}, {{0xe2, 0x82}, 2},
    };
    uint8_t buf[8 + 48];
    size_t align, len, at, b, k;
    int bad = 0;

    for (align = 0; align < 8; align++)
        for (len = 0; len <= 40; len++) {
            uint8_t *in = buf + align;

            for (at = 0; at < len; at++) {
                for (b = 0; b < 256; b++) {
                    memset(in, 'a' + (int)(len % 26), len);
                    in[at] = (uint8_t)b;
                    bad += escape_matches(in, len) < 0;
                }
                for (k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
                    size_t n = pieces[k].len < len - at ? pieces[k].len : len - at;

                    memset(in, 'x', len);
                    memcpy(in + at, pieces[k].bytes, n);
                    bad += escape_matches(in, len) < 0;
                }
            }
            memset(in, 'q', len);
            bad += escape_matches(in, len) < 0;
        }
    CHECK(bad == 0);
}

#define LARGE_INPUT (1u << 20)

/* 1 MiB of each kind and a few odd sizes, through log_escape. */
static void test_escape_matches_reference_large(void)
{
    static const size_t sizes[] = {LARGE_INPUT, 65536 + 3, 4093, 1000};
    uint8_t *buf = malloc(LARGE_INPUT);
    size_t g, k;
    int bad = 0;

    for (g = 0; g < GENERATORS; g++)
        for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            generators[g](buf, sizes[k]);
            bad += escape_matches(buf, sizes[k]) < 0;
        }
    CHECK(bad == 0);
    free(buf);
}

#define CAPTURE_MAX (8 << 20)

static int redirect(int fd, int *saved)
{
    char path[] = "/tmp/securemsg-test-log-XXXXXX";
    int tmp = mkstemp(path);

    unlink(path);
    *saved = dup(fd);
    dup2(tmp, fd);
    return tmp;
}

static char *restore(int fd, int saved, int tmp)
{
    char *buf = calloc(1, CAPTURE_MAX);
    ssize_t n;

    dup2(saved, fd);
    close(saved);
    lseek(tmp, 0, SEEK_SET);
    n = read(tmp, buf, CAPTURE_MAX - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(tmp);
    return buf;
}

/* Runs fn with stdout and stderr redirected to temporary files; returns
 * what each received. */
static void capture(void (*fn)(void), char **out, char **err)
{
    int saved_out, saved_err;
    int tmp_out = redirect(STDOUT_FILENO, &saved_out);
    int tmp_err = redirect(STDERR_FILENO, &saved_err);

    fn();
    *err = restore(STDERR_FILENO, saved_err, tmp_err);
    *out = restore(STDOUT_FILENO, saved_out, tmp_out);
}

static void emit_plain_lines(void)
{
    log_line(LOG_INFO, "Listening on %s:%d", "0.0.0.0", 5000);
    log_bytes(LOG_RECV, "Plaintext: ", (const uint8_t *)"a\nb\x1b", 4);
    log_line(LOG_SEND, "ACK sent to client");
    log_line(LOG_ERROR, "Frame too large from %s: %u bytes (limit %u)",
             "127.0.0.1:1", 70000u, 65536u);
}

static void test_line_format(void)
{
    char *out, *err;

    log_set_color(0);
    capture(emit_plain_lines, &out, &err);
    CHECK(strcmp(out, "[INFO] Listening on 0.0.0.0:5000\n"
                      "[RECV] Plaintext: a\\nb\\x1b\n"
                      "[SEND] ACK sent to client\n") == 0);
    CHECK(strcmp(err, "[ERROR] Frame too large from 127.0.0.1:1: 70000 bytes "
                      "(limit 65536)\n") == 0);
    free(out);
    free(err);
}

static void test_colour_only_the_tag(void)
{
    char *out, *err;

    log_set_color(1);
    capture(emit_plain_lines, &out, &err);
    log_set_color(0);
    CHECK(strncmp(out, "\033[36m[INFO]\033[0m Listening on 0.0.0.0:5000\n", 42) == 0);
    CHECK(strstr(out, "\033[32m[RECV]\033[0m Plaintext: ") != NULL);
    CHECK(strstr(out, "\033[33m[SEND]\033[0m ACK sent") != NULL);
    CHECK(strncmp(err, "\033[31m[ERROR]\033[0m Frame too large", 32) == 0);
    free(out);
    free(err);
}

static void emit_received_pair(void)
{
    log_bytes_and_line(LOG_RECV, "Plaintext: ", (const uint8_t *)"x\ty", 3, LOG_SEND,
                       "ACK sent to client");
}

/* Two whole lines, each tag coloured on its own, from one call. */
static void test_bytes_and_line(void)
{
    char *out, *err;

    log_set_color(0);
    capture(emit_received_pair, &out, &err);
    CHECK(strcmp(out, "[RECV] Plaintext: x\\ty\n[SEND] ACK sent to client\n") == 0);
    CHECK(strcmp(err, "") == 0);
    free(out);
    free(err);
    log_set_color(1);
    capture(emit_received_pair, &out, &err);
    log_set_color(0);
    CHECK(strcmp(out, "\033[32m[RECV]\033[0m Plaintext: x\\ty\n"
                      "\033[33m[SEND]\033[0m ACK sent to client\n") == 0);
    free(out);
    free(err);
}

/* Writes one [INFO] line with stdout on a pseudo-terminal after log_init()
 * with NO_COLOR as given (NULL: unset); returns what the terminal got. */
static int line_on_tty(const char *no_color, char *got, size_t cap)
{
    struct termios tio;
    int master, slave, saved;
    ssize_t n;

    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
        return -1;
    slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    if (slave < 0)
        return -1;
    tcgetattr(slave, &tio);
    tio.c_oflag &= ~(tcflag_t)OPOST; /* no "\n" -> "\r\n" */
    tcsetattr(slave, TCSANOW, &tio);
    if (no_color != NULL)
        setenv("NO_COLOR", no_color, 1);
    else
        unsetenv("NO_COLOR");
    saved = dup(STDOUT_FILENO);
    dup2(slave, STDOUT_FILENO);
    log_init();
    log_line(LOG_INFO, "x");
    dup2(saved, STDOUT_FILENO);
    close(saved);
    n = read(master, got, cap - 1);
    got[n > 0 ? n : 0] = '\0';
    close(slave);
    close(master);
    unsetenv("NO_COLOR");
    log_set_color(0);
    return 0;
}

/* Colour on a terminal unless NO_COLOR is set and non-empty; never on a
 * file or pipe. */
static void test_color_decision(void)
{
    char got[128], *out, *err;

    if (line_on_tty(NULL, got, sizeof got) < 0) {
        fprintf(stderr, "  no pseudo-terminal available: %s\n", strerror(errno));
        CHECK(0);
        return;
    }
    CHECK(strcmp(got, "\033[36m[INFO]\033[0m x\n") == 0);
    line_on_tty("", got, sizeof got);
    CHECK(strcmp(got, "\033[36m[INFO]\033[0m x\n") == 0);
    line_on_tty("1", got, sizeof got);
    CHECK(strcmp(got, "[INFO] x\n") == 0);

    unsetenv("NO_COLOR");
    log_init(); /* stdout and stderr are files or pipes under make */
    capture(emit_plain_lines, &out, &err);
    CHECK(strncmp(out, "[INFO] ", 7) == 0);
    CHECK(strncmp(err, "[ERROR] ", 8) == 0);
    free(out);
    free(err);
}

/* Long lines: assembled on the heap, still one line. */
static void emit_long_line(void)
{
    uint8_t *msg = malloc(100000);

    memset(msg, 0x01, 100000); /* each byte escapes to 4 characters */
    log_bytes(LOG_RECV, "Plaintext: ", msg, 100000);
    free(msg);
}

static void test_long_line(void)
{
    char *out, *err;

    log_set_color(0);
    capture(emit_long_line, &out, &err);
    CHECK(err[0] == '\0');
    free(err);
    CHECK(strlen(out) == strlen("[RECV] Plaintext: ") + 400000 + 1);
    CHECK(strncmp(out + 18, "\\x01\\x01", 8) == 0);
    CHECK(out[strlen(out) - 1] == '\n');
    free(out);
}

/* log_bytes escapes into the line buffer itself: the line must be the tag,
 * the prefix, the reference's escaped text and a newline, for short lines
 * (stack buffer) and long ones (heap) of every kind. */
static uint8_t *line_input;
static size_t line_input_len;

static void emit_line_input(void)
{
    log_bytes(LOG_RECV, "Plaintext: ", line_input, line_input_len);
}

static void test_line_matches_reference(void)
{
    static const size_t sizes[] = {0, 1, 7, 100, 500, 511, 512, 2000, 70000,
                                   LARGE_INPUT};
    size_t g, k, head = strlen("[RECV] Plaintext: ");
    char *out, *err;
    int bad = 0;

    log_set_color(0);
    line_input = malloc(LARGE_INPUT);
    for (g = 0; g < GENERATORS; g++)
        for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            ref_escaped r;

            line_input_len = sizes[k];
            generators[g](line_input, line_input_len);
            r = ref_escape(line_input, line_input_len);
            capture(emit_line_input, &out, &err);
            if (strlen(out) != head + r.len + 1 ||
                strncmp(out, "[RECV] Plaintext: ", head) != 0 ||
                memcmp(out + head, r.text, r.len) != 0 || out[head + r.len] != '\n') {
                fprintf(stderr, "  line differs: generator %zu, %zu bytes\n", g,
                        line_input_len);
                bad++;
            }
            free(out);
            free(err);
            ref_free(&r);
        }
    free(line_input);
    CHECK(bad == 0);
}

#define WRITERS 4
#define LINES_EACH 300

static void *writer(void *arg)
{
    size_t id = (size_t)arg, i, len;
    uint8_t msg[3000];

    for (i = 0; i < LINES_EACH; i++) {
        len = 1 + (i * 37 + id * 101) % sizeof msg;
        memset(msg, (int)('a' + id), len);
        log_bytes(LOG_RECV, "Plaintext: ", msg, len);
    }
    return NULL;
}

static void emit_concurrently(void)
{
    pthread_t t[WRITERS];
    size_t i;

    for (i = 0; i < WRITERS; i++)
        pthread_create(&t[i], NULL, writer, (void *)i);
    for (i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
}

/* Concurrent writers never interleave within a line: every line is the tag
 * followed by one writer's letter only. */
static void test_lines_never_interleave(void)
{
    char *out, *err, *line, *save = NULL;
    int lines = 0, broken = 0;

    log_set_color(0);
    capture(emit_concurrently, &out, &err);
    free(err);
    for (line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        size_t k, n = strlen(line);

        lines++;
        if (strncmp(line, "[RECV] Plaintext: ", 18) != 0 || n <= 18) {
            broken++;
            continue;
        }
        for (k = 19; k < n; k++)
            if (line[k] != line[18])
                broken++;
    }
    CHECK(lines == WRITERS * LINES_EACH);
    CHECK(broken == 0);
    free(out);
}

/* With the server's writer thread: lines logged at once by many threads,
 * long ones too (a pooled buffer, the writer's queue), all come out whole,
 * each exactly once, and log_finish finds nothing left unwritten. */
static uint64_t writer_lost;

static void *long_writer(void *arg)
{
    static uint8_t big[200000];
    int i;

    (void)arg;
    memset(big, 'z', sizeof big);
    for (i = 0; i < 20; i++)
        log_bytes(LOG_RECV, "Plaintext: ", big, sizeof big);
    return NULL;
}

static void emit_through_the_writer(void)
{
    pthread_t t;
    struct timespec now;

    CHECK(log_start_writer() == 0);
    pthread_create(&t, NULL, long_writer, NULL);
    emit_concurrently();
    pthread_join(t, NULL);
    clock_gettime(CLOCK_MONOTONIC, &now);
    writer_lost = log_finish((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 10000);
}

static void test_writer_keeps_every_line(void)
{
    char *out, *err, *line, *save = NULL;
    int lines = 0, longs = 0, broken = 0;

    log_set_color(0);
    capture(emit_through_the_writer, &out, &err);
    free(err);
    for (line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        size_t k, n = strlen(line);

        lines++;
        if (strncmp(line, "[RECV] Plaintext: ", 18) != 0 || n <= 18) {
            broken++;
            continue;
        }
        longs += line[18] == 'z';
        if (line[18] == 'z' && n != 18 + 200000)
            broken++;
        for (k = 19; k < n; k++)
            if (line[k] != line[18])
                broken++;
    }
    CHECK(writer_lost == 0);
    CHECK(lines == WRITERS * LINES_EACH + 20);
    CHECK(longs == 20);
    CHECK(broken == 0);
    free(out);
}

int main(void)
{
    RUN_TEST(test_escape_vectors);
    RUN_TEST(test_escape_truncation);
    RUN_TEST(test_escape_every_single_byte);
    RUN_TEST(test_escape_matches_reference_short);
    RUN_TEST(test_escape_word_boundaries);
    RUN_TEST(test_escape_matches_reference_large);
    RUN_TEST(test_line_format);
    RUN_TEST(test_colour_only_the_tag);
    RUN_TEST(test_bytes_and_line);
    RUN_TEST(test_color_decision);
    RUN_TEST(test_long_line);
    RUN_TEST(test_line_matches_reference);
    RUN_TEST(test_lines_never_interleave);
    RUN_TEST(test_writer_keeps_every_line); /* last: the writer stays on */
    return check_report("test_log");
}
