"""Running cells: one per client x server x case x cipher, in parallel threads.

Shared by the command-line runner (`securemsg-matrix`) and pytest. Clients and servers
are implementation names of the registry. Every cell gets its own deadline, its logs
saved under `<results>/<server>_<client>/<case>/` (`<case>-noise/` for noise), and a
command that reruns just that cell. A cell whose implementations lack a feature its
case needs (registry `features`) is "unsupported": reported, never run, never failed.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core import registry as registry_module
from ..core import timeouts
from ..core.backend import Backend, Cell
from ..core.registry import Implementation, Registry
from ..wire import protocol
from .capture import ports_of
from .cases import CASES, CASES_BY_NAME, Case, run_case
from .checks import CHECKS, Verdict

CELL_GRACE = 15.0  # beyond the case's own timeout, before the cell is declared hung
#: error: the run itself broke (aborted, crashed, hung) and nothing could be checked
PASSED, FAILED, UNSUPPORTED, ERROR = "passed", "failed", "unsupported", "error"
STATES = (PASSED, FAILED, UNSUPPORTED, ERROR)
MARKS = {PASSED: "✓", FAILED: "✗", UNSUPPORTED: "?", ERROR: "!"}


@dataclass(frozen=True)
class CellSpec:
    client: str
    server: str
    case: str
    cipher: str = "xor"

    @property
    def cell_id(self) -> str:
        """The pytest id too: client-server-case-cipher."""
        return f"{self.client}-{self.server}-{self.case}-{self.cipher}"

    def log_dir(self, results: Path) -> Path:
        case_dir = self.case if self.cipher == "xor" else f"{self.case}-{self.cipher}"
        return results / f"{self.server}_{self.client}" / case_dir

    def rerun_command(self, backend: str) -> str:
        return shlex.join(["securemsg-matrix", "--backend", backend,
                           "-c", self.client, "-s", self.server, "-t", self.case,
                           "--cipher", self.cipher])


@dataclass
class CellOutcome:
    spec: CellSpec
    status: str
    reasons: list[str] = field(default_factory=list)
    duration: float = 0.0
    logs: str = ""
    #: per check (checks.CHECKS) that the case made: its reasons, none when it passed
    checks: dict[str, list[str]] = field(default_factory=dict)
    #: the server ports the cell used and when it ran (wall clock): its capture
    ports: list[int] = field(default_factory=list)
    span: tuple[float, float] = (0.0, 0.0)

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def build_cells(clients: Iterable[str] | None = None, servers: Iterable[str] | None = None,
                cases: Iterable[str] | None = None,
                ciphers: Iterable[str] = protocol.CIPHERS,
                backend: str | None = None, registry: Registry | None = None) -> list[CellSpec]:
    """Every combination (default: every registered implementation both ways), minus the
    cases that do not apply to a cipher or backend."""
    known = (registry or registry_module.default()).names()
    names = list(cases) if cases is not None else [c.name for c in CASES]
    return [CellSpec(c, s, name, cipher) for cipher in ciphers
            for c in (known if clients is None else clients)
            for s in (known if servers is None else servers) for name in names
            if cipher in CASES_BY_NAME[name].ciphers
            and (backend is None or backend in CASES_BY_NAME[name].backends)]


def unsupported_reasons(registry: Registry, spec: CellSpec) -> list[str]:
    """What the cell's implementations lack for its case (empty: the cell can run)."""
    case = CASES_BY_NAME[spec.case]
    return case.missing(registry[spec.client], registry[spec.server], spec.cipher)


