/* server.c - the securemsg server: one thread per client.
 *
 * The main thread polls the listening socket and a self-pipe written by the
 * SIGINT/SIGTERM handler; it admits each new client, evicting the one quiet
 * longest when the server is full (PROTOCOL.md 9). Each client thread polls
 * its socket within the deadlines of conn.h, feeds the bytes to its session
 * and answers each message with an ACK. On shutdown the main thread makes a
 * second pipe readable; every client thread finishes the frame it is in,
 * then closes cleanly, and whatever is left at --drain-timeout is cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "config.h"
#include "conn.h"
#include "log.h"
#include "net.h"
#include "session.h"

#define SERVER_READ_BUF 16384   /* length prefixes and short frames */
#define SERVER_BODY_READ 262144 /* large payloads: read straight into their buffer */
#define SERVER_DIRECT_MIN 4096  /* payload bytes still to come worth a direct read */
#define SERVER_ALLOWANCE 65536  /* bytes of a frame a connection holds unbudgeted */
#define SERVER_KEEP_BUF 65536   /* larger buffers are released once quiet ... */
#define SERVER_KEEP_MS 1000     /* ... for this long */
#define SERVER_PUBLISH_MS 100   /* a unit's progress, for eviction, refreshed */
#define SERVER_EVICT_TRIES 8    /* victims that changed state before claimed */
#define SERVER_THREAD_STACK (256 * 1024)
#define SERVER_EVICTION_WAIT_MS 2000 /* for an evicted client's thread to end */
#define SERVER_MMAP_THRESHOLD (128 * 1024)
#define SERVER_ACCEPT_BATCH 64 /* accepts per wake-up of the accept loop */
#define SERVER_BACKLOG_MAX 65536 /* accepts at shutdown (the backlog is smaller) */
#define SERVER_DISCARD_READS 16 /* 256 KiB of unread bytes discarded at most */
#define SERVER_DISCARD_READS_AT_EXIT 2 /* ... by the main thread, per stuck thread */
#define SERVER_EXIT_GRACE_MS 200 /* after the drain deadline: threads to end ... */
#define SERVER_LOG_GRACE_MS 500  /* ... and the log to be written */

typedef struct budget_waiter {
    struct budget_waiter *next;
    pthread_cond_t cv;
} budget_waiter;

typedef struct {
    const config *cfg;
    session_cipher cipher;
    const uint8_t *key; /* xor key or noise PSK */
    size_t key_len;
    conn_limits limits;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a client thread ended */
    conn_slot *slots;       /* max_clients; slots[0..high_water) have been used */
    unsigned *free_list;    /* slots freed, to be reused first */
    unsigned free_count, high_water;
    unsigned clients;       /* slots in use (the --max-clients count) */
    unsigned threads;       /* client threads still running */
    uint64_t evictions, evictions_done;
    int stop_pipe[2];       /* readable once shutdown began; never read */
    atomic_int *evicted;    /* per slot: chosen by the acceptor (read unlocked) */
    /* the memory budget (PROTOCOL.md 4, 9), under budget_lock */
    pthread_mutex_t budget_lock;
    budget_waiter *wait_head, *wait_tail; /* connections paused, in order */
    uint64_t buffered;        /* reserved by all connections */
    unsigned budget_waiters;
    atomic_uint waiting;      /* budget_waiters, for unlocked reads */
    _Atomic int64_t drain_deadline; /* 0 until shutdown began */
    atomic_int cut;         /* the drain time ran out: connections cut quietly */
} server_state;

typedef struct {
    server_state *srv;
    int fd;
    unsigned slot;
    conn_slot_state state; /* this thread's view: BUSY or QUIET */
    int evicted, closing;
    conn_timing t;
    int64_t unit_start;  /* the unit in progress (conn.h): first byte, -1 = none */
    int64_t keep_until;  /* a large buffer kept while quiet: release then, -1 = none */
    uint64_t charged;    /* reserved from the memory budget */
    int64_t published_start, published_at; /* the slot's copy of the unit */
    uint64_t messages;   /* messages answered (and the handshake): units ended */
    char peer[NET_ADDR_MAX];
} client_conn;

static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;

    (void)!write(signal_pipe[1], &b, 1);
    errno = saved;
}

/* The server ended this connection on purpose: no error line. */
static int ended_quietly(const client_conn *c)
{
    return c->evicted || atomic_load(&c->srv->cut);
}

/* ---- one connection ------------------------------------------------------- */

/* Discards what the peer sent and we did not read (up to a bound): closing
 * a socket with unread bytes would send a reset instead of our FIN. */
static void discard_unread(int fd, int reads)
{
    uint8_t sink[16384];
    ssize_t n;
    int i;

    for (i = 0; i < reads; i++) {
        n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
    }
}


static void report_truncated(const client_conn *c, const session *s)
{
    size_t header, payload;
    uint32_t frame_len;

    session_pending(s, &header, &payload, &frame_len);
    if (header == 0 && session_in_message(s))
        log_line(LOG_ERROR, "Decryption failed from %s: connection closed in the "
                 "middle of a message", c->peer);
    else if (header > 0 && header < 4)
        log_line(LOG_ERROR, "Truncated frame from %s: connection closed after "
                 "%zu of 4 length bytes", c->peer, header);
    else if (header == 4)
        log_line(LOG_ERROR, "Truncated frame from %s: connection closed after "
                 "%zu of %lu payload bytes", c->peer, payload,
                 (unsigned long)frame_len);
}

