"""Unit tests: pure, no processes (those are in tests/local). `securemsg` and
`securemsg_lab` are installed in the venv; `unit_support` is found because pytest puts
this directory (no __init__.py) first on the import path."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of key precedence must not see the developer's SECUREMSG_KEY."""
    monkeypatch.delenv("SECUREMSG_KEY", raising=False)
