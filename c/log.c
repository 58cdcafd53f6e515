/* log.c - escaping and single-write log lines (PROTOCOL.md section 6).
 *
 * log_escape() is the reference: the four rules, a byte at a time. Message
 * lines (up to 1 MiB) use log_fast_escape() (log_fast.c), the same text
 * written for speed; tests/test_log.c checks the two agree. */
#include "log.h"
#include "log_fast.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static int log_color_out;
static int log_color_err;

static const struct {
    const char *tag;
    const char *color;
} log_tags[] = {
    [LOG_INFO] = {"[INFO]", "\033[36m"},
    [LOG_RECV] = {"[RECV]", "\033[32m"},
    [LOG_SEND] = {"[SEND]", "\033[33m"},
    [LOG_ERROR] = {"[ERROR]", "\033[31m"},
};

#define LOG_COLOR_RESET "\033[0m"
#define LOG_STACK_LINE 2048

void log_init(void)
{
    const char *no_color = getenv("NO_COLOR");
    int allowed = no_color == NULL || no_color[0] == '\0';

    log_color_out = allowed && isatty(STDOUT_FILENO);
    log_color_err = allowed && isatty(STDERR_FILENO);
}

void log_set_color(int enabled)
{
    log_color_out = enabled;
    log_color_err = enabled;
}

/* ---- escaping (PROTOCOL.md section 6) ------------------------------------ */

/* Where escaped text goes: like snprintf, it stops writing at the first piece
 * that does not fit (so out never ends in half of "\xHH") but counts the
 * length the whole text needs. */
typedef struct {
    char *out;
    size_t cap;
    size_t written;
    size_t need;
    int full;
} escape_sink;

static void sink_put(escape_sink *s, const void *piece, size_t n)
{
    if (!s->full && s->written + n < s->cap) {
        memcpy(s->out + s->written, piece, n);
        s->written += n;
    } else {
        s->full = 1;
    }
    s->need += n;
}

static void sink_put_hex(escape_sink *s, uint8_t byte)
{
    static const char hex[] = "0123456789abcdef";
    char text[4] = {'\\', 'x', hex[byte >> 4], hex[byte & 0x0f]};

    sink_put(s, text, sizeof text);
}

/* The length of the well-formed UTF-8 sequence (RFC 3629) at in[0], or 0 if
 * none starts there: c0, c1 and f5..ff lead nothing; after e0 no overlongs,
 * after ed no surrogates, after f0 no overlongs, after f4 nothing above
 * U+10FFFF. */