static void report_session_error(const client_conn *c, const session *s)
{
    const session_error *e = session_error_info(s);

    switch (e->kind) {
    case SESSION_ERR_FRAME_TOO_LARGE:
        log_line(LOG_ERROR, "Frame too large from %s: %llu bytes (limit %llu)",
                 c->peer, (unsigned long long)e->length,
                 (unsigned long long)e->limit);
        break;
    case SESSION_ERR_HANDSHAKE:
        log_line(LOG_ERROR, "Handshake failed with %s: %s", c->peer, e->reason);
        break;
    case SESSION_ERR_DECRYPT:
        log_line(LOG_ERROR, "Decryption failed from %s: %s", c->peer, e->reason);
        break;
    case SESSION_ERR_MESSAGE_TOO_LARGE:
        log_line(LOG_ERROR, "Message too large from %s: more than %llu bytes",
                 c->peer, (unsigned long long)e->limit);
        break;
    case SESSION_ERR_NO_MEMORY:
    case SESSION_ERR_NONE:
        log_line(LOG_ERROR, "Receive from %s failed: %s", c->peer, strerror(ENOMEM));
        break;
    }
}

/* A send blocked for the idle timeout is reported as one (PROTOCOL.md 7);
 * net_write_all turns the SO_SNDTIMEO expiry into ETIMEDOUT. */
static void report_send_error(const client_conn *c, int err)
{
    if (ended_quietly(c))
        return;
    if (err == ETIMEDOUT)
        log_line(LOG_ERROR, "Idle timeout for %s after %u s", c->peer,
                 c->srv->cfg->idle_timeout);
    else
        log_line(LOG_ERROR, "Send to %s failed: %s", c->peer, strerror(err));
}

static int send_bytes(const client_conn *c, const uint8_t *buf, size_t len)
{
    if (net_write_all(c->fd, buf, len) == 0)
        return 0;
    report_send_error(c, errno);
    return -1;
}

static int was_evicted_unlocked(const client_conn *c)
{
    return atomic_load(&c->srv->evicted[c->slot]);
}

/* Answers the message with its ACK, then prints both lines. The ACK leaves
 * first so that the client's round trip never waits for our log writes. */
static int answer_message(const client_conn *c, session *s)
{
    const uint8_t *msg, *out;
    size_t len, out_len;
    char ack[64];
    int ack_len, send_errno = 0;

    session_message(s, &msg, &len);
    ack_len = snprintf(ack, sizeof ack, "ACK: Received %zu bytes", len);
    /* seal the ACK before logging: sealing never touches the received message */
    if (session_seal(s, (const uint8_t *)ack, (size_t)ack_len, &out, &out_len) < 0) {
        log_bytes(LOG_RECV, "Plaintext: ", msg, len);
        log_line(LOG_ERROR, "Send to %s failed: %s", c->peer, strerror(ENOMEM));
        return -1;
    }
    if (net_write_all(c->fd, out, out_len) < 0)
        send_errno = errno;
    if (send_errno == 0) { /* both lines, one write */
        log_bytes_and_line(LOG_RECV, "Plaintext: ", msg, len, LOG_SEND, "ACK sent to client");
        return 0;
    }
    /* a message logged as received always has its ACK or an error line */
    log_bytes(LOG_RECV, "Plaintext: ", msg, len);
    if (atomic_load(&c->srv->cut))
        log_line(LOG_ERROR, "Send to %s failed: drain timeout passed (%u s)", c->peer,
                 c->srv->cfg->drain_timeout);
    else if (c->evicted || was_evicted_unlocked(c))
        log_line(LOG_ERROR, "Send to %s failed: %s", c->peer, strerror(send_errno));
    else
        report_send_error(c, send_errno);
    return -1;
}

/* Acts on one session event; -1 ends the connection (the reason has been
 * logged). */
static int handle_event(client_conn *c, session *s, session_event ev)
{
    const uint8_t *out;
    size_t out_len;

    switch (ev) {
    case SESSION_NEED_MORE:
    case SESSION_READY:
        break;
    case SESSION_SEND: /* noise: handshake message 2 */
        session_output(s, &out, &out_len);
        if (send_bytes(c, out, out_len) < 0)
            return -1;
        log_line(LOG_INFO, "Handshake complete: %s", c->peer);
        c->messages++;
        break;
    case SESSION_MESSAGE:
        if (answer_message(c, s) < 0)
            return -1;
        c->messages++;
        break;
    case SESSION_ERROR:
        report_session_error(c, s);
        return -1;
    }
    return 0;
}

/* Feeds one chunk of received bytes through the session. */
static int handle_bytes(client_conn *c, session *s, const uint8_t *buf,
                        size_t n)
{
    size_t off, used;

    for (off = 0; off < n; off += used)
        if (handle_event(c, s, session_feed(s, buf + off, n - off, &used)) < 0)
            return -1;
    return 0;
}

/* ---- the memory budget (PROTOCOL.md 4, 9) --------------------------------- */

static uint64_t charge_for(size_t cap)
{
    return cap > SERVER_ALLOWANCE ? cap - SERVER_ALLOWANCE : 0;
}

/* Waiters queue in arrival order, each on a condition of its own: a
 * release wakes the first one only (no herd of thousands of threads), and
 * a later one never overtakes it. Lock held. */
static void budget_signal_head(server_state *srv)
{
    if (srv->wait_head != NULL)
        pthread_cond_signal(&srv->wait_head->cv);
}

static void budget_release(client_conn *c, uint64_t n)
{
    server_state *srv = c->srv;

    pthread_mutex_lock(&srv->budget_lock);
    srv->buffered -= n;
    c->charged -= n;
    budget_signal_head(srv);
    pthread_mutex_unlock(&srv->budget_lock);
}

/* Returns what this connection reserved beyond what its buffer needs now. */
static void budget_settle(client_conn *c, const session *s)
{
    uint64_t need = charge_for(session_unit_cap(s));

    if (c->charged > need)
        budget_release(c, c->charged - need);
}

