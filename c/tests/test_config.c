/* test_config.c - command lines of PROTOCOL.md section 5, good and bad. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "conn.h"

#define MAX_ARGS 16

/* Linked with -Wl,--wrap=malloc (see the Makefile): when malloc_countdown is
 * n > 0, the modules' n-th malloc from now returns NULL. */
static int malloc_countdown;

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);

void *__wrap_malloc(size_t size)
{
    if (malloc_countdown > 0 && --malloc_countdown == 0) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(size);
}

typedef struct {
    config cfg;
    config_status status;
    char err[CONFIG_ERROR_MAX];
    char *argv[MAX_ARGS + 1];
    int argc;
} parsed;

static void parse_v(parsed *p, config_program program, va_list ap)
{
    const char *arg;

    memset(p, 0, sizeof *p);
    p->argv[p->argc++] = strdup(program == CONFIG_SERVER ? "server" : "client");
    while ((arg = va_arg(ap, const char *)) != NULL && p->argc < MAX_ARGS)
        p->argv[p->argc++] = strdup(arg);
    p->status = config_parse(&p->cfg, program, p->argc, p->argv, p->err,
                             sizeof p->err);
}

/* Parses program name + the NULL-terminated arguments (copied: getopt
 * permutes argv). Free with done(). */
static void parse(parsed *p, config_program program, ...)
{
    va_list ap;

    va_start(ap, program);
    parse_v(p, program, ap);
    va_end(ap);
}

static void done(parsed *p)
{
    int i;

    config_free(&p->cfg);
    for (i = 0; i < p->argc; i++)
        free(p->argv[i]);
}

/* Expects a usage error with exactly this message. */
static void expect_usage(const char *want, config_program program, ...)
{
    parsed p;
    va_list ap;

    va_start(ap, program);
    parse_v(&p, program, ap);
    va_end(ap);
    CHECK(p.status == CONFIG_USAGE);
    if (strcmp(p.err, want) != 0) {
        fprintf(stderr, "  got  \"%s\"\n  want \"%s\"\n", p.err, want);
        CHECK(0);
    }
    done(&p);
}

#define S CONFIG_SERVER
#define C CONFIG_CLIENT

static void test_server_defaults(void)
{
    parsed p;

    unsetenv("SECUREMSG_KEY");
    parse(&p, S, "5000", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.port == 5000);
    CHECK(strcmp(p.cfg.bind, "0.0.0.0") == 0);
    CHECK(p.cfg.max_frame == 1048576);
    CHECK(p.cfg.idle_timeout == 300);
    CHECK(p.cfg.frame_timeout == 10);
    CHECK(p.cfg.min_rate == 65536);
    CHECK(p.cfg.drain_timeout == 5);
    CHECK(p.cfg.max_buffered == 268435456u);
    CHECK(p.cfg.cipher == CONFIG_CIPHER_XOR);
    CHECK_BYTES(p.cfg.key, p.cfg.key_len, "MY_SECRET_KEY", 13);
    CHECK(p.cfg.key_source == CONFIG_KEY_DEFAULT);
    done(&p);
}

/* The --max-clients default follows the open-file soft limit. */
static void test_max_clients_default(void)
{
    struct rlimit saved, rl;
    parsed p;

    CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    rl = saved;
    rl.rlim_cur = 1088 <= saved.rlim_max ? 1088 : saved.rlim_max;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    parse(&p, S, "5000", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.max_clients == conn_default_max_clients(rl.rlim_cur, 100000));
    CHECK(rl.rlim_cur != 1088 || p.cfg.max_clients == 1024);
    done(&p);
    CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0);
}

