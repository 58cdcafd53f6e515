/* loadgen.c - securemsg load client for the benchmark.
 *
 * N connections (one thread each) send M messages of S bytes each, one at a
 * time, wait for every ACK and check it decrypts to exactly
 * "ACK: Received S bytes". It links the project's own modules (config for
 * the client's options and key, session/framing/noise for the wire, net for
 * sockets), so it speaks exactly what c/client speaks; only the driving loop
 * lives here. The result is one JSON line on standard output.
 *
 * Every run is bounded twice: M messages per connection and --duration
 * seconds (counted once every connection is connected and handshaken), and
 * each ACK wait is bounded by --idle-timeout.
 *
 *   --handshakes    each iteration is connect, handshake, one message, close
 *   --split-writes  TCP_NODELAY off, and the length prefix and the body sent
 *                   in two writes
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "config.h"
#include "framing.h"
#include "log.h"
#include "net.h"
#include "session.h"

#define LOADGEN_READ_BUF 65536
#define LOADGEN_ERROR_MAX 256
#define LOADGEN_MAX_CONNECTIONS 1024L
#define LOADGEN_MAX_MESSAGES 100000000L
#define LOADGEN_MAX_SECONDS 600.0
#define LOADGEN_MAX_ERRORS 100 /* --handshakes: give up after this many */
#define LOADGEN_ACK_MAX 64

typedef struct {
    long connections;
    long messages; /* per connection */
    uint32_t size;
    double duration;
    int handshakes;
    int split_writes;
    int binary; /* --payload binary: pseudo-random bytes instead of text */
    /* From the client's own option parser (config.c). */
    const char *host;
    uint16_t port;
    session_cipher cipher;
    const uint8_t *key; /* xor key or noise PSK */
    size_t key_len;
    uint32_t max_frame;
    unsigned timeout_s;
    /* Derived once. */
    uint8_t *message;
    char ack[LOADGEN_ACK_MAX];
    size_t ack_len;
} loadgen_options;

/* Every worker connects first, then waits here until all are ready (or the
 * run is called off), so the timed part starts together. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    long arrived;
    int go;        /* 1: start, -1: called off */
} start_gate;

typedef struct {
    const loadgen_options *opt;
    start_gate *gate;
    pthread_t thread;
    uint64_t *lat_ns;
    size_t lat_len, lat_cap;
    long errors;
    uint64_t t_start, t_end;
    char error[LOADGEN_ERROR_MAX];
} worker;

typedef struct {
    int fd;
    int has_session;
    session s;
    uint8_t in[LOADGEN_READ_BUF];
    size_t in_off, in_len;
} conn;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Counts an error; the first one's text is kept for the report. */
static void worker_fail(worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void worker_fail(worker *w, const char *fmt, ...)
{
    va_list ap;

    if (w->errors++ > 0)
        return;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof w->error, fmt, ap);
    va_end(ap);
}

static int worker_record(worker *w, uint64_t ns)
{
    uint64_t *grown;
    size_t want;

    if (w->lat_len == w->lat_cap) {
        want = w->lat_cap > 0 ? w->lat_cap * 2 : 4096;
        grown = realloc(w->lat_ns, want * sizeof *grown);
        if (grown == NULL) {
            worker_fail(w, "out of memory for latencies");
            return -1;
        }
        w->lat_ns = grown;
        w->lat_cap = want;
    }
    w->lat_ns[w->lat_len++] = ns;
    return 0;
}

/* Waits for the go signal; 0 to run, -1 if the run was called off. */
static int gate_wait(start_gate *g)
{
    int go;

    pthread_mutex_lock(&g->lock);
    g->arrived++;
    pthread_cond_broadcast(&g->changed);
    while (g->go == 0)
        pthread_cond_wait(&g->changed, &g->lock);
    go = g->go;
    pthread_mutex_unlock(&g->lock);
    return go > 0 ? 0 : -1;
}

/* Main thread: waits for the first n workers to arrive, then sets go. */
static void gate_open(start_gate *g, long n, int go)
{
    pthread_mutex_lock(&g->lock);
    while (go > 0 && g->arrived < n)
        pthread_cond_wait(&g->changed, &g->lock);
    g->go = go;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
}

/* --- one connection ------------------------------------------------------ */

