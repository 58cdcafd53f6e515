/* hostile.c - hostile peers for the stress tests (tests/stress).
 *
 * Thousands of connections that hold a server's memory or slots while staying
 * inside the protocol's rules, from one thread with epoll, so that the load
 * costs this machine little and the server is what a test measures.
 *
 *   --mode stall     announce a --frame-byte frame, send --stall-after bytes of
 *                    its body, then hold the connection open
 *   --mode trickle   send frames one after another at --rate bytes/s per peer
 *   --mode flood     send whole frames back to back as fast as the server reads
 *   --mode restall   send --header-bytes bytes of a length header and hold;
 *                    when the server cuts the connection, connect again at once
 *
 * Payloads are xor-encrypted with the default key (PROTOCOL.md section 2) so
 * that the server logs printable text. ACK frames are read and counted, not
 * checked (bench/loadgen checks ACKs). Bounded by --peers and --duration
 * (SIGTERM ends it early); only loopback addresses are accepted as targets. Prints "connected N" once
 * the first connect of every peer has ended, then one JSON line at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "config.h"

#define HOSTILE_MAX_PEERS 20000L
#define HOSTILE_MAX_FRAME 0x7fffffffL
#define HOSTILE_MAX_RATE (1L << 30)
#define HOSTILE_MAX_SECONDS 3600.0
#define HOSTILE_CHUNK 65536       /* largest single send */
#define HOSTILE_FLOOD_BURST 262144 /* flood: bytes per peer per wakeup */
#define HOSTILE_TICK_MS 5
#define HOSTILE_TRICKLE_SENDS 8 /* trickle: sends per second per peer */
#define HOSTILE_RETRY_NS 10000000ULL /* restall: pause after a failed connect */
#define HOSTILE_SNDBUF 65536 /* keeps the kernel's share per peer small */
#define HOSTILE_EVENTS 512
#define HOSTILE_PLAINTEXT 'a'

typedef enum { MODE_STALL, MODE_TRICKLE, MODE_FLOOD, MODE_RESTALL } hostile_mode;

/* SIGTERM/SIGINT: stop early and still print the report. */
static volatile sig_atomic_t hostile_stop;

static const char *const mode_names[] = {"stall", "trickle", "flood", "restall"};

typedef enum {
    PEER_IDLE,       /* no socket (restall: waiting to reconnect) */
    PEER_CONNECTING,
    PEER_SENDING,
    PEER_HOLDING,
    PEER_DEAD
} peer_state;

typedef struct {
    hostile_mode mode;
    long peers;
    uint32_t frame;       /* announced payload length */
    uint32_t stall_after; /* stall: body bytes sent before holding */
    uint32_t rate;        /* trickle: bytes/s per peer */
    uint32_t header_bytes;
    double duration;
    struct sockaddr_storage addr;
    socklen_t addr_len;
} hostile_options;

typedef struct {
    int fd;
    peer_state state;
    int first_connect_done;
    uint64_t sent;     /* bytes of the current frame sent, header included */
    uint64_t due_ns;   /* trickle: next send; restall: next connect */
    uint32_t in_have;  /* bytes of the ACK frame being read */
    uint32_t in_len;
    uint8_t in_header[4];
} hostile_peer;

typedef struct {
    long connected, connect_errors, first_connects_done;
    long cut_eof, cut_reset, reconnects, dead;
    long frames_sent, acks;
    uint64_t bytes_sent;
} hostile_counts;

typedef struct {
    const hostile_options *opt;
    hostile_peer *peers;
    hostile_counts n;
    int epfd;
    uint8_t pattern[HOSTILE_CHUNK + 64]; /* encrypted payload, key-period aligned */
    size_t key_len;
} hostile_run;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- sending ------------------------------------------------------------- */

/* Bytes of the current frame this peer sends before it stops. */
static uint64_t peer_target(const hostile_options *o)
{
    if (o->mode == MODE_RESTALL)
        return o->header_bytes;
    if (o->mode == MODE_STALL)
        return 4u + (uint64_t)o->stall_after;
    return 4u + (uint64_t)o->frame;
}

