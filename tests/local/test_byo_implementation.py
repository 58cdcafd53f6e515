"""Bring your own implementation: one registry entry joins the matrix (docs/implementations.md).

The extra entry is this repository's Python programs under another name, claiming the
seed's features only (xor, one message per run): the cells needing what it lacks must
be reported "unsupported" -- in the table, results.json and junit.xml -- never failed,
never dropped, and the run must pass.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from securemsg_lab.core import registry
from securemsg_lab.core.process import program_env, run
from securemsg_lab.core.timeouts import scaled

REPO = Path(__file__).resolve().parents[2]
ENTRY = f"""
name = "python-lite"
description = "the Python programs, claiming the seed's features only"
argv = "options"
features = ["xor"]

[local]
root = "{REPO}"
server = ["{{python}}", "python/server.py"]
client = ["{{python}}", "python/client.py"]
"""
CASES = "single_message,interactive,ipv6,max_clients,client_timeout"

pytestmark = pytest.mark.timeout(300)


@dataclass
class ToolRun:
    stdout: str
    stderr: str


def lab_tool(module: str, *args: str, cwd: Path | None = None,
             env: dict[str, str] | None = None) -> ToolRun:
    """A lab tool run to its end with the launcher; it must exit 0."""
    done = run([sys.executable, "-m", module, *args], timeout=scaled(240), cwd=cwd,
               env=program_env(env))
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.exit_code == 0, out[-3000:] + err[-2000:]
    return ToolRun(out, err)


@pytest.fixture
def entry(tmp_path: Path) -> Path:
    path = tmp_path / "python-lite.toml"
    path.write_text(ENTRY)
    return path


def test_the_entry_loads_beside_the_built_in_ones(entry: Path) -> None:
    loaded = registry.load(str(entry))
    assert loaded.names()[-1] == "python-lite"
    assert {"c", "python"} <= set(loaded.names())
    lite = loaded["python-lite"]
    assert lite.features == {"xor"}
    assert lite.local_client[1] == str(REPO / "python" / "client.py")


def test_matrix_reports_what_the_entry_lacks_as_unsupported(entry: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = lab_tool("securemsg_lab.matrix", "--backend", "local", "--implementations", str(entry),
                    "-c", "python-lite,c", "-s", "c,python-lite", "-t", CASES,
                    "--results", str(results), cwd=tmp_path)
    cells = {cell["id"]: cell for cell in json.loads((results / "results.json").read_text())
             ["cells"]}
    # 2 clients x 2 servers x 5 cases x 2 ciphers: every case applies to both ciphers
    assert len(cells) == 2 * 2 * 5 * 2
    assert cells["python-lite-c-single_message-xor"]["status"] == "passed"
    assert cells["c-python-lite-single_message-xor"]["status"] == "passed"
    assert cells["c-c-interactive-xor"]["status"] == "passed"
    unsupported = {cell_id: cell["reasons"] for cell_id, cell in cells.items()
                   if cell["status"] == "unsupported"}
    assert unsupported["python-lite-c-single_message-noise"] == [
        "python-lite client lacks 'noise'"]
    assert unsupported["python-lite-c-interactive-xor"] == [
        "python-lite client lacks 'interactive'"]
    assert unsupported["c-python-lite-max_clients-xor"] == [
        "python-lite server lacks 'max-clients'"]
    assert unsupported["python-lite-python-lite-ipv6-xor"] == [
        "python-lite client lacks 'ipv6'", "python-lite server lacks 'ipv6'"]
    # A case without a server program needs nothing of the cell's server.
    assert cells["c-python-lite-client_timeout-xor"]["status"] == "passed"
    assert all(cell["status"] == "passed" for cell_id, cell in cells.items()
               if "python-lite" not in cell_id)
    assert not any(cell["status"] == "failed" for cell in cells.values())
    suite = ET.parse(results / "junit.xml").getroot().find("testsuite")  # noqa: S314 - ours
    assert suite is not None
    assert suite.get("skipped") == str(len(unsupported))
    assert suite.get("failures") == "0"
    assert "?" in done.stdout  # the table marks them
    assert f"{len(unsupported)} unsupported" in done.stdout


def test_the_entry_joins_the_demo(entry: Path) -> None:
    done = lab_tool("securemsg_lab.demo", "--no-pause", "--backend", "local", "--step", "3",
                    "--with", "python-lite", env={registry.ENV_VAR: str(entry)})
    assert "[RECV] Plaintext: python-lite speaks to C" in done.stdout
    assert "python-lite server decrypted 1/1 messages; 1/1 clients got their ACK" in done.stdout


def test_the_entry_joins_the_bench(entry: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    lab_tool("securemsg_lab.benchmark", "--quick", "--servers", "python-lite",
             "--rounds", "1", "--seconds", "0.2", "--json", str(out),
             env={registry.ENV_VAR: str(entry)})
    doc = json.loads(out.read_text())
    for section in ("rounds", "runs"):  # beside bench/refserver, the yardstick
        assert {(r["server"], r["cipher"]) for r in doc[section]} == {
            ("python-lite", "xor"), ("refserver", "xor")}
        assert all(r["errors"] == 0 and r["round_trips"] > 0 for r in doc[section])
    assert doc["skipped"] == ["python-lite/noise: unsupported (registry features)"]