static int conn_write(conn *c, worker *w, const uint8_t *buf, size_t len,
                      int split)
{
    /* --split-writes: the prefix alone, then the rest, Nagle on. */
    if (split && len > FRAMING_HEADER_LEN) {
        if (net_write_all(c->fd, buf, FRAMING_HEADER_LEN) < 0)
            goto fail;
        buf += FRAMING_HEADER_LEN;
        len -= FRAMING_HEADER_LEN;
    }
    if (net_write_all(c->fd, buf, len) == 0)
        return 0;
fail:
    worker_fail(w, "send failed: %s", strerror(errno));
    return -1;
}

/* Reads and feeds until the session reports want (READY or MESSAGE). */
static int conn_await(conn *c, worker *w, session_event want)
{
    session_event ev;
    size_t used;
    ssize_t n;

    for (;;) {
        if (c->in_off == c->in_len) {
            n = net_read(c->fd, c->in, sizeof c->in);
            if (n < 0) {
                worker_fail(w, "receive failed: %s", strerror(errno));
                return -1;
            }
            if (n == 0) {
                worker_fail(w, "connection closed before the %s",
                            want == SESSION_READY ? "handshake" : "ACK");
                return -1;
            }
            c->in_off = 0;
            c->in_len = (size_t)n;
        }
        ev = session_feed(&c->s, c->in + c->in_off, c->in_len - c->in_off, &used);
        c->in_off += used;
        if (ev == want)
            return 0;
        if (ev == SESSION_ERROR) {
            worker_fail(w, "session error: %s", session_error_info(&c->s)->reason);
            return -1;
        }
        if (ev != SESSION_NEED_MORE) {
            worker_fail(w, "unexpected session event %d", (int)ev);
            return -1;
        }
    }
}

static void conn_close(conn *c)
{
    if (c->has_session)
        session_free(&c->s);
    c->has_session = 0;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int conn_open(conn *c, worker *w)
{
    const loadgen_options *o = w->opt;
    const uint8_t *out;
    size_t out_len;
    int gai = 0, off = 0;

    c->in_off = c->in_len = 0;
    c->has_session = 0;
    c->fd = net_connect(o->host, o->port, (int)o->timeout_s * 1000, &gai);
    if (c->fd < 0) {
        worker_fail(w, "connect failed: %s",
                    gai != 0 ? gai_strerror(gai) : strerror(errno));
        return -1;
    }
    if (net_set_timeouts(c->fd, o->timeout_s) < 0 ||
        (o->split_writes &&
         setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &off, sizeof off) < 0)) {
        worker_fail(w, "setsockopt failed: %s", strerror(errno));
        goto close_conn;
    }
    if (session_init(&c->s, o->cipher, 1, o->key, o->key_len, o->max_frame) < 0) {
        worker_fail(w, "session_init failed");
        goto close_conn;
    }
    c->has_session = 1;
    if (session_start(&c->s, &out, &out_len) < 0) {
        worker_fail(w, "session_start failed");
        goto close_conn;
    }
    if (out_len > 0 && conn_write(c, w, out, out_len, 0) < 0)
        goto close_conn;
    if (!session_ready(&c->s) && conn_await(c, w, SESSION_READY) < 0)
        goto close_conn;
    return 0;

close_conn:
    conn_close(c);
    return -1;
}

/* One message out, its ACK in and checked. */
static int conn_roundtrip(conn *c, worker *w)
{
    const loadgen_options *o = w->opt;
    const uint8_t *out, *ack;
    size_t out_len, ack_len;

    if (session_seal(&c->s, o->message, o->size, &out, &out_len) < 0) {
        worker_fail(w, "seal failed: %s", session_error_info(&c->s)->reason);
        return -1;
    }
    if (conn_write(c, w, out, out_len, o->split_writes) < 0)
        return -1;
    if (conn_await(c, w, SESSION_MESSAGE) < 0)
        return -1;
    session_message(&c->s, &ack, &ack_len);
    if (ack_len != o->ack_len || memcmp(ack, o->ack, ack_len) != 0) {
        char shown[LOADGEN_ACK_MAX * LOG_ESCAPE_MAX_PER_BYTE + 1];

        log_escape(shown, sizeof shown, ack,
                   ack_len < LOADGEN_ACK_MAX ? ack_len : LOADGEN_ACK_MAX);
        worker_fail(w, "malformed ACK (%zu bytes): %s", ack_len, shown);
        return -1;
    }
    return 0;
}

/* --- the two loops ------------------------------------------------------- */

