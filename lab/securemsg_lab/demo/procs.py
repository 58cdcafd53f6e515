"""The demo's view of running programs, on the lab launcher (`securemsg_lab.core.process`).

A `LineLog` is a program's output as lines to wait for (a demo that waits in vain
raises `DemoError` instead of returning nothing); a `RunResult` is a finished program
as lines. Everything the demo starts registers an undo action with the `Janitor`,
which runs them in reverse order on exit, on an exception and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.process import Line, Output, ProcResult

LogLine = Line


class DemoError(Exception):
    """Something the demo needs did not happen (a program did not start, a line never came)."""


class LineLog:
    """A program's output lines as they come, safe to wait on."""

    def __init__(self, output: Output) -> None:
        self.output = output

    def mark(self) -> int:
        return self.output.mark()

    def since(self, mark: int = 0) -> list[LogLine]:
        return self.output.since(mark)

    def closed(self) -> bool:
        return self.output.closed

    def wait_for(
        self, pattern: str, since: int = 0, count: int = 1, timeout: float = 10.0
    ) -> list[LogLine]:
        """Wait until `count` lines after `since` match `pattern`; return those lines."""
        found = self.output.wait_for(pattern, since=since, count=count, timeout=timeout)
        if len(found) < count:
            raise DemoError(f"expected {count} line(s) matching {pattern!r}, saw {len(found)}")
        texts = {match.string for match in found}
        return [line for line in self.output.since(since) if line.text in texts][:count]

    def settle(self, since: int, quiet: float = 0.3, timeout: float = 3.0) -> list[LogLine]:
        """Wait until no new line came for `quiet` seconds; return the lines after `since`."""
        return self.output.settle(since, quiet, timeout)


@dataclass
class RunResult:
    """A program that ran to completion, as lines."""

    argv: list[str]
    returncode: int | None
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, result: ProcResult) -> RunResult:
        if result.timed_out:
            raise DemoError(f"{result.argv[0]} did not finish within {result.duration:.0f} s")
        decode = lambda data: data.decode("utf-8", "replace").splitlines()  # noqa: E731
        return cls(result.argv, result.exit_code, decode(result.stdout), decode(result.stderr))

    def check(self, what: str, last: int | None = None) -> RunResult:
        """Raise DemoError naming `what` and its stderr (the `last` lines) unless it exited 0."""
        if self.returncode != 0:
            lines = self.stderr[-last:] if last else self.stderr
            raise DemoError(f"{what} failed: " + " | ".join(lines))
        return self


class Janitor:
    """Undo actions, run last-in first-out, each at most once, errors swallowed."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], object]]] = []
        self._lock = threading.Lock()

    def add(self, what: str, action: Callable[[], object]) -> None:
        with self._lock:
            self._actions.append((what, action))

    def close(self) -> list[str]:
        """Run every action; return descriptions of those that failed."""
        failures: list[str] = []
        while True:
            with self._lock:
                if not self._actions:
                    return failures
                what, action = self._actions.pop()
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - cleanup must go on whatever failed
                failures.append(f"{what}: {exc}")
