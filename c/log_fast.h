/* log_fast.h - the fast path of log_escape() (log.h), used for log lines.
 *
 * The same escaped text as log_escape(), written for speed (log_fast.c);
 * log.c's line writer is the one place that chooses it.
 */
#ifndef SECUREMSG_LOG_FAST_H
#define SECUREMSG_LOG_FAST_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* Escapes len bytes into out, which must hold LOG_ESCAPE_MAX_PER_BYTE * len
 * bytes (it may leave scratch bytes after the text; no NUL is written).
 * Returns the escaped length: log_escape(NULL, 0, in, len). */
size_t log_fast_escape(char *out, const uint8_t *in, size_t len);

#endif
