"""Command-line runner for the interop matrix (quic-interop-runner style filters).

    securemsg-matrix                                  # every cell, Docker if it answers
    securemsg-matrix --backend local -c c -s python -t single_message,interactive
    securemsg-matrix --cipher noise -j 8 --results /tmp/results
    securemsg-matrix --implementations my-impl.toml -c my-impl   # an extra implementation

Prints a matrix table and, for each failed cell, its reasons and a command that reruns
just that cell; writes `<results>/results.json` and `<results>/junit.xml`; exits 1 when
any cell failed (cells an implementation cannot run are "unsupported", not failed).
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..core import paths, process
from ..core import registry as registry_module
from ..core.backend import BackendUnavailable, open_backend
from ..core.registry import Registry, RegistryError
from ..report import html
from ..wire import protocol
from . import capture
from .cases import CASES
from .cells import (
    PASSED,
    UNSUPPORTED,
    CellOutcome,
    build_cells,
    failure_report,
    implementations,
    matrix_table,
    results_cells,
    run_cells,
    write_junit,
    write_results_json,
)

DEFAULT_JOBS = {"docker": 10, "local": 4}


def comma_list(allowed: list[str], what: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {what}: {', '.join(unknown)} (known: {', '.join(allowed)})")
        return items
    return parse


def parse_args(argv: list[str] | None, registry: Registry) -> argparse.Namespace:
    case_names = [case.name for case in CASES]
    names = registry.names()
    parser = argparse.ArgumentParser(prog="securemsg-matrix",
                                     description="securemsg client x server interop matrix")
    parser.add_argument("--implementations", metavar="PATHS",
                        help="extra registry entries: TOML files or directories, "
                             f"':'-separated (added to ${registry_module.ENV_VAR})")
    parser.add_argument("-c", "--client", type=comma_list(names, "client"), default=names,
                        help="client implementations, comma list: " + ", ".join(names))
    parser.add_argument("-s", "--server", type=comma_list(names, "server"), default=names,
                        help="server implementations, comma list")
    parser.add_argument("-t", "--test", type=comma_list(case_names, "test"),
                        default=case_names, help="cases, comma list: " + ", ".join(case_names))
    parser.add_argument("--cipher", type=comma_list(list(protocol.CIPHERS), "cipher"),
                        default=list(protocol.CIPHERS), help="ciphers, comma list")
    parser.add_argument("--backend", choices=("docker", "local"), default=None,
                        help="default: docker when an engine answers, else local")
    parser.add_argument("--results", type=Path, default=None,
                        help="results directory (default: results/<timestamp>)")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="cells in parallel")
    parser.add_argument("--rebuild", action="store_true",
                        help="docker: rebuild the images first (default: only when missing "
                             "or older than the sources)")
    parser.add_argument("--capture", action="store_true",
                        help="each cell's traffic to capture.pcap in its folder, decoded "
                             "(capture.txt; capture.tshark.txt with tshark); local backend")
    parser.add_argument("-l", "--list", action="store_true",
                        help="list the implementations and cases, and exit")
    return parser.parse_args(argv)


def load_registry(argv: list[str] | None) -> Registry:
    """The registry, with the entries of --implementations (read before the other options,
    whose choices it extends)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--implementations", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.implementations is None:
        return registry_module.default()
    extra = os.environ.get(registry_module.ENV_VAR, "")
    return registry_module.load(os.pathsep.join(
        part for part in (extra, known.implementations) if part))


def list_all(registry: Registry) -> None:
    for impl in registry:
        print(f"{impl.name:14} {', '.join(sorted(impl.features)):58} {impl.source}")
    print()
    for case in CASES:
        where = ",".join(case.ciphers + case.backends)
        needs = ",".join(sorted(case.client_needs | case.server_needs)) or "-"
        print(f"{case.name:22} {case.timeout:4.0f} s  [{where}] needs {needs}: "
              f"{case.description}")


def default_results() -> Path:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / stamp


def progress(outcome: CellOutcome) -> None:
    mark = {PASSED: "ok  ", UNSUPPORTED: "UNSUP"}.get(outcome.status, "FAIL")
    print(f"  {mark} {outcome.spec.cell_id} ({outcome.duration:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    if problem := paths.outside_checkout():
        print(problem, file=sys.stderr)
        return 2
    process.interrupt_on(signal.SIGTERM)  # as Ctrl-C: the backend removes what it made
    try:
        registry = load_registry(argv)
    except RegistryError as error:
        print(f"[ERROR] {error}", file=sys.stderr)
        return 2
    args = parse_args(argv, registry)
    if args.list:
        list_all(registry)
        return 0
    try:
        backend = open_backend(args.backend, rebuild=args.rebuild)
    except BackendUnavailable as error:
        print(f"[ERROR] {error}", file=sys.stderr)
        return 1
    if args.capture and backend.name != "local":
        backend.close()
        print("[ERROR] --capture records the local backend's loopback traffic: add "
              "--backend local", file=sys.stderr)
        return 2
    results = args.results or default_results()
    results.mkdir(parents=True, exist_ok=True)
    specs = build_cells(args.client, args.server, args.test, args.cipher, backend.name,
                        registry)
    jobs = args.jobs or DEFAULT_JOBS[backend.name]
    print(f"{len(specs)} cells on the {backend.name} backend, {jobs} in parallel; "
          f"logs in {results}/", flush=True)
    try:
        prepare_started = time.monotonic()
        backend.prepare(implementations(registry, specs))
        print(f"images/programs ready in {time.monotonic() - prepare_started:.1f} s", flush=True)
        started = time.monotonic()
        recorder = start_capture(results) if args.capture else None
        try:
            outcomes = run_cells(backend, specs, results, jobs, progress, registry)
        finally:
            if recorder is not None:
                recorder.stop()
        if recorder is not None:
            cells = [(Path(o.logs), o.ports, o.span, o.spec.cipher) for o in outcomes]
            print(f"captures: {capture.split(recorder.path, cells)} cells decoded", flush=True)
    except (BackendUnavailable, capture.CaptureUnavailable) as error:
        print(f"[ERROR] {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        backend.close()
    return report(outcomes, backend.name, results, time.monotonic() - started)


def start_capture(results: Path) -> capture.RunCapture:
    """One capture on loopback for the run (the local backend's programs are there)."""
    return capture.RunCapture(results / "run.pcap")


def report(outcomes: list[CellOutcome], backend: str, results: Path, elapsed: float) -> int:
    print()
    print(matrix_table(outcomes))
    failures = failure_report(outcomes, backend)
    if failures:
        print()
        print(failures)
    meta = {"backend": backend, "wall_seconds": round(elapsed, 2),
            "argv": sys.argv[1:], "cwd": str(Path.cwd()), **html.run_metadata()}
    write_results_json(results / "results.json", outcomes, meta)
    write_junit(results / "junit.xml", outcomes, backend, elapsed)
    page = html.write(results / "index.html", "securemsg interop matrix", meta,
                      html.matrix_body(results_cells(outcomes, backend), results))
    counts = {status: sum(1 for o in outcomes if o.status == status)
              for status in (PASSED, UNSUPPORTED)}
    failed = len(outcomes) - counts[PASSED] - counts[UNSUPPORTED]
    print(f"\n{counts[PASSED]}/{len(outcomes)} cells passed, {failed} failed, "
          f"{counts[UNSUPPORTED]} unsupported in {elapsed:.1f} s ({backend} backend); "
          f"results: {results / 'results.json'}, {results / 'junit.xml'}")
    print(f"report: {page.resolve()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
