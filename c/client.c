/* client.c - the securemsg client: one message, or one per line of stdin.
 *
 * For each message: seal it, write it in one go, wait for the ACK frame and
 * check that it reads exactly "ACK: Received N bytes".
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "net.h"
#include "session.h"

#define CLIENT_READ_BUF 65536

typedef struct {
    const config *cfg;
    char target[NET_ADDR_MAX + 600]; /* escaped host + port */
    int fd;
    session s;
    uint8_t *buf;   /* received bytes not yet fed to the session */
    size_t buf_off, buf_len;
} client;

static void report_session_error(const client *c)
{
    const session_error *e = session_error_info(&c->s);

    switch (e->kind) {
    case SESSION_ERR_FRAME_TOO_LARGE:
        log_line(LOG_ERROR, "ACK frame too large from %s: %llu bytes (limit %llu)",
                 c->target, (unsigned long long)e->length,
                 (unsigned long long)e->limit);
        break;
    case SESSION_ERR_HANDSHAKE:
        log_line(LOG_ERROR, "Handshake failed with %s: %s", c->target, e->reason);
        break;
    case SESSION_ERR_DECRYPT:
        log_line(LOG_ERROR, "Decryption failed from %s: %s", c->target, e->reason);
        break;
    case SESSION_ERR_MESSAGE_TOO_LARGE:
        log_line(LOG_ERROR, "Message too large from %s: more than %llu bytes",
                 c->target, (unsigned long long)e->limit);
        break;
    case SESSION_ERR_NO_MEMORY:
    case SESSION_ERR_NONE:
        log_line(LOG_ERROR, "Receive from %s failed: %s", c->target, strerror(ENOMEM));
        break;
    }
}

static void report_io_error(const client *c, const char *what)
{
    if (errno == ETIMEDOUT)
        log_line(LOG_ERROR, "Timed out after %u s waiting for %s",
                 c->cfg->idle_timeout, c->target);
    else
        log_line(LOG_ERROR, "%s %s failed: %s", what, c->target, strerror(errno));
}

/* Reads and feeds bytes until the session reports `want` (READY or MESSAGE);
 * 0 or -1 (logged). */
static int wait_for(client *c, session_event want)
{
    session_event ev;
    size_t used;
    ssize_t n;

    for (;;) {
        while (c->buf_off < c->buf_len) {
            ev = session_feed(&c->s, c->buf + c->buf_off, c->buf_len - c->buf_off,
                              &used);
            c->buf_off += used;
            if (ev == want)
                return 0;
            if (ev == SESSION_ERROR) {
                report_session_error(c);
                return -1;
            }
        }
        n = net_read(c->fd, c->buf, CLIENT_READ_BUF);
        if (n < 0) {
            report_io_error(c, "Receive from");
            return -1;
        }
        if (n == 0) {
            if (want == SESSION_READY) /* e.g. the server refused our key */
                log_line(LOG_ERROR, "Handshake failed with %s: connection closed "
                         "by the server", c->target);
            else
                log_line(LOG_ERROR, "Connection to %s closed before the ACK",
                         c->target);
            return -1;
        }
        c->buf_off = 0;
        c->buf_len = (size_t)n;
    }
}

static int send_bytes(client *c, const uint8_t *out, size_t len)
{
    if (net_write_all(c->fd, out, len) == 0)
        return 0;
    report_io_error(c, "Send to");
    return -1;
}

/* Sends one message and checks its ACK; 0 or -1 (logged). */
static int exchange(client *c, const uint8_t *msg, size_t len)
{
    const uint8_t *out, *ack;
    size_t out_len, ack_len;
    char want[64];
    int want_len;

    if (len > c->cfg->max_frame) {
        log_line(LOG_ERROR, "Message too large: %zu bytes (limit %lu)", len,
                 (unsigned long)c->cfg->max_frame);
        return -1;
    }
    if (session_seal(&c->s, msg, len, &out, &out_len) < 0) {
        log_line(LOG_ERROR, "Send to %s failed: %s", c->target, strerror(ENOMEM));
        return -1;
    }
    if (send_bytes(c, out, out_len) < 0)
        return -1;
    log_line(LOG_SEND, "Encrypted bytes: %zu bytes", session_sealed_payload(&c->s));
    if (wait_for(c, SESSION_MESSAGE) < 0)
        return -1;
    session_message(&c->s, &ack, &ack_len);
    want_len = snprintf(want, sizeof want, "ACK: Received %zu bytes", len);
    if (ack_len != (size_t)want_len || memcmp(ack, want, ack_len) != 0) {
        char prefix[sizeof c->target + 32];

        snprintf(prefix, sizeof prefix, "Malformed ACK from %s: ", c->target);
        log_bytes(LOG_ERROR, prefix, ack, ack_len); /* all of it, escaped */
        return -1;
    }
    log_bytes(LOG_RECV, "", ack, ack_len);
    return 0;
}

/* Each line of stdin, without "\n" or "\r\n", is one message; an empty line
 * or the end of input ends the session. */
