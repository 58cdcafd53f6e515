"""Helpers of the stress suite: the scale, a server process, peers, figures.

Hostile peers by the thousand come from bench/hostile (one C process, epoll), real
clients from bench/loadgen: both run through the lab launcher, so the test's own
Python threads are neither the load's bottleneck nor in the latency figures.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securemsg_lab.core import loadgen, process, registry, timeouts
from securemsg_lab.core.loadgen import Load
from securemsg_lab.wire.protocol import DEFAULT_KEY, frame, xor
from securemsg_lab.wire.rawsock import recv_exact

from tests.support.unit_support import connect

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
HOSTILE = ROOT / "bench" / "hostile"
MIB = 1 << 20
#: PROTOCOL.md section 5: --max-buffered's default (the issue's goal is stated for it)
DEFAULT_MAX_BUFFERED = 256 * MIB

# Each figure: (short, long). Short: the whole suite in a minute or two on 2 cores.
_SCALES: dict[str, tuple[Any, Any]] = {
    "slowloris_peers": (200, 1000),  # per kind of peer
    "slowloris_clients": (20, 100),  # real clients served while the peers hold on
    "slowloris_hold": (3.0, 15.0),  # seconds the trickling peers keep trickling
    "burst": (1000, 10000),
    "burst_deadline": (60.0, 180.0),  # seconds for the whole burst
    "soak_seconds": (4.0, 60.0),
    "soak_connections": (4, 8),
    "junk_peers": (200, 1000),  # fuzz-like peers: random frames, partial frames, junk
    "shutdown_clients": (100, 100),  # half large messages, half small ones
    "shutdown_backlog": (20, 20),  # connections made just before the signal
    "shutdown_drain": (2, 5),  # --drain-timeout
    "shutdown_load_s": (2.0, 4.0),  # transfers before the signal
    "shutdown_trials": (1, 3),
    "connected_clients": (200, 1000),  # SIGTERM with this many connected: line pairs
    # issue 16: peers announcing 1 MiB frames
    "minrate_peers": (300, 2000),
    "minrate_seconds": (8.0, 40.0),
    "memory_peers": ((500,), (500, 2000)),
    "memory_seconds": (6.0, 30.0),
    # --max-buffered (None: the default). Short: 500 x 64 KiB allowances + 96 MiB fit
    # in 2 x 96 MiB with room for an interpreter; without a budget, each row exceeds it.
    "memory_budget": (96 * MIB, None),
    "real_p99_ms": (1000.0, 100.0),  # real clients under those loads (goal: 100 ms)
    "restall_clients": (10, 50),
    "restall_seconds": (6.0, 25.0),
}


def scale_name() -> str:
    return "long" if os.environ.get("SECUREMSG_STRESS", "short") == "long" else "short"


def scaled(name: str) -> Any:
    short, long = _SCALES[name]
    return long if scale_name() == "long" else short


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds (values in seconds)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def rank(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000, 2)

    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p90_ms": rank(0.90), "p99_ms": rank(0.99), "max_ms": round(ordered[-1] * 1000, 2)}


@dataclass
class Figures:
    """What one test measured, for results/stress/*.json and the terminal summary."""

    test: str
    implementation: str
    scale: str
    values: dict[str, Any] = field(default_factory=dict)

    def __setitem__(self, key: str, value: Any) -> None:
        self.values[key] = value

    def as_dict(self) -> dict[str, Any]:
        return {"test": self.test, "implementation": self.implementation,
                "scale": self.scale, **self.values}

    def summary(self) -> str:
        return f"{self.test} [{self.implementation}, {self.scale}]: " + json.dumps(self.values)


class SlowPipe:
    """A FIFO for a server's standard output, read slowly: ``rate`` bytes a second, in
    sixteen pieces, until ``drain()`` (then at full speed to the end). Every byte read
    is kept. A server whose log writes block must still drain and exit on time."""

    def __init__(self, directory: Path, rate: int) -> None:
        self.path = directory / "server.out.fifo"
        os.mkfifo(self.path)
        # Opened first, without waiting for a writer, so that the launcher's open for
        # writing does not block.
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._piece = max(1, rate // 16)
        self._data = bytearray()
        self._lock = threading.Lock()
        self._fast = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-stdout", daemon=True)

    def start(self) -> None:
        """Once the server holds the write end: an EOF from then on is its exit."""
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                select.select([self._fd], [], [], 0.5)
                try:
                    chunk = os.read(self._fd, 1 << 16 if self._fast.is_set() else self._piece)
                except BlockingIOError:
                    continue
                if not chunk:
                    return
                with self._lock:
                    self._data += chunk
                self._fast.wait(1 / 16)  # the pace, cut short by drain()
        finally:
            os.close(self._fd)

    def drain(self, timeout: float = 30.0) -> None:
        """Read the rest at full speed, until the writer is gone (or ``timeout``)."""
        self._fast.set()
        self._thread.join(timeout)

    def snapshot(self) -> bytes:
        with self._lock:
            return bytes(self._data)


class ServerUnderTest:
    """One server program on 127.0.0.1, port 0, its output in files of ``directory``.

    The lab launcher in its file mode: in memory, the output would be read by a
    thread of this process, and under a 10,000-connection burst that reader
    (sharing the GIL with the load) fell behind, the server's stdout pipe filled
    and its threads queued on their log writes: the test measured itself. A file
    never blocks the server, and a soak's gigabytes of lines go to disk
    (``truncate`` empties it between phases; it is opened for appending).
    With ``slow_stdout`` (bytes a second) standard output is a pipe read that slowly
    instead, on purpose (`SlowPipe`).
    """

    def __init__(self, impl: registry.Implementation, options: tuple[str, ...],
                 directory: Path, slow_stdout: int | None = None) -> None:
        self.options = options
        directory.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = directory / "server.out", directory / "server.err"
        self.pipe = SlowPipe(directory, slow_stdout) if slow_stdout else None
        out = self.pipe.path if self.pipe else self.out_path
        self.argv = [*impl.program("server"), *impl.server_args(0, ("--bind", HOST, *options))]
        self.proc = process.Process(self.argv, role="server", log_files=(out, self.err_path))
        if self.pipe is None:
            self.port = self.proc.wait_listening()
            return
        self.pipe.start()
        if not wait_until(lambda: process.LISTENING.match(self._first_line()) is not None,
                          timeouts.scaled(timeouts.START)):
            self.proc.stop()
            raise AssertionError(f"no 'Listening on' line: {self._first_line()!r}")
        self.port = int(process.LISTENING.match(self._first_line())["port"])

    def _first_line(self) -> str:
        assert self.pipe is not None
        return self.pipe.snapshot().split(b"\n", 1)[0].decode("utf-8", "replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _status(self, field_name: str) -> int:
        """A number of /proc/PID/status (0 once the process is gone)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        except OSError:
            return 0
        match = re.search(rf"^{field_name}:\s+(\d+)", status, re.MULTILINE)
        return int(match.group(1)) if match else 0

    def rss_kib(self) -> int:
        """Resident set size now, in KiB."""
        return self._status("VmRSS")

    def peak_rss_kib(self) -> int:
        """The highest resident set size so far (the kernel's high-water mark), in KiB."""
        return self._status("VmHWM")

    def threads(self) -> int:
        return self._status("Threads")

    def open_fds(self) -> int:
        """Open file descriptors: the listener, the logs and one per accepted connection."""
        try:
            return sum(1 for _ in Path(f"/proc/{self.pid}/fd").iterdir())
        except OSError:
            return 0

    def cpu_ticks(self) -> int:
        """User + system time of the server so far, in clock ticks."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii")
        except OSError:
            return 0
        fields = stat.rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)

    def wait_idle(self, timeout: float = 120.0) -> float:
        """Wait until the server has used (almost) no CPU for 0.5 s; the seconds waited."""
        started = time.monotonic()
        before = self.cpu_ticks()
        while time.monotonic() - started < timeout:
            time.sleep(0.5)
            now = self.cpu_ticks()
            if now - before <= 2:
                break
            before = now
        return time.monotonic() - started

    def lines(self) -> list[str]:
        """Standard output's complete lines (a last line cut short by the server's exit
        mid-write, when its log was blocked, was not logged)."""
        data = self.pipe.snapshot() if self.pipe is not None else self.out_path.read_bytes()
        return process._lines(data[: data.rfind(b"\n") + 1])

    def errors(self) -> list[str]:
        return process._lines(self.err_path.read_bytes())

    def count_errors(self, *fragments: str) -> int:
        """[ERROR] lines containing any of ``fragments``."""
        return sum(any(f in line for f in fragments) for line in self.errors())

    def truncate(self) -> None:
        os.truncate(self.out_path, 0)

    def trim_log(self, limit: int = 64 * MIB) -> None:
        """Empty the stdout file once it passes ``limit`` bytes (a flood logs megabytes
        a second; RSS, not the log, is what those tests read)."""
        if self.pipe is None and self.out_path.stat().st_size > limit:
            self.truncate()

    def terminate(self, timeout: float = 30.0) -> tuple[int | None, float]:
        """SIGTERM; the exit status (None: killed after ``timeout``) and the seconds it took."""
        started = time.monotonic()
        result = self.proc.stop(timeout=timeout)
        seconds = time.monotonic() - started
        if self.pipe is not None:
            self.pipe.drain()
        return result.exit_code, seconds

    def stop(self) -> None:
        if self.proc.alive():
            self.terminate()
        elif self.pipe is not None:
            self.pipe.drain()


class Hostile:
    """bench/hostile in the background: ``peers`` hostile peers of one mode."""

    def __init__(self, port: int, mode: str, peers: int, seconds: float,
                 *options: str) -> None:
        self.argv = [str(HOSTILE), "--mode", mode, "--peers", str(peers),
                     "--duration", str(seconds), *options, HOST, str(port)]
        self.seconds = seconds
        self.proc = process.Process(self.argv, role="hostile")

    @property
    def command(self) -> str:
        return " ".join(["bench/hostile", *self.argv[1:-1], "PORT"])

    def wait_connected(self, timeout: float = 120.0) -> int:
        """Until every peer's first connect has ended; how many connected."""
        found = self.proc.out.wait_for(r"^connected (\d+)$", timeout=timeout)
        if not found:
            self.proc.stop()
            raise AssertionError(f"hostile peers not connected in {timeout:.0f} s: "
                                 f"{self.proc.err.snapshot()[-300:]!r}")
        return int(found[0][1])

    def result(self, early: bool = False) -> dict[str, Any]:
        """Its report, once its --duration is over (``early``: SIGTERM ends it now)."""
        done = self.proc.stop() if early else self.proc.wait(self.seconds + 60)
        lines = done.out_lines
        if done.exit_code != 0 or not lines or not lines[-1].startswith("{"):
            raise AssertionError(f"bench/hostile failed ({done.exit_code}): "
                                 f"{done.stderr[-300:]!r}")
        return json.loads(lines[-1])

    def stop(self) -> None:
        self.proc.stop()


def real_clients(port: int, seconds: float, clients: int = 1_000_000) -> dict[str, Any]:
    """Real clients one after another for ``seconds`` (at most ``clients`` of them), each
    connect, one small message, close (bench/loadgen --handshakes): how many were
    served, the errors and the latency p50/p99/max in ms."""
    out = loadgen.run(port, Load(handshakes=True, messages=clients, seconds=max(1.0, seconds)))
    return {"round_trips": out.round_trips, "errors": out.errors,
            "first_error": out.first_error, "p50_ms": round(out.p50_us / 1000, 2),
            "p99_ms": round(out.p99_us / 1000, 2), "max_ms": round(out.max_us / 1000, 2)}


def xor_default(data: bytes) -> bytes:
    """PROTOCOL.md section 2 with the default key (the lab's wire, not the product's)."""
    return xor(data, DEFAULT_KEY)


def exchange(sock: socket.socket, message: bytes) -> None:
    """Send one xor message and check its ACK (raises on anything else)."""
    sock.sendall(frame(xor_default(message)))
    length = int.from_bytes(recv_exact(sock, 4), "big")
    ack = xor_default(recv_exact(sock, length))
    expected = b"ACK: Received %d bytes" % len(message)
    if ack != expected:
        raise AssertionError(f"ACK {ack!r}, expected {expected!r}")


def real_client_round(port: int) -> float:
    """Connect, one message, close: the seconds it took (what a user waits)."""
    started = time.monotonic()
    with connect(port, timeout=30.0) as sock:
        exchange(sock, b"a real client")
    return time.monotonic() - started


def junk_bytes() -> bytes:
    """What a fuzzer sends: random frames, cut frames, lengths far too large, noise."""
    kind = secrets.randbelow(5)
    if kind == 0:  # a few whole random frames
        return b"".join(frame(secrets.token_bytes(secrets.randbelow(2000)))
                        for _ in range(1 + secrets.randbelow(5)))
    if kind == 1:  # a large frame, cut short
        return frame(secrets.token_bytes(200000))[: secrets.randbelow(200000)]
    if kind == 2:  # a length over the limit
        return (0x7FFFFFFF).to_bytes(4, "big") + secrets.token_bytes(100)
    if kind == 3:  # noise
        return secrets.token_bytes(secrets.randbelow(5000))
    return frame(secrets.token_bytes(1 << 20))  # a whole 1 MiB frame


def real_client_latency(port: int, options: tuple[str, ...] = ()) -> float:
    """One real client in a process of its own (bench/loadgen --handshakes, one iteration):
    connect, (handshake,) one message, close. Its latency in seconds; raises if not served.

    A separate C process keeps the test's own threads (peers trickling) out of the figure.
    ``options``: the server's cipher options (``--cipher noise --key-file PATH``).
    """
    given = dict(zip(options[::2], options[1::2], strict=True))
    key_file = given.get("--key-file")
    result = loadgen.run(port, Load(handshakes=True, messages=1, seconds=30.0,
                                    cipher=given.get("--cipher", "xor"),
                                    key_file=Path(key_file) if key_file else None))
    if result.errors or result.round_trips != 1:
        raise AssertionError(f"real client not served: {result.first_error}")
    return result.max_us / 1e6