/* Sends up to limit bytes of the frame from p->sent on; bytes sent, 0 when
 * the socket is full, -1 when the connection is gone. */
static ssize_t peer_send(hostile_run *r, hostile_peer *p, uint64_t limit)
{
    uint8_t header[4];
    struct iovec iov[2];
    struct msghdr msg;
    uint64_t left = peer_target(r->opt) - p->sent;
    uint64_t body_off, want = limit < left ? limit : left;
    ssize_t n;
    int cnt = 0;

    if (want > HOSTILE_CHUNK)
        want = HOSTILE_CHUNK;
    if (p->sent < 4) {
        header[0] = (uint8_t)(r->opt->frame >> 24);
        header[1] = (uint8_t)(r->opt->frame >> 16);
        header[2] = (uint8_t)(r->opt->frame >> 8);
        header[3] = (uint8_t)r->opt->frame;
        iov[cnt].iov_base = header + p->sent;
        iov[cnt].iov_len = (size_t)(4 - p->sent < want ? 4 - p->sent : want);
        want -= iov[cnt++].iov_len;
    }
    if (want > 0) {
        body_off = p->sent < 4 ? 0 : p->sent - 4;
        iov[cnt].iov_base = r->pattern + body_off % r->key_len;
        iov[cnt++].iov_len = (size_t)want;
    }
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)cnt;
    do {
        n = sendmsg(p->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    p->sent += (uint64_t)n;
    r->n.bytes_sent += (uint64_t)n;
    if (p->sent == peer_target(r->opt)) {
        if (r->opt->mode == MODE_TRICKLE || r->opt->mode == MODE_FLOOD) {
            r->n.frames_sent++;
            p->sent = 0;
        } else {
            p->state = PEER_HOLDING;
        }
    }
    return n;
}

/* --- connections --------------------------------------------------------- */

static int peer_watch(hostile_run *r, long i, uint32_t events, int op)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = (uint64_t)i;
    return epoll_ctl(r->epfd, op, r->peers[i].fd, &ev);
}

/* Starts a non-blocking connect; 0, or -1 when it failed at once. */
static int peer_connect(hostile_run *r, long i)
{
    hostile_peer *p = &r->peers[i];
    int sndbuf = HOSTILE_SNDBUF;

    p->fd = socket(r->opt->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0)
        return -1;
    (void)setsockopt(p->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (connect(p->fd, (const struct sockaddr *)&r->opt->addr, r->opt->addr_len) < 0 &&
        errno != EINPROGRESS)
        goto close_fd;
    if (peer_watch(r, i, EPOLLOUT, EPOLL_CTL_ADD) < 0)
        goto close_fd;
    p->state = PEER_CONNECTING;
    p->sent = 0;
    p->in_have = 0;
    return 0;
close_fd:
    close(p->fd);
    p->fd = -1;
    return -1;
}

/* The end of a connection: counted, and (restall) a new one started. */
static void peer_end(hostile_run *r, long i, int reset, uint64_t now)
{
    hostile_peer *p = &r->peers[i];

    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    if (reset >= 0)
        reset ? r->n.cut_reset++ : r->n.cut_eof++;
    p->state = PEER_DEAD;
    if (r->opt->mode != MODE_RESTALL) {
        r->n.dead++;
        return;
    }
    /* Cut by the server: again at once. A failed connect: after a pause, so that a
     * server gone does not turn this into a busy loop. */
    r->n.reconnects += reset >= 0;
    if (reset < 0 || peer_connect(r, i) < 0) {
        p->state = PEER_IDLE; /* retried by the tick */
        p->due_ns = now + HOSTILE_RETRY_NS;
    }
}

static void first_connect_ended(hostile_run *r, hostile_peer *p, int ok)
{
    if (p->first_connect_done)
        return;
    p->first_connect_done = 1;
    r->n.first_connects_done++;
    ok ? r->n.connected++ : r->n.connect_errors++;
    if (r->n.first_connects_done == r->opt->peers) {
        printf("connected %ld\n", r->n.connected);
        fflush(stdout);
    }
}

static void peer_connected(hostile_run *r, long i, uint64_t now)
{
    hostile_peer *p = &r->peers[i];
    int err = 0;
    socklen_t len = sizeof err;
    uint32_t events = EPOLLIN | EPOLLRDHUP;

    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        first_connect_ended(r, p, 0);
        peer_end(r, i, -1, now);
        return;
    }
    first_connect_ended(r, p, 1);
    p->state = PEER_SENDING;
    /* Stagger the trickling peers over one send period. */
    p->due_ns = now + (uint64_t)i * (1000000000ULL / HOSTILE_TRICKLE_SENDS) /
                          (uint64_t)r->opt->peers;
    if (r->opt->mode == MODE_FLOOD || r->opt->mode == MODE_STALL)
        events |= EPOLLOUT;
    if (peer_watch(r, i, events, EPOLL_CTL_MOD) < 0)
        peer_end(r, i, 0, now);
    else if (r->opt->mode == MODE_RESTALL && peer_send(r, p, HOSTILE_CHUNK) < 0)
        peer_end(r, i, 1, now);
}

