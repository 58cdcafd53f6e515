"""The matrix's HTML report in a real browser: every cell of results.json in the grid
with its state, each case's details, and not one network request (issue 18).

A matrix run with a planted bug (no ACK for an empty frame, xor only) gives passed,
failed, error and unsupported cells; its screenshot is saved in results/report-tests/.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from securemsg_lab.core.process import run
from securemsg_lab.core.timeouts import scaled

from ..support.submissions import REPO, python_copy
from .browser import browse, screenshot

pytestmark = pytest.mark.timeout(600)
SAVED = REPO / "results" / "report-tests"


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    entry = python_copy(tmp / "student", "no-empty-ack", name="student",
                        features='["xor"]') / "implementation.toml"
    results = tmp / "results"
    done = run([sys.executable, "-m", "securemsg_lab.matrix", "--backend", "local",
                "--implementations", str(entry), "-c", "student,python", "-s", "student,c",
                "-t", "single_message,empty_message,interactive,two_frames_one_write",
                "--cipher", "xor", "-j", "2", "--results", str(results)],
               role="matrix", timeout=scaled(300))
    out = done.stdout.decode()
    assert done.exit_code == 1, out[-3000:]  # the planted bug fails cells
    assert f"report: {results / 'index.html'}" in out
    return results


def test_the_grid_shows_every_cell_of_results_json_with_its_state(matrix_run: Path,
                                                                  tmp_path: Path) -> None:
    cells = {c["id"]: c["status"] for c in
             json.loads((matrix_run / "results.json").read_text())["cells"]}
    assert set(cells.values()) == {"passed", "failed", "error", "unsupported"}
    dom, requests = browse(matrix_run / "index.html", tmp_path / "profile")
    assert {b["data-id"]: b["data-state"] for b in dom.having("box")} == cells
    assert len(dom.having("box")) == len(cells)
    details = {d["id"].removeprefix("c-"): d["data-state"] for d in dom.having("case")}
    assert details == cells  # each cell opens to its cases
    body = dom.body()
    assert (body.get("data-requests"), body.get("data-blocked", ""), requests) == ("0", "", [])


def test_a_case_shows_its_reasons_rerun_command_and_logs(matrix_run: Path) -> None:
    page = (matrix_run / "index.html").read_text()
    assert "rerun: <code>securemsg-matrix --backend local -c python -s student -t " \
           "empty_message --cipher xor</code>" in page
    assert "[INFO] Listening on 0.0.0.0:" in page  # the server's log, inline
    assert "client: timed out after" in page or "client: exit" in page


IMAGE = '<img src="http://127.0.0.1:8765/x.png"><h1>'


def test_the_policy_blocks_what_a_page_would_fetch(matrix_run: Path, tmp_path: Path) -> None:
    """The checks can fail: an image asked for is blocked, and noted on <body>."""
    page = tmp_path / "index.html"
    page.write_text((matrix_run / "index.html").read_text().replace("<h1>", IMAGE, 1))
    dom, requests = browse(page, tmp_path / "profile")
    assert "http://127.0.0.1:8765/x.png" in dom.body().get("data-blocked", "")
    assert requests == []


def test_without_the_policy_the_proxy_sees_the_request(matrix_run: Path,
                                                       tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    text = (matrix_run / "index.html").read_text().replace("<h1>", IMAGE, 1)
    page.write_text(text.replace('http-equiv="Content-Security-Policy"', 'name="no-policy"'))
    _, requests = browse(page, tmp_path / "profile")
    assert requests == ["GET http://127.0.0.1:8765/x.png HTTP/1.1"]


def test_screenshot_of_a_report_with_failures(matrix_run: Path, tmp_path: Path) -> None:
    SAVED.mkdir(parents=True, exist_ok=True)
    shutil.copy(matrix_run / "index.html", SAVED / "matrix.html")
    shot = screenshot((matrix_run / "index.html").resolve().as_uri() + "#g-python-student-xor",
                      SAVED / "matrix.png", tmp_path / "profile")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20000


def test_the_benchmark_page_offline(tmp_path: Path) -> None:
    """securemsg-bench --charts DIR writes DIR/index.html: here from the committed
    docs/bench/bench.json, charts redrawn, no measuring."""
    from securemsg_lab.benchmark import charts
    from securemsg_lab.benchmark.cli import write_page

    results = tmp_path / "bench.json"
    shutil.copy(REPO / "docs" / "bench" / "bench.json", results)
    drawn = charts.render_file(results)
    page = write_page(json.loads(results.read_text()), tmp_path / "index.html", drawn)
    dom, requests = browse(page, tmp_path / "profile")
    images = [a for tag, a in dom.elements if tag == "img"]
    assert len(images) == len([c for c in drawn if c.suffix == ".png"]) > 0
    assert all(a["src"].startswith("data:image/png;base64,") for a in images)
    assert len([tag for tag, _ in dom.elements if tag == "table"]) >= 3  # run, scenarios, targets
    body = dom.body()
    assert (body.get("data-requests"), body.get("data-blocked", ""), requests) == ("0", "", [])
