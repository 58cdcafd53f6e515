"""Cross-language tests with local processes on 127.0.0.1 (no Docker needed).

The same case catalogue as the Docker matrix (securemsg_lab.matrix.cases), with the
local backend: c/server and c/client (built with `make -C c`), python/server.py and
python/client.py, servers on port 0, 50 concurrent clients. Ids: client-server-case-cipher.
"""

from __future__ import annotations

import pytest
from securemsg_lab.matrix.cells import CellSpec, build_cells
from securemsg_lab.matrix.pytest_plugin import MatrixRuns

MATRIX_KIND = "local"
CELLS = build_cells(backend="local")

pytestmark = pytest.mark.timeout(900)


@pytest.mark.parametrize("cell", [pytest.param(spec, id=spec.cell_id) for spec in CELLS])
def test_cell(cell: CellSpec, matrix_runs: MatrixRuns) -> None:
    matrix_runs.check(MATRIX_KIND, cell)