static void *roundtrip_worker(void *arg)
{
    worker *w = arg;
    const loadgen_options *o = w->opt;
    conn *c = malloc(sizeof *c);
    int opened = c != NULL && conn_open(c, w) == 0;
    uint64_t t0, t1, deadline;
    long i;

    if (c == NULL)
        worker_fail(w, "out of memory");
    if (gate_wait(w->gate) < 0) /* also when this connection failed */
        opened = 0;
    w->t_start = w->t_end = now_ns();
    if (!opened)
        goto free_conn;
    deadline = w->t_start + (uint64_t)(o->duration * 1e9);
    t0 = w->t_start;
    for (i = 0; i < o->messages && t0 < deadline; i++) {
        if (conn_roundtrip(c, w) < 0)
            break;
        t1 = now_ns();
        if (worker_record(w, t1 - t0) < 0)
            break;
        t0 = t1;
    }
    w->t_end = now_ns();
    conn_close(c);
free_conn:
    free(c);
    return NULL;
}

static void *handshake_worker(void *arg)
{
    worker *w = arg;
    const loadgen_options *o = w->opt;
    conn *c = malloc(sizeof *c);
    uint64_t t0, t1, deadline;
    long i;
    int ok;

    if (c == NULL)
        worker_fail(w, "out of memory");
    ok = gate_wait(w->gate) == 0;
    w->t_start = w->t_end = now_ns();
    if (c == NULL || !ok) {
        free(c);
        return NULL;
    }
    c->fd = -1;
    c->has_session = 0;
    deadline = w->t_start + (uint64_t)(o->duration * 1e9);
    t0 = w->t_start;
    for (i = 0; i < o->messages && t0 < deadline; i++) {
        ok = conn_open(c, w) == 0 && conn_roundtrip(c, w) == 0;
        conn_close(c);
        t1 = now_ns();
        if (ok && worker_record(w, t1 - t0) < 0)
            break;
        if (w->errors >= LOADGEN_MAX_ERRORS)
            break;
        t0 = t1;
    }
    w->t_end = now_ns();
    free(c);
    return NULL;
}

/* --- results ------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values, in microseconds. */
static double percentile_us(const uint64_t *sorted, size_t n, double p)
{
    size_t rank;

    if (n == 0)
        return 0.0;
    rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)sorted[rank - 1] / 1000.0;
}

/* A JSON string body: quotes, backslashes and control bytes escaped. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static int report(const loadgen_options *o, worker *workers)
{
    uint64_t first = UINT64_MAX, last = 0, *all = NULL;
    size_t total = 0, at = 0;
    long errors = 0, i;
    const char *first_error = "";
    double seconds, rate;

    for (i = 0; i < o->connections; i++) {
        worker *w = &workers[i];

        total += w->lat_len;
        errors += w->errors;
        if (w->t_start < first)
            first = w->t_start;
        if (w->t_end > last)
            last = w->t_end;
        if (w->errors > 0 && first_error[0] == '\0')
            first_error = w->error;
    }
    if (total > 0 && (all = malloc(total * sizeof *all)) == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        return -1;
    }
    for (i = 0; i < o->connections; i++) {
        if (workers[i].lat_len > 0)
            memcpy(all + at, workers[i].lat_ns, workers[i].lat_len * sizeof *all);
        at += workers[i].lat_len;
    }
    if (total > 0)
        qsort(all, total, sizeof *all, cmp_u64);
    seconds = last > first ? (double)(last - first) / 1e9 : 0.0;
    rate = seconds > 0 ? (double)total / seconds : 0.0;
    printf("{\"mode\":\"%s\",\"cipher\":\"%s\",\"split_writes\":%s,"
           "\"payload\":\"%s\","
           "\"connections\":%ld,\"size\":%u,\"messages_per_connection\":%ld,"
           "\"duration_limit\":%g,\"round_trips\":%zu,\"seconds\":%.4f,"
           "\"rt_per_s\":%.1f,\"mb_per_s\":%.3f,\"p50_us\":%.1f,"
           "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
           "\"max_us\":%.1f,\"errors\":%ld,\"first_error\":",
           o->handshakes ? "handshakes" : "roundtrip",
           o->cipher == SESSION_NOISE ? "noise" : "xor",
           o->split_writes ? "true" : "false", o->binary ? "binary" : "text",
           o->connections, o->size,
           o->messages, o->duration, total, seconds, rate,
           rate * o->size / 1e6, percentile_us(all, total, 0.50),
           percentile_us(all, total, 0.90), percentile_us(all, total, 0.99),
           percentile_us(all, total, 0.999),
           total > 0 ? (double)all[total - 1] / 1000.0 : 0.0, errors);
    json_string(stdout, first_error);
    printf("}\n");
    fflush(stdout);
    free(all);
    return errors > 0 || total == 0 ? 1 : 0;
}

/* --- command line -------------------------------------------------------- */