def save_logs(cell: Cell, spec: CellSpec, results: Path, outcome: CellOutcome) -> Path:
    directory = spec.log_dir(results)
    directory.mkdir(parents=True, exist_ok=True)
    with cell.lock:
        records = list(cell.records)
        notes = list(cell.notes)
    for record in records:
        (directory / f"{record.role}.stdout").write_bytes(record.stdout)
        (directory / f"{record.role}.stderr").write_bytes(record.stderr)
        (directory / f"{record.role}.cmd").write_text(
            f"{shlex.join(record.argv)}\nexit={record.exit_code} timed_out={record.timed_out} "
            f"duration={record.duration:.3f}s\n")
    summary = {"cell": spec.cell_id, "status": outcome.status, "reasons": outcome.reasons,
               "checks": outcome.checks, "duration": round(outcome.duration, 3),
               "notes": notes}
    (directory / "result.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return directory


def run_cell(backend: Backend, spec: CellSpec, results: Path | None,
             registry: Registry) -> CellOutcome:
    """Run one cell with its deadline; a hung cell is failed and its resources released."""
    case: Case = CASES_BY_NAME[spec.case]
    started, wall = time.monotonic(), time.time()
    cell = Cell(spec.cell_id, timeout=timeouts.scaled(case.timeout))
    missing = unsupported_reasons(registry, spec)
    if missing:
        outcome = CellOutcome(spec, UNSUPPORTED, missing)
    else:
        outcome = _run_with_deadline(backend, case, spec, cell, registry)
    outcome.duration = time.monotonic() - started
    outcome.span = (wall, time.time())
    if results is not None:
        outcome.logs = str(save_logs(cell, spec, results, outcome))
    return outcome


def _run_with_deadline(backend: Backend, case: Case, spec: CellSpec, cell: Cell,
                       registry: Registry) -> CellOutcome:
    box: dict[str, object] = {}

    def target() -> None:
        obs, box["result"] = run_case(case, backend, registry[spec.client],
                                      registry[spec.server], spec.cipher, cell)
        box["ports"] = ports_of(obs)

    worker = threading.Thread(target=target, name=spec.cell_id, daemon=True)
    worker.start()
    worker.join(cell.timeout + timeouts.scaled(CELL_GRACE))
    if worker.is_alive():
        backend.finish_cell(cell)  # kills what the cell started, which unblocks the worker
        worker.join(10)
        reason = f"cell timed out after {case.timeout:.0f} s"
        return CellOutcome(spec, ERROR, [reason], checks={c: [reason] for c in CHECKS})
    backend.finish_cell(cell)
    result: Verdict = box["result"]  # type: ignore[assignment]
    status = PASSED if result.passed else ERROR if result.error else FAILED
    return CellOutcome(spec, status, list(result.reasons), checks=result.checks,
                       ports=box["ports"])  # type: ignore[arg-type]


#: mean seconds per cell of the heavier cases in a full Docker run on a loaded 2-core
#: machine (results.json); the other cases count a fifth of their timeout
CASE_COST = {"concurrent": 21.0, "size_limit": 21.0, "passphrase": 8.0, "max_clients": 7.0,
             "bad_arguments": 7.0, "stopped_server": 7.0, "wrong_key": 5.5}


def expected_cost(spec: CellSpec) -> float:
    """What a cell is likely to take: the scheduler starts the longest cells first, so
    that no long cell starts last and runs alone at the end."""
    cost = CASE_COST.get(spec.case, CASES_BY_NAME[spec.case].timeout / 5)
    return cost * (1.3 if spec.cipher != "xor" else 1.0)


def implementations(registry: Registry, specs: list[CellSpec]) -> list[Implementation]:
    """The implementations the cells name, in registry order."""
    names = {s.client for s in specs} | {s.server for s in specs}
    return [impl for impl in registry if impl.name in names]


def run_cells(backend: Backend, specs: list[CellSpec], results: Path | None, jobs: int,
              progress: Callable[[CellOutcome], None] | None = None,
              registry: Registry | None = None) -> list[CellOutcome]:
    """All cells, longest cases first so that the parallel run packs well."""
    registry = registry or registry_module.default()
    backend.prepare(implementations(registry, specs))
    order = sorted(specs, key=lambda s: -expected_cost(s))
    outcomes: list[CellOutcome] = []
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="cell")
    futures = [pool.submit(run_cell, backend, spec, results, registry) for spec in order]
    try:
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
    finally:
        # On Ctrl-C do not wait for the running cells: the caller closes the backend,
        # which removes their containers and processes, and they end by themselves.
        pool.shutdown(wait=False, cancel_futures=True)
    rank = {spec: index for index, spec in enumerate(specs)}
    return sorted(outcomes, key=lambda o: rank[o.spec])


# --- reporting ---------------------------------------------------------------------------

