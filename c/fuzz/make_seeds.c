/* make_seeds.c - writes the seed corpus under fuzz/corpus/ (make fuzz-seeds).
 *
 * The handshake seeds are real messages made with the fixed keys of
 * fuzz_keys.h, so they only need regenerating when those keys change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"
#include "fuzz_keys.h"

static int put(const char *dir, const char *name, const uint8_t *head,
               size_t head_len, const uint8_t *body, size_t body_len)
{
    char path[256];
    FILE *f;
    int rc = 0;

    snprintf(path, sizeof path, "fuzz/corpus/%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    if (fwrite(head, 1, head_len, f) != head_len ||
        (body_len > 0 && fwrite(body, 1, body_len, f) != body_len))
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

static int framing_seeds(void)
{
    static const uint8_t one[] = {0, 0, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    static const uint8_t two[] = {3, 1, 0, 0, 0, 17, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i',
                                  'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 0, 0, 0, 0};
    static const uint8_t partial[] = {1, 2, 0, 0, 0};
    static const uint8_t huge[] = {0, 2, 0xff, 0xff, 0xff, 0xff, 'x'};

    return put("fuzz_framing", "one-frame", one, sizeof one, NULL, 0) |
           put("fuzz_framing", "two-frames-chunked", two, sizeof two, NULL, 0) |
           put("fuzz_framing", "partial-header", partial, sizeof partial, NULL, 0) |
           put("fuzz_framing", "huge-prefix", huge, sizeof huge, NULL, 0);
}

static int session_seeds(void)
{
    static const uint8_t xor_frame[] = {0, 0, 1, 0, 0, 0, 2, 0x05, 0x26};
    static const uint8_t raw[] = {1, 0, 1, 0, 0, 0, 17, 1, 2, 3, 4, 5, 6, 7, 8,
                                  9, 10, 11, 12, 13, 14, 15, 16, 17};
    static const uint8_t sealed[] = {2, 0, 1, 1, 0, 2, 'H', 'i'};
    static const uint8_t chunks[] = {2, 5, 0, 0, 0, 3, 'a', 'b', 'c', 1, 0, 2, 'd', 'e',
                                     1, 0, 0};
    static const uint8_t marker[] = {2, 0, 1, 7, 0, 1, 'x'};

    return put("fuzz_session", "xor-frame", xor_frame, sizeof xor_frame, NULL, 0) |
           put("fuzz_session", "noise-raw", raw, sizeof raw, NULL, 0) |
           put("fuzz_session", "noise-sealed", sealed, sizeof sealed, NULL, 0) |
           put("fuzz_session", "noise-chunks", chunks, sizeof chunks, NULL, 0) |
           put("fuzz_session", "noise-bad-marker", marker, sizeof marker, NULL, 0);
}

static int handshake_seeds(void)
{
    noise_handshake init, resp;
    uint8_t msg1[NOISE_HANDSHAKE_MESSAGE_LEN], msg2[NOISE_HANDSHAKE_MESSAGE_LEN];
    uint8_t zeros[NOISE_HANDSHAKE_MESSAGE_LEN] = {0};
    static const uint8_t role0[] = {0}, role1[] = {1};
    size_t len1 = 0, len2 = 0, plen = 0;

    if (fuzz_handshake_init(&init, 1, fuzz_e_init) < 0 ||
        fuzz_handshake_init(&resp, 0, fuzz_e_resp) < 0 ||
        noise_handshake_write(&init, msg1, &len1, sizeof msg1, NULL, 0) < 0 ||
        noise_handshake_read(&resp, NULL, &plen, 0, msg1, len1) < 0 ||
        noise_handshake_write(&resp, msg2, &len2, sizeof msg2, NULL, 0) < 0)
        return -1;
    return put("fuzz_handshake", "message1", role0, 1, msg1, len1) |
           put("fuzz_handshake", "message2", role1, 1, msg2, len2) |
           put("fuzz_handshake", "zero-point", role0, 1, zeros, sizeof zeros) |
           put("fuzz_handshake", "short", role1, 1, zeros, 20);
}

int main(void)
{
    if (noise_global_init() < 0)
        return 1;
    if (framing_seeds() != 0 || session_seeds() != 0 || handshake_seeds() != 0)
        return 1;
    return 0;
}
