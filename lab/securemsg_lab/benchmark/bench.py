"""securemsg benchmark: every registered server on loopback, driven by the compiled load client.

Starts each implementation's server (`c/server`, `python/server.py`, and any other
entry of the registry, docs/implementations.md) on 127.0.0.1 with port 0, runs
`bench/loadgen` against each at several connection counts and message sizes
(every run bounded in messages *and* seconds, every ACK checked), then measures
raw XOR speed, noise-vs-xor ratios, handshakes per second and the cost of the
seed's split-write bug, and checks the targets of issues 2 and 5. The 64 B,
1-connection runs behind the rt/s targets run in two placements -- wherever the
scheduler puts server and load client, and both on one CPU -- each beside a bare
loopback exchange (`bench/rttfloor`, no server) as a reference: on a virtual
machine a wake-up across CPUs can cost more than everything a server does -- and
beside `bench/refserver`, a minimal C thread-per-connection xor server: the yardstick
of the servers' targets (C >= 0.9x of it, Python >= 0.25x, issue 11).

Usage: securemsg-bench [--quick] [--strict] [--json FILE] [--charts DIR] [--no-build]
                       [--servers c,python]
See bench/README.md for the columns and the targets.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..core import registry
from ..core.paths import REPO
from ..core.process import LaunchError, Process

ROOT = REPO
BENCH_DIR = ROOT / "bench"
LOADGEN = BENCH_DIR / "loadgen"
XORSPEED = BENCH_DIR / "xorspeed"
RTTFLOOR = BENCH_DIR / "rttfloor"
# Where the 64 B, 1-connection runs put server, load client and reference:
# "any": where the scheduler likes; "one-cpu": all on CPU 0 (`taskset -c 0`).
PLACEMENTS = ("any", "one-cpu")
REFSERVER = BENCH_DIR / "refserver"
#: the yardstick's name among the servers' results (not a registry implementation)
REFERENCE = "refserver"
#: the yardstick targets: (implementation, share of refserver's rt/s at 64 B, 1 connection)
REFERENCE_TARGETS = (("c", "C", 0.9), ("python", "Python", 0.25))

MiB = 1024 * 1024
SERVER_SEQUENCE = itertools.count(1)  # unique log file names per server start
RUN_BYTE_BUDGET = 1024 * MiB  # the most payload one load run may send, whatever its length
MAX_MESSAGES_PER_CONNECTION = 2_000_000


class BenchError(Exception):
    """Base class of the benchmark's failures."""


class ServerStartError(BenchError):
    """A server did not print its Listening line in time."""


class LoadgenError(BenchError):
    """loadgen failed or printed no result line."""


@dataclass(frozen=True)
class BenchConfig:
    """Everything a run depends on, in one place."""

    servers: tuple[str, ...] = ("c", "python")
    ciphers: tuple[str, ...] = ("xor", "noise")
    connections: tuple[int, ...] = (1, 4, 16)
    sizes: tuple[int, ...] = (64, 1024, 64 * 1024, MiB)
    seconds_per_run: float = 1.5
    handshake_seconds: float = 1.5
    split_write_seconds: float = 1.5
    xor_rounds: int = 200
    paired_rounds: int = 3  # xor/noise alternations for the 64 B, 1-connection targets
    paired_seconds: float = 1.0
    strict: bool = False
    build: bool = True
    json_path: Path | None = None
    charts_dir: Path | None = None  # bench.json and the PNGs of securemsg_lab.benchmark.charts

    @classmethod
    def quick(cls, **overrides: object) -> BenchConfig:
        base = cls(
            connections=(1, 16),
            sizes=(64, MiB),
            seconds_per_run=0.6,
            handshake_seconds=0.6,
            split_write_seconds=0.6,
            xor_rounds=50,
            paired_seconds=0.4,
        )
        return cls(**{**base.__dict__, **overrides})


@dataclass
class Target:
    name: str
    measured: float | None
    threshold: float
    unit: str

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return "SKIP"
        return "PASS" if self.measured >= self.threshold else "FAIL"


