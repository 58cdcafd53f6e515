/* xorspeed.c - how fast c/crypto.c xors a buffer (issue 2: >= 1 GB/s on 1 MiB).
 *
 * Times --rounds calls of crypto_xor_apply() on a --size buffer with the
 * default 13-byte key, three times, and prints the best as one JSON line
 * (MB = 10^6 bytes). The clock is this process's CPU time, so that time spent
 * waiting for a core on a busy machine does not count. A checksum of the
 * output keeps the work observable.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"

#define XORSPEED_TRIES 3
#define XORSPEED_MAX_SIZE (256L * 1024 * 1024)
#define XORSPEED_MAX_ROUNDS 100000L

static const uint8_t default_key[] = "MY_SECRET_KEY";

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, long *size, long *rounds)
{
    int i;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--size") == 0) {
            if (parse_long(argv[i + 1], 1, XORSPEED_MAX_SIZE, size) < 0)
                return -1;
        } else if (strcmp(argv[i], "--rounds") == 0) {
            if (parse_long(argv[i + 1], 1, XORSPEED_MAX_ROUNDS, rounds) < 0)
                return -1;
        } else {
            return -1;
        }
    }
    return i == argc ? 0 : -1;
}

int main(int argc, char **argv)
{
    long size = 1024L * 1024, rounds = 200, r, i;
    const size_t key_len = sizeof default_key - 1;
    uint8_t *in = NULL, *out = NULL;
    double best = 1e30, start, took;
    unsigned checksum = 0;
    int t, rc = 1;

    if (parse_args(argc, argv, &size, &rounds) < 0) {
        fprintf(stderr, "Usage: xorspeed [--size BYTES] [--rounds N]\n");
        return 2;
    }
    in = malloc((size_t)size);
    out = malloc((size_t)size);
    if (in == NULL || out == NULL) {
        fprintf(stderr, "xorspeed: out of memory\n");
        goto free_buffers;
    }
    for (i = 0; i < size; i++)
        in[i] = (uint8_t)(i * 31u);
    crypto_xor_apply(out, in, (size_t)size, default_key, key_len); /* warm-up */
    for (t = 0; t < XORSPEED_TRIES; t++) {
        start = now_s();
        for (r = 0; r < rounds; r++) {
            crypto_xor_apply(out, in, (size_t)size, default_key, key_len);
            checksum += out[(size_t)r % (size_t)size];
        }
        took = now_s() - start;
        if (took < best)
            best = took;
    }
    printf("{\"size\":%ld,\"rounds\":%ld,\"seconds\":%.6f,\"mb_per_s\":%.1f,"
           "\"checksum\":%u}\n",
           size, rounds, best, (double)size * (double)rounds / best / 1e6,
           checksum);
    rc = 0;

free_buffers:
    free(in);
    free(out);
    return rc;
}
