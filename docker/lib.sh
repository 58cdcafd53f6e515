# shellcheck shell=bash
# Shared shell helpers for docker/*.sh (source it; it defines functions only).

# securemsg_find_compose - set the array SECUREMSG_COMPOSE to the Compose
# command: $SECUREMSG_COMPOSE_CMD when set (e.g. "docker-compose" to use 1.29
# although v2 is there), else the v2 plugin (`docker compose`) when the CLI has
# it, else the standalone docker-compose (1.29 on Debian 12). Returns 1 when
# neither exists.
securemsg_find_compose() {
    if [ -n "${SECUREMSG_COMPOSE_CMD:-}" ]; then
        read -r -a SECUREMSG_COMPOSE <<<"$SECUREMSG_COMPOSE_CMD"
    elif docker compose version >/dev/null 2>&1; then
        SECUREMSG_COMPOSE=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        SECUREMSG_COMPOSE=(docker-compose)
    else
        echo "error: neither 'docker compose' nor 'docker-compose' is installed" >&2
        return 1
    fi
}

# securemsg_compose ARGS... - run that Compose command with ARGS.
securemsg_compose() {
    securemsg_find_compose || return 127
    "${SECUREMSG_COMPOSE[@]}" "$@"
}