@dataclass
class Results:
    runs: list[dict[str, object]] = field(default_factory=list)
    handshakes: list[dict[str, object]] = field(default_factory=list)
    split_writes: list[dict[str, object]] = field(default_factory=list)
    binary_payload: list[dict[str, object]] = field(default_factory=list)
    # placement -> server -> cipher -> rt/s of the alternated 64 B, 1-connection runs
    paired: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    # placement -> rt/s of bench/rttfloor, one per alternation round
    floor: dict[str, list[float]] = field(default_factory=dict)
    # placement -> server -> rt/s of bench/refserver, alternated with that server's runs
    reference: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    xor_speed: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    load_average: list[float] = field(default_factory=list)  # 1-min, at start and end
    targets: list[Target] = field(default_factory=list)


# --- servers -----------------------------------------------------------------------------


def server_command(server: str, cipher: str, key_file: Path) -> list[str]:
    """A registry implementation's server (or the yardstick) on 127.0.0.1, port 0."""
    if server == REFERENCE:
        return [str(REFSERVER), "0"]
    impl = registry.default()[server]
    options = ["--bind", "127.0.0.1"]
    if impl.has("max-clients"):
        options += ["--max-clients", "256"]
    if cipher == "noise":
        options += ["--cipher", "noise", "--key-file", str(key_file)]
    return [*impl.program("server"), *impl.server_args(0, options)]


@dataclass
class RunningServer:
    name: str
    cipher: str
    port: int
    process: Process
    stdout_path: Path

    def truncate_log(self) -> None:
        """Drop the log so far: the server logs every message (1 MiB ones too)."""
        os.truncate(self.stdout_path, 0)

    def alive(self) -> bool:
        return self.process.alive()


@contextmanager
def running_server(
    server: str, cipher: str, workdir: Path, key_file: Path, prefix: tuple[str, ...] = ()
) -> Iterator[RunningServer]:
    sequence = next(SERVER_SEQUENCE)
    stdout_path = workdir / f"{server}-{cipher}-{sequence}.out"
    stderr_path = workdir / f"{server}-{cipher}-{sequence}.err"
    # Log files, appended (truncate_log() then leaves no sparse hole), not pipes: the
    # servers log every message, and reading that here would compete with them for CPU.
    process = Process([*prefix, *server_command(server, cipher, key_file)],  # taskset execs
                      role=f"{server} server", cwd=ROOT, log_files=(stdout_path, stderr_path))
    try:
        port = process.wait_listening()
        yield RunningServer(server, cipher, port, process, stdout_path)
    except LaunchError as exc:
        detail = stderr_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise ServerStartError(f"{server} server ({cipher}): {exc}: {' | '.join(detail)}") from exc
    finally:
        process.stop()


# --- loadgen -----------------------------------------------------------------------------


def messages_for(size: int, connections: int) -> int:
    """Count bound of one run, so that no run sends more than RUN_BYTE_BUDGET."""
    per_connection = RUN_BYTE_BUDGET // max(1, size * connections)
    return max(4, min(MAX_MESSAGES_PER_CONNECTION, per_connection))


def run_loadgen(
    port: int, cipher: str, key_file: Path, args: list[str], seconds: float,
    prefix: tuple[str, ...] = (),
) -> dict:
    command = [*prefix, str(LOADGEN), "--cipher", cipher, "--duration", f"{seconds:g}", *args]
    if cipher == "noise":
        command += ["--key-file", str(key_file)]
    command += ["127.0.0.1", str(port)]
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=seconds + 60, check=False, cwd=ROOT
        )
    except subprocess.TimeoutExpired as exc:
        raise LoadgenError(f"loadgen hung: {' '.join(command)}") from exc
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        stderr = done.stderr.decode(errors="replace").strip()
        raise LoadgenError(f"loadgen exit {done.returncode}: {stderr[-300:]}")
    result = json.loads(lines[-1])
    result["exit_status"] = done.returncode
    return result


