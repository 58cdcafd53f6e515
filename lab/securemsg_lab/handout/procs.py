"""Every process the checks start, in one module (to swap for the lab core's launcher).

Servers listen on 127.0.0.1 port 0 and announce the port in their `Listening on`
line; every wait is bounded; `Server` is a context manager that always stops its
process (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
LISTENING = re.compile(r"\[INFO\] Listening on (?:\[[^\]]*\]|[^:\s]+):(\d+)")


class ProcessError(Exception):
    """A program did not start, or did not do what the check needed."""


def quiet_env() -> dict[str, str]:
    """No colour, unbuffered Python, and no key from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if k != "SECUREMSG_KEY"}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1")
    return env


def program(tree: Path, lang: str, role: str) -> list[str]:
    """The command prefix of `role` (server/client) in a tree with c/ and python/."""
    if lang == "c":
        return [str(tree / "c" / role)]
    return [sys.executable, str(tree / "python" / f"{role}.py")]


def server_argv(tree: Path, lang: str, options: list[str]) -> list[str]:
    """A loopback server on an ephemeral port, with each language's seed spelling."""
    if lang == "c":
        return [*program(tree, lang, "server"), "--bind", LOOPBACK, *options, "0"]
    return [*program(tree, lang, "server"), "--bind", LOOPBACK, "--port", "0", *options]


def client_argv(tree: Path, lang: str, port: int, message: str, options: list[str]) -> list[str]:
    if lang == "c":
        return [*program(tree, lang, "client"), *options, LOOPBACK, str(port), message]
    return [*program(tree, lang, "client"), "--host", LOOPBACK, "--port", str(port),
            "--message", message, *options]


class Server:
    """A running server; its output is collected line by line."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.port = 0
        self._out = bytearray()
        self._cond = threading.Condition()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, env=quiet_env())
        except OSError as exc:
            raise ProcessError(f"cannot start {argv[0]}: {exc.strerror}") from exc
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(65536):
            with self._cond:
                self._out += chunk
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return self._out.decode("utf-8", "replace")

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = pattern.search(self._out.decode("utf-8", "replace"))
                left = deadline - time.monotonic()
                if found or left <= 0 or not self._reader.is_alive():
                    return found
                self._cond.wait(min(left, 0.1))

    def start(self) -> Server:
        found = self.wait_for(LISTENING, START_TIMEOUT)
        if found is None:
            self.stop()
            raise ProcessError(f"{' '.join(self.argv)} did not start: {self.output()[-300:]!r}")
        self.port = int(found.group(1))
        return self

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)
        return self.output()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@dataclass
class Run:
    """A finished program: exit status and output."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(argv: list[str], timeout: float = 30.0, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> Run:
    """Run a program to its end (killed after `timeout`: returncode -9); `env` adds
    variables."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, env={**quiet_env(), **(env or {})}, cwd=cwd,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode("utf-8", "replace") if exc.stdout else ""
        err = exc.stderr.decode("utf-8", "replace") if exc.stderr else ""
        return Run(-9, out, err + f"\n(killed after {timeout:g} s)")
    except OSError as exc:
        raise ProcessError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    return Run(done.returncode, done.stdout.decode("utf-8", "replace"),
               done.stderr.decode("utf-8", "replace"))


def make(directory: Path, *targets: str, timeout: float = 300.0) -> None:
    """Build with make; the last lines of its output on failure."""
    result = run(["make", "-s", "-C", str(directory), *targets], timeout=timeout)
    if result.returncode != 0:
        tail = "\n".join(result.output.strip().splitlines()[-6:])
        raise ProcessError(f"make -C {directory} {' '.join(targets)} failed:\n{tail}")
