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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.relative_to(HERE).parts[0] if item.path.is_relative_to(HERE) else ""
        if folder in DOCKER_FOLDERS:
            item.add_marker(pytest.mark.docker)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `docker` test without an engine: skipped, or failed with REQUIRE_DOCKER=1."""
    if item.get_closest_marker("docker") is not None:
        needs.docker_engine()


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of key precedence must not see the developer's SECUREMSG_KEY."""
    monkeypatch.delenv("SECUREMSG_KEY", raising=False)