def roundtrip_run(srv: RunningServer, key_file: Path, conns: int, size: int, secs: float) -> dict:
    args = ["--connections", str(conns), "--size", str(size)]
    args += ["--messages", str(messages_for(size, conns))]
    result = run_loadgen(srv.port, srv.cipher, key_file, args, secs)
    srv.truncate_log()
    result["server"] = srv.name
    return result


def handshake_run(srv: RunningServer, key_file: Path, secs: float) -> dict:
    # 3000 per client: at most 6000 sockets per run left in TIME_WAIT
    args = ["--handshakes", "--connections", "2", "--size", "64", "--messages", "3000"]
    result = run_loadgen(srv.port, srv.cipher, key_file, args, secs)
    srv.truncate_log()
    result["server"] = srv.name
    return result


def split_write_run(srv: RunningServer, key_file: Path, secs: float) -> list[dict]:
    """The seed's bug (length and body in two writes, no TCP_NODELAY) beside ours."""
    out = []
    for extra in (["--messages", "20000"], ["--messages", "2000", "--split-writes"]):
        args = ["--connections", "1", "--size", "64", *extra]
        result = run_loadgen(srv.port, srv.cipher, key_file, args, secs)
        result["server"] = srv.name
        out.append(result)
    srv.truncate_log()
    return out


def binary_payload_run(srv: RunningServer, key_file: Path, size: int, secs: float) -> dict:
    """Same as the table's 1-connection run, but with bytes the log must escape."""
    args = ["--connections", "1", "--size", str(size), "--payload", "binary"]
    args += ["--messages", str(messages_for(size, 1))]
    result = run_loadgen(srv.port, srv.cipher, key_file, args, secs)
    srv.truncate_log()
    result["server"] = srv.name
    return result


# --- XOR speed ---------------------------------------------------------------------------


def placement_prefix(placement: str) -> list[str]:
    """The command prefix that puts a program where ``placement`` says."""
    return ["taskset", "-c", "0"] if placement == "one-cpu" else []


def loopback_floor(seconds: float, placement: str) -> float:
    """rt/s of bench/rttfloor: a 64 B exchange's bytes between two bare threads."""
    done = subprocess.run(
        [*placement_prefix(placement), str(RTTFLOOR), "--duration", f"{seconds:g}"],
        capture_output=True,
        timeout=seconds + 30,
        check=True,
    )
    return float(json.loads(done.stdout.decode().strip().splitlines()[-1])["rt_per_s"])


def c_xor_speed(rounds: int) -> float:
    done = subprocess.run(
        [str(XORSPEED), "--size", str(MiB), "--rounds", str(rounds)],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return float(json.loads(done.stdout.decode().strip().splitlines()[-1])["mb_per_s"])


PY_XOR_SNIPPET = """
import importlib, json, sys, time
rounds, size, how = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
module, _, name = how.rpartition(".")
plain = getattr(importlib.import_module(module), name)
key, data = b"MY_SECRET_KEY", bytes(range(256)) * (size // 256)
fn = lambda d: plain(d, key)
fn(data)  # warm-up
best = float("inf")
for _ in range(3):
    start = time.process_time()  # CPU time: waiting for a core does not count
    for _ in range(rounds):
        out = fn(data)
    best = min(best, time.process_time() - start)
assert fn(out) == data
print(json.dumps({"mb_per_s": size * rounds / best / 1e6}))
"""

# (label, function): what the programs call for every frame (XorCipher.apply is this
# function with its key; every call builds its key stream). crypto.xor, the byte-by-byte
# reference, is not timed: a few MB/s, and no program uses it.
PY_XOR_VARIANTS = (("python", "securemsg.crypto_fast.xor"),)


def python_xor_available(how: str) -> bool:
    module, _, name = how.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return False
    return callable(found)


def python_xor_speed(how: str, rounds: int) -> float:
    if not python_xor_available(how):
        raise BenchError(f"no Python function {how}")
    done = subprocess.run(
        [sys.executable, "-c", PY_XOR_SNIPPET, str(rounds), str(MiB), how],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"python xor speed: {done.stderr.decode(errors='replace')[-300:]}")
    return float(json.loads(done.stdout.decode().strip().splitlines()[-1])["mb_per_s"])


# --- report ------------------------------------------------------------------------------


def human_size(size: int) -> str:
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


def fmt_num(value: object, digits: int = 0) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:,.{digits}f}"


