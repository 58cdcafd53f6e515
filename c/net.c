/* net.c - sockets, in the manner of redis anet.c: small calls that return
 * 0/-1 or an fd and leave reporting to the caller. */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int resolve(const char *host, uint16_t port, int passive,
                   struct addrinfo **res, int *gai_error)
{
    struct addrinfo hints;
    char service[8];

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    snprintf(service, sizeof service, "%u", (unsigned)port);
    *gai_error = getaddrinfo(host, service, &hints, res);
    if (*gai_error != 0) {
        if (*gai_error == EAI_SYSTEM && errno == 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

static int listen_one(const struct addrinfo *ai, int backlog)
{
    int fd, on = 1, saved;

    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        goto close_fd;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        goto close_fd;
    if (listen(fd, backlog) < 0)
        goto close_fd;
    return fd;

close_fd:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int net_listen(const char *host, uint16_t port, int backlog, int *gai_error)
{
    struct addrinfo *res, *ai;
    int fd = -1;

    if (resolve(host, port, 1, &res, gai_error) < 0)
        return -1;
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
        fd = listen_one(ai, backlog);
    freeaddrinfo(res);
    return fd;
}

int net_accept(int listen_fd, struct sockaddr_storage *addr, socklen_t *addr_len)
{
    int fd;

    do {
        *addr_len = sizeof *addr;
        fd = accept(listen_fd, (struct sockaddr *)addr, addr_len);
    } while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
    return fd;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for a non-blocking connect to finish; 0 on success. */
static int wait_connected(int fd, long long deadline)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int rc, err = 0, timeout;
    socklen_t len = sizeof err;

    for (;;) {
        timeout = -1;
        if (deadline > 0) {
            long long left = deadline - now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        rc = poll(&pfd, 1, timeout);
        if (rc > 0)
            break;
        if (rc == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -1;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

static int connect_one(const struct addrinfo *ai, long long deadline)
{
    int fd, flags, saved;

    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return -1;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        goto close_fd;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS && errno != EINTR)
            goto close_fd;
        if (wait_connected(fd, deadline) < 0)
            goto close_fd;
    }
    if (fcntl(fd, F_SETFL, flags) < 0 || net_set_nodelay(fd) < 0)
        goto close_fd;
    return fd;

close_fd:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int net_connect(const char *host, uint16_t port, int timeout_ms, int *gai_error)
{
    struct addrinfo *res, *ai;
    long long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    int fd = -1, last_errno = ECONNREFUSED;

    if (resolve(host, port, 0, &res, gai_error) < 0)
        return -1;
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = connect_one(ai, deadline);
        if (fd < 0) {
            last_errno = errno;
            if (last_errno == ETIMEDOUT && deadline > 0 && now_ms() >= deadline)
                break;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        errno = last_errno;
    return fd;
}

int net_set_nodelay(int fd)
{
    int on = 1;

    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

int net_set_timeouts(int fd, unsigned seconds)
{
    struct timeval tv = {.tv_sec = (time_t)seconds, .tv_usec = 0};

    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        return -1;
    return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

ssize_t net_read(int fd, void *buf, size_t cap)
{
    ssize_t n;

    do {
        n = recv(fd, buf, cap, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        errno = ETIMEDOUT; /* SO_RCVTIMEO expired */
    return n;
}

ssize_t net_read_now(int fd, void *buf, size_t cap)
{
    ssize_t n;

    do {
        n = recv(fd, buf, cap, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n;
}

int net_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur == rl.rlim_max)
        return 0;
    rl.rlim_cur = rl.rlim_max;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

ssize_t net_read_full(int fd, void *buf, size_t len)
{
    size_t have = 0;
    ssize_t n;

    while (have < len) {
        n = net_read(fd, (uint8_t *)buf + have, len - have);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        have += (size_t)n;
    }
    return (ssize_t)have;
}

int net_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    ssize_t n;

    while (len > 0) {
        n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                errno = ETIMEDOUT; /* SO_SNDTIMEO expired */
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void net_format_addr(char *out, size_t cap, const struct sockaddr *sa,
                     socklen_t sa_len)
{
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2], port[8];

    if (getnameinfo(sa, sa_len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, cap, "?");
        return;
    }
    if (sa->sa_family == AF_INET6)
        snprintf(out, cap, "[%s]:%s", host, port);
    else
        snprintf(out, cap, "%s:%s", host, port);
}

int net_format_local(char *out, size_t cap, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    net_format_addr(out, cap, (struct sockaddr *)&ss, len);
    return 0;
}

void net_format_target(char *out, size_t cap, const char *host, unsigned port)
{
    if (strchr(host, ':') != NULL)
        snprintf(out, cap, "[%s]:%u", host, port);
    else
        snprintf(out, cap, "%s:%u", host, port);
}
