/* log.h - the log lines of PROTOCOL.md section 6.
 *
 * Every line is assembled in one buffer and written with one write() under a
 * mutex, so lines of concurrent clients never interleave. [INFO], [RECV] and
 * [SEND] go to standard output, [ERROR] to standard error. The tag is coloured
 * only when its stream is a terminal and NO_COLOR is unset or empty.
 */
#ifndef SECUREMSG_LOG_H
#define SECUREMSG_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum { LOG_INFO, LOG_RECV, LOG_SEND, LOG_ERROR } log_level;

/* Longest escaped form of one input byte: "\xHH". */
#define LOG_ESCAPE_MAX_PER_BYTE 4

/* Decides colour per stream (isatty + NO_COLOR). Call once from main. */
void log_init(void);

/* Forces colour on or off for both streams (tests). */
void log_set_color(int enabled);

/*
 * Escapes len bytes per PROTOCOL.md section 6 into out (NUL-terminated when
 * out_cap > 0). Never writes a partial escape unit. Returns the length the full
 * escaped text needs (without the NUL), like snprintf: out_cap of
 * LOG_ESCAPE_MAX_PER_BYTE * len + 1 always holds it all.
 */
size_t log_escape(char *out, size_t out_cap, const uint8_t *in, size_t len);

/* One line "<tag> <formatted text>\n"; the text must already be escaped. */
void log_line(log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One line "<tag> <prefix><escaped data>\n": message bytes, ACK texts. */
void log_bytes(log_level level, const char *prefix, const uint8_t *data,
               size_t len);

/* log_bytes(level, prefix, data, len), then the line "<tag2> <text2>\n", in one
 * write: the server's [RECV] and [SEND] lines for one message cost one system
 * call, not two. Each is still a whole line; text2 must be escaped already. */
void log_bytes_and_line(log_level level, const char *prefix, const uint8_t *data,
                        size_t len, log_level level2, const char *text2);

/* Writes raw text (usage, prompt) to fd under the log mutex. */
void log_raw(int fd, const char *text, size_t len);

/*
 * The server's log writer (PROTOCOL.md 9, log output during shutdown). Once
 * started, a line is still written at once by the thread that logs it when
 * no other write is in progress (no copy, no hand-off); otherwise it is
 * queued (up to LOG_QUEUE_MAX bytes, then the logging thread waits) and a
 * writer thread writes the queue in order. So a slow standard output slows
 * one writer at a time, not every client thread at once.
 * log_start_writer: 0, or -1 (then lines are written directly, as before).
 * log_draining:     from now on every line is queued, however full the
 *                   queue: client threads that drain their connections
 *                   never wait for the log's I/O.
 * log_finish:       waits until every queued line is written or the
 *                   monotonic time until_ms (conn_now_ms) has come; then
 *                   lines not written are counted, later ones dropped (and
 *                   counted), nobody waits for the log any more. Returns the
 *                   count of lines not written.
 */
#define LOG_QUEUE_MAX (4u << 20)
int log_start_writer(void);
void log_draining(void);
uint64_t log_finish(int64_t until_ms);

#endif
