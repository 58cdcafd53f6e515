/* test_log.c - the escaping rule (shared vectors) and the line format. */
#define _XOPEN_SOURCE 600 /* posix_openpt: a terminal for the colour tests */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "vectors.h"

static void test_escape_vectors(void)
{
    json_t *root, *cases = vectors_load("escape.json", &root), *c;
    size_t i, in_len, need;
    char out[256];

    json_array_foreach(cases, i, c) {
        uint8_t *in = vectors_hex(c, "input", &in_len);
        const char *want = vectors_string(c, "output");

        need = log_escape(out, sizeof out, in, in_len);
        CHECK_BYTES(out, strlen(out), want, strlen(want));
        CHECK(need == strlen(want));
        if (strcmp(out, want) != 0)
            fprintf(stderr, "  case %s\n", vectors_string(c, "name"));
        free(in);
    }
    json_decref(root);
}

/* A truncated result ends on a unit boundary and reports the full length. */
static void test_escape_truncation(void)
{
    const uint8_t in[] = {'a', 0x1b, 'b', 0xc3, 0xa9};
    char out[5];

    CHECK(log_escape(out, sizeof out, in, sizeof in) == 8);  /* a\x1bbé */
    CHECK(strcmp(out, "a") == 0);                            /* not "a\x1" */
    CHECK(log_escape(NULL, 0, in, sizeof in) == 8);
    CHECK(log_escape(out, 1, in, sizeof in) == 8 && out[0] == '\0');
}

/* Every byte value alone: printable ASCII as itself, the rest escaped. */
static void test_escape_every_single_byte(void)
{
    char out[8], want[8];
    unsigned b;
    int bad = 0;

    for (b = 0; b < 256; b++) {
        uint8_t byte = (uint8_t)b;

        log_escape(out, sizeof out, &byte, 1);
        if (b == '\\')
            snprintf(want, sizeof want, "\\\\");
        else if (b == '\n')
            snprintf(want, sizeof want, "\\n");
        else if (b == '\r')
            snprintf(want, sizeof want, "\\r");
        else if (b == '\t')
            snprintf(want, sizeof want, "\\t");
        else if (b >= 0x20 && b < 0x7f)
            snprintf(want, sizeof want, "%c", (char)b);
        else
            snprintf(want, sizeof want, "\\x%02x", b);
        if (strcmp(out, want) != 0) {
            fprintf(stderr, "  byte %02x: got %s want %s\n", b, out, want);
            bad++;
        }
    }
    CHECK(bad == 0);
}

#define CAPTURE_MAX (8 << 20)

static int redirect(int fd, int *saved)
{
    char path[] = "/tmp/securemsg-test-log-XXXXXX";
    int tmp = mkstemp(path);

    unlink(path);
    *saved = dup(fd);
    dup2(tmp, fd);
    return tmp;
}

