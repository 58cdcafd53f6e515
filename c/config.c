/* config.c - argv to config: getopt_long, strict numbers, key precedence. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"

#define CONFIG_KEY_FILE_MAX (1024 * 1024) /* a key, not a data file */
#define CONFIG_QUOTE_MAX 200              /* escaped argument in a message */

enum {
    OPT_PORT = 256, OPT_HOST, OPT_MESSAGE, OPT_KEY, OPT_KEY_FILE, OPT_BIND,
    OPT_MAX_FRAME, OPT_IDLE_TIMEOUT, OPT_MAX_CLIENTS, OPT_CIPHER,
    OPT_FRAME_TIMEOUT, OPT_MIN_RATE, OPT_DRAIN_TIMEOUT, OPT_MAX_BUFFERED
};

static const struct option server_options[] = {
    {"port", required_argument, NULL, OPT_PORT},
    {"bind", required_argument, NULL, OPT_BIND},
    {"key", required_argument, NULL, OPT_KEY},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"max-frame", required_argument, NULL, OPT_MAX_FRAME},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
    {"frame-timeout", required_argument, NULL, OPT_FRAME_TIMEOUT},
    {"min-rate", required_argument, NULL, OPT_MIN_RATE},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"max-buffered", required_argument, NULL, OPT_MAX_BUFFERED},
    {"cipher", required_argument, NULL, OPT_CIPHER},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const struct option client_options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"message", required_argument, NULL, OPT_MESSAGE},
    {"key", required_argument, NULL, OPT_KEY},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"max-frame", required_argument, NULL, OPT_MAX_FRAME},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"cipher", required_argument, NULL, OPT_CIPHER},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What getopt collected, before positionals and conflicts are resolved. */
typedef struct {
    const char *port, *host, *message, *key, *key_file;
} option_values;

/* "<prefix><escaped arg>" into err; returns status for a one-line return. */
static config_status fail(char *err, size_t cap, config_status status,
                          const char *prefix, const char *arg, size_t arg_len)
{
    char quoted[CONFIG_QUOTE_MAX + 1];

    log_escape(quoted, sizeof quoted, (const uint8_t *)arg, arg_len);
    snprintf(err, cap, "%s%s", prefix, quoted);
    return status;
}

static config_status usage_error(char *err, size_t cap, const char *prefix,
                                 const char *arg)
{
    return fail(err, cap, CONFIG_USAGE, prefix, arg, arg ? strlen(arg) : 0);
}