/* Reads what the server sent: ACK frames counted; 0 open, 1 EOF, 2 reset. */
static int peer_read(hostile_run *r, hostile_peer *p)
{
    uint8_t buf[HOSTILE_CHUNK];
    ssize_t n, k;

    for (;;) {
        n = read(p->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 2;
        if (n == 0)
            return 1;
        for (k = 0; k < n; k++) {
            if (p->in_have < 4) {
                p->in_header[p->in_have++] = buf[k];
                if (p->in_have < 4)
                    continue;
                p->in_len = (uint32_t)p->in_header[0] << 24 |
                             (uint32_t)p->in_header[1] << 16 |
                             (uint32_t)p->in_header[2] << 8 | p->in_header[3];
            } else {
                p->in_have++;
            }
            if (p->in_have == 4 + p->in_len) {
                r->n.acks++;
                p->in_have = 0;
            }
        }
    }
}

static void peer_event(hostile_run *r, long i, uint32_t events, uint64_t now)
{
    hostile_peer *p = &r->peers[i];
    int gone;

    if (p->state == PEER_CONNECTING) {
        peer_connected(r, i, now);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        gone = peer_read(r, p);
        if (gone) {
            peer_end(r, i, gone == 2, now);
            return;
        }
    }
    if (!(events & EPOLLOUT) || p->state != PEER_SENDING)
        return;
    if (r->opt->mode == MODE_FLOOD || r->opt->mode == MODE_STALL) {
        uint64_t budget = HOSTILE_FLOOD_BURST;
        ssize_t n = 1;

        while (budget > 0 && p->state == PEER_SENDING && (n = peer_send(r, p, budget)) > 0)
            budget -= (uint64_t)n < budget ? (uint64_t)n : budget;
        if (n < 0)
            peer_end(r, i, 1, now);
        else if (p->state == PEER_HOLDING && peer_watch(r, i, EPOLLIN | EPOLLRDHUP,
                                                         EPOLL_CTL_MOD) < 0)
            peer_end(r, i, 0, now);
    }
}

/* The timer's work: trickling sends and restall reconnects that are due. */
static void hostile_tick(hostile_run *r, uint64_t now)
{
    uint64_t period = 1000000000ULL / HOSTILE_TRICKLE_SENDS;
    uint64_t chunk = r->opt->rate / HOSTILE_TRICKLE_SENDS;
    long i;

    for (i = 0; i < r->opt->peers; i++) {
        hostile_peer *p = &r->peers[i];

        if (p->state == PEER_IDLE && now >= p->due_ns && peer_connect(r, i) < 0)
            p->due_ns = now + HOSTILE_RETRY_NS;
        if (r->opt->mode != MODE_TRICKLE || p->state != PEER_SENDING || now < p->due_ns)
            continue;
        /* No catching up after the server held us back: the rate is a ceiling. */
        p->due_ns = p->due_ns + period < now ? now + period : p->due_ns + period;
        if (peer_send(r, p, chunk > 0 ? chunk : 1) < 0)
            peer_end(r, i, 1, now);
    }
}

static int hostile_loop(hostile_run *r)
{
    struct epoll_event events[HOSTILE_EVENTS];
    uint64_t start = now_ns(), now = start, last_tick = 0;
    uint64_t end = start + (uint64_t)(r->opt->duration * 1e9);
    long i;
    int n, k;

    for (i = 0; i < r->opt->peers; i++) {
        r->peers[i].fd = -1;
        if (peer_connect(r, i) < 0) {
            first_connect_ended(r, &r->peers[i], 0);
            peer_end(r, i, -1, now);
        }
    }
    while (now < end && !hostile_stop) {
        n = epoll_wait(r->epfd, events, HOSTILE_EVENTS, HOSTILE_TICK_MS);
        if (n < 0 && errno != EINTR)
            return -1;
        now = now_ns();
        for (k = 0; k < n; k++)
            peer_event(r, (long)events[k].data.u64, events[k].events, now);
        if (now - last_tick >= HOSTILE_TICK_MS * 1000000ULL) {
            hostile_tick(r, now);
            last_tick = now;
        }
        if (r->n.dead == r->opt->peers)
            break; /* every peer was cut (restall peers never are for good) */
    }
    return 0;
}

/* --- options ------------------------------------------------------------- */

static const char usage_text[] =
    "Usage: hostile --mode MODE --peers N --duration SECONDS [OPTIONS] HOST PORT\n"
    "Hostile peers against a securemsg server on a loopback address.\n"
    "  --mode MODE          stall, trickle, flood or restall\n"
    "  --peers N            connections held at once (1..20000)\n"
    "  --duration SECONDS   how long the load lasts (at most 3600)\n"
    "  --frame BYTES        announced payload length (default 1048576)\n"
    "  --stall-after BYTES  stall: body bytes sent before holding (default half)\n"
    "  --rate BYTES         trickle: bytes per second per peer (default 65536)\n"
    "  --header-bytes N     restall: header bytes sent (1..3, default 2)\n"
    "Prints 'connected N' once every peer's first connect has ended, then one\n"
    "JSON line. Exit status: 0 done, 1 failure, 2 bad usage.\n";

/* A numeric loopback address (127.0.0.0/8 or ::1) and port; 0 or -1. */
static int parse_target(hostile_options *o, const char *host, const char *port)
{
    struct addrinfo hints, *res;
    const struct sockaddr_in *v4;
    const struct sockaddr_in6 *v6;
    int ok = 0;

    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    if (res->ai_family == AF_INET) {
        v4 = (const struct sockaddr_in *)res->ai_addr;
        ok = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    } else if (res->ai_family == AF_INET6) {
        v6 = (const struct sockaddr_in6 *)res->ai_addr;
        ok = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
    }
    if (ok) {
        memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
        o->addr_len = res->ai_addrlen;
    }
    freeaddrinfo(res);
    return ok ? 0 : -1;
}

static int parse_mode(const char *s, hostile_mode *out)
{
    size_t m;

    for (m = 0; m < sizeof mode_names / sizeof mode_names[0]; m++) {
        if (strcmp(s, mode_names[m]) == 0) {
            *out = (hostile_mode)m;
            return 0;
        }
    }
    return -1;
}

static int parse_option(hostile_options *o, const char *a, const char *val, int *stall_set)
{
    long v;

    if (strcmp(a, "--mode") == 0)
        return parse_mode(val, &o->mode);
    if (strcmp(a, "--duration") == 0)
        return args_parse_seconds(&o->duration, val, HOSTILE_MAX_SECONDS);
    if (strcmp(a, "--peers") == 0)
        return args_parse_long(&o->peers, val, 1, HOSTILE_MAX_PEERS);
    if (strcmp(a, "--frame") == 0 && args_parse_long(&v, val, 1, HOSTILE_MAX_FRAME) == 0) {
        o->frame = (uint32_t)v;
    } else if (strcmp(a, "--stall-after") == 0 &&
               args_parse_long(&v, val, 0, HOSTILE_MAX_FRAME) == 0) {
        o->stall_after = (uint32_t)v;
        *stall_set = 1;
    } else if (strcmp(a, "--rate") == 0 && args_parse_long(&v, val, 1, HOSTILE_MAX_RATE) == 0) {
        o->rate = (uint32_t)v;
    } else if (strcmp(a, "--header-bytes") == 0 && args_parse_long(&v, val, 1, 3) == 0) {
        o->header_bytes = (uint32_t)v;
    } else {
        return -1;
    }
    return 0;
}

/* 0 to run, 1 for --help, -1 for bad usage (reported). */
static int parse_options(hostile_options *o, int argc, char **argv)
{
    const char *pos[2];
    int i, npos = 0, stall_set = 0;

    memset(o, 0, sizeof *o);
    o->frame = CONFIG_DEFAULT_MAX_FRAME;
    o->rate = 65536;
    o->header_bytes = 2;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
        if (strncmp(argv[i], "--", 2) != 0) {
            if (npos == 2)
                goto bad;
            pos[npos++] = argv[i];
            continue;
        }
        if (i + 1 == argc || parse_option(o, argv[i], argv[i + 1], &stall_set) < 0)
            goto bad;
        i++;
    }
    if (npos != 2 || o->peers == 0 || o->duration == 0.0)
        goto bad;
    if (parse_target(o, pos[0], pos[1]) < 0) {
        fprintf(stderr, "[ERROR] Not a numeric loopback address and port: %s %s\n", pos[0],
                pos[1]);
        return -1;
    }
    if (!stall_set)
        o->stall_after = o->frame / 2;
    if (o->stall_after > o->frame)
        goto bad;
    return 0;
bad:
    fprintf(stderr, "[ERROR] Invalid arguments\n%s", usage_text);
    return -1;
}