/* Wakes every waiter (eviction, shutdown): each looks at why. */
static void budget_wake(server_state *srv)
{
    budget_waiter *w;

    pthread_mutex_lock(&srv->budget_lock);
    for (w = srv->wait_head; w != NULL; w = w->next)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&srv->budget_lock);
}

static void budget_timedwait(server_state *srv, budget_waiter *w, int64_t until)
{
    struct timespec ts;
    int64_t left = until - conn_now_ms();

    if (left <= 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(left / 1000);
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w->cv, &srv->budget_lock, &ts);
}

static void budget_enqueue(server_state *srv, budget_waiter *w)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &attr);
    pthread_condattr_destroy(&attr);
    w->next = NULL;
    if (srv->wait_tail != NULL)
        srv->wait_tail->next = w;
    else
        srv->wait_head = w;
    srv->wait_tail = w;
    if (srv->budget_waiters++ == 0)
        log_line(LOG_INFO, "Memory budget full (limit %llu bytes): pausing reads "
                 "of large frames", (unsigned long long)srv->cfg->max_buffered);
    atomic_store(&srv->waiting, srv->budget_waiters);
}

static void budget_dequeue(server_state *srv, budget_waiter *w)
{
    budget_waiter **p, *prev = NULL;

    for (p = &srv->wait_head; *p != NULL; prev = *p, p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    if (srv->wait_tail == w)
        srv->wait_tail = prev;
    pthread_cond_destroy(&w->cv);
    budget_signal_head(srv); /* the next one may fit now */
    if (--srv->budget_waiters == 0)
        log_line(LOG_INFO, "Memory budget available again: resuming reads");
    atomic_store(&srv->waiting, srv->budget_waiters);
}

/* Paused: waits its turn until extra bytes fit, or the connection's
 * deadline (or the drain's) passes, or it is evicted. Lock held. 0 when
 * reserved. */
static int budget_wait_locked(client_conn *c, const session *s, uint64_t extra)
{
    server_state *srv = c->srv;
    budget_waiter w;
    conn_deadline d;
    int64_t now, drain;
    int rc = -1;

    budget_enqueue(srv, &w);
    for (;;) {
        if (srv->wait_head == &w && srv->buffered + extra <= srv->cfg->max_buffered) {
            srv->buffered += extra;
            c->charged += extra;
            rc = 0;
            break;
        }
        if (atomic_load(&srv->evicted[c->slot]) || atomic_load(&srv->cut))
            break; /* ended by the server: no line */
        now = conn_now_ms();
        d = conn_next_deadline(&srv->limits, &c->t);
        drain = atomic_load(&srv->drain_deadline);
        if (drain != 0 && drain <= now)
            break;
        if (d.at <= now) {
            if (d.kind == CONN_WAIT_FRAME)
                log_line(LOG_ERROR, "Cut %s: frame deadline passed while paused by "
                         "the memory budget (%llu bytes buffered, limit %llu)",
                         c->peer, (unsigned long long)session_unit_bytes(s),
                         (unsigned long long)srv->cfg->max_buffered);
            else if (d.kind == CONN_WAIT_HANDSHAKE)
                log_line(LOG_ERROR, "Handshake timeout for %s after %u s", c->peer,
                         d.seconds);
            else
                log_line(LOG_ERROR, "Idle timeout for %s after %u s", c->peer,
                         d.seconds);
            break;
        }
        budget_timedwait(srv, &w, drain != 0 && drain < d.at ? drain : d.at);
    }
    budget_dequeue(srv, &w);
    return rc;
}

/* Before a read that may grow the message buffer to cap_after bytes:
 * reserves what that needs beyond the allowance. -1 ends the connection. */
static int budget_reserve(client_conn *c, const session *s, size_t cap_after)
{
    server_state *srv = c->srv;
    uint64_t need = charge_for(cap_after), extra;
    int rc = 0;

    if (need <= c->charged)
        return 0;
    extra = need - c->charged;
    pthread_mutex_lock(&srv->budget_lock);
    if (srv->wait_head == NULL && srv->buffered + extra <= srv->cfg->max_buffered) {
        srv->buffered += extra; /* no overtaking the waiters */
        c->charged += extra;
    } else {
        rc = budget_wait_locked(c, s, extra);
    }
    pthread_mutex_unlock(&srv->budget_lock);
    return rc;
}

/* A large buffer kept after its frame goes (wiped), with its reservation. */
static void release_kept(client_conn *c, session *s)
{
    c->keep_until = -1;
    c->published_start = -2;
    session_trim(s, SERVER_KEEP_BUF);
    budget_settle(c, s);
}

/* ---- deadlines and eviction, the client's side ---------------------------- */

/* Before reading: the slot becomes busy, so the acceptor cannot evict it
 * while a frame is read and answered. -1 when it was evicted already. */
static int mark_busy(client_conn *c)
{
    conn_slot *slot = &c->srv->slots[c->slot];
    conn_slot_state expected = CONN_SLOT_QUIET;

    if (c->state == CONN_SLOT_BUSY)
        return 0;
    /* no lock: the acceptor claims a victim with the same exchange */
    if (!atomic_compare_exchange_strong(&slot->state, &expected, CONN_SLOT_BUSY)) {
        c->evicted = 1; /* it was EVICTED */
        return -1;
    }
    c->state = CONN_SLOT_BUSY;
    return 0;
}

/* -1 when the acceptor evicted this connection (it may be evicted while
 * inside a slow frame, PROTOCOL.md 9): it then ends without an error line. */
static int mark_quiet(client_conn *c)
{
    conn_slot *slot = &c->srv->slots[c->slot];
    conn_slot_state expected = CONN_SLOT_BUSY;

    atomic_store(&slot->quiet_since, c->t.quiet_since);
    atomic_store(&slot->unit_start, -1);
    if (!atomic_compare_exchange_strong(&slot->state, &expected, CONN_SLOT_QUIET)) {
        c->evicted = 1;
        return -1;
    }
    c->state = CONN_SLOT_QUIET;
    return 0;
}

/* Inside a unit after a read: its progress, for the eviction rule. */
static int publish_progress(client_conn *c, uint64_t unit_bytes)
{
    conn_slot *slot = &c->srv->slots[c->slot];

    atomic_store(&slot->unit_bytes, unit_bytes);
    atomic_store(&slot->unit_start, c->unit_start);
    if (atomic_load(&slot->state) == CONN_SLOT_EVICTED) {
        c->evicted = 1;
        return -1;
    }
    return 0;
}

/* After a failed read or wait: whether the acceptor's eviction caused it. */
static int was_evicted(client_conn *c)
{
    if (atomic_load(&c->srv->slots[c->slot].state) == CONN_SLOT_EVICTED)
        c->evicted = 1;
    return c->evicted;
}

/* After a chunk is used up: when the partial frame (if any) began, and
 * whether the connection is now between frames. */
static void track_frame(client_conn *c, const session *s, int64_t read_at,
                        uint64_t frames_before, uint64_t messages_before)
{
    size_t header, payload;
    uint32_t len;

    session_pending(s, &header, &payload, &len);
    if (header == 0 && payload == 0)
        c->t.frame_start = -1;
    else if (c->t.frame_start < 0 || session_frames(s) != frames_before)
        c->t.frame_start = read_at; /* its first bytes came in this read */
    c->t.frame_len = len;
    c->t.last_bytes = read_at;
    c->t.in_message = session_in_message(s);
    c->t.handshaking = !session_ready(s);
    if (c->t.frame_start < 0 && !c->t.in_message)
        c->t.quiet_since = read_at; /* the read that ended the frame */
    if (conn_quiet(&c->t))
        c->unit_start = -1;
    else if (c->t.handshaking)
        c->unit_start = c->t.accepted;
    else if (c->unit_start < 0 || c->messages != messages_before)
        c->unit_start = read_at; /* a unit began in this read */
}

/* The deadline of the next wait; on shutdown also the drain: at once when
 * nothing is in progress, else at --drain-timeout. */
static conn_deadline next_deadline(const client_conn *c, int64_t now)
{
    conn_deadline d = conn_next_deadline(&c->srv->limits, &c->t);
    int64_t drain_end;

    if (c->closing) {
        drain_end = c->state == CONN_SLOT_QUIET ? now
                                                : atomic_load(&c->srv->drain_deadline);
        if (drain_end < d.at) {
            d.kind = CONN_WAIT_DRAIN;
            d.at = drain_end;
            d.seconds = 0;
        }
    }
    return d;
}

/* Waits for bytes: 1 readable, 0 when *d ran out, -1 on a poll error. The
 * deadline is checked on every wake-up, bytes waiting or not, so a peer
 * that always has bytes ready is still cut on time. A large buffer kept
 * while quiet is released when its time is up. */
static int wait_readable(client_conn *c, session *s, conn_deadline *d)
{
    struct pollfd pfd[2] = {
        {.fd = c->fd, .events = POLLIN},
        {.fd = c->srv->stop_pipe[0], .events = POLLIN},
    };
    int64_t now, wake, left;
    int rc, timeout;

    for (;;) {
        now = conn_now_ms();
        *d = next_deadline(c, now);
        if (d->at <= now)
            return 0;
        if (c->keep_until >= 0 && (c->keep_until <= now ||
                                   atomic_load(&c->srv->waiting) > 0)) {
            release_kept(c, s);
            continue;
        }
        wake = c->keep_until >= 0 && c->keep_until < d->at ? c->keep_until : d->at;
        left = wake == CONN_NEVER ? -1 : wake - now;
        timeout = left < 0 ? -1 : (left > INT_MAX ? INT_MAX : (int)left);
        rc = poll(pfd, c->closing ? 1 : 2, timeout);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (!c->closing && pfd[1].revents != 0) {
            c->closing = 1; /* shutdown began: finish the frame, then close */
            continue;
        }
        if (rc > 0 && pfd[0].revents != 0)
            return 1; /* serve_chunk checks *d against the time of its read */
    }
}

/* Shutdown between frames: FIN, then read and discard until the peer's EOF
 * (closing with unread bytes would send a reset) or the drain deadline. */
static void close_gracefully(const client_conn *c, uint8_t *buf, size_t cap)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int64_t left;
    int rc;

    shutdown(c->fd, SHUT_WR);
    for (;;) {
        left = atomic_load(&c->srv->drain_deadline) - conn_now_ms();
        if (left <= 0)
            return;
        rc = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0 || net_read(c->fd, buf, cap) <= 0)
            return;
    }
}

