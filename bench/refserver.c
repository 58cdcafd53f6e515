/* refserver.c - the yardstick for the servers' round-trip targets.
 *
 * A minimal thread-per-connection xor server, written the plainest way: an
 * accept loop, one detached thread per client, and per frame a full read,
 * out[i] = in[i] ^ key[i % n], the ACK as one write, and the seed's two log
 * lines in one write to standard output. No options but the port, no limits
 * beyond a fixed maximum frame, no signal handling: it is what "a server"
 * costs on this machine, and the benchmark reports c/server and
 * python/server.py as a share of it (issue 11: C >= 0.9x, Python >= 0.25x on
 * 1 connection x 64 B).
 *
 * Usage: bench/refserver [PORT]   (listens on 127.0.0.1 only; 0 = any port)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REF_MAX_FRAME (1u << 20)
#define REF_KEY "MY_SECRET_KEY"
#define REF_PLAINTEXT "[RECV] Plaintext: "
#define REF_ACK_SENT "\n[SEND] ACK sent to client\n"

static pthread_mutex_t ref_log_mutex = PTHREAD_MUTEX_INITIALIZER;

static int ref_read_full(int fd, uint8_t *p, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int ref_write_all(int fd, const uint8_t *p, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void ref_xor(uint8_t *out, const uint8_t *in, size_t len)
{
    static const uint8_t key[] = REF_KEY;
    size_t n = sizeof key - 1, i;

    for (i = 0; i < len; i++)
        out[i] = in[i] ^ key[i % n];
}

/* Frame in, ACK out, log lines; until the peer closes or sends too much. */
static int ref_serve_one(int fd, uint8_t *buf, uint8_t *line)
{
    uint8_t head[4], reply[64];
    uint32_t len;
    size_t pos;
    int ack_len;

    if (ref_read_full(fd, head, sizeof head) < 0)
        return -1;
    len = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
    if (len > REF_MAX_FRAME || ref_read_full(fd, buf, len) < 0)
        return -1;
    ref_xor(buf, buf, len);
    ack_len = snprintf((char *)reply + 4, sizeof reply - 4, "ACK: Received %u bytes", len);
    reply[0] = reply[1] = reply[2] = 0;
    reply[3] = (uint8_t)ack_len;
    ref_xor(reply + 4, reply + 4, (size_t)ack_len);
    if (ref_write_all(fd, reply, 4 + (size_t)ack_len) < 0)
        return -1;
    pos = sizeof REF_PLAINTEXT - 1;
    memcpy(line, REF_PLAINTEXT, pos);
    memcpy(line + pos, buf, len);
    pos += len;
    memcpy(line + pos, REF_ACK_SENT, sizeof REF_ACK_SENT - 1);
    pos += sizeof REF_ACK_SENT - 1;
    pthread_mutex_lock(&ref_log_mutex);
    ref_write_all(STDOUT_FILENO, line, pos);
    pthread_mutex_unlock(&ref_log_mutex);
    return 0;
}

static void *ref_client(void *arg)
{
    int fd = (int)(intptr_t)arg, one = 1;
    uint8_t *buf = malloc(REF_MAX_FRAME);
    uint8_t *line = malloc(REF_MAX_FRAME + 64);

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (buf != NULL && line != NULL)
        while (ref_serve_one(fd, buf, line) == 0)
            ;
    free(line);
    free(buf);
    close(fd);
    return NULL;
}

static int ref_listen(unsigned port)
{
    struct sockaddr_in sa;
    socklen_t sa_len = sizeof sa;
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sa_len) < 0) {
        close(fd);
        return -1;
    }
    printf("[INFO] Listening on 127.0.0.1:%u\n", ntohs(sa.sin_port));
    fflush(stdout);
    return fd;
}

int main(int argc, char **argv)
{
    unsigned long port = 0;
    pthread_t thread;
    char *end;
    int listen_fd, fd;

    if (argc > 2 || (argc == 2 && ((port = strtoul(argv[1], &end, 10)) > 65535 ||
                                   end == argv[1] || *end != '\0'))) {
        fprintf(stderr, "usage: refserver [PORT]\n");
        return 2;
    }
    listen_fd = ref_listen((unsigned)port);
    if (listen_fd < 0) {
        perror("refserver: listen");
        return 1;
    }
    for (;;) {
        fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
                continue;
            perror("refserver: accept");
            return 1;
        }
        if (pthread_create(&thread, NULL, ref_client, (void *)(intptr_t)fd) != 0)
            close(fd);
        else
            pthread_detach(thread);
    }
}
