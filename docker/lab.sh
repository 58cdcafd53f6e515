#!/usr/bin/env bash
# The Docker lab: build the images and run compose.yaml.
#
#   docker/lab.sh up [ARGS]     build (base image if missing, then the lab
#                               images), start the lab and follow its logs;
#                               Ctrl-C stops and removes the containers
#                               (ARGS go to `compose up`; -d: start and return)
#   docker/lab.sh build         base images (if missing) + the lab images
#                               (securemsg/c, securemsg/python, securemsg/capture)
#   docker/lab.sh build-args    the build args `build` passes (NAME=VALUE lines)
#   docker/lab.sh down          stop and remove the lab's containers and network
#   docker/lab.sh logs [ARGS]   `compose logs` (e.g. -f server-c)
#   docker/lab.sh ps            `compose ps`
#
# Project name: $COMPOSE_PROJECT_NAME (default securemsg). Settings come from
# the environment or .env (see .env.example). The builds start from the
# registry-less bases of docker/base-image.sh (build args BUILD_BASE,
# RUNTIME_BASE; nothing is pulled), or from the images named by
# SECUREMSG_BUILD_BASE / SECUREMSG_RUNTIME_BASE in the environment when both
# are set (e.g. debian:bookworm-slim where a registry answers; no base is built).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
readonly HERE ROOT
# shellcheck source=docker/lib.sh
. "$HERE/lib.sh"

# Compose reads .env itself; a project name set there or in the environment wins.
if [ -z "${COMPOSE_PROJECT_NAME:-}" ] && ! grep -qs '^COMPOSE_PROJECT_NAME=' "$ROOT/.env"; then
    export COMPOSE_PROJECT_NAME=securemsg
fi
readonly BUILD_TIMEOUT="${SECUREMSG_BUILD_TIMEOUT:-900}"
securemsg_find_compose || exit 127
readonly COMPOSE=("${SECUREMSG_COMPOSE[@]}" --project-directory "$ROOT" -f "$ROOT/compose.yaml")

# Both bases set by the user: use them. Otherwise the local ones (built when missing).
choose_bases() {
    if [ -n "${SECUREMSG_BUILD_BASE:-}" ] && [ -n "${SECUREMSG_RUNTIME_BASE:-}" ]; then
        return 0
    fi
    "$HERE/base-image.sh" build runtime
    export SECUREMSG_BUILD_BASE="${SECUREMSG_BASE_NAME:-securemsg/base}-build:bookworm"
    export SECUREMSG_RUNTIME_BASE="${SECUREMSG_BASE_NAME:-securemsg/base}-runtime:bookworm"
}

build() {
    choose_bases
    echo "[lab] building securemsg/c, securemsg/python and securemsg/capture with" \
         "${SECUREMSG_COMPOSE[*]} (bases $SECUREMSG_BUILD_BASE, $SECUREMSG_RUNTIME_BASE)" >&2
    # All services of one image share its build section: building one service
    # per image builds each image once.
    timeout "$BUILD_TIMEOUT" "${COMPOSE[@]}" --profile capture build server-c server-python capture
}

build_args() {
    choose_bases
    printf 'BUILD_BASE=%s\nRUNTIME_BASE=%s\n' "$SECUREMSG_BUILD_BASE" "$SECUREMSG_RUNTIME_BASE"
}

down() {
    timeout 120 "${COMPOSE[@]}" down --remove-orphans "$@"
}

up() {
    local status=0
    build
    case " $* " in
        *" -d "*|*" --detach "*)
            "${COMPOSE[@]}" up --no-build --remove-orphans "$@"
            "${COMPOSE[@]}" ps
            return
            ;;
    esac
    # Ctrl-C reaches compose as well; trapping it here keeps this script alive
    # to remove the containers afterwards.
    trap 'echo "[lab] stopping..." >&2' INT TERM
    # Detached start (it waits for the healthchecks), then the logs in the
    # foreground: the port table comes first and Ctrl-C needs no second press.
    if "${COMPOSE[@]}" up --detach --no-build --remove-orphans "$@"; then
        "${COMPOSE[@]}" ps
        cat >&2 <<'HINT'
[lab] The lab is up. Following its logs; Ctrl-C stops and removes it.
[lab] From this host (ports in the table above, key from SECUREMSG_KEY):
[lab]   c/client 127.0.0.1 5000 "Hello"    python3 python/client.py --host 127.0.0.1 --port 5001 --message "Hello"
HINT
        "${COMPOSE[@]}" logs --follow || true
    else
        status=$?
    fi
    trap - INT TERM
    echo "[lab] removing the lab's containers and network" >&2
    down >/dev/null 2>&1 || true
    return "$status"
}

usage() {
    sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
    up) up "$@" ;;
    build) build ;;
    build-args) build_args ;;
    down) down "$@" ;;
    logs) "${COMPOSE[@]}" logs "$@" ;;
    ps) "${COMPOSE[@]}" ps "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