static void report_expiry(client_conn *c, const conn_deadline *d, uint8_t *buf,
                          size_t cap)
{
    if (d->kind == CONN_WAIT_DRAIN) {
        close_gracefully(c, buf, cap);
        return;
    }
    if (mark_busy(c) < 0)
        return; /* evicted meanwhile */
    if (d->kind == CONN_WAIT_FRAME)
        log_line(LOG_ERROR, "Frame timeout for %s after %u s", c->peer, d->seconds);
    else if (d->kind == CONN_WAIT_HANDSHAKE)
        log_line(LOG_ERROR, "Handshake timeout for %s after %u s", c->peer,
                 d->seconds);
    else
        log_line(LOG_ERROR, "Idle timeout for %s after %u s", c->peer, d->seconds);
}

/* ---- one connection, continued -------------------------------------------- */

/* Reads into the session: a large payload straight into its buffer, once
 * the budget has room for it; anything else through buf. Returns what read
 * returned (-2 ends the connection: paused past its deadline, evicted or
 * cut while paused, or out of memory; logged); *direct says which. */
static ssize_t read_some(client_conn *c, session *s, uint8_t *buf, size_t cap,
                         int *direct)
{
    uint8_t *dst;
    size_t room, left, want;

    left = session_room(s, &dst, &room);
    *direct = left >= SERVER_DIRECT_MIN;
    if (!*direct) {
        if (budget_reserve(c, s, session_cap_after(s, cap)) < 0)
            return -2;
        return net_read(c->fd, buf, cap);
    }
    want = left < SERVER_BODY_READ ? left : SERVER_BODY_READ;
    if (room < want) {
        /* xor: the rest of the frame at once, so that connections holding
         * parts of frames cannot share out the budget with none of them
         * able to finish; noise messages have no announced length */
        if (budget_reserve(c, s, session_cap_after(s, c->srv->cipher == SESSION_XOR
                                                            ? left : want)) < 0)
            return -2;
        if (session_reserve_room(s, want) < 0) {
            log_line(LOG_ERROR, "Receive from %s failed: %s", c->peer,
                     strerror(ENOMEM));
            return -2;
        }
        session_room(s, &dst, &room);
    }
    return net_read(c->fd, dst, room);
}

