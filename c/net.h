/* net.h - the socket edge: listen, accept, connect, full reads and writes.
 *
 * Functions return an fd or 0 on success and -1 on failure with errno set
 * (name resolution failures report the getaddrinfo code through *gai_error
 * instead). Interrupted calls (EINTR) are retried; a timeout set with
 * net_set_timeouts() surfaces as errno ETIMEDOUT. Writes never raise SIGPIPE.
 */
#ifndef SECUREMSG_NET_H
#define SECUREMSG_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Room for "[" + IPv6 literal with scope + "]:" + port. */
#define NET_ADDR_MAX 96

/* Binds host (NULL = any) and port (0 = pick one) with SO_REUSEADDR and
 * listens. On a resolution failure returns -1 with *gai_error != 0. */
int net_listen(const char *host, uint16_t port, int backlog, int *gai_error);

/* accept(), retrying EINTR and ECONNABORTED. */
int net_accept(int listen_fd, struct sockaddr_storage *addr, socklen_t *addr_len);

/* Resolves host and tries every address in turn until one connects, within
 * timeout_ms overall (0 = no limit; then errno ETIMEDOUT). Sets TCP_NODELAY. */
int net_connect(const char *host, uint16_t port, int timeout_ms, int *gai_error);

int net_set_nodelay(int fd);

/* Receive and send timeouts in seconds (SO_RCVTIMEO/SO_SNDTIMEO); 0 = none. */
int net_set_timeouts(int fd, unsigned seconds);

/* One recv(): > 0 bytes read, 0 at end of stream, -1 on error. */
ssize_t net_read(int fd, void *buf, size_t cap);

/* Reads exactly len bytes unless the stream ends first: returns the number of
 * bytes read (< len at end of stream) or -1 on error. */
ssize_t net_read_full(int fd, void *buf, size_t len);

/* Writes all len bytes (retrying short writes); 0 or -1. */
int net_write_all(int fd, const void *buf, size_t len);

/* Raises the RLIMIT_NOFILE soft limit to the hard limit; 0 or -1. */
int net_raise_nofile(void);

/* One recv() that does not wait (MSG_DONTWAIT): as net_read, but -1 with
 * EAGAIN when nothing is there. */
ssize_t net_read_now(int fd, void *buf, size_t cap);

/* "1.2.3.4:5" or "[::1]:5" (numeric). */
void net_format_addr(char *out, size_t cap, const struct sockaddr *sa,
                     socklen_t sa_len);

/* The local address of fd, formatted as above; -1 on error. */
int net_format_local(char *out, size_t cap, int fd);

/* "host:port", or "[host]:port" when host is an IPv6 literal. */
void net_format_target(char *out, size_t cap, const char *host, unsigned port);

#endif
