/*
 * healthcheck PORT -- exit 0 when a TCP socket in this network namespace
 * listens on PORT, 1 otherwise (2 on bad usage).
 *
 * Docker runs it as the containers' HEALTHCHECK. It reads /proc/net/tcp and
 * /proc/net/tcp6 instead of connecting: a connection would add "Client
 * connected" / "[RECV]" lines to the server's log at every check, and in
 * secure mode it would cost an Argon2id key derivation (64 MiB) each time.
 * It needs no shell, so it works in the FROM-scratch C image too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH_TCP_LISTEN 0x0A /* TCP_LISTEN in the kernel's tcp_states.h */

static int health_parse_port(const char *text, unsigned long *port_out)
{
    char *end = NULL;
    unsigned long value;

    errno = 0;
    value = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' ||
        value == 0 || value > 65535)
        return -1;
    *port_out = value;
    return 0;
}

/* One /proc/net/tcp line: "sl local_addr:PORT rem_addr:PORT st ...", hex. */
static int health_line_listens(const char *line, unsigned long port)
{
    char local[64];
    unsigned int state;
    const char *colon;
    char *end = NULL;
    unsigned long local_port;

    if (sscanf(line, " %*s %63s %*s %x", local, &state) != 2)
        return 0;
    colon = strrchr(local, ':');
    if (colon == NULL)
        return 0;
    errno = 0;
    local_port = strtoul(colon + 1, &end, 16);
    if (errno != 0 || *end != '\0')
        return 0;
    return state == HEALTH_TCP_LISTEN && local_port == port;
}

/* 1: PORT listens in this table; 0: it does not (or the table is absent). */
static int health_table_listens(const char *path, unsigned long port)
{
    char line[512];
    int found = 0;
    FILE *table = fopen(path, "r");

    if (table == NULL)
        return 0; /* no IPv6 in this kernel: not an error */
    if (fgets(line, sizeof line, table) == NULL) /* header line */
        goto close_table;
    while (!found && fgets(line, sizeof line, table) != NULL)
        found = health_line_listens(line, port);
close_table:
    fclose(table);
    return found;
}

int main(int argc, char **argv)
{
    unsigned long port;

    if (argc != 2 || health_parse_port(argv[1], &port) != 0) {
        fputs("usage: healthcheck PORT   (PORT 1..65535)\n", stderr);
        return 2;
    }
    if (health_table_listens("/proc/net/tcp", port) ||
        health_table_listens("/proc/net/tcp6", port))
        return 0;
    fprintf(stderr, "nothing listens on TCP port %lu\n", port);
    return 1;
}
