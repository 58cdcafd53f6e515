#!/usr/bin/env bash
# Installs what the lab and its tests need, and nothing that is already there:
#   1. Debian packages: build tools and libsodium for the C programs, jansson for the C
#      tests, python3-venv for the project's virtual environment, mmdebstrap for the
#      registry-less base images, docker-registry for the registry build test (a local
#      registry on 127.0.0.1), tcpdump for the demo's capture, tshark for the
#      Wireshark dissector's tests (wireshark/), patch for the handout's planted bugs,
#      strace for the handout's task 7 check (it counts a server's writes per ACK).
#   2. The project's virtual environment .venv, made from the distribution's python3
#      (Debian 12 / Ubuntu 24.04 mark it externally managed, PEP 668, so pip never
#      touches it), with the programs (python/) and the lab (.) installed editable, and
#      the dev extras.
#   3. Compose v2 (`docker compose`) when only docker-compose 1.29 is there.
# Safe to run again: a quick no-op when all is in place.
#
# Environment: SECUREMSG_VENV_PYTHON  interpreter the venv is made from (default
#              /usr/bin/python3, else the first python3 on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(gcc make libc6-dev pkg-config libsodium-dev libjansson-dev python3 python3-venv
              mmdebstrap docker-registry tcpdump tshark patch strace
              chromium   # headless: the HTML reports are tested in a real browser (tests/report)
              clang libclang-rt-dev)  # clang + its runtime: libFuzzer targets (make -C c fuzz)
readonly VENV=.venv
readonly STAMP="$VENV/.securemsg-installed"

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_debian_packages() {
    local pkg missing=()
    for pkg in "${apt_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    log "installing Debian packages: ${missing[*]}"
    # wireshark-common asks whether non-root users may capture: no (and never a prompt).
    echo "wireshark-common wireshark-common/install-setuid boolean false" \
        | as_root debconf-set-selections
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

venv_python() {
    if [ -n "${SECUREMSG_VENV_PYTHON:-}" ]; then
        printf '%s\n' "$SECUREMSG_VENV_PYTHON"
    elif [ -x /usr/bin/python3 ]; then
        printf '%s\n' /usr/bin/python3
    else
        command -v python3
    fi
}

# The stamp records what the venv was installed from: the two pyproject.toml's hash and the base
# interpreter. Same stamp and a working interpreter: nothing to do.
wanted_stamp() {
    printf '%s %s\n' "$(cat pyproject.toml python/pyproject.toml | sha256sum | cut -d' ' -f1)" \
        "$(venv_python)"
}

make_venv() {
    local base
    base="$(venv_python)"
    if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "creating $VENV from $base"
        rm -rf "$VENV"
        "$base" -m venv "$VENV"
    fi
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(wanted_stamp)" ]; then
        return 0
    fi
    log "installing the programs, the lab and the dev tools into $VENV" \
        "(pip install -e './python[noise]' -e '.[dev]')"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -e './python[noise]' -e '.[dev]'
    wanted_stamp >"$STAMP"
}

install_compose_v2() {
    command -v docker >/dev/null 2>&1 || return 0
    docker compose version >/dev/null 2>&1 && return 0
    [ -x scripts/install-compose-v2.sh ] || return 0
    as_root scripts/install-compose-v2.sh
}

install_debian_packages
make_venv
install_compose_v2
log "host dependencies are in place"