static void test_server_options(void)
{
    parsed p;

    parse(&p, S, "--port", "0", "--bind", "::1", "--max-frame", "64",
          "--idle-timeout", "0", "--max-clients", "10000", "--cipher", "xor",
          "--key", "k", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.port == 0);
    CHECK(strcmp(p.cfg.bind, "::1") == 0);
    CHECK(p.cfg.max_frame == 64);
    CHECK(p.cfg.idle_timeout == 0);
    CHECK(p.cfg.max_clients == 10000);
    done(&p);

    parse(&p, S, "1", "--frame-timeout", "0", "--min-rate", "1",
          "--drain-timeout", "0", "--max-clients", "100000", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.frame_timeout == 0);
    CHECK(p.cfg.min_rate == 1);
    CHECK(p.cfg.drain_timeout == 0);
    CHECK(p.cfg.max_clients == 100000);
    done(&p);

    parse(&p, S, "1", "--frame-timeout=86400", "--min-rate=1073741824",
          "--drain-timeout=86400", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.frame_timeout == 86400);
    CHECK(p.cfg.min_rate == 1073741824u);
    CHECK(p.cfg.drain_timeout == 86400);
    done(&p);

    parse(&p, S, "1", "--max-buffered", "1048576", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.max_buffered == 1048576u);
    done(&p);
    parse(&p, S, "1", "--max-buffered=1099511627776", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.max_buffered == 1099511627776ull);
    done(&p);

    /* options after the positional, and the upper bounds */
    parse(&p, S, "65535", "--max-frame", "1073741824", "--idle-timeout", "86400",
          "--max-clients", "1", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.port == 65535);
    CHECK(p.cfg.max_frame == 1073741824u);
    CHECK(p.cfg.idle_timeout == 86400);
    CHECK(p.cfg.max_clients == 1);
    done(&p);

    parse(&p, S, "--port=7", "--cipher=noise", "--key=secret", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.port == 7);
    CHECK(p.cfg.cipher == CONFIG_CIPHER_NOISE);
    done(&p);
}

static void test_server_errors(void)
{
    expect_usage("Missing port", S, NULL);
    expect_usage("Invalid port: abc", S, "abc", NULL);
    expect_usage("Invalid port: 65536", S, "65536", NULL);
    expect_usage("Invalid port: ", S, "", NULL);
    expect_usage("Invalid port: 5000x", S, "--port", "5000x", NULL);
    expect_usage("Invalid port: 99999999999", S, "99999999999", NULL);
    expect_usage("Port given twice (positional and --port)", S, "--port", "1", "2", NULL);
    expect_usage("Unexpected argument: 6000", S, "5000", "6000", NULL);
    expect_usage("Unknown option: --frob", S, "--frob", "5000", NULL);
    expect_usage("Unknown option: --frob", S, "--frob=1", "5000", NULL);
    expect_usage("Unknown option: -x", S, "-x", "5000", NULL);
    expect_usage("Unknown option: --message", S, "--message", "m", "1", NULL);
    expect_usage("Missing value for --max-frame", S, "5000", "--max-frame", NULL);
    expect_usage("Invalid value for --max-frame: 12x", S, "--max-frame", "12x", "1", NULL);
    expect_usage("Invalid value for --max-frame: 63", S, "--max-frame", "63", "1", NULL);
    expect_usage("Invalid value for --max-frame: 1073741825", S, "--max-frame",
                 "1073741825", "1", NULL);
    expect_usage("Invalid value for --max-frame: +64", S, "--max-frame", "+64", "1", NULL);
    expect_usage("Invalid value for --max-frame:  64", S, "--max-frame", " 64", "1", NULL);
    expect_usage("Invalid value for --max-frame: ", S, "--max-frame", "", "1", NULL);
    expect_usage("Invalid value for --idle-timeout: 86401", S, "--idle-timeout",
                 "86401", "1", NULL);
    expect_usage("Invalid value for --idle-timeout: -1", S, "--idle-timeout", "-1", "1", NULL);
    expect_usage("Invalid value for --max-clients: 0", S, "--max-clients", "0", "1", NULL);
    expect_usage("Invalid value for --max-clients: 100001", S, "--max-clients",
                 "100001", "1", NULL);
    expect_usage("Invalid value for --frame-timeout: 86401", S, "--frame-timeout",
                 "86401", "1", NULL);
    expect_usage("Invalid value for --frame-timeout: 1.5", S, "--frame-timeout",
                 "1.5", "1", NULL);
    expect_usage("Invalid value for --min-rate: 0", S, "--min-rate", "0", "1", NULL);
    expect_usage("Invalid value for --min-rate: 1073741825", S, "--min-rate",
                 "1073741825", "1", NULL);
    expect_usage("Invalid value for --drain-timeout: 86401", S, "--drain-timeout",
                 "86401", "1", NULL);
    expect_usage("Invalid value for --drain-timeout: -1", S, "--drain-timeout",
                 "-1", "1", NULL);
    expect_usage("Missing value for --drain-timeout", S, "1", "--drain-timeout", NULL);
    expect_usage("Invalid value for --max-buffered: 1048575", S, "--max-buffered",
                 "1048575", "1", NULL);
    expect_usage("Invalid value for --max-buffered: 1099511627777", S,
                 "--max-buffered", "1099511627777", "1", NULL);
    expect_usage("Invalid value for --max-buffered: 1e9", S, "--max-buffered",
                 "1e9", "1", NULL);
    expect_usage("Unknown option: --max-buffered", C, "h", "1", "--max-buffered",
                 "1048576", NULL);
    expect_usage("Unknown option: --frame", S, "1", "--frame=3", NULL);
    /* server-only options are unknown to the client */
    expect_usage("Unknown option: --frame-timeout", C, "h", "1", "--frame-timeout", "3",
                 NULL);
    expect_usage("Invalid value for --bind: (empty)", S, "--bind", "", "1", NULL);
    expect_usage("Unknown option: --po", S, "--po", "1", NULL);
    expect_usage("Unknown option: --max-f", S, "1", "--max-f=100", NULL);
    expect_usage("Invalid value for --cipher: aes", S, "--cipher", "aes", "1", NULL);
    /* arguments are quoted escaped, so an error line stays one line */
    expect_usage("Invalid port: a\\nb\\x1b", S, "a\nb\x1b", NULL);
}

