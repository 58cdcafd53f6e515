"""pytest plugin: the selected cells of a matrix run once, in parallel, per session.

pytest runs tests one after another; the matrix needs its cells in parallel to finish
in a minute. So the first test of a matrix runs every *selected* cell (after -k, -m,
node ids) with the runner's thread pool, and each test then reports its own cell.
A test module declares its kind (`MATRIX_KIND = "docker"` or `"local"`) and
parametrizes over `CellSpec`s; tests/conftest.py loads this plugin.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..core.backend import Backend, BackendUnavailable, open_backend
from .cells import (
    UNSUPPORTED,
    CellOutcome,
    CellSpec,
    matrix_table,
    run_cells,
    write_junit,
    write_results_json,
)

SELECTED = pytest.StashKey[dict[str, list[CellSpec]]]()
RUNS = pytest.StashKey["MatrixRuns"]()
DEFAULT_JOBS = {"docker": 10, "local": 4}


@dataclass
class KindRun:
    """One matrix kind ('docker' or 'local') in this session."""

    kind: str
    backend_name: str
    outcomes: dict[CellSpec, CellOutcome] = field(default_factory=dict)
    error: str | None = None
    results: Path | None = None
    seconds: float = 0.0


class MatrixRuns:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.kinds: dict[str, KindRun] = {}

    def backend_name(self, kind: str) -> str:
        """'docker' tests run on the backend chosen by --matrix-backend (default docker)."""
        if kind == "local":
            return "local"
        return self.config.getoption("matrix_backend") or "docker"

    def results_dir(self, name: str) -> Path:
        base = self.config.getoption("matrix_results")
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        root = Path(base) if base else Path(self.config.rootpath) / "results" / "pytest"
        return root / f"{name}-{stamp}"

    def run(self, kind: str) -> KindRun:
        if kind in self.kinds:
            return self.kinds[kind]
        name = self.backend_name(kind)
        state = self.kinds[kind] = KindRun(kind, name)
        specs = self.config.stash.get(SELECTED, {}).get(kind, [])
        try:
            backend: Backend = open_backend(name)
        except BackendUnavailable as error:
            state.error = str(error)
            return state
        jobs = self.config.getoption("matrix_jobs") or DEFAULT_JOBS[name]
        state.results = self.results_dir(name)
        state.results.mkdir(parents=True, exist_ok=True)
        started = datetime.datetime.now(datetime.UTC)
        try:
            outcomes = run_cells(backend, specs, state.results, jobs)
        except BackendUnavailable as error:
            state.error = str(error)
            return state
        finally:
            backend.close()
        state.seconds = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
        state.outcomes = {o.spec: o for o in outcomes}
        write_results_json(state.results / "results.json", outcomes,
                           {"backend": name, "wall_seconds": round(state.seconds, 2),
                            "runner": "pytest"})
        write_junit(state.results / "junit.xml", outcomes, name, state.seconds)
        return state

    def check(self, kind: str, spec: CellSpec) -> None:
        """Pass, fail or (only where allowed) skip the test of one cell."""
        state = self.run(kind)
        if state.error is not None:
            from ..core.docker import required as docker_required  # the SDK only when needed

            if kind == "docker" and not docker_required():
                pytest.skip(f"Docker backend unavailable: {state.error}")
            pytest.fail(f"{state.backend_name} backend unavailable: {state.error}")
        outcome = state.outcomes[spec]
        if outcome.passed:
            return
        detail = "\n".join(f"  - {reason}" for reason in outcome.reasons)
        rerun = spec.rerun_command(state.backend_name)
        message = (f"{spec.cell_id} {outcome.status}:\n{detail}\n"
                   f"logs: {outcome.logs}\nrerun: {rerun}")
        if outcome.status == UNSUPPORTED:  # declared by the registry entry: not a failure
            pytest.skip(message)
        pytest.fail(message, pytrace=False)

    def summary(self) -> list[str]:
        lines = []
        for state in self.kinds.values():
            if not state.outcomes:
                continue
            outcomes = list(state.outcomes.values())
            lines.append(f"{state.kind} matrix on the {state.backend_name} backend: "
                         f"{len(outcomes)} cells in {state.seconds:.1f} s, "
                         f"logs and results.json in {state.results}")
            lines.append(matrix_table(outcomes))
        return lines


# --- hooks (this module is a pytest plugin) ---------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("securemsg matrix")
    group.addoption("--matrix-backend", choices=("docker", "local"), default=None,
                    help="backend of tests/integration/test_matrix.py (default: docker)")
    group.addoption("--matrix-results", default=None,
                    help="directory for cell logs, results.json and junit.xml "
                         "(default: results/pytest)")
    group.addoption("--matrix-jobs", type=int, default=None, help="cells in parallel")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RUNS] = MatrixRuns(config)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember which cells this session selected (after -k/-m/deselection), per matrix
    kind (the test module's MATRIX_KIND)."""
    selected: dict[str, list[CellSpec]] = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        spec = callspec.params.get("cell") if callspec is not None else None
        kind = getattr(getattr(item, "module", None), "MATRIX_KIND", None)
        if isinstance(spec, CellSpec) and kind is not None:
            selected.setdefault(kind, []).append(spec)
    session.config.stash[SELECTED] = selected


@pytest.fixture(scope="session")
def matrix_runs(pytestconfig: pytest.Config) -> MatrixRuns:
    return pytestconfig.stash[RUNS]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    runs = terminalreporter.config.stash.get(RUNS, None)
    if runs is None:
        return
    for line in runs.summary():
        terminalreporter.write_line(line)