def matrix_table(outcomes: list[CellOutcome]) -> str:
    """Per cipher: rows clients, columns servers, one mark per case (legend below)."""
    lines: list[str] = []
    for cipher in dict.fromkeys(o.spec.cipher for o in outcomes):
        subset = [o for o in outcomes if o.spec.cipher == cipher]
        cases = list(dict.fromkeys(o.spec.case for o in subset))
        clients = list(dict.fromkeys(o.spec.client for o in subset))
        servers = list(dict.fromkeys(o.spec.server for o in subset))
        found = {(o.spec.client, o.spec.server, o.spec.case): o for o in subset}
        width = max(len(cases) + 8, 14)
        lines.append(f"cipher {cipher}: rows = client, columns = server")
        lines.append("client \\ server".ljust(16) + "".join(s.ljust(width) for s in servers))
        for client in clients:
            row = client.ljust(16)
            for server in servers:
                cell = [found.get((client, server, case)) for case in cases]
                marks = "".join(MARKS[o.status] if o else " " for o in cell)
                ran = [o for o in cell if o]
                passed = sum(1 for o in ran if o.passed)
                row += (f"{marks} {passed}/{len(ran)}" if ran else "-").ljust(width)
            lines.append(row)
        lines.append("cases, in mark order: " + ", ".join(cases))
        lines.append("")
    lines.append("marks: ✓ passed, ✗ failed, ! error (the run broke), ? unsupported (an "
                 "implementation lacks a feature the case needs)")
    return "\n".join(lines)


def failure_report(outcomes: list[CellOutcome], backend: str) -> str:
    lines = []
    for outcome in outcomes:
        if outcome.passed:
            continue
        lines.append(f"{outcome.status.upper()} {outcome.spec.cell_id}  (logs: {outcome.logs})")
        lines += [f"    - {reason}" for reason in outcome.reasons[:12]]
        if len(outcome.reasons) > 12:
            lines.append(f"    - ... {len(outcome.reasons) - 12} more")
        lines.append(f"    rerun: {outcome.spec.rerun_command(backend)}")
    return "\n".join(lines)


def results_cells(outcomes: list[CellOutcome], backend: str) -> list[dict]:
    """results.json's cells: the outcome, its spec's fields, its id and rerun command."""
    cells = []
    for outcome in outcomes:
        entry = asdict(outcome)
        entry.update(asdict(outcome.spec))
        del entry["spec"]
        entry["id"] = outcome.spec.cell_id
        entry["duration"] = round(outcome.duration, 3)
        entry["rerun"] = outcome.spec.rerun_command(backend)
        cells.append(entry)
    return cells


def write_results_json(path: Path, outcomes: list[CellOutcome], meta: dict[str, object]) -> None:
    cells = results_cells(outcomes, str(meta.get("backend", "local")))
    summary = {status: sum(1 for o in outcomes if o.status == status) for status in STATES}
    path.write_text(json.dumps({**meta, "summary": summary, "cells": cells}, indent=1,
                               ensure_ascii=False))


def write_junit(path: Path, outcomes: list[CellOutcome], backend: str,
                wall_seconds: float) -> None:
    """The same cells as JUnit XML (CI dashboards): one testcase per cell, classname
    SERVER_CLIENT, an unsupported cell as <skipped> with its reason."""
    count = {status: sum(1 for o in outcomes if o.status == status) for status in STATES}
    suite = ET.Element("testsuite", name=f"securemsg-matrix-{backend}", tests=str(len(outcomes)),
                       failures=str(count[FAILED]), errors=str(count[ERROR]),
                       skipped=str(count[UNSUPPORTED]),
                       time=f"{wall_seconds:.3f}")
    for outcome in outcomes:
        spec = outcome.spec
        case = ET.SubElement(suite, "testcase", classname=f"{spec.server}_{spec.client}",
                             name=f"{spec.case}-{spec.cipher}", time=f"{outcome.duration:.3f}")
        reasons = "\n".join(outcome.reasons)
        if outcome.status in (FAILED, ERROR):
            failure = ET.SubElement(case, "failure" if outcome.status == FAILED else "error",
                                    message=(outcome.reasons or ["failed"])[0])
            failure.text = f"{reasons}\nlogs: {outcome.logs}\nrerun: {spec.rerun_command(backend)}"
        elif outcome.status == UNSUPPORTED:
            ET.SubElement(case, "skipped", message=f"unsupported: {reasons}")
    tree = ET.ElementTree(ET.Element("testsuites"))
    tree.getroot().append(suite)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
