/* rttfloor.c - the round-trip floor of this machine's loopback.
 *
 * The rt/s targets of issue 2 are absolute, but a round trip on one
 * connection costs at least two TCP sends and two wake-ups, whatever the
 * server does; on a virtual machine that alone can be tens of microseconds.
 * This probe measures that floor with the byte counts of a 64 B securemsg
 * exchange (a 68-byte frame out, a 26-byte ACK frame back) between two
 * threads that do nothing else: no cipher, no log, no allocation. The
 * benchmark runs it beside the servers and reports each server's rt/s as a
 * share of it. Output: one JSON line, as loadgen's.
 *
 * Bounded by --duration seconds and by a message count; loopback only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

#define RTTFLOOR_REQUEST 68 /* 4-byte length + 64 bytes */
#define RTTFLOOR_REPLY 26   /* 4-byte length + "ACK: Received 64 bytes" (22) */
#define RTTFLOOR_MAX_ROUNDS 10000000L
#define RTTFLOOR_MAX_SECONDS 60.0

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The peer: answers each request with a reply until the stream ends. */
static void *rttfloor_echo(void *arg)
{
    int listen_fd = *(int *)arg;
    uint8_t request[RTTFLOOR_REQUEST];
    uint8_t reply[RTTFLOOR_REPLY] = {0};
    struct sockaddr_storage peer;
    socklen_t peer_len;
    int fd;

    fd = net_accept(listen_fd, &peer, &peer_len);
    if (fd < 0)
        return NULL;
    if (net_set_nodelay(fd) == 0) {
        while (net_read_full(fd, request, sizeof request) == (ssize_t)sizeof request &&
               net_write_all(fd, reply, sizeof reply) == 0)
            ;
    }
    close(fd);
    return NULL;
}

/* Round trips until the deadline; their count, or -1 on a socket error. */
static long rttfloor_drive(int fd, double seconds, uint64_t *elapsed_ns)
{
    uint8_t request[RTTFLOOR_REQUEST] = {0, 0, 0, 64};
    uint8_t reply[RTTFLOOR_REPLY];
    uint64_t start = now_ns();
    uint64_t deadline = start + (uint64_t)(seconds * 1e9);
    long rounds = 0;

    while (rounds < RTTFLOOR_MAX_ROUNDS && now_ns() < deadline) {
        if (net_write_all(fd, request, sizeof request) != 0 ||
            net_read_full(fd, reply, sizeof reply) != (ssize_t)sizeof reply)
            return -1;
        rounds++;
    }
    *elapsed_ns = now_ns() - start;
    return rounds;
}

static int rttfloor_run(double seconds)
{
    int listen_fd, fd, gai_error = 0, status = -1;
    struct sockaddr_in bound;
    socklen_t bound_len = sizeof bound;
    uint64_t elapsed_ns = 0;
    long rounds;
    pthread_t echo;

    listen_fd = net_listen("127.0.0.1", 0, 1, &gai_error);
    if (listen_fd < 0 || getsockname(listen_fd, (struct sockaddr *)&bound, &bound_len) != 0)
        goto close_listener;
    if (pthread_create(&echo, NULL, rttfloor_echo, &listen_fd) != 0)
        goto close_listener;
    fd = net_connect("127.0.0.1", ntohs(bound.sin_port), 5000, &gai_error);
    if (fd >= 0) {
        rounds = rttfloor_drive(fd, seconds, &elapsed_ns);
        if (rounds > 0) {
            printf("{\"mode\":\"rttfloor\",\"request_bytes\":%d,\"reply_bytes\":%d,"
                   "\"round_trips\":%ld,\"seconds\":%.4f,\"rt_per_s\":%.1f}\n",
                   RTTFLOOR_REQUEST, RTTFLOOR_REPLY, rounds, (double)elapsed_ns / 1e9,
                   (double)rounds * 1e9 / (double)elapsed_ns);
            status = 0;
        }
        close(fd); /* ends the echo thread's loop */
    } else {
        shutdown(listen_fd, SHUT_RDWR); /* wakes its accept() */
    }
    pthread_join(echo, NULL);
close_listener:
    if (listen_fd >= 0)
        close(listen_fd);
    if (status != 0)
        fprintf(stderr, "[ERROR] rttfloor: loopback round trips failed: %s\n",
                gai_error != 0 ? "cannot resolve 127.0.0.1" : strerror(errno));
    return status;
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    char *end;

    if (argc == 3 && strcmp(argv[1], "--duration") == 0) {
        errno = 0;
        seconds = strtod(argv[2], &end);
        if (errno != 0 || end == argv[2] || *end != '\0' || !(seconds > 0.0) ||
            seconds > RTTFLOOR_MAX_SECONDS) {
            fprintf(stderr, "[ERROR] --duration must be a number of seconds in (0, 60]\n");
            return 2;
        }
    } else if (argc != 1) {
        fprintf(stderr, "Usage: rttfloor [--duration SECONDS]\n");
        return 2;
    }
    return rttfloor_run(seconds) == 0 ? 0 : 1;
}
