"""The stress suite: both servers under hostile and heavy load, on 127.0.0.1 only.

SECUREMSG_STRESS=short (the default, what `make test` and CI run) keeps every test
to seconds; SECUREMSG_STRESS=long (`make stress`) runs the figures of issues 10 and 16.
Every test writes its figures to results/stress/<test>-<case>.json and prints them
in the terminal summary. Every implementation of the registry is tested.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from securemsg_lab.core import process, registry

from .stress_support import ROOT, Figures, ServerUnderTest, scale_name

RESULTS = ROOT / "results" / "stress"

_collected: list[Figures] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.stress)


_built: set[tuple[str, ...]] = set()


def build(argv: tuple[str, ...], cwd: Path) -> None:
    """Run a build command once per session (make does nothing when it is current)."""
    if argv not in _built:
        done = process.run(list(argv), role="build", cwd=cwd, timeout=300)
        assert done.exit_code == 0, f"{' '.join(argv)}: {done.stderr.decode()[-500:]}"
        _built.add(argv)


@pytest.fixture
def built() -> None:
    """bench/loadgen and bench/hostile (they compile c/'s modules too)."""
    build(("make", "-s", "-C", "bench"), ROOT)


@pytest.fixture(params=registry.default().names())
def implementation(request: pytest.FixtureRequest) -> registry.Implementation:
    impl = registry.default()[request.param]
    if impl.local_build:
        build(impl.local_build, impl.root)
    return impl


@pytest.fixture
def start_server(implementation: registry.Implementation, tmp_path: Path) -> Iterator[object]:
    """``start_server(*options, slow_stdout=None)``: a server of this implementation,
    stopped at the end (``slow_stdout``: see `ServerUnderTest`)."""
    servers: list[ServerUnderTest] = []

    def start(*options: str, slow_stdout: int | None = None) -> ServerUnderTest:
        server = ServerUnderTest(implementation, options, tmp_path / f"server{len(servers)}",
                                 slow_stdout)
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
    before = os.getloadavg()[0]
    yield result
    # Timings mean little on a machine whose load is far above its cores: say what it was.
    result["load_average"] = {"start": round(before, 1), "end": round(os.getloadavg()[0], 1)}
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
