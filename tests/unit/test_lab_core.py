"""The lab core without processes: registry entries, the launcher's line collector,
the timeout knob, the matrix's JUnit file."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from securemsg_lab.core import registry, timeouts
from securemsg_lab.core.process import LISTENING, Output
from securemsg_lab.core.registry import Implementation, Registry, RegistryError
from securemsg_lab.matrix.cells import (
    FAILED,
    PASSED,
    UNSUPPORTED,
    CellOutcome,
    CellSpec,
    build_cells,
    write_junit,
)


def test_built_in_entries_spell_the_seed_command_lines() -> None:
    loaded = registry.load("")
    c, python = loaded["c"], loaded["python"]
    assert c.server_args(5000, ["--cipher", "noise"]) == ["--cipher", "noise", "5000"]
    assert c.client_args("::1", 5000, "Hi", ["-x"]) == ["-x", "::1", "5000", "Hi"]
    assert c.client_args("h", 1, None) == ["h", "1"]
    assert python.server_args(0) == ["--port", "0"]
    assert python.client_args("h", 1, "m", ["-x"]) == ["--host", "h", "--port", "1",
                                                       "--message", "m", "-x"]
    assert python.client_args("h", 1, None) == ["--host", "h", "--port", "1"]
    assert c.program("server", "docker") == ["/server"]
    assert Path(c.program("client")[0]) == Path(c.root) / "c" / "client"
    assert python.compose_service == "server-python"


def test_entry_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nfeatures = ["xor", "telepathy"]\n')
    with pytest.raises(RegistryError, match=r"bad.toml: unknown features \['telepathy'\]"):
        registry.from_toml(bad)
    bad.write_text('name = "x"\nargv = "shouting"\n')
    with pytest.raises(RegistryError, match="argv must be one of"):
        registry.from_toml(bad)
    bad.write_text('features = ["xor"]\n')
    with pytest.raises(RegistryError, match="name missing"):
        registry.from_toml(bad)


def test_names_are_unique_and_unknown_names_are_listed() -> None:
    entries = Registry([Implementation("a"), Implementation("b")])
    with pytest.raises(RegistryError, match="registered twice"):
        entries.add(Implementation("a", source="other.toml"))
    with pytest.raises(RegistryError, match=r"unknown implementation 'z' \(known: a, b\)"):
        entries["z"]
    with pytest.raises(RegistryError, match="no docker server program"):
        entries["a"].program("server", "docker")


def test_cells_cover_every_registered_implementation_both_ways() -> None:
    entries = Registry([Implementation("a"), Implementation("b")])
    cells = build_cells(cases=["single_message"], ciphers=["xor"], registry=entries)
    assert [(c.client, c.server) for c in cells] == [("a", "a"), ("a", "b"), ("b", "a"),
                                                      ("b", "b")]


def test_output_splits_lines_across_chunks_and_waits() -> None:
    out = Output()
    out.feed(b"[INFO] Listening on 127.0.0.1:5")
    assert out.wait_for(LISTENING, timeout=0) == []
    threading.Timer(0.05, out.feed, args=(b"000\r\nsecond\n",)).start()
    (found,) = out.wait_for(LISTENING, timeout=5)
    assert found["port"] == "5000"
    out.feed(b"no newline")
    out.close()
    assert [line.text for line in out.since(0)] == [
        "[INFO] Listening on 127.0.0.1:5000", "second", "no newline"]
    assert out.wait_for("never", timeout=5) == []  # closed: no waiting
    assert out.wait_count(b"second", 1, timeout=0)
    assert out.snapshot().endswith(b"no newline")


def test_timeouts_scale_with_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(timeouts.ENV_VAR, "2.5")
    assert timeouts.scaled(4) == 10.0
    monkeypatch.setenv(timeouts.ENV_VAR, "nonsense")
    assert timeouts.scaled(4) == 4.0


def test_junit_has_one_testcase_per_cell(tmp_path: Path) -> None:
    outcomes = [
        CellOutcome(CellSpec("c", "python", "single_message"), PASSED, duration=0.5),
        CellOutcome(CellSpec("c", "python", "ipv6"), FAILED, ["server: exit 1"], 1.0, "logs/x"),
        CellOutcome(CellSpec("lite", "c", "interactive"), UNSUPPORTED,
                    ["lite client lacks 'interactive'"]),
    ]
    write_junit(tmp_path / "junit.xml", outcomes, "local", 3.25)
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")  # noqa: S314 - ours
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("python_c", "single_message-xor"), ("python_c", "ipv6-xor"),
        ("c_lite", "interactive-xor")]
    failure = cases[1].find("failure")
    assert failure is not None and failure.get("message") == "server: exit 1"
    assert "rerun: securemsg-matrix --backend local -c c -s python -t ipv6" in (failure.text or "")
    skipped = cases[2].find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "unsupported: lite client lacks 'interactive'"
