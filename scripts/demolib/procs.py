"""Processes at the edge: line logs of running programs, bounded runs, and the janitor.

Everything the demo starts registers an undo action with the `Janitor`, which runs them
in reverse order on exit, on an exception and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

STOP_TIMEOUT = 5.0


class DemoError(Exception):
    """Something the demo needs did not happen (a program did not start, a line never came)."""


@dataclass(frozen=True)
class LogLine:
    stream: str  # "out" or "err"
    text: str
    time: float


class LineLog:
    """Collect a process's stdout and stderr lines as they come, safe to wait on."""

    def __init__(self, proc: subprocess.Popen[bytes], stdout: bool = True) -> None:
        """Follow stdout and stderr, or stderr only (when stdout carries binary data)."""
        self.proc = proc
        self.lines: list[LogLine] = []
        self._cond = threading.Condition()
        pipes = ((proc.stdout if stdout else None, "out"), (proc.stderr, "err"))
        self._readers = [
            threading.Thread(target=self._read, args=(pipe, name), daemon=True)
            for pipe, name in pipes
            if pipe is not None
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: IO[bytes], name: str) -> None:
        for raw in iter(pipe.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cond:
                self.lines.append(LogLine(name, text, time.monotonic()))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def since(self, mark: int = 0) -> list[LogLine]:
        with self._cond:
            return list(self.lines[mark:])

    def closed(self) -> bool:
        return not any(reader.is_alive() for reader in self._readers)

    def wait_for(
        self, pattern: str, since: int = 0, count: int = 1, timeout: float = 10.0
    ) -> list[LogLine]:
        """Wait until `count` lines after `since` match `pattern`; return the matches."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [line for line in self.lines[since:] if regex.search(line.text)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self.closed():
                    raise DemoError(
                        f"expected {count} line(s) matching {pattern!r}, saw {len(found)}"
                    )
                self._cond.wait(min(left, 0.1))

    def settle(self, since: int, quiet: float = 0.3, timeout: float = 3.0) -> list[LogLine]:
        """Wait until no new line came for `quiet` seconds; return the lines after `since`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while time.monotonic() < deadline:
                last = self.lines[-1].time if len(self.lines) > since else 0.0
                if time.monotonic() - last >= quiet and (last or self.closed()):
                    break
                self._cond.wait(0.05)
            return list(self.lines[since:])


@dataclass
class RunResult:
    """A program that ran to completion."""

    argv: list[str]
    returncode: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def check(self, what: str, last: int | None = None) -> RunResult:
        """Raise DemoError naming `what` and its stderr (the `last` lines) unless it exited 0."""
        if self.returncode != 0:
            lines = self.stderr[-last:] if last else self.stderr
            raise DemoError(f"{what} failed: " + " | ".join(lines))
        return self


def run(
    argv: list[str],
    timeout: float = 30.0,
    stdin: bytes | None = None,
    merge: bool = False,
    **kwargs: object,
) -> RunResult:
    """Run to completion. merge=True: stderr into stdout, in the order the lines were written."""
    try:
        done = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge else subprocess.PIPE,
            **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}),
            timeout=timeout,
            check=False,
            **kwargs,
        )
    except subprocess.TimeoutExpired as exc:
        raise DemoError(f"{argv[0]} did not finish within {timeout:.0f} s") from exc
    return RunResult(
        argv,
        done.returncode,
        done.stdout.decode("utf-8", "replace").splitlines(),
        (done.stderr or b"").decode("utf-8", "replace").splitlines(),
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


class Janitor:
    """Undo actions, run last-in first-out, each at most once, errors swallowed."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], object]]] = []
        self._lock = threading.Lock()

    def add(self, what: str, action: Callable[[], object]) -> None:
        with self._lock:
            self._actions.append((what, action))

    def add_process(self, proc: subprocess.Popen[bytes], what: str = "process") -> None:
        self.add(f"{what} (pid {proc.pid})", lambda: stop_process(proc))

    def spawn(
        self,
        argv: list[str],
        what: str,
        stdin: int = subprocess.DEVNULL,
        merge: bool = True,
        **where: Any,
    ) -> subprocess.Popen[bytes]:
        """Start a program that outlives this call and register its stop.

        Its stdout is read through a pipe, its stderr too (merged into stdout unless
        merge=False); `where` holds cwd and env. Its own session keeps the terminal's
        Ctrl-C from reaching it: the demo stops it, in order.
        """
        proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge else subprocess.PIPE,
            start_new_session=True,
            **where,
        )
        self.add_process(proc, what)
        return proc

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
