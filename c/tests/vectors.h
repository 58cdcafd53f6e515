/* vectors.h - loading the shared JSON test vectors in tests/vectors/. */
#ifndef SECUREMSG_TEST_VECTORS_H
#define SECUREMSG_TEST_VECTORS_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* make test runs from c/, so the vectors are one level up. */
#define VECTORS_DIR "../tests/vectors/"

/* The "cases" array of a vector file; exits the test program if missing,
 * because a vector file that cannot be read must fail loudly. */
static inline json_t *vectors_load(const char *file, json_t **root)
{
    char path[256];
    json_error_t error;
    json_t *cases;

    snprintf(path, sizeof path, "%s%s", VECTORS_DIR, file);
    *root = json_load_file(path, 0, &error);
    cases = *root != NULL ? json_object_get(*root, "cases") : NULL;
    if (!json_is_array(cases) || json_array_size(cases) == 0) {
        fprintf(stderr, "cannot load %s: %s\n", path, error.text);
        exit(1);
    }
    return cases;
}

static inline const char *vectors_string(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    if (s == NULL) {
        fprintf(stderr, "vector field %s missing\n", key);
        exit(1);
    }
    return s;
}

static inline int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes a hex field into a fresh buffer (at least 1 byte, never NULL). */
static inline uint8_t *vectors_hex(json_t *obj, const char *key, size_t *len)
{
    const char *hex = vectors_string(obj, key);
    size_t n = strlen(hex) / 2, i;
    uint8_t *out = malloc(n + 1);

    if (out == NULL || strlen(hex) % 2 != 0)
        exit(1);
    for (i = 0; i < n; i++) {
        int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);

        if (hi < 0 || lo < 0)
            exit(1);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n;
    return out;
}

#endif
