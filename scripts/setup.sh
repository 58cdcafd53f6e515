#!/usr/bin/env bash
# Installs what the lab and its tests need on the host, and nothing that is
# already there: Debian packages (build tools, libsodium, jansson for the C
# tests, mmdebstrap for the registry-less base image, tcpdump for the demo) and
# the Python test tools of requirements-dev.txt. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(gcc make libc6-dev pkg-config libsodium-dev libjansson-dev mmdebstrap tcpdump)
python=${PYTHON:-python3}

missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "[setup] installing Debian packages: ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# pip is asked only when a requirement is missing or too old: a quiet no-op otherwise.
if ! "$python" - <<'PY' 2>/dev/null
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
import re
for line in Path("requirements-dev.txt").read_text().splitlines():
    line = line.split("#")[0].strip()
    if not line:
        continue
    name = re.split(r"[<>=!~ ]", line, maxsplit=1)[0]
    try:
        version(name)
    except PackageNotFoundError:
        sys.exit(1)
PY
then
    echo "[setup] installing Python packages from requirements-dev.txt"
    "$python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
fi
echo "[setup] host dependencies are in place"
