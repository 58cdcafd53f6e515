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
#include <time.h>
#include <unistd.h>

#define LOG_SHORT_LINE 1024
#define LOG_COMBINE_MAX 65536
#define LOG_POOL 4
#define LOG_BUILD_MAX (16u << 20) /* long lines being built at once */

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;

/* The writer (log_start_writer), under log_mutex. */
typedef struct {
    char *buf;
    size_t len, cap;
    uint64_t lines;
} log_queue;

static struct {
    int started, draining, finished;
    int writing;             /* a write is in progress (direct or the writer's) */
    uint64_t writing_lines;  /* lines in it */
    log_queue q[2];          /* standard output, standard error */
    log_queue spare[2];      /* written last time, reused */
    char *pool[LOG_POOL];    /* long lines' buffers, reused */
    size_t pool_cap[LOG_POOL];
    uint64_t dropped;
    size_t big_bytes;        /* long lines being built (log_emit's gate) */
    pthread_cond_t work;     /* lines queued and nobody writing */
    pthread_cond_t done;     /* a write finished (room, idle) */
} lw = {.work = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};
static int log_color_out;
static int log_color_err;

#define LOG_COLOR_RESET "\033[0m"
#define LOG_STACK_LINE 2048
#define LOG_KEEP_BUF (8u << 20) /* a writer buffer larger than this is freed */
#define LOG_BIG_LINE 65536

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
/* "<tag> " and its coloured form, per level: copied, not formatted, for
 * every line (a message's two lines cost two of these). */
static const struct {
    const char *text;
    size_t len;
} log_heads[2][4] = {
#define LOG_HEAD(s) {s, sizeof s - 1}
    {LOG_HEAD("[INFO] "), LOG_HEAD("[RECV] "), LOG_HEAD("[SEND] "), LOG_HEAD("[ERROR] ")},
    {LOG_HEAD("\033[36m[INFO]" LOG_COLOR_RESET " "), LOG_HEAD("\033[32m[RECV]" LOG_COLOR_RESET " "),
     LOG_HEAD("\033[33m[SEND]" LOG_COLOR_RESET " "), LOG_HEAD("\033[31m[ERROR]" LOG_COLOR_RESET " ")},
#undef LOG_HEAD
};

static size_t put_tag(char *out, log_level level, int color)
{
    size_t len = log_heads[color != 0][level].len;

    memcpy(out, log_heads[color != 0][level].text, len);
    return len;
}

/* ---- the writer ------------------------------------------------------------ */

static size_t queued_bytes(void)
{
    return lw.q[0].len + lw.q[1].len;
}

static int queue_put(log_queue *q, const char *line, size_t len)
{
    size_t cap = q->cap > 0 ? q->cap : 65536;
    char *grown;

    while (cap - q->len < len)
        cap *= 2;
    if (cap != q->cap) {
        grown = realloc(q->buf, cap);
        if (grown == NULL)
            return -1;
        q->buf = grown;
        q->cap = cap;
    }
    memcpy(q->buf + q->len, line, len);
    q->len += len;
    q->lines++;
    return 0;
}

/* Writes everything queued, with the lock released meanwhile (others
 * queue into the spare buffers); the caller has set lw.writing. */
static void write_queued_locked(void)
{
    log_queue taken[2];
    int i;

    lw.writing_lines = lw.q[0].lines + lw.q[1].lines;
    for (i = 0; i < 2; i++) {
        taken[i] = lw.q[i];
        lw.q[i] = lw.spare[i];
        lw.q[i].len = 0;
        lw.q[i].lines = 0;
    }
    pthread_cond_broadcast(&lw.done); /* room again */
    pthread_mutex_unlock(&log_mutex);
    for (i = 0; i < 2; i++) {
        if (taken[i].len > 0)
            write_all(i == 0 ? STDOUT_FILENO : STDERR_FILENO, taken[i].buf,
                      taken[i].len);
        if (taken[i].cap > LOG_KEEP_BUF) { /* a burst's buffer goes back */
            free(taken[i].buf);
            memset(&taken[i], 0, sizeof taken[i]);
        }
    }
    pthread_mutex_lock(&log_mutex);
    for (i = 0; i < 2; i++)
        lw.spare[i] = taken[i];
    lw.writing_lines = 0;
}

/* One whole line to fd, in order with every other line of that stream. */
static void log_put(int fd, const char *line, size_t len)
{
    size_t limit;

    pthread_mutex_lock(&log_mutex);
    if (!lw.started) {
        write_all(fd, line, len);
        pthread_mutex_unlock(&log_mutex);
        return;
    }
    if (!lw.writing && !lw.draining && !lw.finished && queued_bytes() == 0) {
        lw.writing = 1; /* nothing ahead of us: write it now, unlocked */
        lw.writing_lines = 1;
        pthread_mutex_unlock(&log_mutex);
        write_all(fd, line, len);
        pthread_mutex_lock(&log_mutex);
        lw.writing_lines = 0;
        /* what others queued meanwhile, if little, goes out with no hand-off
         * to the writer thread (a wake-up per line costs more than it) */
        if (queued_bytes() > 0 && queued_bytes() <= LOG_COMBINE_MAX && !lw.draining)
            write_queued_locked();
        lw.writing = 0;
        pthread_cond_broadcast(&lw.done);
        if (queued_bytes() > 0)
            pthread_cond_signal(&lw.work);
        pthread_mutex_unlock(&log_mutex);
        return;
    }
    /* a full queue makes the logging thread wait, except in a shutdown:
     * the drain never waits for the log (what it adds is bounded by the
     * frames the connections finish) */
    /* short lines (connects, errors, small messages) have room of their
     * own beyond the limit, so a queue full of 1 MiB messages does not hold
     * up a client that has just connected */
    limit = len <= LOG_SHORT_LINE ? 2 * LOG_QUEUE_MAX : LOG_QUEUE_MAX;
    while (!lw.finished && !lw.draining && queued_bytes() > 0 &&
           queued_bytes() + len > limit)
        pthread_cond_wait(&lw.done, &log_mutex);
    if (lw.finished || queue_put(&lw.q[fd == STDERR_FILENO], line, len) < 0)
        lw.dropped++;
    else if (!lw.writing)
        pthread_cond_signal(&lw.work);
    pthread_mutex_unlock(&log_mutex);
}

