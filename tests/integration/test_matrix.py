"""The interop matrix on Docker: client x server x case x cipher, one test per cell.

Ids read `client-server-case-cipher`, e.g. `c-python-single_message-xor`. Select with
-k as usual; the selected cells run in parallel on first use (securemsg_lab.matrix.pytest_plugin).
Without a Docker engine the tests skip, unless REQUIRE_DOCKER=1 (then they fail).
"""

from __future__ import annotations

import pytest
from securemsg_lab.matrix.cells import CellSpec, build_cells
from securemsg_lab.matrix.pytest_plugin import MatrixRuns

MATRIX_KIND = "docker"
CELLS = build_cells(backend="docker")

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]


@pytest.mark.parametrize("cell", [pytest.param(spec, id=spec.cell_id) for spec in CELLS])
def test_cell(cell: CellSpec, matrix_runs: MatrixRuns) -> None:
    matrix_runs.check(MATRIX_KIND, cell)
