"""Shared pytest set-up: the interop matrix plugin of the lab package, and fixtures every
test directory may use.

The matrix tests (tests/integration/test_matrix.py on Docker, tests/local/
test_cross_language.py on local processes) parametrize over the same case catalogue;
the cells a session selects run in parallel once (securemsg_lab/matrix/pytest_plugin.py).
"""

from __future__ import annotations

import pytest

pytest_plugins = ["securemsg_lab.matrix.pytest_plugin"]


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of key precedence must not see the developer's SECUREMSG_KEY."""
    monkeypatch.delenv("SECUREMSG_KEY", raising=False)