static const char usage_text[] =
    "Usage: loadgen [LOAD OPTIONS] [CLIENT OPTIONS] HOST PORT\n"
    "\n"
    "Drives a securemsg server: every connection sends its messages one at a\n"
    "time and checks every ACK. Prints one JSON result line.\n"
    "\n"
    "Load options:\n"
    "  --connections N   concurrent connections, one thread each (1..1024, default 1)\n"
    "  --size BYTES      message size (0..--max-frame, default 64)\n"
    "  --messages M      messages per connection, at most (default 1000000)\n"
    "  --duration SECS   time limit once every connection is ready (default 5, max 600)\n"
    "  --handshakes      connect, handshake, one message, close - per iteration\n"
    "  --split-writes    TCP_NODELAY off; the length prefix and the body in two writes\n"
    "  --payload KIND    text (abc...z repeated, default) or binary (pseudo-random)\n"
    "\n"
    "Client options (as c/client): --cipher xor|noise, --key KEY, --key-file PATH,\n"
    "  --max-frame BYTES, --idle-timeout SECONDS (the longest wait for one ACK).\n"
    "Exit status: 0 every ACK checked, 1 any error, 2 bad usage.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "[ERROR] ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    return -1;
}

/* Takes the load options out of argv; everything else is left in rest[] for
 * config_parse(), the client's own parser. 0, 1 (help) or -1 (usage). */
static int parse_load_options(loadgen_options *o, int argc, char **argv,
                              char **rest, int *rest_len)
{
    long v;
    int i;

    *rest_len = 0;
    rest[(*rest_len)++] = argv[0];
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return 1;
        if (strcmp(a, "--handshakes") == 0) {
            o->handshakes = 1;
            continue;
        }
        if (strcmp(a, "--split-writes") == 0) {
            o->split_writes = 1;
            continue;
        }
        if (strcmp(a, "--connections") != 0 && strcmp(a, "--size") != 0 &&
            strcmp(a, "--messages") != 0 && strcmp(a, "--duration") != 0 &&
            strcmp(a, "--payload") != 0) {
            rest[(*rest_len)++] = argv[i];
            continue;
        }
        if (val == NULL)
            return usage_error("Missing value for %s", a);
        i++;
        if (strcmp(a, "--connections") == 0) {
            if (args_parse_long(&o->connections, val, 1, LOADGEN_MAX_CONNECTIONS) < 0)
                return usage_error("Invalid value for --connections: %s", val);
        } else if (strcmp(a, "--size") == 0) {
            if (args_parse_long(&v, val, 0, CONFIG_MAX_MAX_FRAME) < 0)
                return usage_error("Invalid value for --size: %s", val);
            o->size = (uint32_t)v;
        } else if (strcmp(a, "--messages") == 0) {
            if (args_parse_long(&o->messages, val, 1, LOADGEN_MAX_MESSAGES) < 0)
                return usage_error("Invalid value for --messages: %s", val);
        } else if (strcmp(a, "--payload") == 0) {
            if (strcmp(val, "text") != 0 && strcmp(val, "binary") != 0)
                return usage_error("Invalid value for --payload: %s", val);
            o->binary = strcmp(val, "binary") == 0;
        } else if (args_parse_seconds(&o->duration, val, LOADGEN_MAX_SECONDS) < 0) {
            return usage_error("Invalid value for --duration: %s", val);
        }
    }
    rest[*rest_len] = NULL;
    return 0;
}

/* A load generator is a traffic source: it only ever targets this machine.
 * 0 when every address host resolves to is loopback (127/8 or ::1). */
static int require_loopback(const char *host)
{
    struct addrinfo hints, *res, *ai;
    int ok = 1;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;

            ok &= (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
        } else if (ai->ai_family == AF_INET6) {
            const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ai->ai_addr;

            ok &= IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
        } else {
            ok = 0;
        }
    }
    freeaddrinfo(res);
    return ok ? 0 : -1;
}

