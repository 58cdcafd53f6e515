/* check.h - a minimal unit-test harness shared by every c/tests/test_*.c.
 *
 * Each test file is its own program: it calls CHECK() from test functions,
 * runs them with RUN_TEST(), and ends main() with `return check_report(name)`,
 * which prints the runner line "N passed, N failed" that `make test` sums up.
 */
#ifndef SECUREMSG_CHECK_H
#define SECUREMSG_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed;
static int check_failed;

/* One assertion: counted, and reported with its location when it fails. */
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (cond) {                                                          \
            check_passed++;                                                  \
        } else {                                                             \
            check_failed++;                                                  \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                    \
    } while (0)

/* Byte-string equality with a hex dump of both sides on failure. */
#define CHECK_BYTES(got, got_len, want, want_len)                            \
    check_bytes_impl((got), (got_len), (want), (want_len), __FILE__, __LINE__)

static inline void check_hexdump(const char *label, const unsigned char *p,
                                 size_t len)
{
    size_t i;

    fprintf(stderr, "  %s (%zu):", label, len);
    for (i = 0; i < len && i < 64; i++)
        fprintf(stderr, " %02x", p[i]);
    fprintf(stderr, "%s\n", len > 64 ? " ..." : "");
}

static inline void check_bytes_impl(const void *got, size_t got_len,
                                    const void *want, size_t want_len,
                                    const char *file, int line)
{
    if (got_len == want_len && (want_len == 0 || memcmp(got, want, want_len) == 0)) {
        check_passed++;
        return;
    }
    check_failed++;
    fprintf(stderr, "FAIL %s:%d: bytes differ\n", file, line);
    check_hexdump("got ", got, got_len);
    check_hexdump("want", want, want_len);
}

#define RUN_TEST(fn)                                                         \
    do {                                                                     \
        int failed_before = check_failed;                                    \
        fn();                                                                \
        fprintf(stderr, "%s %s\n",                                           \
                check_failed == failed_before ? "ok  " : "FAIL", #fn);       \
    } while (0)

/* Prints "<name>: N passed, N failed" and returns main()'s exit status. */
static inline int check_report(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed == 0 ? 0 : 1;
}

#endif
