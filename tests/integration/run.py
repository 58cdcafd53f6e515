"""Command-line runner for the interop matrix (quic-interop-runner style filters).

    python3 -m tests.integration                      # every cell, Docker if it answers
    python3 -m tests.integration --backend local -c c -s python -t single_message,interactive
    python3 -m tests.integration --cipher noise -j 8 --results /tmp/results

Prints a matrix table and, for each failed cell, its reasons and a command that reruns
just that cell; writes `<results>/results.json`; exits 1 when any cell failed.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import protocol
from .backend import BackendUnavailable
from .cases import CASES
from .matrix import (
    PASSED,
    UNSUPPORTED,
    CellOutcome,
    build_cells,
    failure_report,
    make_backend,
    matrix_table,
    run_cells,
    write_results_json,
)
from .programs import LANGUAGES

DEFAULT_JOBS = {"docker": 10, "local": 4}


def comma_list(allowed: tuple[str, ...] | list[str], what: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {what}: {', '.join(unknown)} (known: {', '.join(allowed)})")
        return items
    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    case_names = [case.name for case in CASES]
    parser = argparse.ArgumentParser(prog="python3 -m tests.integration",
                                     description="securemsg client x server interop matrix")
    parser.add_argument("-c", "--client", type=comma_list(LANGUAGES, "client"),
                        default=list(LANGUAGES), help="client languages, comma list")
    parser.add_argument("-s", "--server", type=comma_list(LANGUAGES, "server"),
                        default=list(LANGUAGES), help="server languages, comma list")
    parser.add_argument("-t", "--test", type=comma_list(case_names, "test"),
                        default=case_names, help="cases, comma list: " + ", ".join(case_names))
    parser.add_argument("--cipher", type=comma_list(protocol.CIPHERS, "cipher"),
                        default=list(protocol.CIPHERS), help="ciphers, comma list")
    parser.add_argument("--backend", choices=("docker", "local"), default=None,
                        help="default: docker when an engine answers, else local")
    parser.add_argument("--results", type=Path, default=None,
                        help="results directory (default: results/<timestamp>)")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="cells in parallel")
    parser.add_argument("--allow-unsupported", action="store_true",
                        help="do not fail because a program lacks --cipher (still reported)")
    parser.add_argument("--rebuild", action="store_true",
                        help="docker: rebuild the images first (default: only when missing "
                             "or older than the sources)")
    parser.add_argument("-l", "--list", action="store_true", help="list the cases and exit")
    return parser.parse_args(argv)


def list_cases() -> None:
    for case in CASES:
        where = ",".join(case.ciphers + case.backends)
        print(f"{case.name:22} {case.timeout:4.0f} s  [{where}]  {case.description}")


def default_results() -> Path:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / stamp


def progress(outcome: CellOutcome) -> None:
    mark = {PASSED: "ok  ", UNSUPPORTED: "UNSUP"}.get(outcome.status, "FAIL")
    print(f"  {mark} {outcome.spec.cell_id} ({outcome.duration:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        list_cases()
        return 0
    try:
        backend = make_backend(args.backend, rebuild=args.rebuild)
    except BackendUnavailable as error:
        print(f"[ERROR] {error}", file=sys.stderr)
        return 1
    results = args.results or default_results()
    results.mkdir(parents=True, exist_ok=True)
    specs = build_cells(args.client, args.server, args.test, args.cipher, backend.name)
    jobs = args.jobs or DEFAULT_JOBS[backend.name]
    print(f"{len(specs)} cells on the {backend.name} backend, {jobs} in parallel; "
          f"logs in {results}/", flush=True)
    try:
        prepare_started = time.monotonic()
        backend.prepare(sorted({s.client for s in specs} | {s.server for s in specs}))
        print(f"images/programs ready in {time.monotonic() - prepare_started:.1f} s", flush=True)
        started = time.monotonic()
        outcomes = run_cells(backend, specs, results, jobs, progress)
    except BackendUnavailable as error:
        print(f"[ERROR] {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        backend.close()
    elapsed = time.monotonic() - started
    return report(outcomes, backend.name, results, elapsed, args)


def report(outcomes: list[CellOutcome], backend: str, results: Path, elapsed: float,
           args: argparse.Namespace) -> int:
    print()
    print(matrix_table(outcomes))
    failures = failure_report(outcomes, backend)
    if failures:
        print()
        print(failures)
    write_results_json(results / "results.json", outcomes, {
        "backend": backend, "wall_seconds": round(elapsed, 2),
        "argv": sys.argv[1:], "cwd": str(Path.cwd()),
    })
    failed = [o for o in outcomes if not o.passed
              and not (o.status == UNSUPPORTED and args.allow_unsupported)]
    passed = sum(1 for o in outcomes if o.passed)
    print(f"\n{passed}/{len(outcomes)} cells passed in {elapsed:.1f} s "
          f"({backend} backend); results: {results / 'results.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
