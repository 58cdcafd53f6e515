/* config.h - command lines of PROTOCOL.md section 5, parsed in one place.
 *
 * config_parse() never prints and never exits: it fills a config and returns a
 * status with a one-line message for main to print ("[ERROR] <message>", then
 * the usage text for CONFIG_USAGE).
 */
#ifndef SECUREMSG_CONFIG_H
#define SECUREMSG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_KEY "MY_SECRET_KEY"
#define CONFIG_DEFAULT_BIND "0.0.0.0"
#define CONFIG_DEFAULT_MAX_FRAME 1048576u
#define CONFIG_MIN_MAX_FRAME 64u
#define CONFIG_MAX_MAX_FRAME 1073741824u
#define CONFIG_MAX_IDLE_TIMEOUT 86400u
#define CONFIG_DEFAULT_SERVER_IDLE 300u
#define CONFIG_DEFAULT_CLIENT_IDLE 30u
#define CONFIG_MAX_MAX_CLIENTS 100000u
#define CONFIG_DEFAULT_FRAME_TIMEOUT 10u
#define CONFIG_MAX_FRAME_TIMEOUT 86400u
#define CONFIG_DEFAULT_MIN_RATE 65536u
#define CONFIG_MAX_MIN_RATE 1073741824u
#define CONFIG_DEFAULT_DRAIN_TIMEOUT 5u
#define CONFIG_MAX_DRAIN_TIMEOUT 86400u
#define CONFIG_DEFAULT_MAX_BUFFERED 268435456ull
#define CONFIG_MIN_MAX_BUFFERED 1048576ull
#define CONFIG_MAX_MAX_BUFFERED 1099511627776ull
#define CONFIG_PSK_LEN 32
#define CONFIG_ERROR_MAX 512

typedef enum { CONFIG_SERVER, CONFIG_CLIENT } config_program;
typedef enum { CONFIG_CIPHER_XOR, CONFIG_CIPHER_NOISE } config_cipher;
typedef enum {
    CONFIG_KEY_DEFAULT, CONFIG_KEY_OPTION, CONFIG_KEY_FILE, CONFIG_KEY_ENV
} config_key_source;

typedef enum {
    CONFIG_OK = 0,
    CONFIG_HELP,    /* -h/--help: print the usage text to stdout, exit 0 */
    CONFIG_USAGE,   /* bad usage: message + usage text on stderr, exit 2 */
    CONFIG_RUNTIME  /* e.g. unreadable key file: message, exit 1 */
} config_status;

typedef struct {
    config_program program;
    const char *host;        /* client: points into argv */
    uint16_t port;
    const char *bind;        /* server */
    const char *message;     /* client one-shot message, or NULL: interactive */
    size_t message_len;
    uint8_t *key;            /* heap copy, wiped by config_free() */
    size_t key_len;
    config_key_source key_source;
    const char *key_file;
    int key_file_is_psk;     /* the key file held exactly 32 bytes ... */
    uint8_t key_file_raw[CONFIG_PSK_LEN]; /* ... these, unstripped */
    uint32_t max_frame;
    unsigned idle_timeout;
    unsigned max_clients;    /* default: from the open-file limit (conn.h) */
    unsigned frame_timeout;  /* server: seconds per frame / handshake, 0 = none */
    uint32_t min_rate;       /* server: bytes per second beyond frame_timeout */
    unsigned drain_timeout;  /* server: seconds to drain on shutdown */
    uint64_t max_buffered;   /* server: memory budget for large frames, bytes */
    config_cipher cipher;
} config;

/* Parses argv (getopt_long; resets optind). err receives the message for
 * any status but CONFIG_OK / CONFIG_HELP. Call config_free() in every case. */
config_status config_parse(config *cfg, config_program program, int argc,
                           char **argv, char *err, size_t err_cap);

/* Wipes and frees the key. */
void config_free(config *cfg);

/* The usage text for program (prog = the name to show). */
size_t config_usage(char *out, size_t cap, config_program program,
                    const char *prog);

#endif