static size_t utf8_sequence_length(const uint8_t *in, size_t avail)
{
    uint8_t lead = in[0], lo = 0x80, hi = 0xbf;
    size_t n, k;

    if (lead < 0x80)
        return 1;
    if (lead >= 0xc2 && lead <= 0xdf)
        n = 2;
    else if (lead >= 0xe0 && lead <= 0xef)
        n = 3;
    else if (lead >= 0xf0 && lead <= 0xf4)
        n = 4;
    else
        return 0;
    if (lead == 0xe0)
        lo = 0xa0;
    else if (lead == 0xed)
        hi = 0x9f;
    else if (lead == 0xf0)
        lo = 0x90;
    else if (lead == 0xf4)
        hi = 0x8f;
    if (avail < n || in[1] < lo || in[1] > hi)
        return 0;
    for (k = 2; k < n; k++)
        if ((in[k] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* The code point of the well-formed sequence of n bytes at in. */
static uint32_t utf8_code_point(const uint8_t *in, size_t n)
{
    static const uint8_t lead_bits[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    uint32_t cp = in[0] & lead_bits[n];
    size_t k;

    for (k = 1; k < n; k++)
        cp = cp << 6 | (in[k] & 0x3f);
    return cp;
}

/* Characters rule 3 prints byte by byte: controls and line separators. */
static int is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029;
}

size_t log_escape(char *out, size_t out_cap, const uint8_t *in, size_t len)
{
    escape_sink s = {out, out_cap, 0, 0, out_cap == 0};
    size_t i = 0, n, k;

    while (i < len) {
        n = utf8_sequence_length(in + i, len - i);
        if (in[i] == '\\') {                       /* rule 1 */
            sink_put(&s, "\\\\", 2);
        } else if (in[i] == '\n') {                /* rule 2 */
            sink_put(&s, "\\n", 2);
        } else if (in[i] == '\r') {
            sink_put(&s, "\\r", 2);
        } else if (in[i] == '\t') {
            sink_put(&s, "\\t", 2);
        } else if (n == 0) {                       /* rule 4 */
            sink_put_hex(&s, in[i]);
            n = 1;
        } else if (is_control(utf8_code_point(in + i, n))) { /* rule 3 */
            for (k = 0; k < n; k++)
                sink_put_hex(&s, in[i + k]);
        } else {
            sink_put(&s, in + i, n);
        }
        i += n;
    }
    if (out_cap > 0)
        out[s.written] = '\0';
    return s.need;
}

static void write_all(int fd, const char *p, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a failing log stream */
        }
        p += n;
        len -= (size_t)n;
    }
}

#define LOG_HEAD_CAP 32 /* room for a coloured tag and its space */

/* Writes "<tag> " (coloured or not) at out; returns its length. */
static size_t put_tag(char *out, log_level level, int color)
{
    if (color)
        return (size_t)snprintf(out, LOG_HEAD_CAP, "%s%s%s ", log_tags[level].color,
                                log_tags[level].tag, LOG_COLOR_RESET);
    return (size_t)snprintf(out, LOG_HEAD_CAP, "%s ", log_tags[level].tag);
}

/* Builds "<tag> <text><escaped raw>\n" and, when text2 is not NULL,
 * "<tag2> <text2>\n" after it in one buffer, and writes it once. The buffer
 * holds the worst case (every raw byte as "\xHH"), so the raw bytes are
 * escaped in one pass straight into it. Both levels must share a stream. */
static void log_emit(log_level level, const char *text, size_t text_len,
                     const uint8_t *raw, size_t raw_len, log_level level2,
                     const char *text2)
{
    int fd = level == LOG_ERROR ? STDERR_FILENO : STDOUT_FILENO;
    int color = level == LOG_ERROR ? log_color_err : log_color_out;
    size_t text2_len = text2 != NULL ? strlen(text2) : 0;
    size_t fixed = 2 * LOG_HEAD_CAP + text_len + text2_len + 2;
    char stack[LOG_STACK_LINE], *line = stack;
    size_t total, pos;

    if (fixed < text_len || raw_len > (SIZE_MAX - fixed) / LOG_ESCAPE_MAX_PER_BYTE)
        return; /* cannot be held in memory anyway */
    total = fixed + raw_len * LOG_ESCAPE_MAX_PER_BYTE;
    if (total > sizeof stack) {
        line = malloc(total);
        if (line == NULL)
            return;
    }
    pos = put_tag(line, level, color);
    memcpy(line + pos, text, text_len);
    pos += text_len;
    pos += log_fast_escape(line + pos, raw, raw_len); /* the one place it is chosen */
    line[pos++] = '\n';
    if (text2 != NULL) {
        pos += put_tag(line + pos, level2, color);
        memcpy(line + pos, text2, text2_len);
        pos += text2_len;
        line[pos++] = '\n';
    }

    pthread_mutex_lock(&log_mutex);
    write_all(fd, line, pos);
    pthread_mutex_unlock(&log_mutex);
    if (line != stack)
        free(line);
}

void log_line(log_level level, const char *fmt, ...)
{
    char stack[LOG_STACK_LINE], *text = stack;
    va_list ap, again;
    int n;

    va_start(ap, fmt);
    va_copy(again, ap);
    n = vsnprintf(stack, sizeof stack, fmt, ap);
    if (n >= (int)sizeof stack) {
        text = malloc((size_t)n + 1);
        if (text != NULL)
            vsnprintf(text, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    va_end(ap);
    if (n < 0 || text == NULL)
        return;
    log_emit(level, text, (size_t)n, NULL, 0, level, NULL);
    if (text != stack)
        free(text);
}

void log_bytes(log_level level, const char *prefix, const uint8_t *data,
               size_t len)
{
    log_emit(level, prefix, strlen(prefix), data, len, level, NULL);
}

void log_bytes_and_line(log_level level, const char *prefix, const uint8_t *data,
                        size_t len, log_level level2, const char *text2)
{
    log_emit(level, prefix, strlen(prefix), data, len, level2, text2);
}

void log_raw(int fd, const char *text, size_t len)
{
    pthread_mutex_lock(&log_mutex);
    write_all(fd, text, len);
    pthread_mutex_unlock(&log_mutex);
}
