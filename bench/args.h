/* args.h - number arguments of the bench tools (loadgen, hostile): whole
 * strings only, range-checked, no atoi. */
#ifndef SECUREMSG_BENCH_ARGS_H
#define SECUREMSG_BENCH_ARGS_H

/* *out = the decimal integer s, if all of s is one within lo..hi; else -1. */
int args_parse_long(long *out, const char *s, long lo, long hi);

/* *out = the number of seconds s, if all of s is one in (0, max]; else -1. */
int args_parse_seconds(double *out, const char *s, double max);

#endif
