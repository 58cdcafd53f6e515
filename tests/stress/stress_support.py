"""Helpers of the stress suite: the scale, a server process, peers, figures."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securemsg.crypto import DEFAULT_KEY, XorCipher
from securemsg.framing import encode_frame
from securemsg_lab.core import process, registry

from tests.support.unit_support import connect, recv_exactly

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
XOR = XorCipher(DEFAULT_KEY)
LOADGEN = ROOT / "bench" / "loadgen"

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
    "shutdown_clients": (100, 100),
    "shutdown_trials": (1, 3),
}


def scale_name() -> str:
    return "long" if os.environ.get("SECUREMSG_STRESS", "short") == "long" else "short"


def scaled(name: str) -> Any:
    short, long = _SCALES[name]
    return long if scale_name() == "long" else short


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


class ServerUnderTest:
    """One server program on 127.0.0.1, port 0, its output in files of ``directory``.

    The lab launcher in its file mode: in memory, the output would be read by a
    thread of this process, and under a 10,000-connection burst that reader
    (sharing the GIL with the load) fell behind, the server's stdout pipe filled
    and its threads queued on their log writes: the test measured itself. A file
    never blocks the server, and a soak's gigabytes of lines go to disk
    (``truncate`` empties it between phases; it is opened for appending).
    """

    def __init__(self, impl: registry.Implementation, options: tuple[str, ...],
                 directory: Path) -> None:
        self.options = options
        directory.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = directory / "server.out", directory / "server.err"
        argv = [*impl.program("server"), *impl.server_args(0, ("--bind", HOST, *options))]
        self.proc = process.Process(argv, role="server",
                                    log_files=(self.out_path, self.err_path))
        self.port = self.proc.wait_listening()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        """Resident set size from /proc (0 once the process is gone)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        except OSError:
            return 0
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) if match else 0

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
        return process._lines(self.out_path.read_bytes())

    def errors(self) -> list[str]:
        return process._lines(self.err_path.read_bytes())

    def truncate(self) -> None:
        os.truncate(self.out_path, 0)

    def terminate(self, timeout: float = 30.0) -> tuple[int | None, float]:
        """SIGTERM; the exit status (None: killed after ``timeout``) and the seconds it took."""
        started = time.monotonic()
        result = self.proc.stop(timeout=timeout)
        return result.exit_code, time.monotonic() - started

    def stop(self) -> None:
        if self.proc.alive():
            self.terminate()


def exchange(sock: socket.socket, message: bytes) -> None:
    """Send one xor message and check its ACK (raises on anything else)."""
    sock.sendall(encode_frame(XOR.apply(message)))
    length = int.from_bytes(recv_exactly(sock, 4), "big")
    ack = XOR.apply(recv_exactly(sock, length))
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
        return b"".join(encode_frame(secrets.token_bytes(secrets.randbelow(2000)))
                        for _ in range(1 + secrets.randbelow(5)))
    if kind == 1:  # a large frame, cut short
        return encode_frame(secrets.token_bytes(200000))[: secrets.randbelow(200000)]
    if kind == 2:  # a length over the limit
        return (0x7FFFFFFF).to_bytes(4, "big") + secrets.token_bytes(100)
    if kind == 3:  # noise
        return secrets.token_bytes(secrets.randbelow(5000))
    return encode_frame(secrets.token_bytes(1 << 20))  # a whole 1 MiB frame


def loadgen(port: int, connections: int, size: int, seconds: float,
            messages: int = 1_000_000) -> dict[str, Any]:
    """bench/loadgen: ``connections`` clients sending ``size``-byte messages for ``seconds``."""
    argv = [str(LOADGEN), "--connections", str(connections), "--size", str(size),
            "--duration", str(seconds), "--messages", str(messages), "--idle-timeout", "30",
            HOST, str(port)]
    done = process.run(argv, timeout=seconds + 120)
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def real_client_latency(port: int, options: tuple[str, ...] = ()) -> float:
    """One real client in a process of its own (bench/loadgen --handshakes, one iteration):
    connect, (handshake,) one message, close. Its latency in seconds; raises if not served.

    A separate C process keeps the test's own threads (peers trickling) out of the figure.
    """
    argv = [str(LOADGEN), "--handshakes", "--messages", "1", "--duration", "30",
            "--idle-timeout", "30", *options, HOST, str(port)]
    done = process.run(argv, timeout=90)
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    if result["errors"] or result["round_trips"] != 1:
        raise AssertionError(f"real client not served: {result.get('first_error')}")
    return result["max_us"] / 1e6
