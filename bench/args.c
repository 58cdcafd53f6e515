/* args.c - see args.h. */
#include "args.h"

#include <errno.h>
#include <stdlib.h>

int args_parse_long(long *out, const char *s, long lo, long hi)
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

int args_parse_seconds(double *out, const char *s, double max)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0.0) || v > max)
        return -1;
    *out = v;
    return 0;
}
