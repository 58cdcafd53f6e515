#!/bin/sh
# ensure-packages.sh PACKAGE... - install the PACKAGEs that are not installed yet.
#
# The Dockerfiles start from an official Debian image by default (apt-get needs
# its mirror) or from a base that docker/base-image.sh built with the packages
# already in it (no network at all: nothing is missing, apt-get never runs).
set -eu

missing=""
for pkg in "$@"; do
    status="$(dpkg-query -W -f '${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    [ "$status" = installed ] || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
    echo "ensure-packages: all installed: $*" >&2
    exit 0
fi
echo "ensure-packages: installing:$missing" >&2
apt-get update
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
apt-get clean
rm -rf /var/lib/apt/lists/*