static void test_help(void)
{
    parsed p;

    parse(&p, S, "-h", NULL);
    CHECK(p.status == CONFIG_HELP);
    done(&p);
    parse(&p, C, "h", "1", "--help", NULL);
    CHECK(p.status == CONFIG_HELP);
    done(&p);
    /* help takes no value, in either spelling */
    expect_usage("Unknown option: --help", S, "--help=1", NULL);
    expect_usage("Unknown option: -h", S, "-h=1", NULL);
    expect_usage("Unknown option: -h", C, "-hx", NULL);
}

static void test_client_spellings(void)
{
    parsed p;

    parse(&p, C, "127.0.0.1", "5000", "Hello from C", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(strcmp(p.cfg.host, "127.0.0.1") == 0);
    CHECK(p.cfg.port == 5000);
    CHECK_BYTES(p.cfg.message, p.cfg.message_len, "Hello from C", 12);
    CHECK(p.cfg.idle_timeout == 30);
    done(&p);

    parse(&p, C, "--host", "::1", "--port", "5000", "--message", "hi", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(strcmp(p.cfg.host, "::1") == 0);
    CHECK_BYTES(p.cfg.message, p.cfg.message_len, "hi", 2);
    done(&p);

    parse(&p, C, "localhost", "1", NULL); /* interactive */
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.message == NULL);
    done(&p);

    parse(&p, C, "--message", "", "h", "1", NULL); /* an empty message is sent */
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.message != NULL && p.cfg.message_len == 0);
    done(&p);

    parse(&p, C, "h", "1", "--", "-dash", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.message != NULL && strcmp(p.cfg.message, "-dash") == 0);
    done(&p);
}

static void test_client_errors(void)
{
    expect_usage("Missing host", C, NULL);
    expect_usage("Missing port", C, "localhost", NULL);
    expect_usage("Missing port", C, "--host", "localhost", NULL);
    expect_usage("Invalid port: 0", C, "h", "0", NULL);
    expect_usage("Invalid port: 65536", C, "--host", "h", "--port", "65536", NULL);
    expect_usage("Unexpected argument: extra", C, "h", "1", "m", "extra", NULL);
    expect_usage("Host given twice (positional and --host)", C, "--host", "a", "b", "1", NULL);
    expect_usage("Message given twice (positional and --message)", C, "--message", "x", "h", "1",
                 "y", NULL);
    expect_usage("Unknown option: --bind", C, "--bind", "x", "h", "1", NULL);
    expect_usage("Unknown option: --max-clients", C, "--max-clients", "3", "h", "1", NULL);
    expect_usage("Invalid host: (empty)", C, "", "1", NULL);
    expect_usage("Unknown option: --mes", C, "--mes", "x", "h", "1", NULL);
    expect_usage("Unknown option: --mess", C, "h", "1", "--mess=x", NULL);
    expect_usage("Invalid value for --idle-timeout: 1.5", C, "--idle-timeout",
                 "1.5", "h", "1", NULL);
}

/* An option last on the line without its value: only the full name earns
 * "Missing value"; an abbreviation is unknown, as everywhere else. */
static void test_missing_value(void)
{
    expect_usage("Missing value for --message", C, "localhost", "1", "--message", NULL);
    expect_usage("Unknown option: --messag", C, "localhost", "1", "--messag", NULL);
    expect_usage("Unknown option: --m", C, "localhost", "1", "--m", NULL);
    expect_usage("Missing value for --key", S, "1", "--key", NULL);
    expect_usage("Unknown option: --key-f", S, "1", "--key-f", NULL);
    expect_usage("Unknown option: --ke", S, "1", "--ke", NULL); /* ambiguous */
    expect_usage("Missing value for --max-frame", S, "1", "--max-frame", NULL);
    expect_usage("Unknown option: --max-f", S, "1", "--max-f", NULL);
}

