"""securemsg-grade (docs/grading.md): the references score full marks; each planted bug
loses exactly its cases; a build failure, a flood of output and a hang each get a zero
with the reason, within the time limit; results.json has the documented fields.

One class run (tests/support/submissions.py: ten folders, tests/grade/quick.toml) is
shared by the tests; its summary and reports are kept in results/grade-tests/.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from securemsg_lab.core.process import program_env, run
from securemsg_lab.core.timeouts import scaled

from ..report.browser import browse
from ..support import submissions
from ..support.submissions import REPO

pytestmark = pytest.mark.timeout(1800)
QUICK = Path(__file__).with_name("quick.toml")
SAVED = REPO / "results" / "grade-tests"


def server(case: str) -> str:
    return f"{case} (xor): submission as server"


def client(case: str) -> str:
    return f"{case} (xor): submission as client"


LIFE_SERVER = "lifecycle: submission as server (start-up, exit, shutdown)"
LIFE_CLIENT = "lifecycle: submission as client (start-up, exit, shutdown)"
MESSAGES = ("single_message", "interactive", "concurrent")
#: the tests each submission loses (score below max_score), and only those
LOSES: dict[str, set[str]] = {
    "ref-c": set(), "ref-python": set(),
    "xor-only": {client("interactive")},  # a feature its entry does not claim: zero
    # the third frame of two_frames_one_write is empty too: that run breaks (no ACK)
    "no-empty-ack": {server("empty_message"), server("two_frames_one_write"), LIFE_SERVER},
    # every frame's length misread, both ways; refusing a closed connection is no frame
    "little-endian": {*map(server, (*MESSAGES, "empty_message", "two_frames_one_write")),
                      *map(client, (*MESSAGES, "empty_message", "closed_before_ack")),
                      LIFE_SERVER, LIFE_CLIENT},
    # the first frame of a process decodes; any later one does not
    "key-index": {*map(server, (*MESSAGES, "two_frames_one_write")),
                  *map(client, MESSAGES), LIFE_CLIENT},
    "hang-after-3": {server("concurrent"), LIFE_SERVER},
    "no-sigterm": {LIFE_SERVER},
    "no-ack-read": {*map(client, (*MESSAGES, "empty_message", "closed_before_ack")),
                    LIFE_CLIENT},
}


def grade(*args: str, timeout: float = 1800) -> str:
    """The grader to its end. Ten submissions at once on a shared machine: every wait of
    the cells at least doubled (SECUREMSG_TEST_TIMEOUT_SCALE, unless set)."""
    scale = os.environ.get("SECUREMSG_TEST_TIMEOUT_SCALE") or "2"
    done = run([sys.executable, "-m", "securemsg_lab.grade", *args], role="grade",
               timeout=scaled(timeout), env=program_env({"SECUREMSG_TEST_TIMEOUT_SCALE": scale}))
    assert done.exit_code == 0, (done.stdout + done.stderr).decode(errors="replace")[-3000:]
    return done.stdout.decode()


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folders = submissions.class_of(tmp_path_factory.mktemp("class"))
    assert len(folders) == 10
    shutil.rmtree(SAVED, ignore_errors=True)  # no result of an earlier run is read
    grade("--class", str(folders[0].parent), "--config", str(QUICK), "--out", str(SAVED))
    return SAVED


def results(graded: Path, name: str) -> dict:
    return json.loads((graded / name / "results.json").read_text())


@pytest.mark.parametrize("name", sorted(LOSES))
def test_each_submission_loses_exactly_its_cases(graded: Path, name: str) -> None:
    doc = results(graded, name)
    lost = {t["name"] for t in doc["tests"] if t["score"] < t["max_score"]}
    assert lost == LOSES[name], {t["name"]: t["output"] for t in doc["tests"]
                                 if t["name"] in lost ^ LOSES[name]}
    assert {t["status"] for t in doc["tests"] if t["name"] in lost} <= {"failed"}
    assert (doc["score"] == doc["max_score"]) == (not lost)


def test_a_submission_that_does_not_build_gets_zero_and_the_compiler_error(graded: Path) -> None:
    doc = results(graded, "no-build")
    assert doc["score"] == 0 and doc["max_score"] == results(graded, "ref-c")["max_score"]
    assert all("did not build" in t["output"] and "main.c" in t["output"] for t in doc["tests"])


def documented_fields() -> tuple[list[str], list[str]]:
    """The field table of docs/grading.md's results.json section."""
    text = (REPO / "docs" / "grading.md").read_text().split("## results.json", 1)[1]
    top = [f for row in re.findall(r"^\| (`[^|]+`) \|", text, re.M)
           for f in re.findall(r"`(\w+)(?:\[\])?`", row)]
    tests_row = re.search(r"^\| `tests\[\]` \| (.+) \|$", text, re.M)
    assert tests_row
    return top, re.findall(r"`(\w+)`(?=, | \(|$)", tests_row[1])