/* One read and what follows; 0 to go on, -1 to end the connection, 1 when
 * the deadline d of the wait before it had passed by the time of the read
 * (bytes always waiting do not keep a connection past its deadline). */
static int serve_chunk(client_conn *c, session *s, uint8_t *buf, size_t cap,
                       const conn_deadline *d)
{
    uint64_t frames_before = session_frames(s), messages_before = c->messages;
    int64_t read_at;
    ssize_t n;
    int direct, rc;

    if (mark_busy(c) < 0)
        return -1;
    n = read_some(c, s, buf, cap, &direct);
    read_at = conn_now_ms();
    if (n == -2)
        return -1;
    if (n < 0) {
        if (!was_evicted(c) && !ended_quietly(c))
            log_line(LOG_ERROR, "Receive from %s failed: %s", c->peer,
                     strerror(errno));
        return -1;
    }
    if (n == 0) {
        if (!was_evicted(c) && !ended_quietly(c))
            report_truncated(c, s);
        return -1;
    }
    if (read_at >= d->at)
        return 1;
    rc = direct ? handle_event(c, s, session_commit(s, (size_t)n))
                : handle_bytes(c, s, buf, (size_t)n);
    if (rc < 0)
        return -1;
    track_frame(c, s, read_at, frames_before, messages_before);
    /* a frame in progress keeps what it reserved (xor: all of it) */
    if (c->charged > 0 && session_frames(s) != frames_before)
        budget_settle(c, s);
    if (!conn_quiet(&c->t)) {
        /* the eviction rule's view, refreshed now and then: every read
         * would make thousands of busy connections queue on the lock */
        if (c->unit_start == c->published_start &&
            read_at - c->published_at < SERVER_PUBLISH_MS)
            return 0;
        c->published_start = c->unit_start;
        c->published_at = read_at;
        return publish_progress(c, session_unit_bytes(s));
    }
    if (session_unit_cap(s) > SERVER_KEEP_BUF) /* frames may keep coming */
        c->keep_until = atomic_load(&c->srv->waiting) > 0 ? read_at
                                                           : read_at + SERVER_KEEP_MS;
    return mark_quiet(c);
}

static void serve_client(client_conn *c)
{
    const server_state *srv = c->srv;
    conn_deadline d;
    session s;
    uint8_t *buf;
    int rc;

    buf = malloc(SERVER_READ_BUF);
    if (buf == NULL ||
        session_init(&s, srv->cipher, 0, srv->key, srv->key_len,
                     srv->cfg->max_frame) < 0) {
        log_line(LOG_ERROR, "Receive from %s failed: %s", c->peer, strerror(ENOMEM));
        free(buf);
        return;
    }
    c->t.handshaking = !session_ready(&s);
    for (;;) {
        rc = wait_readable(c, &s, &d);
        if (rc == 0) {
            report_expiry(c, &d, buf, SERVER_READ_BUF);
            break;
        }
        if (rc < 0) {
            if (!was_evicted(c) && !ended_quietly(c))
                log_line(LOG_ERROR, "Receive from %s failed: %s", c->peer,
                         strerror(errno));
            break;
        }
        rc = serve_chunk(c, &s, buf, SERVER_READ_BUF, &d);
        if (rc == 1)
            report_expiry(c, &d, buf, SERVER_READ_BUF);
        if (rc != 0)
            break;
    }
    session_free(&s);
    if (c->charged > 0)
        budget_release(c, c->charged);
    free(buf);
}

/* Gives the slot back; the caller holds the lock. */
static void free_slot_locked(server_state *srv, unsigned slot)
{
    srv->slots[slot].state = CONN_SLOT_FREE;
    srv->slots[slot].fd = -1;
    srv->slots[slot].peer = NULL;
    srv->free_list[srv->free_count++] = slot;
    srv->clients--;
}

static void *client_thread(void *arg)
{
    client_conn *c = arg;
    server_state *srv = c->srv;

    log_line(LOG_INFO, "Client connected: %s", c->peer);
    /* Busy until this line is out, so that no eviction line precedes it. */
    if (c->t.handshaking || mark_quiet(c) == 0)
        serve_client(c);

    /* Free the slot first, so a client that waits for our "disconnected"
     * line is never refused as one too many. */
    discard_unread(c->fd, SERVER_DISCARD_READS);
    pthread_mutex_lock(&srv->lock);
    free_slot_locked(srv, c->slot);
    pthread_mutex_unlock(&srv->lock);
    close(c->fd);
    log_line(LOG_INFO, "Client disconnected: %s", c->peer);

    pthread_mutex_lock(&srv->lock);
    srv->threads--;
    if (c->evicted)
        srv->evictions_done++;
    pthread_cond_broadcast(&srv->changed);
    pthread_mutex_unlock(&srv->lock);
    free(c);
    return NULL;
}