static int interactive(client *c)
{
    int prompt = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0, len;
    ssize_t n;
    int rc = 0;

    for (;;) {
        if (prompt)
            log_raw(STDERR_FILENO, "> ", 2);
        n = getline(&line, &cap, stdin);
        if (n < 0)
            break;
        len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n') {
            len--;
            if (len > 0 && line[len - 1] == '\r')
                len--;
        }
        if (len == 0)
            break;
        if (exchange(c, (const uint8_t *)line, len) < 0) {
            rc = -1;
            break;
        }
    }
    free(line);
    return rc;
}

/* A socket we cannot configure is as unusable as one that never connected,
 * so it fails with the connect line. */
static int apply_timeouts(client *c)
{
    if (net_set_timeouts(c->fd, c->cfg->idle_timeout) == 0)
        return 0;
    log_line(LOG_ERROR, "Cannot connect to %s: %s", c->target, strerror(errno));
    close(c->fd);
    c->fd = -1;
    return -1;
}

static int connect_to_server(client *c)
{
    const config *cfg = c->cfg;
    int gai_error = 0;
    char quoted[512];

    c->fd = net_connect(cfg->host, cfg->port, (int)cfg->idle_timeout * 1000,
                        &gai_error);
    if (c->fd >= 0)
        return apply_timeouts(c);
    if (gai_error != 0) {
        log_escape(quoted, sizeof quoted, (const uint8_t *)cfg->host,
                   strlen(cfg->host));
        log_line(LOG_ERROR, "Cannot resolve %s: %s", quoted,
                 gai_error == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai_error));
    } else if (errno == ETIMEDOUT) {
        report_io_error(c, "Connect to");
    } else {
        log_line(LOG_ERROR, "Cannot connect to %s: %s", c->target, strerror(errno));
    }
    return -1;
}

static int handshake(client *c)
{
    const uint8_t *out;
    size_t out_len;

    if (session_start(&c->s, &out, &out_len) < 0) {
        report_session_error(c);
        return -1;
    }
    if (out_len == 0)
        return 0; /* xor: nothing to agree on */
    if (send_bytes(c, out, out_len) < 0 || wait_for(c, SESSION_READY) < 0)
        return -1;
    log_line(LOG_INFO, "Handshake complete: %s", c->target);
    return 0;
}

static int run(client *c)
{
    const config *cfg = c->cfg;
    session_cipher cipher = cfg->cipher == CONFIG_CIPHER_NOISE ? SESSION_NOISE
                                                               : SESSION_XOR;
    const uint8_t *key = cfg->key;
    size_t key_len = cfg->key_len;
    uint8_t psk[NOISE_PSKLEN];
    int rc = 1;

    if (cipher == SESSION_NOISE) {
        log_line(LOG_INFO, "Cipher: %s", SESSION_CIPHER_NAME_NOISE);
        if (session_psk_from_key(psk, cfg->key, cfg->key_len,
                                 cfg->key_file_is_psk ? cfg->key_file_raw : NULL) < 0) {
            log_line(LOG_ERROR, "Cannot derive the key: %s", strerror(ENOMEM));
            goto wipe_psk;
        }
        key = psk;
        key_len = sizeof psk;
    }
    /* A one-shot message above the limit fails before touching the network. */
    if (cfg->message != NULL && cfg->message_len > cfg->max_frame) {
        log_line(LOG_ERROR, "Message too large: %zu bytes (limit %lu)",
                 cfg->message_len, (unsigned long)cfg->max_frame);
        goto wipe_psk;
    }
    if (session_init(&c->s, cipher, 1, key, key_len, cfg->max_frame) < 0) {
        log_line(LOG_ERROR, "Cannot start: %s", strerror(ENOMEM));
        goto wipe_psk;
    }
    sodium_memzero(psk, sizeof psk);
    if (connect_to_server(c) < 0)
        goto free_session;
    if (handshake(c) == 0) {
        if (cfg->message != NULL)
            rc = exchange(c, (const uint8_t *)cfg->message, cfg->message_len) < 0;
        else
            rc = interactive(c) < 0;
    }
    close(c->fd);
free_session:
    session_free(&c->s);
wipe_psk:
    sodium_memzero(psk, sizeof psk);
    return rc;
}

static int report_config(config_status st, const char *err, const char *prog)
{
    char usage[4096];
    size_t len = config_usage(usage, sizeof usage, CONFIG_CLIENT, prog);

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

int main(int argc, char **argv)
{
    static client c;
    const char *slash = strrchr(argv[0], '/');
    char err[CONFIG_ERROR_MAX], quoted[512];
    config cfg;
    config_status st;
    int rc;

    signal(SIGPIPE, SIG_IGN);
    log_init();
    st = config_parse(&cfg, CONFIG_CLIENT, argc, argv, err, sizeof err);
    if (st != CONFIG_OK) {
        rc = report_config(st, err, slash != NULL ? slash + 1 : argv[0]);
        config_free(&cfg);
        return rc;
    }
    if (session_global_init() < 0) {
        log_line(LOG_ERROR, "Cannot start: libsodium failed to initialise");
        config_free(&cfg);
        return 1;
    }
    c.cfg = &cfg;
    c.fd = -1;
    c.buf = malloc(CLIENT_READ_BUF);
    log_escape(quoted, sizeof quoted, (const uint8_t *)cfg.host, strlen(cfg.host));
    net_format_target(c.target, sizeof c.target, quoted, cfg.port);
    rc = c.buf != NULL ? run(&c) : 1;
    free(c.buf);
    config_free(&cfg);
    return rc;
}