def print_table(runs: list[dict]) -> None:
    header = ("server", "cipher", "conns", "size", "rt/s", "MB/s", "p50 µs", "p90 µs", "p99 µs",
              "p99.9 µs", "errors")
    rows = [
        (
            str(r["server"]),
            str(r["cipher"]),
            str(r["connections"]),
            human_size(int(r["size"])),
            fmt_num(r.get("rt_per_s")),
            fmt_num(r.get("mb_per_s"), 1),
            fmt_num(r.get("p50_us"), 1),
            fmt_num(r.get("p90_us"), 1),
            fmt_num(r.get("p99_us"), 1),
            fmt_num(r.get("p999_us"), 1),
            str(r.get("errors", "-")),
        )
        for r in runs
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    left = {0, 1}

    def line(cells: tuple[str, ...]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in pairs)

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def find_run(results: Results, server: str, cipher: str, conns: int, size: int) -> dict | None:
    for run in results.runs:
        if (run["server"], run["cipher"], run["connections"], run["size"]) == (
            server,
            cipher,
            conns,
            size,
        ) and not run.get("errors"):
            return run
    return None


def metric(run: dict | None, key: str) -> float | None:
    if run is None or not isinstance(run.get(key), int | float):
        return None
    return float(run[key])


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def paired_median(
    results: Results, server: str, cipher: str, placement: str = "any"
) -> float | None:
    """Median rt/s of the alternated runs; for "any", the table's run if there are none."""
    values = results.paired.get(placement, {}).get(server, {}).get(cipher, [])
    if values:
        return statistics.median(values)
    if placement != "any":
        return None
    return metric(find_run(results, server, cipher, 1, 64), "rt_per_s")


def reference_share(results: Results, server: str, placement: str) -> float | None:
    """A server's xor rt/s at 64 B, 1 connection, as a share of bench/refserver's in the
    same alternation rounds."""
    values = results.reference.get(placement, {}).get(server, [])
    own = results.paired.get(placement, {}).get(server, {}).get("xor", [])
    if not values or not own:
        return None
    return ratio(statistics.median(own), statistics.median(values))


def compute_targets(results: Results) -> list[Target]:
    targets = []
    for placement in PLACEMENTS:
        for server, label, share in REFERENCE_TARGETS:
            targets.append(Target(f"{label} server xor / refserver, 64 B, 1 conn [{placement}]",
                                  reference_share(results, server, placement), share, "x"))
        c_xor_64 = paired_median(results, "c", "xor", placement)
        py_xor_64 = paired_median(results, "python", "xor", placement)
        c_noise_64 = paired_median(results, "c", "noise", placement)
        where = f"[{placement}]"
        targets += [
            Target(f"C server xor, 64 B, 1 conn {where}", c_xor_64, 50_000, "rt/s"),
            Target(f"Python server xor, 64 B, 1 conn {where}", py_xor_64, 15_000, "rt/s"),
            Target(f"C noise / C xor rt/s {where}", ratio(c_noise_64, c_xor_64), 0.5, "x"),
        ]
    return [
        *targets,
        Target("C XOR of 1 MiB (crypto_xor_apply)", results.xor_speed.get("c"), 1000, "MB/s"),
        Target("Python XOR of 1 MiB (crypto_fast.xor)", results.xor_speed.get("python"), 200,
               "MB/s"),
    ]


def print_summary(results: Results, config: BenchConfig) -> None:
    print()
    print("XOR throughput, 1 MiB buffer (best of 3, per CPU second):")
    for label, speed in results.xor_speed.items():
        print(f"  {label:<17} {fmt_num(speed, 0):>8} MB/s")

    for placement, by_server in results.paired.items():
        print_paired(placement, by_server, results.floor.get(placement, []),
                     results.reference.get(placement, {}), config)

    print()
    print("noise vs xor (same server, 1 connection; 64 B: medians of the [any] alternated runs):")
    big = MiB if MiB in config.sizes else max(config.sizes)
    for server in config.servers:
        rt = ratio(paired_median(results, server, "noise"), paired_median(results, server, "xor"))
        mb = ratio(
            metric(find_run(results, server, "noise", 1, big), "mb_per_s"),
            metric(find_run(results, server, "xor", 1, big), "mb_per_s"),
        )
        print(
            f"  {server:<7} rt/s at 64 B: {fmt_num(rt, 2)}x   "
            f"MB/s at {human_size(big)}: {fmt_num(mb, 2)}x"
        )

    if results.handshakes:
        print()
        print("Connections per second (connect, [handshake,] one 64 B message, close; 2 clients):")
        for hs in results.handshakes:
            print(
                f"  {hs['server']:<7} {hs['cipher']:<6} {fmt_num(hs.get('rt_per_s')):>8} /s"
                f"   p50 {fmt_num(hs.get('p50_us'), 1)} µs   p99 {fmt_num(hs.get('p99_us'), 1)} µs"
                f"   errors {hs.get('errors')}"
            )

    if results.split_writes:
        print()
        print("Seed-style split writes (length, then body; no TCP_NODELAY) vs one write, 64 B:")
        for sw in results.split_writes:
            label = "split writes" if sw.get("split_writes") else "one write   "
            print(
                f"  {sw['server']:<7} {label} {fmt_num(sw.get('rt_per_s')):>8} rt/s"
                f"   p50 {fmt_num(sw.get('p50_us'), 1)} µs   p99 {fmt_num(sw.get('p99_us'), 1)} µs"
            )

    if results.binary_payload:
        print()
        print("Server log escaping: text vs binary payload (xor, 1 connection):")
        for bp in results.binary_payload:
            text = find_run(results, str(bp["server"]), "xor", 1, int(bp["size"]))
            print(
                f"  {bp['server']:<7} {human_size(int(bp['size']))}: "
                f"text {fmt_num(metric(text, 'mb_per_s'), 1):>7} MB/s   "
                f"binary {fmt_num(bp.get('mb_per_s'), 1):>7} MB/s"
                f"   (p50 {fmt_num(metric(text, 'p50_us'), 0)} vs "
                f"{fmt_num(bp.get('p50_us'), 0)} µs)"
            )

    failed_runs = [
        r
        for r in [
            *results.runs,
            *results.handshakes,
            *results.split_writes,
            *results.binary_payload,
        ]
        if r.get("errors")
    ]
    if failed_runs:
        print()
        print("Runs with errors (first error of each):")
        for r in failed_runs:
            print(
                f"  {r['server']}/{r['cipher']}/{r['mode']}/{r['connections']} conns/"
                f"{human_size(int(r['size']))}: {r['errors']} errors, {r.get('first_error')}"
            )

    if results.skipped:
        print()
        print("Skipped:")
        for reason in results.skipped:
            print(f"  {reason}")

    print()
    loads = " -> ".join(f"{x:.1f}" for x in results.load_average)
    print(f"Load average (1 min) at start -> end: {loads} on {os.cpu_count()} CPUs")
    print("Targets (issues 2 and 5; a shared 2-core machine: server and loadgen compete):")
    width = max((len(t.name) for t in results.targets), default=0)
    for t in results.targets:
        shown = fmt_num(t.measured, 2 if t.unit == "x" else 0)
        print(f"  {t.verdict:<4}  {t.name:<{width}} {shown:>10} {t.unit:<4} "
              f"(target >= {t.threshold:g})")
    for placement, values in results.floor.items():
        if values:
            print(f"  [{placement}]: bare loopback reference (bench/rttfloor, no server) "
                  f"{fmt_num(statistics.median(values))} rt/s")


PLACEMENT_TITLES = {
    "any": "server and loadgen where the scheduler puts them",
    "one-cpu": "server, loadgen and reference all on CPU 0 (taskset -c 0)",
}


def print_paired(
    placement: str, by_server: dict[str, dict[str, list[float]]], floor: list[float],
    reference: dict[str, list[float]], config: BenchConfig,
) -> None:
    """One placement's alternated runs, and each median as a share of the reference."""
    print()
    print(
        f"64 B, 1 connection, [{placement}] {PLACEMENT_TITLES[placement]}; xor and noise "
        f"alternated {config.paired_rounds} times ({config.paired_seconds:g} s each), rt/s:"
    )
    for server, by_cipher in by_server.items():
        for cipher, values in by_cipher.items():
            shown = ", ".join(fmt_num(v) for v in values)
            median = fmt_num(statistics.median(values)) if values else "-"
            print(f"  {server:<7} {cipher:<6} median {median:>8}   ({shown})")
    for server, values in reference.items():
        if not values:
            continue
        shown = ", ".join(fmt_num(v) for v in values)
        print(f"  refserver (beside {server}) median {fmt_num(statistics.median(values)):>8}   "
              f"({shown})   [bench/refserver]")
    if not floor:
        return
    reference = statistics.median(floor)
    shown = ", ".join(fmt_num(v) for v in floor)
    print(f"  bare loopback reference median {fmt_num(reference):>8}   ({shown})   "
          "[bench/rttfloor]")
    shares = [
        f"{server} {cipher} {fmt_num(100 * statistics.median(values) / reference, 0)}%"
        for server, by_cipher in by_server.items()
        for cipher, values in by_cipher.items()
        if values
    ]
    if shares:
        print(f"  as a share of the reference: {', '.join(shares)}")


def save_json(results: Results, config: BenchConfig, path: Path) -> None:
    doc = {
        "config": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in config.__dict__.items()
            if k not in ("json_path", "charts_dir")
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": results.runs,
        "handshakes": results.handshakes,
        "split_writes": results.split_writes,
        "binary_payload": results.binary_payload,
        "paired_64b_rt_per_s": results.paired,
        "xor_mb_per_s": results.xor_speed,
        "loopback_reference_rt_per_s": results.floor,
        "refserver_rt_per_s": results.reference,
        "skipped": results.skipped,
        "load_average": results.load_average,
        "cpus": os.cpu_count(),
        "targets": [
            {
                "name": t.name,
                "measured": t.measured,
                "threshold": t.threshold,
                "unit": t.unit,
                "verdict": t.verdict,
            }
            for t in results.targets
        ],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


def write_charts(results: Results, config: BenchConfig, out_dir: Path) -> None:
    """bench.json in out_dir and the charts drawn from it (so that `make bench-charts`
    redraws the same PNGs from the committed file)."""
    from . import charts  # matplotlib only when charts are asked for

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / charts.RESULTS_NAME
    save_json(results, config, path)
    try:
        written = charts.render_file(path, out_dir)
    except charts.ChartError as exc:  # e.g. every run failed: nothing to draw
        raise BenchError(f"charts: {exc}") from exc
    for chart in written:
        print(f"chart: {chart}")


# --- driver ------------------------------------------------------------------------------


def build(servers: tuple[str, ...]) -> None:
    """The bench tools, and each implementation's local build (registry `local.build`)."""
    builds = [(["make", "-s", "-C", str(BENCH_DIR)], ROOT)]
    for impl in (registry.default()[name] for name in servers):
        if impl.local_build:
            builds.append((list(impl.local_build), impl.root))
    for command, where in builds:
        done = subprocess.run(command, capture_output=True, timeout=300, check=False, cwd=where)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(command)} failed:\n{done.stderr.decode()[-2000:]}")


def require_loadgen() -> None:
    for tool in (LOADGEN, RTTFLOOR, REFSERVER):
        if not tool.exists():
            raise BenchError(f"bench/{tool.name} is not built (make -C bench)")


def supports(server: str, cipher: str) -> bool:
    return (server == REFERENCE and cipher == "xor") or registry.default()[server].has(cipher)


def server_available(server: str) -> bool:
    """Whether the implementation's server program is there (built, installed)."""
    program = registry.default()[server].program("server")
    return all(Path(word).exists() for word in program if Path(word).is_absolute())


def bench_server(
    server: str, cipher: str, config: BenchConfig, workdir: Path, key_file: Path, results: Results
) -> None:
    with running_server(server, cipher, workdir, key_file) as srv:
        for conns in config.connections:
            for size in config.sizes:
                try:
                    run = roundtrip_run(srv, key_file, conns, size, config.seconds_per_run)
                except LoadgenError as exc:
                    results.skipped.append(f"{server}/{cipher}/{conns}/{size}: {exc}")
                    continue
                results.runs.append(run)
                print(
                    f"  {server:<6} {cipher:<5} {conns:>2} conns {human_size(size):>7}: "
                    f"{fmt_num(run.get('rt_per_s')):>8} rt/s  errors {run.get('errors')}",
                    file=sys.stderr,
                    flush=True,
                )
                if not srv.alive():
                    results.skipped.append(f"{server}/{cipher}: server exited, runs stopped")
                    return
        results.handshakes.append(handshake_run(srv, key_file, config.handshake_seconds))
        if cipher == "xor":
            results.split_writes.extend(split_write_run(srv, key_file, config.split_write_seconds))
            big = max(config.sizes)
            results.binary_payload.append(
                binary_payload_run(srv, key_file, big, config.split_write_seconds)
            )


def paired_runs(
    server: str, placement: str, config: BenchConfig, workdir: Path, key_file: Path,
    results: Results,
) -> None:
    """xor and noise servers side by side, 64 B runs alternated with the bare loopback
    reference: all three see the same machine load, so their ratios are less noisy."""
    ciphers = [c for c in ("xor", "noise") if c in config.ciphers and supports(server, c)]
    by_cipher: dict[str, list[float]] = {c: [] for c in ciphers}
    prefix = tuple(placement_prefix(placement))
    floor = results.floor.setdefault(placement, [])
    reference = results.reference.setdefault(placement, {}).setdefault(server, [])
    with contextlib.ExitStack() as stack:
        servers = {
            c: stack.enter_context(running_server(server, c, workdir, key_file, prefix))
            for c in ciphers
        }
        yardstick = stack.enter_context(running_server(REFERENCE, "xor", workdir, key_file,
                                                       prefix))
        for _ in range(config.paired_rounds):
            for cipher, srv in [*servers.items(), (REFERENCE, yardstick)]:
                args = ["--connections", "1", "--size", "64", "--messages", "1000000"]
                try:
                    run = run_loadgen(srv.port, srv.cipher, key_file, args,
                                      config.paired_seconds, prefix)
                except LoadgenError as exc:
                    results.skipped.append(f"{srv.name}/{srv.cipher} [{placement}] paired run: "
                                           f"{exc}")
                    continue
                srv.truncate_log()
                if not run.get("errors"):
                    (reference if cipher == REFERENCE else by_cipher[cipher]).append(
                        float(run["rt_per_s"]))
            try:
                floor.append(loopback_floor(config.paired_seconds, placement))
            except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
                results.skipped.append(f"loopback reference [{placement}]: {exc}")
    results.paired.setdefault(placement, {})[server] = by_cipher


def placements() -> tuple[str, ...]:
    """Both placements where they differ: more than one CPU, and taskset present."""
    if (os.cpu_count() or 1) > 1 and shutil.which("taskset") is not None:
        return PLACEMENTS
    return ("any",)


def run_all(config: BenchConfig) -> Results:
    results = Results()
    results.load_average.append(os.getloadavg()[0])
    with tempfile.TemporaryDirectory(prefix="securemsg-bench-") as tmp:
        workdir = Path(tmp)
        key_file = workdir / "bench.psk"
        key_file.write_bytes(secrets.token_bytes(32))
        for server in config.servers:
            if not server_available(server):
                results.skipped.append(f"{server} server: not built / not present")
                continue
            for cipher in config.ciphers:
                if not supports(server, cipher):
                    results.skipped.append(f"{server}/{cipher}: unsupported (registry features)")
                    continue
                print(f"benchmarking {server} server, {cipher} ...", file=sys.stderr, flush=True)
                try:
                    bench_server(server, cipher, config, workdir, key_file, results)
                except BenchError as exc:
                    results.skipped.append(f"{server}/{cipher}: {exc}")
            for placement in placements() if config.paired_rounds > 0 else ():
                print(f"alternating xor/noise on {server} [{placement}] ...", file=sys.stderr,
                      flush=True)
                try:
                    paired_runs(server, placement, config, workdir, key_file, results)
                except BenchError as exc:
                    results.skipped.append(f"{server} [{placement}] paired runs: {exc}")
    measures = [("c", lambda: c_xor_speed(config.xor_rounds))]
    for label, how in PY_XOR_VARIANTS:
        measures.append((label, lambda how=how: python_xor_speed(how, config.xor_rounds)))
    for label, measure in measures:
        try:
            results.xor_speed[label] = measure()
        except (BenchError, OSError, subprocess.SubprocessError, ValueError) as exc:
            results.skipped.append(f"{label} xor speed: {exc}")
    results.targets = compute_targets(results)
    results.load_average.append(os.getloadavg()[0])
    return results


def parse_args(argv: list[str]) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (about 40 s)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target fails")
    parser.add_argument("--json", type=Path, metavar="FILE", help="save the results as JSON")
    parser.add_argument("--charts", type=Path, metavar="DIR",
                        help="save DIR/bench.json and draw its PNG charts there")
    parser.add_argument("--no-build", action="store_true", help="do not run make first")
    names = registry.default().names()
    parser.add_argument("--servers", default=",".join(names),
                        help=f"implementations, comma list (default: {','.join(names)})")
    parser.add_argument("--ciphers", default="xor,noise", help="comma list: xor,noise")
    parser.add_argument("--seconds", type=float, help="seconds per load run (0.2..30)")
    ns = parser.parse_args(argv)
    unknown = [s for s in ns.servers.split(",") if s and s not in names]
    if unknown:
        parser.error(f"unknown implementation {', '.join(unknown)} (known: {', '.join(names)})")
    overrides: dict[str, object] = {
        "strict": ns.strict,
        "build": not ns.no_build,
        "json_path": ns.json,
        "charts_dir": ns.charts,
        "servers": tuple(s for s in ns.servers.split(",") if s),
        "ciphers": tuple(c for c in ns.ciphers.split(",") if c in ("xor", "noise")),
    }
    if ns.seconds is not None:
        if not 0.2 <= ns.seconds <= 30:
            parser.error("--seconds must be within 0.2..30")
        overrides["seconds_per_run"] = ns.seconds
    return BenchConfig.quick(**overrides) if ns.quick else BenchConfig(**overrides)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    try:
        if config.build:
            build(config.servers)
        require_loadgen()
        results = run_all(config)
    except BenchError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the servers were stopped on the way out
        print("[ERROR] Interrupted", file=sys.stderr)
        return 130
    print()
    print_table(results.runs)
    print_summary(results, config)
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if config.json_path is not None:
        save_json(results, config, config.json_path)
    if config.charts_dir is not None:
        try:
            write_charts(results, config, config.charts_dir)
        except BenchError as exc:
            print(f"[ERROR] {exc}", file=sys.stderr)
            return 1
    failed = any(t.verdict == "FAIL" for t in results.targets)
    return 1 if failed and config.strict else 0


if __name__ == "__main__":
    sys.exit(main())
