"""Shared pytest set-up: the interop matrix plugin of the lab package, what each folder
needs, and fixtures every test directory may use.

The matrix tests (tests/integration/test_matrix.py on Docker, tests/local/
test_cross_language.py on local processes) parametrize over the same case catalogue;
the cells a session selects run in parallel once (securemsg_lab/matrix/pytest_plugin.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import needs

pytest_plugins = ["securemsg_lab.matrix.pytest_plugin"]

HERE = Path(__file__).resolve().parent
#: folders whose every test needs Docker (pytest.ini says what each folder needs)
DOCKER_FOLDERS = ("integration",)
#: folders whose tests run one after another in one group: load tests measure the
#: machine, so two of them must not share it
SERIAL_FOLDERS = ("stress",)
#: modules whose tests are each a group of their own: the registry builds wait on the
#: network and the engine rather than on a core, and each worker's run of the module has
#: its own registry, base layer and tags (its RUN_ID), so they overlap
SPLIT_MODULES = ("tests/integration/test_registry_build.py",)
#: the longest groups start first, so that the rest fills the other workers around them
LONGEST_FIRST = ("tests/integration/test_registry_build.py", "tests/integration/test_matrix.py",
                 "tests/local/test_cross_language.py")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers by folder, and the groups of a parallel run (`pytest -n auto --dist
    loadgroup`, as scripts/run-tests.sh runs it): one group per module, because modules
    share module- and session-scoped fixtures (a lab brought up, a capture, a matrix run
    whose cells all run at once), or per folder for SERIAL_FOLDERS."""
    for item in items:
        parts = item.path.relative_to(HERE).parts if item.path.is_relative_to(HERE) else ()
        folder = parts[0] if parts else ""
        if folder in DOCKER_FOLDERS:
            item.add_marker(pytest.mark.docker)
        module = "/".join(("tests", *parts))
        group = folder if folder in SERIAL_FOLDERS else module
        if module in SPLIT_MODULES:
            group = item.nodeid
        item.add_marker(pytest.mark.xdist_group(group))
    rank = {module: index for index, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_module(item), len(rank)))  # stable: order kept


def _module(item: pytest.Item) -> str:
    path = item.path
    return path.relative_to(HERE.parent).as_posix() if path.is_relative_to(HERE.parent) else ""


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `docker` test without an engine: skipped, or failed with REQUIRE_DOCKER=1."""
    if item.get_closest_marker("docker") is not None:
        needs.docker_engine()


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of key precedence must not see the developer's SECUREMSG_KEY."""
    monkeypatch.delenv("SECUREMSG_KEY", raising=False)
