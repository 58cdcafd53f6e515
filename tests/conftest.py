"""Shared pytest set-up: the repository root on sys.path, and the interop matrix glue.

The matrix tests (tests/integration/test_matrix.py on Docker, tests/local/
test_cross_language.py on local processes) parametrize over the same case catalogue;
the cells a session selects run in parallel once, see tests/integration/pytest_matrix.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.matrix import CellSpec  # noqa: E402 - needs the root on sys.path
from tests.integration.pytest_matrix import RUNS, SELECTED, MatrixRuns  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("securemsg matrix")
    group.addoption("--matrix-backend", choices=("docker", "local"), default=None,
                    help="backend of tests/integration/test_matrix.py (default: docker)")
    group.addoption("--matrix-results", default=None,
                    help="directory for cell logs and results.json (default: results/pytest)")
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