/* Room for every peer's socket: the soft open-file limit raised if needed. */
static int raise_fd_limit(long peers)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)peers + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur >= want)
        return 0;
    if (rl.rlim_max < want)
        return -1;
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

static void print_report(const hostile_run *r, double seconds)
{
    printf("{\"mode\":\"%s\",\"peers\":%ld,\"connected\":%ld,\"connect_errors\":%ld,"
           "\"cut_eof\":%ld,\"cut_reset\":%ld,\"reconnects\":%ld,\"frames_sent\":%ld,"
           "\"acks\":%ld,\"bytes_sent\":%llu,\"seconds\":%.3f}\n",
           mode_names[r->opt->mode], r->opt->peers, r->n.connected, r->n.connect_errors,
           r->n.cut_eof, r->n.cut_reset, r->n.reconnects, r->n.frames_sent, r->n.acks,
           (unsigned long long)r->n.bytes_sent, seconds);
}

static void on_stop(int sig)
{
    (void)sig;
    hostile_stop = 1;
}

int main(int argc, char **argv)
{
    static hostile_run run; /* static: the pattern buffer stays off the stack */
    hostile_options opt;
    const char *key = CONFIG_DEFAULT_KEY;
    uint64_t started;
    size_t k;
    int rc = 1;

    switch (parse_options(&opt, argc, argv)) {
    case 1:
        fputs(usage_text, stdout);
        return 0;
    case -1:
        return 2;
    }
    if (raise_fd_limit(opt.peers) < 0) {
        fprintf(stderr, "[ERROR] The open-file limit is below %ld peers\n", opt.peers);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    run.opt = &opt;
    run.key_len = strlen(key);
    for (k = 0; k < sizeof run.pattern; k++)
        run.pattern[k] = (uint8_t)(HOSTILE_PLAINTEXT ^ key[k % run.key_len]);
    run.peers = calloc((size_t)opt.peers, sizeof *run.peers);
    if (run.peers == NULL)
        goto out;
    run.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (run.epfd < 0)
        goto free_peers;
    started = now_ns();
    if (hostile_loop(&run) == 0) {
        print_report(&run, (double)(now_ns() - started) / 1e9);
        rc = 0;
    }
    for (k = 0; k < (size_t)opt.peers; k++)
        if (run.peers[k].fd >= 0)
            close(run.peers[k].fd);
    close(run.epfd);
free_peers:
    free(run.peers);
out:
    if (rc != 0)
        fprintf(stderr, "[ERROR] hostile: %s\n", strerror(errno));
    return rc;
}
