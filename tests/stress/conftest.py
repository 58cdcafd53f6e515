"""The stress suite: both servers under hostile and heavy load, on 127.0.0.1 only.

SECUREMSG_STRESS=short (the default, what `make test` and CI run) keeps every test
to seconds; SECUREMSG_STRESS=long (`make stress`) runs the figures of issue 10.
Every test writes its figures to results/stress/<test>-<implementation>.json and
prints them in the terminal summary.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from securemsg_lab.core import registry

from .stress_support import ROOT, Figures, ServerUnderTest, scale_name

RESULTS = ROOT / "results" / "stress"
IMPLEMENTATIONS = ("c", "python")

_collected: list[Figures] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.stress)


_built: set[str] = set()


def build(directory: str) -> None:
    """``make -C directory`` once per session (make does nothing when it is current)."""
    if directory not in _built:
        subprocess.run(["make", "-s", "-C", str(ROOT / directory)], check=True,
                       stdout=subprocess.DEVNULL)
        _built.add(directory)


@pytest.fixture
def built() -> None:
    """bench/loadgen (it compiles c/'s modules too)."""
    build("bench")


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> registry.Implementation:
    if request.param == "c":
        build("c")
    return registry.default()[request.param]


@pytest.fixture
def start_server(implementation: registry.Implementation, tmp_path: Path) -> Iterator[object]:
    """``start_server(*options)``: a server of this implementation, stopped at the end."""
    servers: list[ServerUnderTest] = []

    def start(*options: str) -> ServerUnderTest:
        server = ServerUnderTest(implementation, options, tmp_path / f"server{len(servers)}")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def figures(request: pytest.FixtureRequest, implementation: registry.Implementation
            ) -> Iterator[Figures]:
    """Where a test puts what it measured; saved and summarised whatever the outcome."""
    test = request.node.originalname.removeprefix("test_")
    case = request.node.callspec.id if hasattr(request.node, "callspec") else implementation.name
    result = Figures(test=test, implementation=implementation.name, scale=scale_name())
    yield result
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{test}-{case}.json"
    path.write_text(json.dumps(result.as_dict(), indent=2) + "\n", encoding="utf-8")
    _collected.append(result)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _collected:
        return
    terminalreporter.section("stress figures (results/stress/*.json)")
    for result in _collected:
        terminalreporter.write_line(result.summary())
