#!/usr/bin/env bash
# Build the lab's base images: the starting points docker/lab.sh passes to the
# Dockerfiles (build args BUILD_BASE, RUNTIME_BASE) so that no build needs a
# registry or the network.
#
#   docker/base-image.sh [--force] [--from auto|registry|mmdebstrap] [IMAGE...]
#
# IMAGE is one of (default: build runtime)
#   build    securemsg/base-build:bookworm    gcc make libc6-dev libsodium-dev pkg-config
#   runtime  securemsg/base-runtime:bookworm  python3 python3-cryptography python3-nacl tcpdump
#   debian   securemsg/base-debian:bookworm   no extra package: a stand-in for
#            debian:bookworm-slim (tests/integration/test_registry_build.py pushes it)
# The lab images take only what they need from these (docker/rootfs.sh).
#
# Does nothing for an image that exists (unless --force). Otherwise:
#   registry    FROM $SECUREMSG_UPSTREAM + apt-get (docker/base.Dockerfile); used
#               when a registry answers `docker pull` within a few seconds.
#   mmdebstrap  a minbase bookworm built from the host's own apt sources and
#               piped into `docker import` (no registry needed).
# Environment: SECUREMSG_BASE_NAME (tags are NAME-build:bookworm...; default
# securemsg/base), SECUREMSG_UPSTREAM (default debian:bookworm-slim),
# SECUREMSG_BASE_FROM (the default of --from), SECUREMSG_PULL_TIMEOUT (s, default 15),
# SECUREMSG_BUILD_TIMEOUT (s, default 900).
set -euo pipefail

readonly NAME="${SECUREMSG_BASE_NAME:-securemsg/base}"
readonly UPSTREAM="${SECUREMSG_UPSTREAM:-debian:bookworm-slim}"
readonly PULL_TIMEOUT="${SECUREMSG_PULL_TIMEOUT:-15}"
readonly BUILD_TIMEOUT="${SECUREMSG_BUILD_TIMEOUT:-900}"
# Keep in sync with BUILD_PACKAGES / RUNTIME_PACKAGES / CAPTURE_PACKAGES in docker/*.Dockerfile.
readonly BUILD_PACKAGES="gcc make libc6-dev libsodium-dev pkg-config"
readonly RUNTIME_PACKAGES="python3 python3-cryptography python3-nacl tcpdump"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
# mmdebstrap runs hooks with $1 = the rootfs: single quotes on purpose.
# shellcheck disable=SC2016
readonly CLEANUP_HOOK='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log'
readonly PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log() { printf '[base-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,25s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

force=0
from="${SECUREMSG_BASE_FROM:-auto}"
which=()
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --from) [ $# -ge 2 ] || die "--from needs a value"; from="$2"; shift ;;
        --from=*) from="${1#--from=}" ;;
        -h|--help) usage; exit 0 ;;
        build|runtime|debian) which+=("$1") ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
case "$from" in auto|registry|mmdebstrap) ;; *) die "bad --from: $from" ;; esac
[ ${#which[@]} -gt 0 ] || which=(build runtime)

tag_of() { printf '%s-%s:bookworm\n' "$NAME" "$1"; }
packages_of() {
    case "$1" in
        build) echo "$BUILD_PACKAGES" ;;
        runtime) echo "$RUNTIME_PACKAGES" ;;
        debian) echo "" ;;
    esac
}

command -v docker >/dev/null || die "docker CLI not found"
timeout 30 docker info >/dev/null 2>&1 || die "the Docker engine does not answer"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

wanted() {
    local kind
    for kind in "${which[@]}"; do
        if [ "$force" -eq 1 ] || ! image_exists "$(tag_of "$kind")"; then
            echo "$kind"
        fi
    done
}

