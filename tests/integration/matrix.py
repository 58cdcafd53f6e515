"""Running cells: one per client x server x case x cipher, in parallel threads.

Shared by the command-line runner (`python3 -m tests.integration`) and pytest. Every
cell gets its own deadline, its logs saved under `<results>/<server>_<client>/<case>/`
(`<case>-noise/` for noise), and a command that reruns just that cell.
"""

from __future__ import annotations

import json
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import protocol
from .backend import Backend, BackendUnavailable, Cell
from .cases import CASES, CASES_BY_NAME, Case, run_case
from .programs import LANGUAGES

CELL_GRACE = 15.0  # beyond the case's own timeout, before the cell is declared hung
PASSED, FAILED, UNSUPPORTED = "passed", "failed", "unsupported"
MARKS = {PASSED: "✓", FAILED: "✗", UNSUPPORTED: "?"}


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
        return shlex.join(["python3", "-m", "tests.integration", "--backend", backend,
                           "-c", self.client, "-s", self.server, "-t", self.case,
                           "--cipher", self.cipher])


@dataclass
class CellOutcome:
    spec: CellSpec
    status: str
    reasons: list[str] = field(default_factory=list)
    duration: float = 0.0
    logs: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def build_cells(clients: Iterable[str] = LANGUAGES, servers: Iterable[str] = LANGUAGES,
                cases: Iterable[str] | None = None,
                ciphers: Iterable[str] = protocol.CIPHERS,
                backend: str | None = None) -> list[CellSpec]:
    """Every combination, minus the cases that do not apply to a cipher or backend."""
    names = list(cases) if cases is not None else [c.name for c in CASES]
    return [CellSpec(c, s, name, cipher) for cipher in ciphers for c in clients
            for s in servers for name in names
            if cipher in CASES_BY_NAME[name].ciphers
            and (backend is None or backend in CASES_BY_NAME[name].backends)]


def unsupported_reason(backend: Backend, spec: CellSpec) -> str | None:
    missing = [lang for lang in sorted({spec.client, spec.server})
               if not backend.supports_cipher(lang, spec.cipher)]
    if not missing:
        return None
    return (f"--cipher {spec.cipher} not supported by the {' and '.join(missing)} programs "
            "(their --help does not mention --cipher)")


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
               "duration": round(outcome.duration, 3), "notes": notes}
    (directory / "result.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return directory


def run_cell(backend: Backend, spec: CellSpec, results: Path | None) -> CellOutcome:
    """Run one cell with its deadline; a hung cell is failed and its resources released."""
    case: Case = CASES_BY_NAME[spec.case]
    started = time.monotonic()
    cell = Cell(spec.cell_id, timeout=case.timeout)
    try:
        reason = unsupported_reason(backend, spec)
    except Exception as error:  # noqa: BLE001 - a broken probe fails this cell only
        outcome = CellOutcome(spec, FAILED, [f"--help probe failed: {error!r}"])
    else:
        if reason is not None:
            outcome = CellOutcome(spec, UNSUPPORTED, [reason])
        else:
            outcome = _run_with_deadline(backend, case, spec, cell)
    outcome.duration = time.monotonic() - started
    if results is not None:
        outcome.logs = str(save_logs(cell, spec, results, outcome))
    return outcome


def _run_with_deadline(backend: Backend, case: Case, spec: CellSpec, cell: Cell) -> CellOutcome:
    box: dict[str, object] = {}

    def target() -> None:
        box["result"] = run_case(case, backend, spec.client, spec.server, spec.cipher, cell)[1]

    worker = threading.Thread(target=target, name=spec.cell_id, daemon=True)
    worker.start()
    worker.join(case.timeout + CELL_GRACE)
    if worker.is_alive():
        backend.finish_cell(cell)  # kills what the cell started, which unblocks the worker
        worker.join(10)
        return CellOutcome(spec, FAILED, [f"cell timed out after {case.timeout:.0f} s"])
    backend.finish_cell(cell)
    result = box["result"]
    return CellOutcome(spec, PASSED if result.passed else FAILED,  # type: ignore[attr-defined]
                       list(result.reasons))  # type: ignore[attr-defined]


#: mean seconds per cell of the heavier cases in a full Docker run on a loaded 2-core
#: machine (results.json); the other cases count a fifth of their timeout
CASE_COST = {"concurrent": 21.0, "size_limit": 21.0, "passphrase": 8.0, "max_clients": 7.0,
             "bad_arguments": 7.0, "stopped_server": 7.0, "wrong_key": 5.5}


def expected_cost(spec: CellSpec) -> float:
    """What a cell is likely to take: the scheduler starts the longest cells first, so
    that no long cell starts last and runs alone at the end."""
    cost = CASE_COST.get(spec.case, CASES_BY_NAME[spec.case].timeout / 5)
    if spec.cipher != "xor":
        cost *= 1.3
    if spec.client == "python":
        cost *= 1.5
    if spec.server == "python":
        cost *= 1.3
    return cost


def run_cells(backend: Backend, specs: list[CellSpec], results: Path | None, jobs: int,
              progress: Callable[[CellOutcome], None] | None = None) -> list[CellOutcome]:
    """All cells, longest cases first so that the parallel run packs well."""
    backend.prepare(sorted({s.client for s in specs} | {s.server for s in specs}))
    order = sorted(specs, key=lambda s: -expected_cost(s))
    outcomes: list[CellOutcome] = []
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="cell")
    futures = [pool.submit(run_cell, backend, spec, results) for spec in order]
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
    lines.append("marks: ✓ passed, ✗ failed, ? unsupported (program lacks the option)")
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


def write_results_json(path: Path, outcomes: list[CellOutcome], meta: dict[str, object]) -> None:
    cells = []
    for outcome in outcomes:
        entry = asdict(outcome)
        entry.update(asdict(outcome.spec))
        del entry["spec"]
        entry["id"] = outcome.spec.cell_id
        entry["duration"] = round(outcome.duration, 3)
        cells.append(entry)
    summary = {status: sum(1 for o in outcomes if o.status == status)
               for status in (PASSED, FAILED, UNSUPPORTED)}
    path.write_text(json.dumps({**meta, "summary": summary, "cells": cells}, indent=1,
                               ensure_ascii=False))


# --- backends ------------------------------------------------------------------------------

def docker_answers() -> bool:
    try:
        import docker  # only the docker backend needs the SDK

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means: no usable engine
        return False


def make_backend(name: str | None = None, *, rebuild: bool = False) -> Backend:
    """`docker`, `local`, or None: Docker when an engine answers (REQUIRE_DOCKER=1: must)."""
    require = os.environ.get("REQUIRE_DOCKER", "") not in ("", "0")
    if name is None:
        name = "docker" if require or docker_answers() else "local"
    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    if name == "docker":
        if not docker_answers():
            raise BackendUnavailable("no Docker engine answers (REQUIRE_DOCKER="
                                     f"{os.environ.get('REQUIRE_DOCKER', '')!r})")
        from .dockerbackend import DockerBackend

        return DockerBackend(rebuild=rebuild)
    raise ValueError(f"unknown backend {name!r}")
