"""The measuring: every server of every build and bench/refserver started side by side,
then rounds in which each scenario runs once on each of them, interleaved (the order
turns every round), so that all of them see the same machine; then, for the charts, a
sweep of connection counts x message sizes and the handshake rate.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import loadgen
from ..core.loadgen import Load, LoadgenError
from .builds import BenchError, BenchServer, Build, start
from .work import DOC_VERSION, REFERENCE, SCENARIOS, THIS, Doc, Run, Scenario, messages_for

Say = Callable[[str], None]


def say_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """Everything a run depends on, in one place."""

    ciphers: tuple[str, ...] = ("xor", "noise")
    rounds: int = 3
    seconds: float = 1.0  # per loadgen run
    scenarios: tuple[Scenario, ...] = SCENARIOS
    sweep_connections: tuple[int, ...] = (1, 4, 16)
    sweep_sizes: tuple[int, ...] = (64, 1024, 64 * 1024, 1 << 20)
    sweep: bool = True
    handshakes: bool = True

    def describe(self) -> dict[str, Any]:
        return {"ciphers": list(self.ciphers), "rounds": self.rounds,
                "seconds_per_run": self.seconds,
                "scenarios": [s.key for s in self.scenarios],
                "sweep_connections": list(self.sweep_connections) if self.sweep else [],
                "sweep_sizes": list(self.sweep_sizes) if self.sweep else []}


@dataclass
class Session:
    """The servers of one run and what has been measured so far."""

    plan: Plan
    key_file: Path
    say: Say
    pin: tuple[str, ...]
    servers: dict[tuple[tuple[str, str, str], bool], BenchServer] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    round_loads: list[float] = field(default_factory=list)  # 1-min, at each round's start

    def load(self, server: BenchServer, scenario: Scenario | None, connections: int, size: int,
             **extra: Any) -> Run | None:
        """One loadgen run on a server; None (and a note) if loadgen printed nothing."""
        build, name, cipher = server.key
        one_cpu = scenario is not None and scenario.one_cpu
        spec = Load(connections=connections, size=size, cipher=cipher,
                    messages=messages_for(size, connections), seconds=self.plan.seconds,
                    key_file=self.key_file if cipher == "noise" else None,
                    prefix=self.pin if one_cpu else (), **extra)
        try:
            result = loadgen.run(server.port, spec)
        except LoadgenError as exc:
            self.skipped.append(f"{build}/{name}/{cipher}: {exc}")
            return None
        finally:
            server.truncate_log()
        return {"build": build, "server": name, **result.raw}


def series_keys(builds: list[Build], ciphers: tuple[str, ...], skipped: list[str]
                ) -> list[tuple[str, str, str]]:
    """(build, server, cipher) of every server to start: the yardstick first."""
    keys = [(THIS, REFERENCE, "xor")]
    for build in builds:
        for name, impl in build.implementations.items():
            for cipher in ciphers:
                if impl.has(cipher):
                    keys.append((build.key, name, cipher))
                elif build.key == THIS:
                    skipped.append(f"{name}/{cipher}: unsupported (registry features)")
    return keys


def start_all(stack: contextlib.ExitStack, session: Session, builds: list[Build],
              keys: list[tuple[str, str, str]], workdir: Path) -> None:
    by_key = {b.key: b for b in builds}
    pinned = any(s.one_cpu for s in session.plan.scenarios)
    for key in keys:
        for one_cpu in (False, True) if pinned else (False,):
            build, name, cipher = key
            session.servers[(key, one_cpu)] = start(
                stack, by_key[build], name, cipher, session.key_file, workdir,
                session.pin if one_cpu else ())


def rounds(session: Session, keys: list[tuple[str, str, str]]) -> list[Run]:
    """Each scenario on each server once per round; the order turns every round."""
    runs: list[Run] = []
    for number in range(session.plan.rounds):
        session.round_loads.append(os.getloadavg()[0])
        session.say(f"round {number + 1}/{session.plan.rounds} (load average "
                    f"{session.round_loads[-1]:.1f})")
        for scenario in session.plan.scenarios:
            turn = number % len(keys)
            for key in keys[turn:] + keys[:turn]:
                server = session.servers[(key, scenario.one_cpu)]
                run = session.load(server, scenario, scenario.connections, scenario.size)
                if run is not None:
                    runs.append({"round": number, "scenario": scenario.key, **run})
                if not server.alive():
                    raise BenchError(f"{'/'.join(key)} server exited during a run")
    return runs


def sweep(session: Session, keys: list[tuple[str, str, str]]) -> list[Run]:
    """This build's servers and the yardstick at every connection count x size."""
    runs = []
    for key in (k for k in keys if k[0] == THIS):
        session.say(f"sweep: {'/'.join(key[1:])}")
        for connections in session.plan.sweep_connections:
            for size in session.plan.sweep_sizes:
                run = session.load(session.servers[(key, False)], None, connections, size)
                if run is not None:
                    runs.append(run)
    return runs


def handshakes(session: Session, keys: list[tuple[str, str, str]]) -> list[Run]:
    """Connections per second: connect, (handshake,) one 64 B message, close; 2 clients,
    at most 3000 each (no more than 6000 sockets left in TIME_WAIT)."""
    runs = []
    for key in (k for k in keys if k[0] == THIS and k[1] != REFERENCE):
        run = session.load(session.servers[(key, False)], None, 2, 64, handshakes=True)
        if run is not None:
            runs.append(run)
    return runs


def measure(builds: list[Build], plan: Plan, say: Say = say_stderr) -> Doc:
    """Start everything, run the rounds (and the sweep), stop everything: the document."""
    started = time.time()
    loads = [os.getloadavg()[0]]
    skipped: list[str] = []
    pin = loadgen.ONE_CPU if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else ()
    if not pin and any(s.one_cpu for s in plan.scenarios):
        skipped.append("one-cpu: not pinned (one CPU, or no taskset)")
    with tempfile.TemporaryDirectory(prefix="securemsg-bench-") as tmp, \
            contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        key_file = workdir / "bench.psk"
        key_file.write_bytes(secrets.token_bytes(32))
        session = Session(plan, key_file, say, pin, skipped=skipped)
        keys = series_keys(builds, plan.ciphers, skipped)
        say(f"starting {len(keys)} servers{' (and as many on one CPU)' if pin else ''}")
        start_all(stack, session, builds, keys, workdir)
        runs = rounds(session, keys)
        swept = sweep(session, keys) if plan.sweep else []
        shakes = handshakes(session, keys) if plan.handshakes else []
    loads.append(os.getloadavg()[0])
    return {
        "version": DOC_VERSION,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "cpus": os.cpu_count(),
        "load_average": loads,
        "round_load_average": session.round_loads,
        "config": plan.describe(),
        "builds": [b.describe() | {"implementations": sorted(b.implementations)}
                   for b in builds],
        "rounds": runs,
        "runs": swept,
        "handshakes": shakes,
        "skipped": skipped,
    }
