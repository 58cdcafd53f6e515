"""The process launcher: start a program, wait for a line, collect its output, stop it.

One `Output` per stream collects bytes as they arrive (from a pipe here, from a
Docker stream in `docker.py`) and lets callers wait for a line. `Process` is a local
program with both streams followed; `run` runs one to its end. Everything returns a
`ProcResult`: what the checks read.

    server = Process([*impl.program("server"), *impl.server_args(0)], role="server")
    port = server.wait_listening()
    result = run([*impl.program("client"), *impl.client_args("127.0.0.1", port, "hi")])
    server_result = server.stop()          # SIGTERM, wait, SIGKILL if it lingers
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import timeouts

#: PROTOCOL.md section 6: a server's first line
LISTENING = re.compile(r"^\[INFO\] Listening on (?P<addr>.+):(?P<port>\d+)$")
#: stdin=PIPE: keep the program's stdin open for `Process.write` (an interactive client)
PIPE = "pipe"


class LaunchError(Exception):
    """A program did not start, or did not print what it was expected to."""


@dataclass
class ProcResult:
    """One finished program run."""

    role: str
    argv: list[str]
    exit_code: int | None  # None: it did not exit in time (killed)
    stdout: bytes
    stderr: bytes
    duration: float
    timed_out: bool = False

    @property
    def out_lines(self) -> list[str]:
        return _lines(self.stdout)

    @property
    def err_lines(self) -> list[str]:
        return _lines(self.stderr)


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="backslashreplace")
    return text.splitlines() if text else []


@dataclass(frozen=True)
class Line:
    text: str
    time: float
    stream: str = "out"


@dataclass
class Output:
    """One stream's bytes and lines as they arrive; safe to wait on from other threads."""

    stream: str = "out"
    data: bytearray = field(default_factory=bytearray)
    lines: list[Line] = field(default_factory=list)
    closed: bool = False
    _partial: bytearray = field(default_factory=bytearray)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _sinks: list[Output] = field(default_factory=list)
    _sources: int = 0

    def feed(self, chunk: bytes) -> None:
        now = time.monotonic()
        with self._changed:
            self.data += chunk
            self._partial += chunk
            *complete, rest = self._partial.split(b"\n")
            self._partial = bytearray(rest)
            new = [Line(_text(raw), now, self.stream) for raw in complete]
            self.lines += new
            self._changed.notify_all()
            sinks = list(self._sinks)
        for sink in sinks:
            sink._add(new)

    def close(self) -> None:
        with self._changed:
            new = []
            if self._partial:
                new.append(Line(_text(self._partial), time.monotonic(), self.stream))
                self.lines += new
                self._partial = bytearray()
            self.closed = True
            self._changed.notify_all()
            sinks, self._sinks = list(self._sinks), []
        for sink in sinks:
            sink._add(new, source_closed=True)

    def tee(self, sink: Output) -> None:
        """Copy this stream's lines, so far and from now on, into `sink` (e.g. stdout and
        stderr into one log, in the order they came); `sink` closes with its last source."""
        with self._changed:
            lines, closed = list(self.lines), self.closed
            if not closed:
                self._sinks.append(sink)
        with sink._changed:
            sink._sources += 1
        sink._add(lines, source_closed=closed)

    def _add(self, lines: list[Line], source_closed: bool = False) -> None:
        with self._changed:
            self.lines += lines
            self.lines.sort(key=lambda line: line.time)
            self.data += b"".join(line.text.encode() + b"\n" for line in lines)
            if source_closed:
                self._sources -= 1
                self.closed = self._sources <= 0
            self._changed.notify_all()

    def pump(self, read: Callable[[], bytes], name: str = "output") -> threading.Thread:
        """Feed what `read()` returns until it returns b"" or fails, in a thread."""
        def loop() -> None:
            try:
                while chunk := read():
                    self.feed(chunk)
            except (OSError, ValueError):
                pass  # the source was closed under us: the end of the stream
            finally:
                self.close()
        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        return thread

    def snapshot(self) -> bytes:
        with self._changed:
            return bytes(self.data)

    def mark(self) -> int:
        """The number of lines so far, for `since=` of a later wait."""
        with self._changed:
            return len(self.lines)

    def since(self, mark: int = 0) -> list[Line]:
        with self._changed:
            return list(self.lines[mark:])

    def wait_for(self, pattern: str | re.Pattern[str], *, since: int = 0, count: int = 1,
                 timeout: float = timeouts.START) -> list[re.Match[str]]:
        """The first `count` matches among the lines after `since`; fewer if the stream
        ended or `timeout` passed first (the caller decides what that means)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for line in self.lines[since:] if (m := regex.search(line.text))]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0 or self.closed:
                    return found[:count]
                self._changed.wait(min(left, 0.5))

    def wait_count(self, marker: bytes, count: int, timeout: float) -> bool:
        """Wait until `marker` occurs `count` times in the bytes so far."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.data.count(marker) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return False
                self._changed.wait(min(left, 0.5))
            return True

    def settle(self, since: int = 0, quiet: float = 0.3, timeout: float = 3.0) -> list[Line]:
        """Wait until no line came for `quiet` seconds; the lines after `since`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while time.monotonic() < deadline:
                last = self.lines[-1].time if len(self.lines) > since else 0.0
                if time.monotonic() - last >= quiet and (last or self.closed):
                    break
                self._changed.wait(0.05)
            return list(self.lines[since:])

    def wait_closed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self.closed and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(min(left, 0.5))
            return self.closed


def _text(raw: bytes | bytearray) -> str:
    return bytes(raw).decode("utf-8", "replace").rstrip("\r")


def listening_port(output: Output, what: str, timeout: float) -> int:
    """Wait for the `Listening on` line; its port (the real one after `--port 0`)."""
    found = output.wait_for(LISTENING, timeout=timeout)
    if not found:
        tail = " | ".join(line.text for line in output.since(0)[-3:])
        within = "" if output.closed else f" within {timeout:.0f} s"
        raise LaunchError(f"{what} printed no 'Listening on' line{within}"
                          f"{': ' + tail if tail else ''}")
    return int(found[0]["port"])


#: what a child starts with at their default action, whatever this process inherited: a
#: background job or `nohup` ignores SIGINT/SIGQUIT/SIGHUP, and exec keeps ignored signals
DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM)
#: what a child gets when the process that started it dies, whatever way (prctl(2))
PARENT_DEATH_SIGNAL = signal.SIGTERM
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup(parent: int) -> None:
    """In the child between fork and exec: default signal dispositions, nothing blocked,
    and PARENT_DEATH_SIGNAL once `parent` is gone (checked after: it may be already)."""
    for signum in DEFAULT_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    _libc.prctl(_PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


class _Spawner:
    """Starts every child from one thread that lives as long as this process: the kernel
    sends the parent-death signal when the *thread* that forked a child ends, and callers
    (the matrix's cell pool, a step of the demo) are threads that come and go."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Future, list[str], dict]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def popen(self, argv: list[str], **options: object) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # first, or forked
                self._thread = threading.Thread(target=self._serve, name="launcher",
                                                daemon=True)
                self._thread.start()
        done: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((done, argv, options))
        return done.result()

    def _serve(self) -> None:
        while True:
            done, argv, options = self._requests.get()
            setup = functools.partial(_child_setup, os.getpid())
            try:
                done.set_result(subprocess.Popen(argv, preexec_fn=setup, **options))
            except (OSError, ValueError, TypeError, subprocess.SubprocessError) as error:
                done.set_exception(error)  # raised in the caller's thread


_spawner = _Spawner()


def launch(argv: list[str], **options: object) -> subprocess.Popen[bytes]:
    """subprocess.Popen(argv, **options) for every program the lab starts: default signal
    dispositions, and it dies with this process (DEFAULT_SIGNALS, PARENT_DEATH_SIGNAL)."""
    return _spawner.popen(list(argv), **options)


def interrupt_on(*signums: int) -> None:
    """For a lab program's main: SIGINT and `signums` raise KeyboardInterrupt, its one
    cleanup path. Installed, not assumed: Python sets up its SIGINT handler only when it
    starts with the default action, and a background job or `nohup` starts it ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in signums:
        signal.signal(signum, _raise_interrupt)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def program_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The programs' environment: no developer SECUREMSG_KEY, no colour, unbuffered."""
    env = {key: value for key, value in os.environ.items() if key != "SECUREMSG_KEY"}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


class Process:
    """A local program, both streams followed (or merged into stdout, in write order)."""

    def __init__(self, argv: list[str], *, role: str = "program",
                 stdin: bytes | str | None = None, env: Mapping[str, str] | None = None,
                 cwd: Path | str | None = None, merge: bool = False,
                 new_session: bool = False, log_files: tuple[Path, Path] | None = None) -> None:
        """`stdin`: bytes to write then close, PIPE to keep open, None for none.
        `merge`: stderr into stdout. `log_files`: stdout and stderr appended to these
        files instead of kept in memory (a benchmarked server logs gigabytes)."""
        self.argv, self.role = list(argv), role
        self.started = time.monotonic()
        self.out, self.err = Output("out"), Output("err")
        self.log_files = log_files
        self._result: ProcResult | None = None
        with contextlib.ExitStack() as files:
            out, err = (files.enter_context(path.open("ab")) for path in log_files) \
                if log_files else (subprocess.PIPE, subprocess.STDOUT if merge else subprocess.PIPE)
            self.popen = launch(
                self.argv, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=out, stderr=err, env=program_env() if env is None else dict(env),
                cwd=cwd, start_new_session=new_session,  # a terminal's Ctrl-C does not reach it
            )
        self._pumps = []
        if log_files is None:
            self._pumps.append(self._follow(self.popen.stdout, self.out))
            if not merge:
                self._pumps.append(self._follow(self.popen.stderr, self.err))
        else:
            self.out.close()
            self.err.close()
        if isinstance(stdin, bytes):
            threading.Thread(target=self._feed, args=(stdin,), daemon=True).start()

    def _follow(self, pipe: IO[bytes] | None, output: Output) -> threading.Thread:
        assert pipe is not None
        fd = pipe.fileno()
        return output.pump(lambda: os.read(fd, 65536), f"{self.role}-{output.stream}")

    def _feed(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.write(data)
        self.close_stdin()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def write(self, data: bytes) -> None:
        assert self.popen.stdin is not None, "started without stdin=PIPE"
        self.popen.stdin.write(data)
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()

    def wait_listening(self, timeout: float | None = None) -> int:
        """The port of the `Listening on` line; stops the program if it does not come."""
        timeout = timeouts.scaled(timeouts.START) if timeout is None else timeout
        try:
            if self.log_files:
                return self._listening_in_file(self.log_files[0], timeout)
            return listening_port(self.out, " ".join(self.argv), timeout)
        except LaunchError as error:
            result = self.stop()
            raise LaunchError(f"{error} (exit {result.exit_code}; stderr: "
                              f"{' | '.join(result.err_lines[-3:]) or 'empty'})") from None

    def _listening_in_file(self, path: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            with path.open("rb") as log:
                head = log.read(65536).decode("utf-8", "replace")
            found = next(filter(None, map(LISTENING.match, head.splitlines())), None)
            if found:
                return int(found["port"])
            if not self.alive() or time.monotonic() > deadline:
                raise LaunchError(f"{' '.join(self.argv)} printed no 'Listening on' line")
            time.sleep(0.02)

    def send_signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signum)

    def wait(self, timeout: float | None = None) -> ProcResult:
        """Wait for the program to exit by itself; kill it after `timeout`."""
        timed_out = False
        try:
            self.popen.wait(timeouts.scaled(timeouts.RUN) if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.popen.kill()
            self.popen.wait()
        return self._finish(timed_out)

    def stop(self, signum: int = signal.SIGTERM, timeout: float | None = None) -> ProcResult:
        """Signal (SIGTERM), wait, SIGKILL if it lingers; the whole run. Idempotent."""
        if self._result is not None:
            return self._result
        self.send_signal(signum)
        return self.wait(timeouts.scaled(timeouts.STOP) if timeout is None else timeout)

    def _finish(self, timed_out: bool) -> ProcResult:
        if self._result is None:
            self.close_stdin()
            for pump in self._pumps:
                pump.join(timeouts.scaled(timeouts.STOP))
            self._result = ProcResult(
                role=self.role, argv=self.argv,
                exit_code=None if timed_out else self.popen.returncode,
                stdout=self.out.snapshot(), stderr=self.err.snapshot(),
                duration=time.monotonic() - self.started, timed_out=timed_out)
        return self._result


def run(argv: list[str], *, role: str = "program", stdin: bytes | None = None,
        timeout: float | None = None, env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None, merge: bool = False) -> ProcResult:
    """Run a program to its end (killed after `timeout`, then `timed_out` is set)."""
    started = time.monotonic()
    popen = launch(
        argv, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge else subprocess.PIPE,
        env=program_env() if env is None else dict(env), cwd=cwd,
    )
    timed_out = False
    try:
        out, err = popen.communicate(
            stdin, timeout=timeouts.scaled(timeouts.RUN) if timeout is None else timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        popen.kill()
        out, err = popen.communicate()
    return ProcResult(role=role, argv=list(argv),
                      exit_code=None if timed_out else popen.returncode, stdout=out,
                      stderr=err or b"", duration=time.monotonic() - started,
                      timed_out=timed_out)