todo=()
mapfile -t todo < <(wanted)
if [ ${#todo[@]} -eq 0 ]; then
    log "$(for k in "${which[@]}"; do tag_of "$k"; done | tr '\n' ' ')exist; nothing to do (--force rebuilds)"
    exit 0
fi

# One build at a time on this machine (tests and `make` may start us together);
# whoever waited finds the images the first one built.
if command -v flock >/dev/null; then
    exec 9>"${TMPDIR:-/tmp}/securemsg-base-image.lock"
    if ! flock -n 9; then
        log "another base image build is running; waiting for it"
        timeout "$BUILD_TIMEOUT" flock 9 || die "timed out waiting for the other build"
        mapfile -t todo < <(wanted)
        if [ "$force" -eq 0 ] && [ ${#todo[@]} -eq 0 ]; then
            log "the images exist now; nothing to do"
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
    local kind="$1" packages
    packages="$(packages_of "$kind")"
    [ -n "$packages" ] || die "$kind: only mmdebstrap builds it (it stands in for $UPSTREAM)"
    log "building $(tag_of "$kind") from $UPSTREAM"
    timeout "$BUILD_TIMEOUT" docker build \
        --build-arg "UPSTREAM=$UPSTREAM" \
        --build-arg "PACKAGES=$packages" \
        --build-arg "COMPONENT=base-$kind" \
        -t "$(tag_of "$kind")" - <"$HERE/base.Dockerfile"   # no context: nothing to copy
}

build_with_mmdebstrap() {
    local kind="$1" image packages sources tmp_tag status
    image="$(tag_of "$kind")"
    packages="$(packages_of "$kind")"
    ensure_mmdebstrap
    sources="$(host_sources)" || die "no apt sources file found on this host"

    # Keep the host's snapshot-friendly setting if it has one (snapshot
    # mirrors serve Release files whose Valid-Until has passed).
    local opts=()
    local valid
    valid="$(apt-config shell V Acquire::Check-Valid-Until | sed -n "s/^V='\(.*\)'$/\1/p")"
    if [ -n "$valid" ]; then
        opts+=(--aptopt="Acquire::Check-Valid-Until \"$valid\"")
    fi
    [ -n "$packages" ] && opts+=(--include="${packages// /,}")

    # A temporary tag: a failed or truncated build never replaces a good image.
    tmp_tag="${image%%:*}:tmp-$$"
    log "building $image with mmdebstrap (minbase bookworm${packages:+ + $packages}, sources from $sources)"
    set +e
    timeout "$BUILD_TIMEOUT" mmdebstrap --variant=minbase --mode=auto --quiet \
        "${opts[@]}" \
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
        --change "LABEL securemsg.component=base-$kind org.opencontainers.image.title=securemsg-base-$kind" \
        --change 'CMD ["bash"]' \
        - "$tmp_tag" >/dev/null
    status=("${PIPESTATUS[@]}")
    set -e
    if [ "${status[0]}" -ne 0 ] || [ "${status[1]}" -ne 0 ]; then
        docker image rm "$tmp_tag" >/dev/null 2>&1 || true
        die "mmdebstrap (status ${status[0]}) or docker import (status ${status[1]}) failed"
    fi
    docker tag "$tmp_tag" "$image"
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

# Smoke test: the pieces the lab images rely on are really there.
check_image() {
    local kind="$1" image
    image="$(tag_of "$kind")"
    case "$kind" in
        build) timeout 60 docker run --rm --network none "$image" \
                   sh -c 'gcc --version >/dev/null && make --version >/dev/null && pkg-config --exists libsodium' ;;
        runtime) timeout 60 docker run --rm --network none "$image" \
                   sh -c 'python3 -c "import cryptography, nacl.pwhash" && tcpdump --version >/dev/null 2>&1' ;;
        debian) timeout 60 docker run --rm --network none "$image" apt-get --version >/dev/null ;;
    esac || die "$image is missing some of: $(packages_of "$kind")"
    log "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
}

method="$from"
if [ "$method" = auto ]; then
    if [ "${todo[*]}" = debian ]; then
        method=mmdebstrap
    elif registry_answers; then
        method=registry
    else
        log "no registry answers; using mmdebstrap"
        method=mmdebstrap
    fi
fi
for kind in "${todo[@]}"; do
    if [ "$method" = registry ] && [ "$kind" != debian ]; then
        build_from_registry "$kind"
    else
        build_with_mmdebstrap "$kind"
    fi
    check_image "$kind"
done
