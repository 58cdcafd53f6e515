#!/usr/bin/env bash
# Runs every test of the project, in the order that fails fastest:
#   1. C unit tests under AddressSanitizer + UndefinedBehaviorSanitizer, then
#      each C libFuzzer target for FUZZ_SECONDS (default 20)
#   2. ruff over all Python code, and the import contracts (lint-imports)
#   3. the lab images, rebuilt from this checkout's sources (when an engine answers)
#   4. pytest: Python unit tests, local cross-language tests, the Docker matrix,
#      compose and the demo.
# REQUIRE_DOCKER=1 turns a missing Docker engine or tool into a failure instead of a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}

echo "== C unit tests (ASan + UBSan) =="
make -C c test

echo "== C fuzz targets (libFuzzer, ${FUZZ_SECONDS:-20} s each) =="
make -C c fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}"

echo "== lint: ruff, and the import contracts of pyproject.toml (as make lint) =="
"$python" -m ruff check .
"$(dirname "$python")/lint-imports"

if docker info >/dev/null 2>&1; then
    echo "== lab images =="
    docker/lab.sh build
else  # pytest applies REQUIRE_DOCKER (tests/support/needs.py)
    echo "== no Docker engine: the Docker tests skip, or fail with REQUIRE_DOCKER=1 =="
fi

echo "== pytest =="
exec "$python" -m pytest "$@"