/* The client's options and key, through config.c. 0, 1 (help) or -1. */
static int parse_client_options(loadgen_options *o, config *cfg, int argc,
                                char **argv, uint8_t psk[NOISE_PSKLEN])
{
    char err[CONFIG_ERROR_MAX];
    config_status st = config_parse(cfg, CONFIG_CLIENT, argc, argv, err, sizeof err);

    if (st == CONFIG_HELP)
        return 1;
    if (st != CONFIG_OK) {
        fprintf(stderr, "[ERROR] %s\n", err);
        if (st == CONFIG_USAGE)
            fprintf(stderr, "%s", usage_text);
        return -1;
    }
    if (cfg->message != NULL)
        return usage_error("loadgen takes no message: %s", "use --size");
    if (o->size > cfg->max_frame)
        return usage_error("--size is above --max-frame%s", "");
    if (require_loopback(cfg->host) < 0)
        return usage_error("loadgen drives loopback servers only (127.0.0.0/8, ::1): %s",
                           cfg->host);
    o->host = cfg->host;
    o->port = cfg->port;
    o->max_frame = cfg->max_frame;
    o->timeout_s = cfg->idle_timeout;
    o->cipher = cfg->cipher == CONFIG_CIPHER_NOISE ? SESSION_NOISE : SESSION_XOR;
    if (o->cipher == SESSION_XOR) {
        o->key = cfg->key;
        o->key_len = cfg->key_len;
        return 0;
    }
    if (o->split_writes)
        return usage_error("--split-writes is %s", "for --cipher xor only");
    if (session_psk_from_key(psk, cfg->key, cfg->key_len,
                             cfg->key_file_is_psk ? cfg->key_file_raw : NULL) < 0) {
        fprintf(stderr, "[ERROR] Cannot derive the noise key\n");
        return -1;
    }
    o->key = psk;
    o->key_len = NOISE_PSKLEN;
    return 0;
}

/* The message and the exact ACK text expected back. Text is "abc...z"
 * repeated (ordinary, cheap to escape in the server's log); binary is a fixed
 * xorshift sequence (mostly bytes the log must print as \xHH). */
static int prepare_payload(loadgen_options *o)
{
    uint64_t x = 0x9e3779b97f4a7c15u;
    uint32_t i;

    o->message = malloc(o->size > 0 ? o->size : 1);
    if (o->message == NULL)
        return -1;
    for (i = 0; i < o->size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        o->message[i] = o->binary ? (uint8_t)(x >> 56) : (uint8_t)('a' + i % 26);
    }
    o->ack_len = (size_t)snprintf(o->ack, sizeof o->ack, "ACK: Received %u bytes",
                                  (unsigned)o->size);
    return 0;
}

static int run(loadgen_options *o)
{
    start_gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    void *(*loop)(void *) = o->handshakes ? handshake_worker : roundtrip_worker;
    worker *workers;
    long i, started = 0;
    int rc = -1;

    workers = calloc((size_t)o->connections, sizeof *workers);
    if (workers == NULL)
        return -1;
    for (i = 0; i < o->connections; i++) {
        workers[i].opt = o;
        workers[i].gate = &gate;
        if (pthread_create(&workers[i].thread, NULL, loop, &workers[i]) != 0)
            break;
        started++;
    }
    /* Called off if a thread could not start: the others then just stop. */
    gate_open(&gate, started, started == o->connections ? 1 : -1);
    for (i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    if (started == o->connections)
        rc = report(o, workers);
    else
        fprintf(stderr, "loadgen: cannot start %ld threads\n", o->connections);
    for (i = 0; i < o->connections; i++)
        free(workers[i].lat_ns);
    free(workers);
    pthread_mutex_destroy(&gate.lock);
    pthread_cond_destroy(&gate.changed);
    return rc;
}

int main(int argc, char **argv)
{
    loadgen_options o = {.connections = 1, .messages = 1000000, .size = 64,
                         .duration = 5.0};
    uint8_t psk[NOISE_PSKLEN];
    config cfg;
    char **rest;
    int rest_len, st, rc = 2;

    memset(&cfg, 0, sizeof cfg);
    rest = calloc((size_t)argc + 1, sizeof *rest);
    if (rest == NULL || session_global_init() < 0) {
        fprintf(stderr, "loadgen: initialisation failed\n");
        free(rest);
        return 1;
    }
    st = parse_load_options(&o, argc, argv, rest, &rest_len);
    if (st == 0)
        st = parse_client_options(&o, &cfg, rest_len, rest, psk);
    if (st == 1) {
        fputs(usage_text, stdout);
        rc = 0;
        goto free_all;
    }
    if (st < 0)
        goto free_all;
    rc = 1;
    if (prepare_payload(&o) < 0) {
        fprintf(stderr, "loadgen: out of memory\n");
        goto free_all;
    }
    rc = run(&o) == 0 ? 0 : 1;

free_all:
    free(o.message);
    sodium_memzero(psk, sizeof psk);
    config_free(&cfg);
    free(rest);
    return rc;
}
