/* log.c - escaping and single-write log lines (PROTOCOL.md section 6). */
#include "log.h"

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

/* An output cursor that stops at the first escape unit that does not fit,
 * so a truncated result never ends in half of "\xHH". */
typedef struct {
    char *out;
    size_t cap;
    size_t len;     /* what the whole escaped text needs */
    size_t written; /* what fitted in out */
    int full;
} escape_sink;

static void sink_put(escape_sink *s, const char *text, size_t n)
{
    if (!s->full && s->written + n < s->cap) {
        memcpy(s->out + s->written, text, n);
        s->written += n;
    } else {
        s->full = 1;
    }
    s->len += n;
}

static void sink_hex(escape_sink *s, uint8_t byte)
{
    static const char hex[] = "0123456789abcdef";
    char unit[4] = {'\\', 'x', hex[byte >> 4], hex[byte & 0x0f]};

    sink_put(s, unit, sizeof unit);
}

/* Length (1..4) of the well-formed UTF-8 sequence (RFC 3629) at p, or 0 when
 * none starts here; *cp receives its code point. */
static size_t utf8_sequence(const uint8_t *p, size_t avail, uint32_t *cp)
{
    uint8_t b0 = p[0], lo = 0x80, hi = 0xbf;
    size_t need, i;
    uint32_t value;

    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        need = 2;
        value = b0 & 0x1fu;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        need = 3;
        value = b0 & 0x0fu;
        if (b0 == 0xe0)
            lo = 0xa0; /* no overlongs */
        else if (b0 == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        need = 4;
        value = b0 & 0x07u;
        if (b0 == 0xf0)
            lo = 0x90; /* no overlongs */
        else if (b0 == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < need || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 1; i < need; i++) {
        if (i > 1 && (p[i] < 0x80 || p[i] > 0xbf))
            return 0;
        value = (value << 6) | (p[i] & 0x3fu);
    }
    *cp = value;
    return need;
}

static int is_escaped_code_point(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) ||
           cp == 0x2028 || cp == 0x2029;
}

size_t log_escape(char *out, size_t out_cap, const uint8_t *in, size_t len)
{
    escape_sink s = {out, out_cap, 0, 0, 0};
    size_t i = 0, n, k;
    uint32_t cp;

    while (i < len) {
        n = utf8_sequence(in + i, len - i, &cp);
        if (n == 0) {
            sink_hex(&s, in[i]);
            n = 1;
        } else if (cp == '\\') {
            sink_put(&s, "\\\\", 2);
        } else if (cp == '\n') {
            sink_put(&s, "\\n", 2);
        } else if (cp == '\r') {
            sink_put(&s, "\\r", 2);
        } else if (cp == '\t') {
            sink_put(&s, "\\t", 2);
        } else if (is_escaped_code_point(cp)) {
            for (k = 0; k < n; k++)
                sink_hex(&s, in[i + k]);
        } else {
            sink_put(&s, (const char *)in + i, n);
        }
        i += n;
    }
    if (out_cap > 0)
        out[s.written] = '\0';
    return s.len;
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

/* Builds "<tag> <text><escaped raw>\n" in one buffer and writes it once. */
static void log_emit(log_level level, const char *text, size_t text_len,
                     const uint8_t *raw, size_t raw_len)
{
    int fd = level == LOG_ERROR ? STDERR_FILENO : STDOUT_FILENO;
    int color = level == LOG_ERROR ? log_color_err : log_color_out;
    const char *tag = log_tags[level].tag;
    char stack[LOG_STACK_LINE], *line = stack;
    size_t escaped_len = raw_len > 0 ? log_escape(NULL, 0, raw, raw_len) : 0;
    size_t head_cap = 32, total, pos;

    total = head_cap + text_len + escaped_len + 2;
    if (total > sizeof stack) {
        line = malloc(total);
        if (line == NULL)
            return;
    }
    if (color)
        pos = (size_t)snprintf(line, head_cap, "%s%s%s ", log_tags[level].color,
                               tag, LOG_COLOR_RESET);
    else
        pos = (size_t)snprintf(line, head_cap, "%s ", tag);
    memcpy(line + pos, text, text_len);
    pos += text_len;
    if (raw_len > 0)
        pos += log_escape(line + pos, total - pos, raw, raw_len);
    line[pos++] = '\n';

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
    log_emit(level, text, (size_t)n, NULL, 0);
    if (text != stack)
        free(text);
}

void log_bytes(log_level level, const char *prefix, const uint8_t *data,
               size_t len)
{
    log_emit(level, prefix, strlen(prefix), data, len);
}

void log_raw(int fd, const char *text, size_t len)
{
    pthread_mutex_lock(&log_mutex);
    write_all(fd, text, len);
    pthread_mutex_unlock(&log_mutex);
}
