/* server.c - the securemsg server: one thread per client.
 *
 * The main thread polls the listening socket and a self-pipe written by the
 * SIGINT/SIGTERM handler. Each client thread reads whatever bytes arrive,
 * feeds them to its session and answers each message with an ACK.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "config.h"
#include "log.h"
#include "net.h"
#include "session.h"

#define SERVER_BACKLOG 128
#define SERVER_READ_BUF 65536
#define SERVER_THREAD_STACK (256 * 1024)

typedef struct {
    const config *cfg;
    session_cipher cipher;
    const uint8_t *key; /* xor key or noise PSK */
    size_t key_len;
    pthread_mutex_t lock;
    pthread_cond_t all_done;
    int *client_fds;      /* one slot per allowed client; -1 = free */
    unsigned clients;     /* slots in use (the --max-clients count) */
    unsigned threads;     /* client threads still running */
    atomic_int stopping;
} server_state;

typedef struct {
    server_state *srv;
    int fd;
    unsigned slot;
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

/* ---- one connection ------------------------------------------------------- */

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
    if (atomic_load(&c->srv->stopping))
        return; /* shutdown cuts connections on purpose */
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
    log_bytes(LOG_RECV, "Plaintext: ", msg, len);
    report_send_error(c, send_errno);
    return -1;
}

/* Feeds one chunk of received bytes through the session; -1 ends the
 * connection (the reason has been logged). */
static int handle_bytes(const client_conn *c, session *s, const uint8_t *buf,
                        size_t n)
{
    const uint8_t *out;
    size_t off, used, out_len;

    for (off = 0; off < n; off += used) {
        switch (session_feed(s, buf + off, n - off, &used)) {
        case SESSION_NEED_MORE:
        case SESSION_READY:
            break;
        case SESSION_SEND: /* noise: handshake message 2 */
            session_output(s, &out, &out_len);
            if (send_bytes(c, out, out_len) < 0)
                return -1;
            log_line(LOG_INFO, "Handshake complete: %s", c->peer);
            break;
        case SESSION_MESSAGE:
            if (answer_message(c, s) < 0)
                return -1;
            break;
        case SESSION_ERROR:
            report_session_error(c, s);
            return -1;
        }
    }
    return 0;
}

static void serve_client(const client_conn *c)
{
    const server_state *srv = c->srv;
    session s;
    uint8_t *buf;
    ssize_t n;

    buf = malloc(SERVER_READ_BUF);
    if (buf == NULL ||
        session_init(&s, srv->cipher, 0, srv->key, srv->key_len,
                     srv->cfg->max_frame) < 0) {
        log_line(LOG_ERROR, "Receive from %s failed: %s", c->peer, strerror(ENOMEM));
        free(buf);
        return;
    }
    for (;;) {
        n = net_read(c->fd, buf, SERVER_READ_BUF);
        if (n < 0) {
            if (atomic_load(&srv->stopping))
                break;
            if (errno == ETIMEDOUT)
                log_line(LOG_ERROR, "Idle timeout for %s after %u s", c->peer,
                         srv->cfg->idle_timeout);
            else
                log_line(LOG_ERROR, "Receive from %s failed: %s", c->peer,
                         strerror(errno));
            break;
        }
        if (n == 0) {
            if (!atomic_load(&srv->stopping))
                report_truncated(c, &s);
            break;
        }
        if (handle_bytes(c, &s, buf, (size_t)n) < 0)
            break;
    }
    session_free(&s);
    free(buf);
}

static void *client_thread(void *arg)
{
    client_conn *c = arg;
    server_state *srv = c->srv;

    log_line(LOG_INFO, "Client connected: %s", c->peer);
    serve_client(c);

    /* Free the slot first, so a client that waits for our "disconnected"
     * line is never refused as one too many. */
    pthread_mutex_lock(&srv->lock);
    srv->client_fds[c->slot] = -1;
    srv->clients--;
    pthread_mutex_unlock(&srv->lock);
    close(c->fd);
    log_line(LOG_INFO, "Client disconnected: %s", c->peer);

    pthread_mutex_lock(&srv->lock);
    if (--srv->threads == 0)
        pthread_cond_broadcast(&srv->all_done);
    pthread_mutex_unlock(&srv->lock);
    free(c);
    return NULL;
}

/* ---- accepting ------------------------------------------------------------ */

