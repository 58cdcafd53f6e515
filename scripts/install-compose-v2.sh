#!/usr/bin/env bash
# Install the Compose v2 CLI plugin (`docker compose`) next to Debian 12's
# docker-compose 1.29, which stays installed.
#
#   scripts/install-compose-v2.sh [--force] [--plugin-dir DIR] [--suite SUITE]
#
# Debian 12 packages only Compose 1.29. Debian trixie's docker-compose (2.26)
# has the same package name, so it is not installed: its .deb is fetched with
# `apt-get download` from a temporary trixie source on the host's own mirror
# (the URIs of this host's apt sources, read at run time), and only the plugin
# binary, /usr/libexec/docker/cli-plugins/docker-compose, is extracted into
# DIR (default /usr/local/lib/docker/cli-plugins, searched by the docker CLI).
# Debian's binary needs only libc6 >= 2.34. It builds with the engine's own
# BuildKit or, with DOCKER_BUILDKIT=0, the classic builder: no buildx needed.
#
# A quick no-op when `docker compose version` already works (unless --force).
# Needs root (apt lists in a temporary directory; nothing in /etc is changed).
set -euo pipefail

plugin_dir=/usr/local/lib/docker/cli-plugins
suite=trixie
force=0

log() { printf '[compose-v2] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --plugin-dir) [ $# -ge 2 ] || die "--plugin-dir needs a value"; plugin_dir="$2"; shift ;;
        --suite) [ $# -ge 2 ] || die "--suite needs a value"; suite="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

if [ "$force" -eq 0 ] && timeout 30 docker compose version >/dev/null 2>&1; then
    log "docker compose is installed: $(docker compose version --short 2>/dev/null || true)"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || die "$tool not found (a Debian host is needed)"
done

# The host's Debian archive URIs: deb822 stanzas (*.sources) or one-line
# entries (sources.list, *.list) whose suite is this release's codename. The
# security archive has another suite name (CODENAME-security), so it is left out.
host_codename() {
    # shellcheck disable=SC1091
    (. /etc/os-release && printf '%s\n' "${VERSION_CODENAME:-}")
}

deb822_uris() {
    local codename="$1" f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v want="$codename" '
            function flush() { if (deb && hit && uris != "") print uris; deb = hit = 0; uris = "" }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            tolower($1) == "types:"  { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == want) hit = 1 }
            tolower($1) == "uris:"   { for (i = 2; i <= NF; i++) uris = uris " " $i }
            END { flush() }' "$f"
    done
}

one_line_uris() {
    local codename="$1" f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI SUITE COMPONENTS...: drop the bracketed options first.
        sed -e 's/\[[^]]*\]//' "$f" | awk -v want="$codename" '$1 == "deb" && $3 == want { print $2 }'
    done
}

mirror_uris() {
    local codename
    codename="$(host_codename)"
    [ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release"
    { deb822_uris "$codename"; one_line_uris "$codename"; } | tr ' ' '\n' | awk 'NF && !seen[$0]++'
}

fetch_plugin() {
    local work="$1" uris keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    uris="$(mirror_uris | tr '\n' ' ')"
    [ -n "${uris// /}" ] || die "no Debian archive found in this host's apt sources"
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/sources.list.d" "$work/deb"
    {
        echo "Types: deb"
        echo "URIs: $uris"
        echo "Suites: $suite"
        echo "Components: main"
        [ -f "$keyring" ] && echo "Signed-By: $keyring"
    } >"$work/sources.list.d/$suite.sources"
    : >"$work/status"
    # Only this temporary source and state: the host's apt setup is untouched.
    local apt=(apt-get -qq
        -o "Dir::Etc::SourceList=/dev/null"
        -o "Dir::Etc::SourceParts=$work/sources.list.d"
        -o "Dir::State::Lists=$work/lists"
        -o "Dir::State::status=$work/status"
        -o "Dir::Cache=$work/cache"
        -o "APT::Get::List-Cleanup=false")
    log "fetching docker-compose from Debian $suite (this host's mirror)"
    # Output goes to a file: apt's lines name the mirror, which is not ours to print.
    if ! timeout 300 "${apt[@]}" update >"$work/apt.log" 2>&1 \
        || ! (cd "$work/deb" && timeout 300 "${apt[@]}" download docker-compose) >>"$work/apt.log" 2>&1; then
        sed -e 's#[a-z]*://[^ ]*#<mirror>#g' "$work/apt.log" | tail -5 >&2
        die "apt-get could not fetch docker-compose from $suite"
    fi
}

install_plugin() {
    local work="$1" deb
    deb="$(find "$work/deb" -name 'docker-compose_*.deb' | head -n 1)"
    [ -n "$deb" ] || die "no docker-compose .deb downloaded"
    log "extracting the plugin from $(basename "$deb")"
    dpkg-deb -x "$deb" "$work/root"
    local binary="$work/root/usr/libexec/docker/cli-plugins/docker-compose"
    [ -x "$binary" ] || die "$(basename "$deb") holds no /usr/libexec/docker/cli-plugins/docker-compose"
    "$binary" version >/dev/null || die "the extracted plugin does not run on this host"
    install -d -m 0755 "$plugin_dir"
    # Install under a temporary name, then rename: never a half-written plugin.
    install -m 0755 "$binary" "$plugin_dir/.docker-compose.new"
    mv -f "$plugin_dir/.docker-compose.new" "$plugin_dir/docker-compose"
}

work="$(mktemp -d "${TMPDIR:-/tmp}/compose-v2.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fetch_plugin "$work"
install_plugin "$work"
timeout 30 docker compose version >/dev/null 2>&1 \
    || die "installed $plugin_dir/docker-compose, but \`docker compose version\` fails"
log "installed $plugin_dir/docker-compose: $(docker compose version --short)"