static char key_path[64];

static void write_key_file(const void *data, size_t len)
{
    FILE *f = fopen(key_path, "wb");

    fwrite(data, 1, len, f);
    fclose(f);
}

static void expect_key_file(const void *content, size_t len, const void *key,
                            size_t key_len)
{
    parsed p;

    write_key_file(content, len);
    parse(&p, S, "--key-file", key_path, "1", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.key_source == CONFIG_KEY_FILE);
    CHECK_BYTES(p.cfg.key, p.cfg.key_len, key, key_len);
    done(&p);
}

static void test_key_file(void)
{
    uint8_t psk[32];
    parsed p;
    int fd;

    snprintf(key_path, sizeof key_path, "/tmp/securemsg-test-key-XXXXXX");
    fd = mkstemp(key_path);
    close(fd);
    expect_key_file("secret", 6, "secret", 6);
    expect_key_file("secret\n", 7, "secret", 6);
    expect_key_file("secret\r\n", 8, "secret", 6);
    expect_key_file("secret\n\n", 8, "secret\n", 7);   /* one newline only */
    expect_key_file("secret\r", 7, "secret\r", 7);     /* a lone CR stays */
    expect_key_file("a\0b\n", 4, "a\0b", 3);           /* raw bytes, NUL too */

    write_key_file("\n", 1);
    parse(&p, S, "--key-file", key_path, "1", NULL);
    CHECK(p.status == CONFIG_USAGE && strcmp(p.err, "Empty key from --key-file") == 0);
    done(&p);

    /* A 32-byte file is also the raw PSK, even if it ends in a newline. */
    memset(psk, 0xab, sizeof psk);
    psk[31] = '\n';
    write_key_file(psk, sizeof psk);
    parse(&p, S, "--key-file", key_path, "--cipher", "noise", "1", NULL);
    CHECK(p.status == CONFIG_OK);
    CHECK(p.cfg.key_file_is_psk == 1);
    CHECK_BYTES(p.cfg.key_file_raw, 32, psk, 32);
    CHECK(p.cfg.key_len == 31);
    done(&p);

    write_key_file("not 32 bytes\n", 13);
    parse(&p, S, "--key-file", key_path, "1", NULL);
    CHECK(p.status == CONFIG_OK && p.cfg.key_file_is_psk == 0);
    done(&p);

    unlink(key_path);
    parse(&p, S, "--key-file", "/nonexistent/key", "1", NULL);
    CHECK(p.status == CONFIG_RUNTIME);
    CHECK(strcmp(p.err, "Cannot read key file /nonexistent/key: "
                        "No such file or directory") == 0);
    done(&p);

    parse(&p, S, "--key-file", "/tmp", "1", NULL); /* a directory */
    CHECK(p.status == CONFIG_RUNTIME);
    CHECK(strcmp(p.err, "Cannot read key file /tmp: Is a directory") == 0);
    done(&p);
}

static void test_key_precedence(void)
{
    parsed p;

    setenv("SECUREMSG_KEY", "from-env", 1);
    parse(&p, S, "1", NULL);
    CHECK(p.status == CONFIG_OK && p.cfg.key_source == CONFIG_KEY_ENV);
    CHECK_BYTES(p.cfg.key, p.cfg.key_len, "from-env", 8);
    done(&p);

    parse(&p, S, "--key", "from-option", "1", NULL);
    CHECK(p.status == CONFIG_OK && p.cfg.key_source == CONFIG_KEY_OPTION);
    CHECK_BYTES(p.cfg.key, p.cfg.key_len, "from-option", 11);
    done(&p);

    setenv("SECUREMSG_KEY", "", 1);
    expect_usage("Empty key from SECUREMSG_KEY", S, "1", NULL);
    unsetenv("SECUREMSG_KEY");

    expect_usage("Empty key", C, "--key", "", "h", "1", NULL);
    expect_usage("Give either --key or --key-file, not both", S, "--key", "a", "--key-file",
                 "/dev/null", "1", NULL);
}