def test_results_json_has_the_documented_fields(graded: Path) -> None:
    top, per_test = documented_fields()
    assert set(top) == {"score", "max_score", "execution_time", "output", "visibility",
                        "stdout_visibility", "tests"}
    assert per_test == ["name", "score", "max_score", "status", "output", "visibility"]
    for name in LOSES:
        doc = results(graded, name)
        assert set(doc) == set(top)
        for item in doc["tests"]:
            assert list(item) == per_test
            assert item["status"] in ("passed", "failed")
            assert item["visibility"] in ("visible", "hidden", "after_due_date",
                                          "after_published")
            assert 0 <= item["score"] <= item["max_score"]
    assert {t["visibility"] for t in results(graded, "ref-c")["tests"]} == {
        "visible", "after_due_date"}  # closed_before_ack, from quick.toml


def test_the_class_summary(graded: Path) -> None:
    with (graded / "summary.csv").open() as file:
        rows = {row["submission"]: row for row in csv.DictReader(file)}
    assert set(rows) == {*LOSES, "no-build"}
    for name in LOSES:
        doc = results(graded, name)
        assert float(rows[name]["score"]) == doc["score"]
        assert {k: float(v) for k, v in rows[name].items() if k.endswith(("client", "server",
                "shutdown)"))} == {t["name"]: t["score"] for t in doc["tests"]}
    page = (graded / "index.html").read_text()
    assert all(f'href="{name}/index.html"' in page for name in rows)


def test_a_grade_report_in_the_browser(graded: Path, tmp_path: Path) -> None:
    dom, requests = browse(graded / "key-index" / "index.html", tmp_path / "profile")
    cells = {}
    for path in (graded / "key-index" / "cells").glob("*/*/result.json"):
        cell = json.loads(path.read_text())
        cells[cell["cell"]] = cell["status"]
    assert len(cells) > 10 and "failed" in cells.values()
    assert {b["data-id"]: b["data-state"] for b in dom.having("box")} == cells
    assert requests == [] and dom.body().get("data-requests") == "0"


def only(tmp_path: Path, case: str, time_limit: int) -> Path:
    """quick.toml with one case and another time limit."""
    text = QUICK.read_text().replace("time_limit = 400", f"time_limit = {time_limit}")
    config = tmp_path / f"{case}.toml"
    config.write_text(text.split("[cases.")[0] + f"[cases.{case}]\nweight = 1\n")
    return config


def test_a_flood_of_output_is_stopped_and_said(tmp_path: Path) -> None:
    flood = tmp_path / "flood"
    flood.mkdir()
    (flood / "implementation.toml").write_text(submissions.entry("flood", (
        'server = ["sh", "-c", "yes flood"]\nclient = ["sh", "-c", "yes flood"]\n'),
        features='["xor"]'))
    grade(str(flood), "--config", str(only(tmp_path, "single_message", 300)),
          "--out", str(tmp_path / "out"))
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["score"] == 0
    outputs = [t["output"] for t in doc["tests"] if t["name"].startswith("single_message")]
    assert len(outputs) == 2
    assert all("output limit of 256 KB passed" in o or "got 'flood'" in o for o in outputs)
    assert any("output limit of 256 KB passed" in o for o in outputs)


def test_a_hang_is_cut_at_the_time_limit_and_the_json_written(tmp_path: Path) -> None:
    hang = submissions.python_copy(tmp_path / "hang", "hang-after-3")
    started = time.monotonic()
    grade(str(hang), "--config", str(only(tmp_path, "concurrent", 40)),
          "--out", str(tmp_path / "out"))
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["execution_time"] <= 40
    assert time.monotonic() - started < scaled(40 + 60)  # start-up and the namespace
    server_test = next(t for t in doc["tests"] if t["name"] == server("concurrent"))
    assert server_test["score"] == 0 and "time limit passed" in server_test["output"]