/* Long lines (a 1 MiB message escapes to up to 4 MiB) are built a few at a
 * time: threads that finished large messages wait here, before allocating,
 * rather than each holding a line's buffer while the log catches up. Not
 * during a shutdown, when nothing waits for the log. */
static void big_line_enter(size_t len)
{
    pthread_mutex_lock(&log_mutex);
    while (lw.started && !lw.draining && !lw.finished && lw.big_bytes > 0 &&
           lw.big_bytes + len > LOG_BUILD_MAX)
        pthread_cond_wait(&lw.done, &log_mutex);
    lw.big_bytes += len;
    pthread_mutex_unlock(&log_mutex);
}

/* A buffer for a line of len bytes: a pooled one when it is large enough
 * (no mapping and page faults for every 1 MiB message), else malloc. */
static char *line_buffer(size_t len, size_t *cap)
{
    char *p = NULL;
    int i;

    pthread_mutex_lock(&log_mutex);
    for (i = 0; i < LOG_POOL; i++)
        if (lw.pool[i] != NULL && lw.pool_cap[i] >= len) {
            p = lw.pool[i];
            *cap = lw.pool_cap[i];
            lw.pool[i] = NULL;
            break;
        }
    pthread_mutex_unlock(&log_mutex);
    if (p == NULL) {
        p = malloc(len);
        *cap = len;
    }
    return p;
}

static void line_buffer_done(char *p, size_t cap)
{
    int i;

    pthread_mutex_lock(&log_mutex);
    for (i = 0; i < LOG_POOL && cap <= LOG_KEEP_BUF; i++)
        if (lw.pool[i] == NULL) {
            lw.pool[i] = p;
            lw.pool_cap[i] = cap;
            p = NULL;
            break;
        }
    pthread_mutex_unlock(&log_mutex);
    free(p);
}

static void big_line_leave(size_t len)
{
    pthread_mutex_lock(&log_mutex);
    lw.big_bytes -= len;
    pthread_cond_broadcast(&lw.done);
    pthread_mutex_unlock(&log_mutex);
}

static void *log_writer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&log_mutex);
    for (;;) {
        while (lw.writing || queued_bytes() == 0)
            pthread_cond_wait(&lw.work, &log_mutex);
        lw.writing = 1;
        write_queued_locked();
        lw.writing = 0;
        pthread_cond_broadcast(&lw.done);
    }
    return NULL;
}

int log_start_writer(void)
{
    pthread_attr_t attr;
    pthread_t tid;
    int rc;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&log_mutex);
    rc = pthread_create(&tid, &attr, log_writer, NULL);
    lw.started = rc == 0;
    pthread_mutex_unlock(&log_mutex);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

void log_draining(void)
{
    pthread_mutex_lock(&log_mutex);
    lw.draining = 1;
    pthread_cond_broadcast(&lw.done); /* threads waiting for room go on */
    pthread_mutex_unlock(&log_mutex);
}

static int64_t log_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t log_finish(int64_t until_ms)
{
    struct timespec ts;
    int64_t left;
    uint64_t lost;

    pthread_mutex_lock(&log_mutex);
    while (lw.started && (lw.writing || queued_bytes() > 0) &&
           (left = until_ms - log_now_ms()) > 0) {
        /* the cond's clock is CLOCK_REALTIME: wait in short steps */
        clock_gettime(CLOCK_REALTIME, &ts);
        if (left > 50)
            left = 50;
        ts.tv_nsec += (long)left * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&lw.done, &log_mutex, &ts);
    }
    lw.finished = 1;
    pthread_cond_broadcast(&lw.done); /* anyone waiting for room drops its line */
    lost = lw.q[0].lines + lw.q[1].lines + lw.dropped +
           (lw.writing ? lw.writing_lines : 0);
    pthread_mutex_unlock(&log_mutex);
    return lost;
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
    size_t total, pos, line_cap = 0;

    if (fixed < text_len || raw_len > (SIZE_MAX - fixed) / LOG_ESCAPE_MAX_PER_BYTE)
        return; /* cannot be held in memory anyway */
    total = fixed + raw_len * LOG_ESCAPE_MAX_PER_BYTE;
    if (total > LOG_BIG_LINE) {
        big_line_enter(total);
        line = line_buffer(total, &line_cap);
    } else if (total > sizeof stack) {
        line = malloc(total);
    }
    if (line == NULL)
        goto leave;
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

    log_put(fd, line, pos);
    if (total > LOG_BIG_LINE)
        line_buffer_done(line, line_cap);
    else if (line != stack)
        free(line);
leave:
    if (total > LOG_BIG_LINE)
        big_line_leave(total);
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
    log_put(fd, text, len);
}