static void test_noise_refuses_default_key(void)
{
    const char *why = "Secure mode refuses the default key MY_SECRET_KEY: it is "
                      "public. Set --key, --key-file or SECUREMSG_KEY";
    parsed p;

    expect_usage(why, S, "--cipher", "noise", "1", NULL);
    expect_usage(why, C, "--cipher", "noise", "--key", "MY_SECRET_KEY", "h", "1", NULL);
    setenv("SECUREMSG_KEY", "MY_SECRET_KEY", 1);
    expect_usage(why, S, "--cipher", "noise", "1", NULL);
    unsetenv("SECUREMSG_KEY");

    parse(&p, S, "--cipher", "noise", "--key", "correct horse", "1", NULL);
    CHECK(p.status == CONFIG_OK);
    done(&p);
    parse(&p, S, "--cipher", "xor", "1", NULL); /* xor keeps the seed's default */
    CHECK(p.status == CONFIG_OK);
    done(&p);
}

/* Runs config_parse with the n-th malloc failing; expects a runtime error. */
static void expect_oom(int nth, const char *want, config_program program, ...)
{
    parsed p;
    va_list ap;

    malloc_countdown = nth;
    va_start(ap, program);
    parse_v(&p, program, ap);
    va_end(ap);
    CHECK(malloc_countdown == 0); /* the failure was reached */
    malloc_countdown = 0;
    CHECK(p.status == CONFIG_RUNTIME);
    if (strcmp(p.err, want) != 0) {
        fprintf(stderr, "  got  \"%s\"\n  want \"%s\"\n", p.err, want);
        CHECK(0);
    }
    CHECK(p.cfg.key == NULL);
    done(&p);
}

/* Out of memory is the system's failure, not a usage error (exit 1, no
 * usage text), whichever source the key came from. */
static void test_out_of_memory(void)
{
    char path[64], want[128];
    int fd;

    expect_oom(1, "Out of memory", S, "--key", "k", "1", NULL);
    expect_oom(1, "Out of memory", C, "h", "1", NULL); /* the default key */
    setenv("SECUREMSG_KEY", "from-env", 1);
    expect_oom(1, "Out of memory", S, "1", NULL);
    unsetenv("SECUREMSG_KEY");

    snprintf(path, sizeof path, "/tmp/securemsg-test-oom-XXXXXX");
    fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, "secret\n", 7) == 7);
    close(fd);
    snprintf(want, sizeof want, "Cannot read key file %s: %s", path, strerror(ENOMEM));
    expect_oom(1, want, S, "--key-file", path, "1", NULL); /* the file buffer */
    expect_oom(2, want, S, "--key-file", path, "1", NULL); /* the key copy */
    unlink(path);
}

static void test_usage_text(void)
{
    static const char *const server_opts[] = {"--port", "--bind", "--key ",
        "--key-file", "--max-frame", "--idle-timeout", "--frame-timeout",
        "--min-rate", "--drain-timeout", "--max-clients", "--cipher", "--help"};
    static const char *const client_opts[] = {"--host", "--port", "--message",
        "--key ", "--key-file", "--max-frame", "--idle-timeout", "--cipher", "--help"};
    char text[4096];
    size_t i;

    CHECK(config_usage(text, sizeof text, S, "server") < sizeof text);
    CHECK(strncmp(text, "Usage: server [OPTIONS] PORT\n", 29) == 0);
    for (i = 0; i < sizeof server_opts / sizeof server_opts[0]; i++)
        CHECK(strstr(text, server_opts[i]) != NULL);
    CHECK(config_usage(text, sizeof text, C, "client") < sizeof text);
    CHECK(strncmp(text, "Usage: client [OPTIONS] HOST PORT [MESSAGE]\n", 44) == 0);
    for (i = 0; i < sizeof client_opts / sizeof client_opts[0]; i++)
        CHECK(strstr(text, client_opts[i]) != NULL);
    CHECK(strstr(text, "--bind") == NULL);
    CHECK(strstr(text, "--frame-timeout") == NULL);
}

int main(void)
{
    unsetenv("SECUREMSG_KEY");
    RUN_TEST(test_server_defaults);
    RUN_TEST(test_max_clients_default);
    RUN_TEST(test_server_options);
    RUN_TEST(test_server_errors);
    RUN_TEST(test_help);
    RUN_TEST(test_client_spellings);
    RUN_TEST(test_client_errors);
    RUN_TEST(test_missing_value);
    RUN_TEST(test_key_file);
    RUN_TEST(test_key_precedence);
    RUN_TEST(test_noise_refuses_default_key);
    RUN_TEST(test_out_of_memory);
    RUN_TEST(test_usage_text);
    return check_report("test_config");
}
