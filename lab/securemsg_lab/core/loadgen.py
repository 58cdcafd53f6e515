"""The one wrapper of `bench/loadgen`, the compiled load client (bench/README.md).

Whoever drives a server with load -- the benchmark, the handout's task checks, the
stress tests -- describes the load as a `Load`, runs it with `run()` through the lab's
launcher and reads a `LoadResult`:

    result = loadgen.run(port, Load(connections=16, size=64, seconds=1.0))
    result.rt_per_s, result.p99_us, result.errors, result.first_error

`run()` raises `LoadgenError` only when loadgen printed no result (bad usage, a crash,
a hang); failed round trips are counted in `LoadResult.errors`, for the caller to judge.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import process, timeouts
from .paths import REPO

PROGRAM = REPO / "bench" / "loadgen"
LOOPBACK = "127.0.0.1"
#: loadgen's wait for one ACK unless a Load says otherwise (its own default is the
#: client's, 5 s: too short for a 1 MiB frame on a loaded machine)
IDLE_TIMEOUT = 30
#: pins a program to the first CPU (`Load.prefix` and the server's launch prefix)
ONE_CPU = ("taskset", "-c", "0")


class LoadgenError(Exception):
    """loadgen printed no result line: bad usage, a crash, or it hung."""


@dataclass(frozen=True)
class Load:
    """One loadgen run: its load options and the client options it shares with c/client."""

    connections: int = 1
    size: int = 64
    messages: int = 1_000_000  # per connection, at most
    seconds: float = 1.0  # at most, once every connection is ready
    cipher: str = "xor"
    key_file: Path | None = None  # noise: the 32-byte PSK file the server has
    handshakes: bool = False  # each iteration: connect, handshake, one message, close
    split_writes: bool = False  # length and body in two writes, TCP_NODELAY off
    payload: str = "text"  # or "binary"
    idle_timeout: int = IDLE_TIMEOUT
    prefix: tuple[str, ...] = ()  # e.g. ONE_CPU

    def argv(self, port: int, host: str = LOOPBACK, program: Path = PROGRAM) -> list[str]:
        argv = [*self.prefix, str(program), "--connections", str(self.connections),
                "--size", str(self.size), "--messages", str(self.messages),
                "--duration", f"{self.seconds:g}", "--cipher", self.cipher,
                "--payload", self.payload, "--idle-timeout", str(self.idle_timeout)]
        if self.handshakes:
            argv.append("--handshakes")
        if self.split_writes:
            argv.append("--split-writes")
        if self.key_file is not None:
            argv += ["--key-file", str(self.key_file)]
        return [*argv, host, str(port)]


@dataclass(frozen=True)
class LoadResult:
    """loadgen's JSON result line (`raw`), its main figures as attributes."""

    rt_per_s: float
    mb_per_s: float
    round_trips: int
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    errors: int
    first_error: str
    exit_code: int | None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, line: str, exit_code: int | None) -> LoadResult:
        raw = json.loads(line)
        return cls(rt_per_s=float(raw["rt_per_s"]), mb_per_s=float(raw["mb_per_s"]),
                   round_trips=int(raw["round_trips"]), p50_us=float(raw["p50_us"]),
                   p90_us=float(raw["p90_us"]), p99_us=float(raw["p99_us"]),
                   p999_us=float(raw["p999_us"]), max_us=float(raw["max_us"]),
                   errors=int(raw["errors"]), first_error=str(raw["first_error"]),
                   exit_code=exit_code, raw=raw)

    @property
    def ok(self) -> bool:
        """Every round trip made and checked."""
        return self.errors == 0 and self.round_trips > 0


def run(port: int, load: Load = Load(), *, host: str = LOOPBACK, program: Path = PROGRAM,
        cwd: Path | None = None) -> LoadResult:
    """Run one load against host:port (loopback only: loadgen refuses anything else)."""
    argv = load.argv(port, host, program)
    done = process.run(argv, role="loadgen", cwd=cwd,
                       timeout=load.seconds + timeouts.scaled(load.idle_timeout + 30))
    lines = done.out_lines
    if done.timed_out:
        raise LoadgenError(f"loadgen hung: {' '.join(argv)}")
    if not lines or not lines[-1].startswith("{"):
        errors = [line for line in done.err_lines if line.startswith("[ERROR]")]
        detail = " | ".join(errors[:1] or done.err_lines[-3:]) or "no output"
        raise LoadgenError(f"loadgen exit {done.exit_code}: {detail}")
    try:
        return LoadResult.parse(lines[-1], done.exit_code)
    except (ValueError, KeyError) as exc:
        raise LoadgenError(f"loadgen printed an unreadable result: {lines[-1][:200]}") from exc


def build(targets: Sequence[str] = ("loadgen",), repo: Path = REPO) -> None:
    """`make -C bench` (loadgen compiles the project's C modules into bench/build/)."""
    done = process.run(["make", "-s", "-C", str(repo / "bench"), *targets], role="make",
                       timeout=timeouts.scaled(300))
    if done.exit_code != 0:
        raise LoadgenError(f"make -C bench {' '.join(targets)} failed: "
                           f"{' | '.join(done.err_lines[-5:])}")
