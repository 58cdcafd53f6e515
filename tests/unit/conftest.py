"""Make ``python/securemsg`` (and ``unit_support``) importable without installing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parents[1] / "python"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of key precedence must not see the developer's SECUREMSG_KEY."""
    monkeypatch.delenv("SECUREMSG_KEY", raising=False)
