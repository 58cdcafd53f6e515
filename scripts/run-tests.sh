#!/usr/bin/env bash
# Runs every test of the project. Started at once, in the background (when an engine
# answers): the base images (mmdebstrap, the registry test's plain Debian too) and the lab
# images, built once for the whole run. Meanwhile, in the order that fails fastest:
#   1. C unit tests under AddressSanitizer + UndefinedBehaviorSanitizer, then
#      each C libFuzzer target for FUZZ_SECONDS (default 20)
#   2. ruff and the import contracts (make lint)
# then, once the images are there:
#   3. pytest on PYTEST_WORKERS processes (pytest-xdist; default auto: one per core),
#      each test module a group (tests/conftest.py): unit, local, contract, fuzz,
#      dissector, handout, demo, stress, and the Docker matrix, compose and registry builds.
# Arguments go to pytest. REQUIRE_DOCKER=1 turns a missing Docker engine or tool into a
# failure instead of a skip (tests/support/needs.py).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}

images=""
images_log="$(mktemp)"
# The builds run in a process group of their own: a failure or Ctrl-C here stops all of it.
stop_images() { [ -z "$images" ] || kill -- "-$images" 2>/dev/null || true; rm -f "$images_log"; }
trap stop_images EXIT
if docker info >/dev/null 2>&1; then
    echo "== images: building in the background (log follows before pytest) =="
    setsid -w bash -c 'docker/base-image.sh build runtime debian && docker/lab.sh build' \
        >"$images_log" 2>&1 &
    images=$!
else  # pytest applies REQUIRE_DOCKER (tests/support/needs.py)
    echo "== no Docker engine: the Docker tests skip, or fail with REQUIRE_DOCKER=1 =="
fi

echo "== C unit tests (ASan + UBSan) =="
make -C c test

echo "== C fuzz targets (libFuzzer, ${FUZZ_SECONDS:-20} s each) =="
make -C c fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}"

echo "== lint: ruff, import contracts =="
"$python" -m ruff check .
"$(dirname "$python")/lint-imports"

if [ -n "$images" ]; then
    echo "== images =="
    status=0
    wait "$images" || status=$?
    images=""
    cat "$images_log"
    [ "$status" -eq 0 ] || { echo "[ERROR] the image build failed (exit $status)" >&2; exit 1; }
fi

echo "== pytest =="
"$python" -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadgroup "$@"