static char *restore(int fd, int saved, int tmp)
{
    char *buf = calloc(1, CAPTURE_MAX);
    ssize_t n;

    dup2(saved, fd);
    close(saved);
    lseek(tmp, 0, SEEK_SET);
    n = read(tmp, buf, CAPTURE_MAX - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(tmp);
    return buf;
}

/* Runs fn with stdout and stderr redirected to temporary files; returns
 * what each received. */
static void capture(void (*fn)(void), char **out, char **err)
{
    int saved_out, saved_err;
    int tmp_out = redirect(STDOUT_FILENO, &saved_out);
    int tmp_err = redirect(STDERR_FILENO, &saved_err);

    fn();
    *err = restore(STDERR_FILENO, saved_err, tmp_err);
    *out = restore(STDOUT_FILENO, saved_out, tmp_out);
}

static void emit_plain_lines(void)
{
    log_line(LOG_INFO, "Listening on %s:%d", "0.0.0.0", 5000);
    log_bytes(LOG_RECV, "Plaintext: ", (const uint8_t *)"a\nb\x1b", 4);
    log_line(LOG_SEND, "ACK sent to client");
    log_line(LOG_ERROR, "Frame too large from %s: %u bytes (limit %u)",
             "127.0.0.1:1", 70000u, 65536u);
}

static void test_line_format(void)
{
    char *out, *err;

    log_set_color(0);
    capture(emit_plain_lines, &out, &err);
    CHECK(strcmp(out, "[INFO] Listening on 0.0.0.0:5000\n"
                      "[RECV] Plaintext: a\\nb\\x1b\n"
                      "[SEND] ACK sent to client\n") == 0);
    CHECK(strcmp(err, "[ERROR] Frame too large from 127.0.0.1:1: 70000 bytes "
                      "(limit 65536)\n") == 0);
    free(out);
    free(err);
}

static void test_colour_only_the_tag(void)
{
    char *out, *err;

    log_set_color(1);
    capture(emit_plain_lines, &out, &err);
    log_set_color(0);
    CHECK(strncmp(out, "\033[36m[INFO]\033[0m Listening on 0.0.0.0:5000\n", 42) == 0);
    CHECK(strstr(out, "\033[32m[RECV]\033[0m Plaintext: ") != NULL);
    CHECK(strstr(out, "\033[33m[SEND]\033[0m ACK sent") != NULL);
    CHECK(strncmp(err, "\033[31m[ERROR]\033[0m Frame too large", 32) == 0);
    free(out);
    free(err);
}

/* Writes one [INFO] line with stdout on a pseudo-terminal after log_init()
 * with NO_COLOR as given (NULL: unset); returns what the terminal got. */
static int line_on_tty(const char *no_color, char *got, size_t cap)
{
    struct termios tio;
    int master, slave, saved;
    ssize_t n;

    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
        return -1;
    slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    if (slave < 0)
        return -1;
    tcgetattr(slave, &tio);
    tio.c_oflag &= ~(tcflag_t)OPOST; /* no "\n" -> "\r\n" */
    tcsetattr(slave, TCSANOW, &tio);
    if (no_color != NULL)
        setenv("NO_COLOR", no_color, 1);
    else
        unsetenv("NO_COLOR");
    saved = dup(STDOUT_FILENO);
    dup2(slave, STDOUT_FILENO);
    log_init();
    log_line(LOG_INFO, "x");
    dup2(saved, STDOUT_FILENO);
    close(saved);
    n = read(master, got, cap - 1);
    got[n > 0 ? n : 0] = '\0';
    close(slave);
    close(master);
    unsetenv("NO_COLOR");
    log_set_color(0);
    return 0;
}

/* Colour on a terminal unless NO_COLOR is set and non-empty; never on a
 * file or pipe. */
static void test_color_decision(void)
{
    char got[128], *out, *err;

    if (line_on_tty(NULL, got, sizeof got) < 0) {
        fprintf(stderr, "  no pseudo-terminal available: %s\n", strerror(errno));
        CHECK(0);
        return;
    }
    CHECK(strcmp(got, "\033[36m[INFO]\033[0m x\n") == 0);
    line_on_tty("", got, sizeof got);
    CHECK(strcmp(got, "\033[36m[INFO]\033[0m x\n") == 0);
    line_on_tty("1", got, sizeof got);
    CHECK(strcmp(got, "[INFO] x\n") == 0);

    unsetenv("NO_COLOR");
    log_init(); /* stdout and stderr are files or pipes under make */
    capture(emit_plain_lines, &out, &err);
    CHECK(strncmp(out, "[INFO] ", 7) == 0);
    CHECK(strncmp(err, "[ERROR] ", 8) == 0);
    free(out);
    free(err);
}

/* Long lines: assembled on the heap, still one line. */
static void emit_long_line(void)
{
    uint8_t *msg = malloc(100000);

    memset(msg, 0x01, 100000); /* each byte escapes to 4 characters */
    log_bytes(LOG_RECV, "Plaintext: ", msg, 100000);
    free(msg);
}

static void test_long_line(void)
{
    char *out, *err;

    log_set_color(0);
    capture(emit_long_line, &out, &err);
    CHECK(err[0] == '\0');
    free(err);
    CHECK(strlen(out) == strlen("[RECV] Plaintext: ") + 400000 + 1);
    CHECK(strncmp(out + 18, "\\x01\\x01", 8) == 0);
    CHECK(out[strlen(out) - 1] == '\n');
    free(out);
}

#define WRITERS 4
#define LINES_EACH 300

static void *writer(void *arg)
{
    size_t id = (size_t)arg, i, len;
    uint8_t msg[3000];

    for (i = 0; i < LINES_EACH; i++) {
        len = 1 + (i * 37 + id * 101) % sizeof msg;
        memset(msg, (int)('a' + id), len);
        log_bytes(LOG_RECV, "Plaintext: ", msg, len);
    }
    return NULL;
}

static void emit_concurrently(void)
{
    pthread_t t[WRITERS];
    size_t i;

    for (i = 0; i < WRITERS; i++)
        pthread_create(&t[i], NULL, writer, (void *)i);
    for (i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
}

/* Concurrent writers never interleave within a line: every line is the tag
 * followed by one writer's letter only. */
static void test_lines_never_interleave(void)
{
    char *out, *err, *line, *save = NULL;
    int lines = 0, broken = 0;

    log_set_color(0);
    capture(emit_concurrently, &out, &err);
    free(err);
    for (line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        size_t k, n = strlen(line);

        lines++;
        if (strncmp(line, "[RECV] Plaintext: ", 18) != 0 || n <= 18) {
            broken++;
            continue;
        }
        for (k = 19; k < n; k++)
            if (line[k] != line[18])
                broken++;
    }
    CHECK(lines == WRITERS * LINES_EACH);
    CHECK(broken == 0);
    free(out);
}

int main(void)
{
    RUN_TEST(test_escape_vectors);
    RUN_TEST(test_escape_truncation);
    RUN_TEST(test_escape_every_single_byte);
    RUN_TEST(test_line_format);
    RUN_TEST(test_colour_only_the_tag);
    RUN_TEST(test_color_decision);
    RUN_TEST(test_long_line);
    RUN_TEST(test_lines_never_interleave);
    return check_report("test_log");
}
