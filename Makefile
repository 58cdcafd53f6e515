# securemsg lab - top-level entry points. `make help` lists them.
# Every Python tool runs from the project's virtual environment (made by `make setup` from
# the distribution's python3; PEP 668 keeps pip away from the system interpreter).
VENV   := .venv
PYTHON := $(CURDIR)/$(VENV)/bin/python
export PYTHON

.PHONY: help setup build lab lab-down base-image images test test-c lint matrix bench bench-charts bench-compare demo \
        clean clean-venv \
        handout-start check handout-diff class-check stress fuzz

help:
	@echo "make lab        install what is missing, build everything, run the Docker lab (Ctrl-C stops)"
	@echo "make test       run every test: C unit (ASan+UBSan), fuzz, lint, Python unit, local, Docker, demo, stress"
	@echo "make build      build the C programs (c/server, c/client)"
	@echo "make images     build the registry-less base images (if missing) and the lab images"
	@echo "make base-image only the base images (build, runtime; nothing to do when they exist)"
	@echo "make matrix     the client x server x case matrix alone (ARGS='-c c -s python -t single_message')"
	@echo "make demo       the instructor demo (add ARGS=--no-pause for unattended runs)"
	@echo "make bench      the benchmark: table, docs/bench/ (bench.json, charts), README's figures (ARGS=--quick)"
	@echo "make bench-compare REV=main  A/B: this tree's servers and REV's, interleaved in one run"
	@echo "make bench-charts  redraw the charts of docs/bench/ from its bench.json (no measuring)"
	@echo "make lab-down   stop and remove the lab's containers and network"
	@echo "make setup      install host packages (apt) and the project venv .venv (pip, from /usr/bin/python3)"
	@echo "make test-c     the C unit tests alone (ASan+UBSan)"
	@echo "make lint       ruff over all Python code, and the import contracts (lint-imports)"
	@echo "make stress     tests/stress at full scale (2,000 hostile peers, 10,000 connections; ~30 min) and long fuzz runs"
	@echo "make fuzz       the C libFuzzer targets, FUZZ_SECONDS each (default 600; clang)"
	@echo "make clean      remove build outputs and results/"
	@echo "make handout-start  the lab handout's workspace, handout/work (FORCE=1 starts over)"
	@echo "make check      check the handout's tasks (TASK=3: one task): PASS or FAIL with a hint"
	@echo "make handout-diff  your changes to the handout's workspace, as one patch"
	@echo "make class-check CLASS=\"DIR ...\"  instructors: every task over many workspaces, one line each"

setup:
	scripts/setup.sh

build:
	$(MAKE) -C c

base-image:
	docker/base-image.sh

images:
	docker/lab.sh build

lab: setup build
	docker/lab.sh up

lab-down:
	docker/lab.sh down

test: setup build
	scripts/run-tests.sh

test-c:
	$(MAKE) -C c test

# make test runs tests/stress and tests/fuzz at their short scale; this is the long one.
stress: setup build
	SECUREMSG_STRESS=long SECUREMSG_FUZZ=long $(PYTHON) -m pytest tests/stress tests/fuzz $(ARGS)

# The C libFuzzer targets for longer than make test's bounded run; new inputs
# collect in c/build/fuzz/corpus/, the committed seeds stay in c/fuzz/corpus/.
FUZZ_SECONDS ?= 600
fuzz: setup
	$(MAKE) -C c fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

# ruff, then the import contracts of pyproject.toml (the lab's layers, the programs apart).
lint: setup
	$(PYTHON) -m ruff check .
	$(VENV)/bin/lint-imports

matrix: setup build
	$(VENV)/bin/securemsg-matrix $(ARGS)

# docs/bench/ holds the committed charts and the bench.json they were drawn from:
# `make bench` measures and rewrites both and README's figures, `make bench-charts` only
# redraws the PNGs.
BENCH_CHARTS := docs/bench

bench: setup build
	$(VENV)/bin/securemsg-bench --charts $(BENCH_CHARTS) --readme README.md $(ARGS)

bench-compare: setup build
	$(VENV)/bin/securemsg-bench --compare $(or $(REV),main) $(ARGS)

bench-charts: setup
	$(PYTHON) -m securemsg_lab.benchmark.charts $(BENCH_CHARTS)/bench.json

demo: setup build
	$(VENV)/bin/securemsg-demo $(ARGS)

# The lab handout (handout/HANDOUT.md): a workspace with the planted bugs, and its checks.
handout-start: setup
	$(PYTHON) -m securemsg_lab.tasks start $(if $(FORCE),--force)

check: setup build
	$(PYTHON) -m securemsg_lab.tasks check $(TASK)

# The student's changes to the workspace (not the planted bugs): `make handout-diff > fixes.diff`
handout-diff: setup
	@$(PYTHON) -m securemsg_lab.tasks diff

# Instructors: every task over N workspaces, CLASS="DIR ..." (a workspace or a folder of them)
class-check: setup build
	@test -n "$(CLASS)" || { echo 'usage: make class-check CLASS="DIR ..." [TASK="N ..."]'; exit 2; }
	$(PYTHON) -m securemsg_lab.tasks class $(CLASS) $(if $(TASK),--tasks $(TASK))

clean:
	$(MAKE) -C c clean
	-$(MAKE) -C bench clean
	rm -rf results .pytest_cache

clean-venv:
	rm -rf $(VENV)
