"""Unit tests: pure, no processes and no real waits (those are in tests/local).
`securemsg` and `securemsg_lab` are installed in the venv; in-process helpers come from
`tests.support`. Shared fixtures such as `no_key_env` are in tests/conftest.py."""

from __future__ import annotations

import subprocess

import pytest


class _NoProcesses(subprocess.Popen):
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("tests/unit starts no process: this test belongs in tests/local")


@pytest.fixture(autouse=True)
def _pure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps tests/unit what its name says: any program started here fails the test."""
    monkeypatch.setattr(subprocess, "Popen", _NoProcesses)
