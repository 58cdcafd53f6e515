"""Signals and the life of child programs (issue 19, point 9).

* The launcher starts every program with default signal dispositions, whatever this
  process inherited (a background job or `nohup` starts with SIGINT ignored).
* Each program installs the handlers it relies on: a server started with SIGINT ignored
  still stops on SIGINT (the demo's case is in tests/demo/test_demo.py).
* The programs a lab tool starts die with it, however it ends: SIGKILL the demo, the
  matrix or the benchmark mid-run, and none of their programs is left running.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from securemsg_lab.core import registry
from securemsg_lab.core.process import Process, run
from securemsg_lab.core.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]
#: runs "$@" with SIGINT ignored, as `cmd &` in a script or `nohup cmd` would
IGNORING_SIGINT = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]
HANDLED = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM)

pytestmark = pytest.mark.timeout(300)


def ignored_mask(status: str) -> int:
    """The SigIgn bit mask of a /proc/PID/status text."""
    line = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
    return int(line.split()[1], 16)


def bit(signum: int) -> int:
    return 1 << (signum - 1)


def test_children_start_with_default_dispositions() -> None:
    saved = {signum: signal.signal(signum, signal.SIG_IGN) for signum in HANDLED}
    try:
        done = run(["cat", "/proc/self/status"], timeout=scaled(10))
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert done.exit_code == 0, done.stderr
    mask = ignored_mask(done.stdout.decode())
    assert not [signal.Signals(s).name for s in HANDLED if mask & bit(s)]


def test_the_wrapper_really_ignores_sigint() -> None:
    """What the tests below rely on: a program run through IGNORING_SIGINT starts with
    SIGINT ignored (so a pass there is the program's own handler at work)."""
    done = run([*IGNORING_SIGINT, "cat", "/proc/self/status"], timeout=scaled(10))
    assert ignored_mask(done.stdout.decode()) & bit(signal.SIGINT)


@pytest.mark.parametrize("name", registry.default().names())
def test_server_started_ignoring_sigint_stops_on_sigint(name: str) -> None:
    impl = registry.default()[name]
    server = Process([*IGNORING_SIGINT, *impl.program("server"),
                      *impl.server_args(0, ["--bind", "127.0.0.1"])], role="server")
    server.wait_listening()
    result = server.stop(signal.SIGINT, timeout=scaled(20))
    assert not result.timed_out, f"{name} server ignored SIGINT"
    assert result.exit_code == 0, result.err_lines
    assert result.out_lines[-1] == "[INFO] Shutting down"


# -- killed mid-run: nothing left behind ----------------------------------------------


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process; None once it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (None if fields[0] == "Z" else (int(fields[1]), fields[19]))


def descendants(root: int) -> dict[int, str]:
    """Every live process below `root`: pid -> start time (to tell a reused pid)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found, todo = {}, [root]
    while todo:
        for pid, started in children.get(todo.pop(), []):
            found[pid] = started
            todo.append(pid)
    return found


def still_running(seen: dict[int, str]) -> dict[int, str]:
    left = {}
    for pid, started in seen.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            left[pid] = cmdline.decode(errors="replace").strip()
    return left


def kill_mid_run(argv: list[str], ready: Callable[[dict[int, str]], bool]) -> None:
    """Start a lab tool, SIGKILL it once `ready(its descendants)`, then wait for every
    program it had started to be gone."""
    tool = Process(argv, role="tool", merge=True, cwd=ROOT)
    deadline = time.monotonic() + scaled(120)
    try:
        while not ready(below := descendants(tool.pid)):
            assert tool.alive(), tool.out.snapshot().decode()[-3000:]
            assert time.monotonic() < deadline, tool.out.snapshot().decode()[-3000:]
            time.sleep(0.02)
        tool.send_signal(signal.SIGKILL)
    finally:
        tool.stop(timeout=scaled(10))
    deadline = time.monotonic() + scaled(15)
    while (left := still_running(below)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"left running after SIGKILL of {argv[2]}: {left}"


def servers_running(below: dict[int, str]) -> bool:
    """At least one program below is a server (its command line says so)."""
    return any("server" in cmd for cmd in still_running(below).values())


def test_sigkill_of_the_demo_leaves_no_program(tmp_path: Path) -> None:
    kill_mid_run([sys.executable, "-m", "securemsg_lab.demo", "--backend", "local",
                  "--no-pause", "--step", "1,2,3"], servers_running)


def test_sigkill_of_the_matrix_leaves_no_program(tmp_path: Path) -> None:
    kill_mid_run([sys.executable, "-m", "securemsg_lab.matrix", "--backend", "local",
                  "-t", "interactive,idle_timeout,shutdown_with_client",
                  "--results", str(tmp_path)], servers_running)


def test_sigkill_of_the_bench_leaves_no_program(tmp_path: Path) -> None:
    built = run(["make", "-s", "-C", str(ROOT / "bench")], timeout=scaled(240))
    assert built.exit_code == 0, built.stderr.decode()
    kill_mid_run([sys.executable, "-m", "securemsg_lab.benchmark", "--no-build", "--quick",
                  "--rounds", "1", "--seconds", "3", "--no-sweep",
                  "--json", str(tmp_path / "bench.json")],
                 lambda below: len(still_running(below)) >= 2)  # a server and its load
