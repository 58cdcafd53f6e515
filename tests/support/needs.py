"""What a test needs from the machine, and the one rule for when it is missing.

``REQUIRE_DOCKER=1`` (``.ci/run`` sets it) says this machine must run the whole suite: a
missing Docker engine, Compose tool, tshark, tcpdump or registry binary fails the test
that needs it. Without it the test is skipped, and the reason says what to install.
Tests marked ``docker`` (every test under tests/integration, and the few elsewhere that
use the Docker backend) check the engine before they start: tests/conftest.py.
"""

from __future__ import annotations

import functools
import shutil
from typing import NoReturn

import pytest
from securemsg_lab.core.docker import engine_answers, required


def missing(reason: str) -> NoReturn:
    """Skip the test, or fail it when REQUIRE_DOCKER=1."""
    if required():
        pytest.fail(f"REQUIRE_DOCKER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@functools.cache
def _engine() -> bool:
    return engine_answers()


def docker_engine() -> None:
    """The Docker engine answers (asked once per test process)."""
    if not _engine():
        missing("no Docker engine answers (docker version)")


def tool(name: str, install: str) -> str:
    """The path of a program on PATH; `install` says how to get it."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed ({install})")
    return path