/* Takes a free slot; -1 when the server is full. */
static int claim_slot(server_state *srv, int fd, unsigned *slot)
{
    unsigned i;
    int rc = -1;

    pthread_mutex_lock(&srv->lock);
    if (srv->clients < srv->cfg->max_clients) {
        for (i = 0; i < srv->cfg->max_clients; i++) {
            if (srv->client_fds[i] < 0) {
                srv->client_fds[i] = fd;
                srv->clients++;
                srv->threads++;
                *slot = i;
                rc = 0;
                break;
            }
        }
    }
    pthread_mutex_unlock(&srv->lock);
    return rc;
}

static void release_slot(server_state *srv, unsigned slot)
{
    pthread_mutex_lock(&srv->lock);
    srv->client_fds[slot] = -1;
    srv->clients--;
    srv->threads--;
    pthread_mutex_unlock(&srv->lock);
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

static void accept_one(server_state *srv, int listen_fd)
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
        return;
    }
    net_format_addr(peer, sizeof peer, (struct sockaddr *)&addr, addr_len);
    flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    net_set_nodelay(fd);
    net_set_timeouts(fd, srv->cfg->idle_timeout);

    c = malloc(sizeof *c);
    if (c == NULL) {
        log_line(LOG_ERROR, "Client refused: %s: %s", peer, strerror(ENOMEM));
        close(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    memcpy(c->peer, peer, sizeof peer);
    if (claim_slot(srv, fd, &c->slot) < 0) {
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
    return;

refuse:
    close(fd);
    free(c);
}

/* Closes every client connection and waits for the threads to finish. */
static void stop_clients(server_state *srv)
{
    unsigned i;

    pthread_mutex_lock(&srv->lock);
    atomic_store(&srv->stopping, 1);
    for (i = 0; i < srv->cfg->max_clients; i++)
        if (srv->client_fds[i] >= 0)
            shutdown(srv->client_fds[i], SHUT_RDWR);
    while (srv->threads > 0)
        pthread_cond_wait(&srv->all_done, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
}

static int accept_loop(server_state *srv, int listen_fd)
{
    struct pollfd pfd[2] = {
        {.fd = listen_fd, .events = POLLIN},
        {.fd = signal_pipe[0], .events = POLLIN},
    };

    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_line(LOG_ERROR, "Cannot wait for connections: %s", strerror(errno));
            return -1;
        }
        if (pfd[1].revents != 0)
            return 0;
        if (pfd[0].revents != 0)
            accept_one(srv, listen_fd);
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

    fd = net_listen(cfg->bind, cfg->port, SERVER_BACKLOG, &gai_error);
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

static int run(server_state *srv, const config *cfg)
{
    int listen_fd, rc;

    listen_fd = open_listener(cfg);
    if (listen_fd < 0)
        return 1;
    /* xor mode prints exactly the seed's lines; secure mode says so at once. */
    if (cfg->cipher == CONFIG_CIPHER_NOISE)
        log_line(LOG_INFO, "Cipher: %s", SESSION_CIPHER_NAME_NOISE);
    rc = accept_loop(srv, listen_fd);
    /* Announce the shutdown before the clients' disconnect lines, as Python does. */
    if (rc == 0)
        log_line(LOG_INFO, "Shutting down");
    close(listen_fd);
    stop_clients(srv);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    server_state srv = {0};
    config cfg;
    char err[CONFIG_ERROR_MAX];
    uint8_t psk[NOISE_PSKLEN];
    config_status st;
    unsigned i;
    int rc = 1;

    log_init();
    st = config_parse(&cfg, CONFIG_SERVER, argc, argv, err, sizeof err);
    if (st != CONFIG_OK) {
        rc = report_config(st, err, program_name(argv[0]));
        goto free_config;
    }
    if (session_global_init() < 0 || install_signals() < 0) {
        log_line(LOG_ERROR, "Cannot start: %s", strerror(errno));
        goto free_config;
    }
    srv.cfg = &cfg;
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
    srv.client_fds = malloc(cfg.max_clients * sizeof *srv.client_fds);
    if (srv.client_fds == NULL) {
        log_line(LOG_ERROR, "Cannot start: %s", strerror(ENOMEM));
        goto wipe_psk;
    }
    for (i = 0; i < cfg.max_clients; i++)
        srv.client_fds[i] = -1;
    pthread_mutex_init(&srv.lock, NULL);
    pthread_cond_init(&srv.all_done, NULL);
    rc = run(&srv, &cfg);
    pthread_cond_destroy(&srv.all_done);
    pthread_mutex_destroy(&srv.lock);
    free(srv.client_fds);
wipe_psk:
    sodium_memzero(psk, sizeof psk);
free_config:
    config_free(&cfg);
    return rc;
}
