"""What the Docker tests share: commands run from the repository root, checked exits, and
the skip-or-fail rule when an engine or tool is missing (tests/support/needs.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import needs

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
#: the two Compose tools, each with the command that shows it works
COMPOSE_TOOLS = {
    "compose-v2": ["docker", "compose"],
    "compose-v1": ["docker-compose"],
}
OUTPUT_TAIL = 4000  # characters of each stream a failure shows: builds print thousands of lines


def run(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; a non-zero exit is not raised here."""
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=timeout,
        check=False,
    )


def must(result: subprocess.CompletedProcess[str]) -> str:
    """The command's stdout; an assertion error with the end of its output if it failed."""
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout[-OUTPUT_TAIL:]}\nstderr:\n{result.stderr[-OUTPUT_TAIL:]}"
    )
    return result.stdout


#: skip, or fail when REQUIRE_DOCKER=1 says Docker must be there
unavailable = needs.missing