/* Strict unsigned decimal: digits only, no sign or spaces, within [min, max]. */
static int parse_uint(const char *text, unsigned long min, unsigned long max,
                      unsigned long *value)
{
    const char *p;
    char *end;
    unsigned long v, m;
    size_t digits = 0;

    for (m = max; m > 0; m /= 10)
        digits++;
    /* at most 10 digits (leading zeros allowed), more only for larger maxima */
    if (text[0] == '\0' || strlen(text) > (digits > 10 ? digits : 10))
        return -1;
    for (p = text; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *value = v;
    return 0;
}

static config_status parse_port(config *cfg, const char *text, char *err,
                                size_t cap)
{
    unsigned long v;
    unsigned long min = cfg->program == CONFIG_SERVER ? 0 : 1;

    if (parse_uint(text, min, 65535, &v) < 0)
        return usage_error(err, cap, "Invalid port: ", text);
    cfg->port = (uint16_t)v;
    return CONFIG_OK;
}

static config_status parse_number(const char *option, const char *text,
                                  unsigned long min, unsigned long max,
                                  unsigned long *value, char *err, size_t cap)
{
    char prefix[64];

    if (parse_uint(text, min, max, value) == 0)
        return CONFIG_OK;
    snprintf(prefix, sizeof prefix, "Invalid value for %s: ", option);
    return usage_error(err, cap, prefix, text);
}

static const char *option_name(const struct option *opts, int val)
{
    for (; opts->name != NULL; opts++)
        if (opts->val == val)
            return opts->name;
    return "?";
}

/* getopt_long accepts unambiguous prefixes (--mes for --message); we do
 * not, so that both implementations accept exactly the same words. The word
 * typed is argv[optind - 1], or argv[optind - 2] when the value was a separate
 * argument. Returns the word when it is not the option's full name. */
static const char *abbreviated(char **argv, const char *name)
{
    const char *word = argv[optind - 1];
    size_t len = strlen(name);

    if (optarg != NULL && optarg == argv[optind - 1] && optind >= 2)
        word = argv[optind - 2];
    if (strncmp(word, "--", 2) == 0 && strncmp(word + 2, name, len) == 0 &&
        (word[2 + len] == '\0' || word[2 + len] == '='))
        return NULL;
    return word;
}

/* getopt's '?': name the offending argument as typed, without "=value". */
static config_status unknown_option(const char *arg, int opt, char *err,
                                    size_t cap)
{
    char shortopt[3] = {'-', (char)opt, '\0'};
    size_t len;

    if (arg == NULL || strncmp(arg, "--", 2) != 0) {
        if (opt == 0)
            return usage_error(err, cap, "Unknown option: ", arg ? arg : "?");
        return usage_error(err, cap, "Unknown option: ", shortopt);
    }
    len = strcspn(arg, "=");
    return fail(err, cap, CONFIG_USAGE, "Unknown option: ", arg, len);
}

/* "-h=1" or "-hx": getopt_long returns 'h' but stays on that word (it moves
 * optind past a word only at the word's last letter). Like --help=1, that is
 * an unknown option (PROTOCOL.md section 5), not a request for help. */
static int short_help_continues(int argc, char **argv)
{
    return optind < argc && strncmp(argv[optind], "-h", 2) == 0 &&
           argv[optind][2] != '\0';
}

/* getopt's ':' (a value-taking option last on the line). getopt_long leaves
 * the long index unset here, so the abbreviation check is made on the word
 * typed, argv[optind - 1]: "--messag" is an unknown option, not "--message". */
static config_status missing_value(const struct option *opts, char **argv,
                                   char *err, size_t cap)
{
    const char *name = option_name(opts, optopt);
    const char *word = optind > 0 ? argv[optind - 1] : NULL;
    char prefix[64];

    if (word == NULL || strncmp(word, "--", 2) != 0 || strcmp(word + 2, name) != 0)
        return unknown_option(word, 0, err, cap);
    snprintf(prefix, sizeof prefix, "Missing value for --%s", name);
    return usage_error(err, cap, prefix, NULL);
}

static config_status parse_option(config *cfg, option_values *ov, int c,
                                  char *err, size_t cap)
{
    unsigned long v;
    config_status st = CONFIG_OK;

    switch (c) {
    case OPT_PORT: ov->port = optarg; break;
    case OPT_HOST: ov->host = optarg; break;
    case OPT_MESSAGE: ov->message = optarg; break;
    case OPT_KEY: ov->key = optarg; break;
    case OPT_KEY_FILE: ov->key_file = optarg; break;
    case OPT_BIND:
        if (optarg[0] == '\0')
            st = usage_error(err, cap, "Invalid value for --bind: (empty)", NULL);
        cfg->bind = optarg;
        break;
    case OPT_MAX_FRAME:
        st = parse_number("--max-frame", optarg, CONFIG_MIN_MAX_FRAME,
                          CONFIG_MAX_MAX_FRAME, &v, err, cap);
        cfg->max_frame = (uint32_t)v;
        break;
    case OPT_IDLE_TIMEOUT:
        st = parse_number("--idle-timeout", optarg, 0, CONFIG_MAX_IDLE_TIMEOUT,
                          &v, err, cap);
        cfg->idle_timeout = (unsigned)v;
        break;
    case OPT_MAX_CLIENTS:
        st = parse_number("--max-clients", optarg, 1, CONFIG_MAX_MAX_CLIENTS,
                          &v, err, cap);
        cfg->max_clients = (unsigned)v;
        break;
    case OPT_FRAME_TIMEOUT:
        st = parse_number("--frame-timeout", optarg, 0, CONFIG_MAX_FRAME_TIMEOUT,
                          &v, err, cap);
        cfg->frame_timeout = (unsigned)v;
        break;
    case OPT_MIN_RATE:
        st = parse_number("--min-rate", optarg, 1, CONFIG_MAX_MIN_RATE, &v, err, cap);
        cfg->min_rate = (uint32_t)v;
        break;
    case OPT_DRAIN_TIMEOUT:
        st = parse_number("--drain-timeout", optarg, 0, CONFIG_MAX_DRAIN_TIMEOUT,
                          &v, err, cap);
        cfg->drain_timeout = (unsigned)v;
        break;
    case OPT_MAX_BUFFERED:
        st = parse_number("--max-buffered", optarg, CONFIG_MIN_MAX_BUFFERED,
                          CONFIG_MAX_MAX_BUFFERED, &v, err, cap);
        cfg->max_buffered = (uint64_t)v;
        break;
    case OPT_CIPHER:
        if (strcmp(optarg, "xor") == 0)
            cfg->cipher = CONFIG_CIPHER_XOR;
        else if (strcmp(optarg, "noise") == 0)
            cfg->cipher = CONFIG_CIPHER_NOISE;
        else
            st = usage_error(err, cap, "Invalid value for --cipher: ", optarg);
        break;
    }
    return st;
}

/* Positionals: PORT (server) or HOST PORT [MESSAGE] (client), in that
 * order. The same thing given both as an option and positionally is a usage
 * error. */
static config_status take_positionals(config *cfg, option_values *ov, int argc,
                                      char **argv, char *err, size_t cap)
{
    const struct {
        const char *label, *option;
        const char **value;
    } server_slots[] = {{"Port", "port", &ov->port}},
      client_slots[] = {{"Host", "host", &ov->host},
                        {"Port", "port", &ov->port},
                        {"Message", "message", &ov->message}},
      *slots = cfg->program == CONFIG_SERVER ? server_slots : client_slots;
    int nslots = cfg->program == CONFIG_SERVER ? 1 : 3, i;
    char prefix[64];

    for (i = 0; optind + i < argc; i++) {
        const char *arg = argv[optind + i];

        if (i >= nslots)
            return usage_error(err, cap, "Unexpected argument: ", arg);
        if (*slots[i].value != NULL) {
            snprintf(prefix, sizeof prefix, "%s given twice (positional and --%s)",
                     slots[i].label, slots[i].option);
            return usage_error(err, cap, prefix, NULL);
        }
        *slots[i].value = arg;
    }
    if (cfg->program == CONFIG_CLIENT && ov->host == NULL)
        return usage_error(err, cap, "Missing host", NULL);
    if (cfg->program == CONFIG_CLIENT && ov->host[0] == '\0')
        return usage_error(err, cap, "Invalid host: (empty)", NULL);
    if (ov->port == NULL)
        return usage_error(err, cap, "Missing port", NULL);
    return parse_port(cfg, ov->port, err, cap);
}

static int set_key(config *cfg, const void *bytes, size_t len,
                   config_key_source source)
{
    cfg->key = malloc(len > 0 ? len : 1);
    if (cfg->key == NULL)
        return -1;
    if (len > 0)
        memcpy(cfg->key, bytes, len);
    cfg->key_len = len;
    cfg->key_source = source;
    return 0;
}

/* Reads the whole file into a fresh buffer; -1 with errno set. */
static int read_small_file(const char *path, uint8_t **out, size_t *out_len)
{
    uint8_t *buf;
    size_t len = 0;
    ssize_t n;
    int fd, saved;

    fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    buf = malloc(CONFIG_KEY_FILE_MAX + 1);
    if (buf == NULL)
        goto close_fd;
    while (len <= CONFIG_KEY_FILE_MAX) {
        n = read(fd, buf + len, CONFIG_KEY_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto free_buf;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > CONFIG_KEY_FILE_MAX) {
        errno = EFBIG;
        goto free_buf;
    }
    close(fd);
    *out = buf;
    *out_len = len;
    return 0;

free_buf:
    saved = errno;
    sodium_memzero(buf, CONFIG_KEY_FILE_MAX + 1);
    free(buf);
    errno = saved;
close_fd:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

static config_status key_file_error(char *err, size_t cap, const char *path,
                                    int errnum)
{
    char quoted[CONFIG_QUOTE_MAX + 1];

    log_escape(quoted, sizeof quoted, (const uint8_t *)path, strlen(path));
    snprintf(err, cap, "Cannot read key file %s: %s", quoted, strerror(errnum));
    return CONFIG_RUNTIME;
}

/* Raw bytes; one trailing "\n" or "\r\n" removed. */
static config_status load_key_file(config *cfg, const char *path, char *err,
                                   size_t cap)
{
    uint8_t *raw;
    size_t len, key_len;
    int rc;

    if (read_small_file(path, &raw, &len) < 0)
        return key_file_error(err, cap, path, errno);
    /* A 32-byte file is also a ready-made Noise PSK, byte for byte. */
    if (len == CONFIG_PSK_LEN) {
        cfg->key_file_is_psk = 1;
        memcpy(cfg->key_file_raw, raw, CONFIG_PSK_LEN);
    }
    key_len = len;
    if (key_len > 0 && raw[key_len - 1] == '\n') {
        key_len--;
        if (key_len > 0 && raw[key_len - 1] == '\r')
            key_len--;
    }
    rc = set_key(cfg, raw, key_len, CONFIG_KEY_FILE);
    sodium_memzero(raw, len);
    free(raw);
    if (rc < 0)
        return key_file_error(err, cap, path, ENOMEM);
    cfg->key_file = path;
    return CONFIG_OK;
}

/* Precedence: --key, --key-file, SECUREMSG_KEY, the default. */
static config_status resolve_key(config *cfg, const option_values *ov,
                                 char *err, size_t cap)
{
    const char *env = getenv("SECUREMSG_KEY");
    config_status st = CONFIG_OK;
    int rc = 0;

    if (ov->key != NULL && ov->key_file != NULL)
        return usage_error(err, cap, "Give either --key or --key-file, not both", NULL);
    if (ov->key != NULL)
        rc = set_key(cfg, ov->key, strlen(ov->key), CONFIG_KEY_OPTION);
    else if (ov->key_file != NULL)
        st = load_key_file(cfg, ov->key_file, err, cap);
    else if (env != NULL)
        rc = set_key(cfg, env, strlen(env), CONFIG_KEY_ENV);
    else
        rc = set_key(cfg, CONFIG_DEFAULT_KEY, strlen(CONFIG_DEFAULT_KEY),
                     CONFIG_KEY_DEFAULT);
    if (rc < 0) /* the system's failure, not the user's: no usage text */
        return fail(err, cap, CONFIG_RUNTIME, "Out of memory", NULL, 0);
    if (st != CONFIG_OK)
        return st;
    if (cfg->key_len == 0)
        return usage_error(err, cap,
                           cfg->key_source == CONFIG_KEY_FILE ? "Empty key from --key-file"
                           : cfg->key_source == CONFIG_KEY_ENV ? "Empty key from SECUREMSG_KEY"
                                                               : "Empty key",
                           NULL);
    if (cfg->cipher == CONFIG_CIPHER_NOISE &&
        cfg->key_len == strlen(CONFIG_DEFAULT_KEY) &&
        memcmp(cfg->key, CONFIG_DEFAULT_KEY, cfg->key_len) == 0)
        return usage_error(err, cap,
                           "Secure mode refuses the default key MY_SECRET_KEY: "
                           "it is public. Set --key, --key-file or SECUREMSG_KEY",
                           NULL);
    return CONFIG_OK;
}

/* The open-file limit as it is now: main raises it before parsing. */
static unsigned default_max_clients(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return CONFIG_MAX_MAX_CLIENTS;
    return conn_default_max_clients((uint64_t)rl.rlim_cur, CONFIG_MAX_MAX_CLIENTS);
}

static void set_defaults(config *cfg, config_program program)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->program = program;
    cfg->bind = CONFIG_DEFAULT_BIND;
    cfg->max_frame = CONFIG_DEFAULT_MAX_FRAME;
    cfg->idle_timeout = program == CONFIG_SERVER ? CONFIG_DEFAULT_SERVER_IDLE
                                                 : CONFIG_DEFAULT_CLIENT_IDLE;
    cfg->max_clients = default_max_clients();
    cfg->frame_timeout = CONFIG_DEFAULT_FRAME_TIMEOUT;
    cfg->min_rate = CONFIG_DEFAULT_MIN_RATE;
    cfg->drain_timeout = CONFIG_DEFAULT_DRAIN_TIMEOUT;
    cfg->max_buffered = CONFIG_DEFAULT_MAX_BUFFERED;
    cfg->cipher = CONFIG_CIPHER_XOR;
}

config_status config_parse(config *cfg, config_program program, int argc,
                           char **argv, char *err, size_t err_cap)
{
    const struct option *opts =
        program == CONFIG_SERVER ? server_options : client_options;
    option_values ov = {0};
    config_status st;
    const char *word;
    int c, index;

    set_defaults(cfg, program);
    err[0] = '\0';
    opterr = 0;
    optind = 0; /* 0, not 1: glibc then also resets its internal state */
    while ((index = -1, c = getopt_long(argc, argv, ":h", opts, &index)) != -1) {
        if (index >= 0 && (word = abbreviated(argv, opts[index].name)) != NULL)
            return unknown_option(word, 0, err, err_cap);
        if (c == 'h' && index < 0 && short_help_continues(argc, argv))
            return unknown_option(argv[optind], 'h', err, err_cap);
        if (c == 'h')
            return CONFIG_HELP;
        if (c == ':')
            return missing_value(opts, argv, err, err_cap);
        if (c == '?')
            return unknown_option(optind > 0 ? argv[optind - 1] : NULL, optopt,
                                  err, err_cap);
        st = parse_option(cfg, &ov, c, err, err_cap);
        if (st != CONFIG_OK)
            return st;
    }
    st = take_positionals(cfg, &ov, argc, argv, err, err_cap);
    if (st != CONFIG_OK)
        return st;
    cfg->host = ov.host;
    if (ov.message != NULL) {
        cfg->message = ov.message;
        cfg->message_len = strlen(ov.message);
    }
    return resolve_key(cfg, &ov, err, err_cap);
}

void config_free(config *cfg)
{
    if (cfg->key != NULL) {
        sodium_memzero(cfg->key, cfg->key_len);
        free(cfg->key);
    }
    sodium_memzero(cfg->key_file_raw, sizeof cfg->key_file_raw);
    cfg->key = NULL;
    cfg->key_len = 0;
    cfg->key_file_is_psk = 0;
}

static const char server_usage[] =
    "Usage: %s [OPTIONS] PORT\n"
    "       %s [OPTIONS] --port PORT\n"
    "\n"
    "A multi-client securemsg server: prints each message and acknowledges it.\n"
    "\n"
    "Options:\n"
    "  --port PORT             port to listen on, 0..65535 (0 picks a free port)\n"
    "  --bind ADDR             address to listen on (default 0.0.0.0)\n"
    "  --key KEY               shared key (default: $SECUREMSG_KEY, else MY_SECRET_KEY)\n"
    "  --key-file PATH         read the key from a file, one trailing newline removed\n"
    "                          (noise: a file of exactly 32 bytes is the raw PSK)\n"
    "  --max-frame BYTES       largest payload/message, 64..1073741824 (default 1048576)\n"
    "  --idle-timeout SECONDS  disconnect a client idle between frames, 0..86400,\n"
    "                          0 = never (default 300)\n"
    "  --frame-timeout SECONDS time for one frame and for the handshake, 0..86400,\n"
    "                          0 = none (default 10)\n"
    "  --min-rate BYTES        bytes per second a frame must sustain beyond that,\n"
    "                          1..1073741824 (default 65536)\n"
    "  --drain-timeout SECONDS longest wait for clients on shutdown, 0..86400\n"
    "                          (default 5)\n"
    "  --max-clients N         concurrent clients, 1..100000 (default: the open-file\n"
    "                          limit - 64)\n"
    "  --max-buffered BYTES    memory for large frames, all clients together,\n"
    "                          1048576..1099511627776 (default 268435456)\n"
    "  --cipher xor|noise      wire cipher (default xor)\n"
    "  -h, --help              show this text and exit\n";

static const char client_usage[] =
    "Usage: %s [OPTIONS] HOST PORT [MESSAGE]\n"
    "       %s [OPTIONS] --host HOST --port PORT [--message MESSAGE]\n"
    "\n"
    "Sends MESSAGE, or each line of standard input, and checks every ACK.\n"
    "\n"
    "Options:\n"
    "  --host HOST             server host name, IPv4 or IPv6 address\n"
    "  --port PORT             server port, 1..65535\n"
    "  --message MESSAGE       send one message (without: interactive mode)\n"
    "  --key KEY               shared key (default: $SECUREMSG_KEY, else MY_SECRET_KEY)\n"
    "  --key-file PATH         read the key from a file, one trailing newline removed\n"
    "                          (noise: a file of exactly 32 bytes is the raw PSK)\n"
    "  --max-frame BYTES       largest message sent or ACK accepted, 64..1073741824\n"
    "                          (default 1048576)\n"
    "  --idle-timeout SECONDS  wait to connect and for each ACK, 0..86400, 0 = forever\n"
    "                          (default 30)\n"
    "  --cipher xor|noise      wire cipher (default xor)\n"
    "  -h, --help              show this text and exit\n";

size_t config_usage(char *out, size_t cap, config_program program,
                    const char *prog)
{
    const char *fmt = program == CONFIG_SERVER ? server_usage : client_usage;
    int n;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    n = snprintf(out, cap, fmt, prog, prog);
#pragma GCC diagnostic pop
    return n < 0 ? 0 : (size_t)n;
}