/* ---- accepting ------------------------------------------------------------ */

/* Takes a free slot for c; -1 when the server is full. Lock held. */
static int take_slot_locked(server_state *srv, client_conn *c, int64_t now)
{
    conn_slot *slot;

    if (srv->clients >= srv->cfg->max_clients)
        return -1;
    c->slot = srv->free_count > 0 ? srv->free_list[--srv->free_count]
                                  : srv->high_water++;
    slot = &srv->slots[c->slot];
    slot->state = c->state;
    slot->fd = c->fd;
    slot->quiet_since = now;
    slot->unit_start = c->t.handshaking ? now : -1; /* a handshake is a unit */
    atomic_store(&srv->evicted[c->slot], 0);
    slot->unit_bytes = 0;
    slot->peer = c->peer;
    srv->clients++;
    srv->threads++;
    return 0;
}

static void release_slot(server_state *srv, unsigned slot)
{
    pthread_mutex_lock(&srv->lock);
    free_slot_locked(srv, slot);
    srv->threads--;
    pthread_mutex_unlock(&srv->lock);
}

static void deadline_timespec(struct timespec *ts, int64_t ms_from_now)
{
    if (ms_from_now < 0)
        ms_from_now = 0; /* passed already: a negative tv_nsec is EINVAL */
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms_from_now / 1000);
    ts->tv_nsec += (long)(ms_from_now % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Full: ends the quiet-longest connection and waits until its thread has
 * logged its disconnect line. -1 when no connection may be evicted. The
 * eviction line is written under the lock, so it precedes that line. */
static int evict_one_locked(server_state *srv, int64_t now)
{
    struct timespec until;
    conn_slot_state expected;
    conn_victim v;
    conn_slot *slot;
    uint64_t ticket;
    int tries;

    /* the threads change their states without the lock: claim the victim
     * only if it is still as chosen, else choose again */
    for (tries = 0;; tries++) {
        v = conn_choose_victim(srv->slots, srv->high_water, now, srv->cfg->min_rate);
        if (v.slot < 0 || tries == SERVER_EVICT_TRIES)
            return -1;
        slot = &srv->slots[v.slot];
        expected = v.reason == CONN_EVICT_SLOW ? CONN_SLOT_BUSY : CONN_SLOT_QUIET;
        if (atomic_compare_exchange_strong(&slot->state, &expected, CONN_SLOT_EVICTED))
            break;
    }
    atomic_store(&srv->evicted[v.slot], 1);
    if (v.reason == CONN_EVICT_IDLE)
        log_line(LOG_INFO, "Evicted %s: idle %llu s, server full (limit %u)",
                 slot->peer, (unsigned long long)v.value, srv->cfg->max_clients);
    else
        log_line(LOG_INFO, "Evicted %s: %llu bytes/s in a frame, server full "
                 "(limit %u)", slot->peer, (unsigned long long)v.value,
                 srv->cfg->max_clients);
    shutdown(slot->fd, SHUT_RDWR); /* its poll or read returns; it ends quietly */
    budget_wake(srv);              /* or its wait for the budget */
    ticket = ++srv->evictions;
    deadline_timespec(&until, SERVER_EVICTION_WAIT_MS);
    while (srv->evictions_done < ticket &&
           pthread_cond_timedwait(&srv->changed, &srv->lock, &until) == 0)
        ;
    return 0;
}

static int admit(server_state *srv, client_conn *c)
{
    int64_t now = conn_now_ms();
    int rc;

    pthread_mutex_lock(&srv->lock);
    rc = take_slot_locked(srv, c, now);
    if (rc < 0 && evict_one_locked(srv, now) == 0)
        rc = take_slot_locked(srv, c, conn_now_ms());
    pthread_mutex_unlock(&srv->lock);
    return rc;
}

static int start_thread(client_conn *c)
{
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t block, old;
    int rc;

    /* Signals belong to the main thread; workers inherit this mask. */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, SERVER_THREAD_STACK);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = pthread_create(&tid, &attr, client_thread, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

static client_conn *new_conn(server_state *srv, int fd, const char *peer)
{
    client_conn *c = calloc(1, sizeof *c);
    int64_t now = conn_now_ms();

    if (c == NULL)
        return NULL;
    c->srv = srv;
    c->fd = fd;
    c->state = CONN_SLOT_BUSY; /* see client_thread */
    c->t.accepted = c->t.quiet_since = c->t.last_bytes = now;
    c->t.frame_start = -1;
    c->t.handshaking = srv->cipher == SESSION_NOISE;
    c->unit_start = c->t.handshaking ? now : -1;
    c->keep_until = -1;
    c->published_start = -2;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    return c;
}

/* 1 when a connection was taken off the backlog (admitted or refused),
 * 0 when there was none (or accept failed). */
static int accept_one(server_state *srv, int listen_fd)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    client_conn *c;
    char peer[NET_ADDR_MAX];
    int fd, flags, rc;

    fd = net_accept(listen_fd, &addr, &addr_len);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            log_line(LOG_ERROR, "Cannot accept a connection: %s", strerror(errno));
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 100000000};

            nanosleep(&pause, NULL); /* e.g. EMFILE: do not spin */
        }
        return 0;
    }
    net_format_addr(peer, sizeof peer, (struct sockaddr *)&addr, addr_len);
    flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    net_set_nodelay(fd);
    net_set_timeouts(fd, srv->cfg->idle_timeout); /* sends; reads are polled */

    c = new_conn(srv, fd, peer);
    if (c == NULL) {
        log_line(LOG_ERROR, "Client refused: %s: %s", peer, strerror(ENOMEM));
        close(fd);
        return 1;
    }
    if (admit(srv, c) < 0) {
        log_line(LOG_ERROR, "Client refused: %s: too many clients (limit %u)",
                 peer, srv->cfg->max_clients);
        goto refuse;
    }
    rc = start_thread(c);
    if (rc != 0) {
        release_slot(srv, c->slot);
        log_line(LOG_ERROR, "Client refused: %s: %s", peer, strerror(rc));
        goto refuse;
    }
    return 1;

