/* escape_tool.c - log_escape() and log_fast_escape() as a filter, for the
 * cross-language escaping test (tests/contract/test_escaping.py).
 *
 * Reads lines of hex digits (one input each; an empty line is the empty
 * input) and prints, per line, the reference's escaped text, a tab and the
 * fast path's: neither can print a raw tab or newline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "log_fast.h"

#define TOOL_MAX_INPUT 4096

static int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes the hex line into out; returns its byte count or -1. */
static long decode_hex(const char *line, size_t len, uint8_t *out)
{
    size_t i;

    if (len % 2 != 0 || len / 2 > TOOL_MAX_INPUT)
        return -1;
    for (i = 0; i < len; i += 2) {
        int hi = hex_value(line[i]), lo = hex_value(line[i + 1]);

        if (hi < 0 || lo < 0)
            return -1;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(len / 2);
}

int main(void)
{
    static char line[2 * TOOL_MAX_INPUT + 2];
    static uint8_t in[TOOL_MAX_INPUT];
    static char ref[LOG_ESCAPE_MAX_PER_BYTE * TOOL_MAX_INPUT + 1];
    static char fast[LOG_ESCAPE_MAX_PER_BYTE * TOOL_MAX_INPUT + 1];
    size_t len, ref_len, fast_len;
    long n;

    while (fgets(line, sizeof line, stdin) != NULL) {
        len = strcspn(line, "\n");
        n = decode_hex(line, len, in);
        if (n < 0) {
            fprintf(stderr, "escape_tool: bad input line\n");
            return 2;
        }
        ref_len = log_escape(ref, sizeof ref, in, (size_t)n);
        fast_len = log_fast_escape(fast, in, (size_t)n);
        fwrite(ref, 1, ref_len, stdout);
        putchar('\t');
        fwrite(fast, 1, fast_len, stdout);
        putchar('\n');
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
