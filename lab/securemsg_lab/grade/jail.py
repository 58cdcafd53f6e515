"""Run a submission's program under limits, as prlimit(1) would, and cap its output.

    python -m securemsg_lab.grade.jail --cpu S --memory MB --output KB -- PROGRAM ARGS...

The grader puts this in front of every program of a submission (the launcher starts
it): CPU seconds and address space by setrlimit, no core files, and stdout plus stderr
together at most --output KB: past it one line on stderr says so and the program is
killed. SIGTERM and SIGINT are passed on; the exit status is the program's (a death by
a signal is passed on as the same signal).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import signal
import subprocess
import sys
import threading

CAPPED = "[grader] output limit of {} KB passed: program stopped"
PR_SET_PDEATHSIG = 1


def limits(cpu: int, memory_mb: int) -> None:
    """In the child: its limits, and death with the jail (its own process group, which
    the output cap kills whole, is out of reach of the launcher's kill)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Relay:
    """Copies the program's two streams to ours, until `budget` bytes in all."""

    def __init__(self, child: subprocess.Popen[bytes], budget: int) -> None:
        self.child, self.left, self.lock = child, budget, threading.Lock()
        self.capped = False

    def copy(self, source: int, target: int) -> None:
        while chunk := os.read(source, 65536):
            with self.lock:
                if self.capped:
                    continue  # drained and dropped until the kill lands
                allowed = chunk[:max(self.left, 0)]
                self.left -= len(chunk)
                os.write(target, allowed)
                if self.left < 0:
                    self.capped = True
                    os.killpg(self.child.pid, signal.SIGKILL)  # its children too


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="securemsg_lab.grade.jail")
    parser.add_argument("--cpu", type=int, default=30, help="CPU seconds")
    parser.add_argument("--memory", type=int, default=1024, help="address space, MB")
    parser.add_argument("--output", type=int, default=1024, help="stdout + stderr, KB")
    parser.add_argument("program", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not program:
        parser.error("no program given")
    try:
        child = subprocess.Popen(program, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True,
                                 preexec_fn=lambda: limits(args.cpu, args.memory))
    except OSError as error:
        print(f"[grader] cannot run {program[0]}: {error.strerror}", file=sys.stderr)
        return 127
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda sig, _frame: child.send_signal(sig))
    relay = Relay(child, args.output * 1024)
    assert child.stdout is not None and child.stderr is not None
    threads = [threading.Thread(target=relay.copy, args=(pipe.fileno(), fd), daemon=True)
               for pipe, fd in ((child.stdout, 1), (child.stderr, 2))]
    for thread in threads:
        thread.start()
    code = child.wait()
    for thread in threads:
        thread.join()
    if relay.capped:
        os.write(2, (CAPPED.format(args.output) + "\n").encode())
        return 1
    if code < 0:  # died of a signal: so do we, for the same exit status
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main())