refuse:
    close(fd);
    free(c);
    return 1;
}

static void wait_threads_until(server_state *srv, int64_t until_ms)
{
    struct timespec until;

    deadline_timespec(&until, until_ms - conn_now_ms());
    while (srv->threads > 0 &&
           pthread_cond_timedwait(&srv->changed, &srv->lock, &until) == 0)
        ;
}

/* Shutdown, once the backlog has been accepted: every client finishes its
 * frame and closes (they all poll the stop pipe); at the drain deadline
 * whatever is left is cut. Returns the number of threads still running
 * SERVER_EXIT_GRACE_MS later (stuck, e.g. on a log that is not read). */
static unsigned drain_clients(server_state *srv, int64_t deadline)
{
    unsigned i, left;

    pthread_mutex_lock(&srv->lock);
    wait_threads_until(srv, deadline);
    if (srv->threads > 0) {
        atomic_store(&srv->cut, 1);
        budget_wake(srv);
        /* FIN for every connection still open; wakes a send blocked on a
         * peer that reads nothing (the threads' polls wake by themselves) */
        for (i = 0; i < srv->high_water; i++)
            if (srv->slots[i].state != CONN_SLOT_FREE)
                shutdown(srv->slots[i].fd, SHUT_WR);
        wait_threads_until(srv, deadline + SERVER_EXIT_GRACE_MS);
    }
    /* a thread still running is stuck; its peer gets our FIN, not a reset,
     * if all it sent was a short frame (more is a frame still arriving) */
    for (i = 0; i < srv->high_water; i++)
        if (srv->slots[i].state != CONN_SLOT_FREE)
            discard_unread(srv->slots[i].fd, SERVER_DISCARD_READS_AT_EXIT);
    left = srv->threads;
    pthread_mutex_unlock(&srv->lock);
    return left;
}

/* The signal arrived: connections already in the backlog are accepted and
 * drained like the others rather than reset by closing the listener on
 * them (PROTOCOL.md 9). Returns the drain deadline. */
static int64_t begin_shutdown(server_state *srv, int listen_fd)
{
    int64_t deadline = conn_now_ms() + (int64_t)srv->cfg->drain_timeout * 1000;
    unsigned char b = 0;
    int i;

    atomic_store(&srv->drain_deadline, deadline);
    (void)!write(srv->stop_pipe[1], &b, 1);
    budget_wake(srv);
    for (i = 0; i < SERVER_BACKLOG_MAX && accept_one(srv, listen_fd) == 1; i++)
        ;
    close(listen_fd); /* new clients are refused by the kernel from now on */
    return deadline;
}

/* Log lines that could not be written in time, said once if stderr takes
 * it at once (it may be the same slow pipe). */
static void report_log_loss(uint64_t lost)
{
    char line[96];
    int n, flags;

    if (lost == 0)
        return;
    n = snprintf(line, sizeof line, "[ERROR] Log output blocked: %llu lines not written\n",
                 (unsigned long long)lost);
    flags = fcntl(STDERR_FILENO, F_GETFL);
    if (flags >= 0)
        fcntl(STDERR_FILENO, F_SETFL, flags | O_NONBLOCK);
    (void)!write(STDERR_FILENO, line, (size_t)n);
    if (flags >= 0)
        fcntl(STDERR_FILENO, F_SETFL, flags);
}

static int accept_loop(server_state *srv, int listen_fd)
{
    struct pollfd pfd[2] = {
        {.fd = listen_fd, .events = POLLIN},
        {.fd = signal_pipe[0], .events = POLLIN},
    };
    int i;

    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_line(LOG_ERROR, "Cannot wait for connections: %s", strerror(errno));
            return -1;
        }
        if (pfd[1].revents != 0)
            return 0;
        /* A burst: empty the backlog a batch at a time, then look at the
         * signal pipe again. */
        for (i = 0; pfd[0].revents != 0 && i < SERVER_ACCEPT_BATCH; i++)
            if (accept_one(srv, listen_fd) == 0)
                break;
    }
}

/* ---- start-up ------------------------------------------------------------- */

