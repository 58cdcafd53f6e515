#!/usr/bin/env bash
# Build the lab's base image, securemsg/base:bookworm: Debian bookworm plus the
# packages both language images need (compilers for the C build stage, python3
# with cryptography/PyNaCl for secure mode, tcpdump for the capture demo).
#
#   docker/base-image.sh [--force] [--from auto|registry|mmdebstrap]
#
# Does nothing when the image exists (unless --force). Otherwise:
#   registry    FROM debian:bookworm-slim + apt-get (docker/base.Dockerfile);
#               used when a registry answers `docker pull` within a few seconds.
#   mmdebstrap  a minbase bookworm built from the host's own apt sources and
#               piped into `docker import` (no registry needed).
# Environment: SECUREMSG_BASE_IMAGE (tag), SECUREMSG_PULL_TIMEOUT (s, default 15).
set -euo pipefail

readonly IMAGE="${SECUREMSG_BASE_IMAGE:-securemsg/base:bookworm}"
readonly UPSTREAM="debian:bookworm-slim"
readonly PULL_TIMEOUT="${SECUREMSG_PULL_TIMEOUT:-15}"
readonly BUILD_TIMEOUT="${SECUREMSG_BUILD_TIMEOUT:-900}"
readonly PACKAGES=(python3 python3-cryptography python3-nacl gcc make libc6-dev
                   libsodium-dev tcpdump)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
# mmdebstrap runs hooks with $1 = the rootfs: single quotes on purpose.
# shellcheck disable=SC2016
readonly CLEANUP_HOOK='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log'
readonly PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log() { printf '[base-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

force=0
from=auto
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --from) [ $# -ge 2 ] || die "--from needs a value"; from="$2"; shift ;;
        --from=*) from="${1#--from=}" ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
case "$from" in auto|registry|mmdebstrap) ;; *) die "bad --from: $from" ;; esac

command -v docker >/dev/null || die "docker CLI not found"
timeout 30 docker info >/dev/null 2>&1 || die "the Docker engine does not answer"

image_exists() { docker image inspect "$IMAGE" >/dev/null 2>&1; }

if [ "$force" -eq 0 ] && image_exists; then
    log "$IMAGE exists; nothing to do (use --force to rebuild)"
    exit 0
fi

# One build at a time on this machine (tests and `make` may start us together);
# whoever waited finds the image the first one built.
if command -v flock >/dev/null; then
    exec 9>"${TMPDIR:-/tmp}/securemsg-base-image.lock"
    if ! flock -n 9; then
        log "another base image build is running; waiting for it"
        timeout "$BUILD_TIMEOUT" flock 9 || die "timed out waiting for the other build"
        if [ "$force" -eq 0 ] && image_exists; then
            log "$IMAGE exists now; nothing to do"
            exit 0
        fi
    fi
fi

# The apt sources file of this host: mmdebstrap copies it into the rootfs, so
# the mirror is whatever this machine already uses (never hard-coded here).
host_sources() {
    local f
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        if [ -s "$f" ] && grep -qv '^[[:space:]]*\(#\|$\)' "$f"; then
            printf '%s\n' "$f"
            return 0
        fi
    done
    return 1
}

ensure_mmdebstrap() {
    command -v mmdebstrap >/dev/null && return 0
    [ "$(id -u)" -eq 0 ] || die "mmdebstrap is missing; install it (apt-get install mmdebstrap) or run as root"
    log "installing mmdebstrap"
    timeout 300 apt-get update -q
    DEBIAN_FRONTEND=noninteractive timeout 600 \
        apt-get install -y -q --no-install-recommends mmdebstrap
}

build_from_registry() {
    log "building $IMAGE from $UPSTREAM"
    timeout "$BUILD_TIMEOUT" docker build \
        --build-arg "PACKAGES=${PACKAGES[*]}" \
        --label securemsg.component=base \
        -t "$IMAGE" - <"$HERE/base.Dockerfile"   # no context: nothing to copy
}

build_with_mmdebstrap() {
    local sources tmp_tag status
    ensure_mmdebstrap
    sources="$(host_sources)" || die "no apt sources file found on this host"

    # Keep the host's snapshot-friendly setting if it has one (snapshot
    # mirrors serve Release files whose Valid-Until has passed).
    local aptopts=()
    local valid
    valid="$(apt-config shell V Acquire::Check-Valid-Until | sed -n "s/^V='\(.*\)'$/\1/p")"
    if [ -n "$valid" ]; then
        aptopts+=(--aptopt="Acquire::Check-Valid-Until \"$valid\"")
    fi

    # A temporary tag: a failed or truncated build never replaces a good image.
    tmp_tag="${IMAGE%%:*}:tmp-$$"
    log "building $IMAGE with mmdebstrap (minbase bookworm, sources from $sources)"
    set +e
    timeout "$BUILD_TIMEOUT" mmdebstrap --variant=minbase --mode=auto --quiet \
        --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        "${aptopts[@]}" \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --customize-hook="$CLEANUP_HOOK" \
        bookworm - "$sources" \
    | timeout "$BUILD_TIMEOUT" docker import \
        --change "ENV $PATH_ENV" \
        --change 'ENV LANG=C.UTF-8' \
        --change 'LABEL securemsg.component=base org.opencontainers.image.title=securemsg-base' \
        --change 'CMD ["bash"]' \
        - "$tmp_tag" >/dev/null
    status=("${PIPESTATUS[@]}")
    set -e
    if [ "${status[0]}" -ne 0 ] || [ "${status[1]}" -ne 0 ]; then
        docker image rm "$tmp_tag" >/dev/null 2>&1 || true
        die "mmdebstrap (status ${status[0]}) or docker import (status ${status[1]}) failed"
    fi
    docker tag "$tmp_tag" "$IMAGE"
    docker image rm "$tmp_tag" >/dev/null
}

# A registry "answers" when `docker pull` starts downloading (prints "Pulling
# from") within PULL_TIMEOUT seconds; a pull that started may then take as long
# as it needs. No DNS, no route, no registry: give up after PULL_TIMEOUT.
registry_answers() {
    local out pid rc=0 waited=0
    docker image inspect "$UPSTREAM" >/dev/null 2>&1 && return 0
    log "trying: docker pull $UPSTREAM (gives up after ${PULL_TIMEOUT}s without an answer)"
    out="$(mktemp)"
    timeout "$BUILD_TIMEOUT" docker pull "$UPSTREAM" >"$out" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$waited" -ge "$PULL_TIMEOUT" ] && ! grep -q 'Pulling from' "$out"; then
            kill "$pid" 2>/dev/null || true
            rc=124
            break
        fi
        sleep 1
        waited=$((waited + 1))
    done
    wait "$pid" || rc=$?
    rm -f "$out"
    return "$rc"
}

case "$from" in
    registry) build_from_registry ;;
    mmdebstrap) build_with_mmdebstrap ;;
    auto)
        if registry_answers; then
            build_from_registry
        else
            log "no registry answers; falling back to mmdebstrap"
            build_with_mmdebstrap
        fi
        ;;
esac

# Smoke test: the pieces the images rely on are really there.
timeout 60 docker run --rm --network none "$IMAGE" \
    python3 -c 'import cryptography, nacl.pwhash' \
    || die "$IMAGE is missing python3 / cryptography / PyNaCl"
log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