static int install_signals(void)
{
    struct sigaction sa;
    int i;

    if (pipe(signal_pipe) < 0)
        return -1;
    for (i = 0; i < 2; i++) {
        int flags = fcntl(signal_pipe[i], F_GETFL);

        if (flags < 0 || fcntl(signal_pipe[i], F_SETFL, flags | O_NONBLOCK) < 0)
            return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int open_listener(const config *cfg)
{
    char addr[NET_ADDR_MAX + 300], quoted[256];
    int fd, gai_error = 0, flags;

    fd = net_listen(cfg->bind, cfg->port, SOMAXCONN, &gai_error);
    if (fd < 0) {
        log_escape(quoted, sizeof quoted, (const uint8_t *)cfg->bind,
                   strlen(cfg->bind));
        net_format_target(addr, sizeof addr, quoted, cfg->port);
        log_line(LOG_ERROR, "Cannot listen on %s: %s", addr,
                 gai_error != 0 && gai_error != EAI_SYSTEM ? gai_strerror(gai_error)
                                                           : strerror(errno));
        return -1;
    }
    /* Non-blocking, so a connection reset between poll and accept cannot
     * block the loop. */
    flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    if (net_format_local(addr, sizeof addr, fd) == 0)
        log_line(LOG_INFO, "Listening on %s", addr);
    return fd;
}

/* Prints what config_parse() reported; returns the exit status. */
static int report_config(config_status st, const char *err, const char *prog)
{
    char usage[4096];
    size_t len = config_usage(usage, sizeof usage, CONFIG_SERVER, prog);

    if (len >= sizeof usage)
        len = sizeof usage - 1;
    if (st == CONFIG_HELP) {
        log_raw(STDOUT_FILENO, usage, len);
        return 0;
    }
    log_line(LOG_ERROR, "%s", err);
    if (st == CONFIG_USAGE) {
        log_raw(STDERR_FILENO, usage, len);
        return 2;
    }
    return 1;
}

static const char *program_name(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');

    return slash != NULL ? slash + 1 : argv0;
}

/* 0 on a clean shutdown; *stuck: client threads that did not end in time
 * (main then exits without tearing down what they use). */
static int run(server_state *srv, const config *cfg, unsigned *stuck)
{
    int64_t deadline;
    int listen_fd, rc;

    listen_fd = open_listener(cfg);
    if (listen_fd < 0)
        return 1;
    /* xor mode prints exactly the seed's lines; secure mode says so at once. */
    if (cfg->cipher == CONFIG_CIPHER_NOISE)
        log_line(LOG_INFO, "Cipher: %s", SESSION_CIPHER_NAME_NOISE);
    rc = accept_loop(srv, listen_fd);
    log_draining(); /* from here on nothing waits for the log */
    /* Announce the shutdown before the clients' disconnect lines, as Python does. */
    if (rc == 0)
        log_line(LOG_INFO, "Shutting down");
    deadline = begin_shutdown(srv, listen_fd);
    *stuck = drain_clients(srv, deadline);
    report_log_loss(log_finish(deadline + SERVER_LOG_GRACE_MS));
    return rc == 0 ? 0 : 1;
}

/* The slot table and the pipes; -1 with errno set. */
static int server_init(server_state *srv, const config *cfg)
{
    pthread_condattr_t attr;
    int i;

    srv->cfg = cfg;
    srv->limits.idle_timeout = cfg->idle_timeout;
    srv->limits.frame_timeout = cfg->frame_timeout;
    srv->limits.min_rate = cfg->min_rate;
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    /* calloc: a zeroed slot is free, and pages never touched cost nothing */
    srv->slots = calloc(cfg->max_clients, sizeof *srv->slots);
    srv->free_list = calloc(cfg->max_clients, sizeof *srv->free_list);
    srv->evicted = calloc(cfg->max_clients, sizeof *srv->evicted);
    if (srv->slots == NULL || srv->free_list == NULL || srv->evicted == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (pipe(srv->stop_pipe) < 0)
        return -1;
    for (i = 0; i < 2; i++)
        fcntl(srv->stop_pipe[i], F_SETFL, fcntl(srv->stop_pipe[i], F_GETFL) | O_NONBLOCK);
    pthread_mutex_init(&srv->lock, NULL);
    pthread_mutex_init(&srv->budget_lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->changed, &attr);
    pthread_condattr_destroy(&attr);
    return 0;
}

static void server_destroy(server_state *srv)
{
    if (srv->stop_pipe[0] >= 0) {
        pthread_cond_destroy(&srv->changed);
        pthread_mutex_destroy(&srv->lock);
        pthread_mutex_destroy(&srv->budget_lock);
        close(srv->stop_pipe[0]);
        close(srv->stop_pipe[1]);
    }
    free(srv->slots);
    free(srv->free_list);
    free(srv->evicted);
}

int main(int argc, char **argv)
{
    server_state srv = {0};
    config cfg;
    char err[CONFIG_ERROR_MAX];
    uint8_t psk[NOISE_PSKLEN];
    config_status st;
    unsigned stuck = 0;
    int rc = 1;

    log_init();
    (void)net_raise_nofile(); /* before parsing: the --max-clients default follows it */
#ifdef __GLIBC__
    /* A fixed threshold keeps every buffer above it in a mapping of its own,
     * returned on free: RSS goes back down after large frames. */
    mallopt(M_MMAP_THRESHOLD, SERVER_MMAP_THRESHOLD);
#endif
    st = config_parse(&cfg, CONFIG_SERVER, argc, argv, err, sizeof err);
    if (st != CONFIG_OK) {
        rc = report_config(st, err, program_name(argv[0]));
        goto free_config;
    }
    if (session_global_init() < 0 || install_signals() < 0) {
        log_line(LOG_ERROR, "Cannot start: %s", strerror(errno));
        goto free_config;
    }
    srv.cipher = cfg.cipher == CONFIG_CIPHER_NOISE ? SESSION_NOISE : SESSION_XOR;
    srv.key = cfg.key;
    srv.key_len = cfg.key_len;
    if (srv.cipher == SESSION_NOISE) {
        /* Argon2id once at start-up, never per connection. */
        if (session_psk_from_key(psk, cfg.key, cfg.key_len,
                                 cfg.key_file_is_psk ? cfg.key_file_raw : NULL) < 0) {
            log_line(LOG_ERROR, "Cannot derive the key: %s", strerror(ENOMEM));
            goto wipe_psk;
        }
        srv.key = psk;
        srv.key_len = sizeof psk;
    }
    if (server_init(&srv, &cfg) < 0) {
        log_line(LOG_ERROR, "Cannot start: %s", strerror(errno));
        goto destroy;
    }
    (void)log_start_writer(); /* without it lines are written directly */
    rc = run(&srv, &cfg, &stuck);
    if (stuck > 0)
        goto wipe_psk; /* their threads still use the state: exit() ends them */
destroy:
    server_destroy(&srv);
wipe_psk:
    sodium_memzero(psk, sizeof psk);
free_config:
    config_free(&cfg);
    return rc;
}
