"""Tasks 7 and 8: the planted bugs, fixed in the workspace, proven with the benchmark,
a count of the server's writes and the cross-language matrix.

Which implementation's copy carries which bug is handout/bugs/bugs.toml's (A: task 7,
B: task 8). Both compare the workspace's server with the reference build, in the same
run, as a ratio. Task 7 also counts the system calls that put the ACKs on the wire
(strace): PROTOCOL.md section 1 asks for one write per frame, and a fix that only turns
Nagle's algorithm off hides the stall but keeps two writes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..core import loadgen, timeouts
from ..wire.protocol import ack_text
from . import procs
from .result import Fail
from .workspace import REPO, Workspace

BENCH_SECONDS = 1.0
#: Fixed, the server is the reference's equal (ratio ~1, 0.4 seen on a busy 2-core machine);
#: the stall makes it ~0.002. The threshold sits far from both.
TASK7_MIN_RATIO = 0.1
TASK8_MIN_RATIO = 0.1
#: below this a second measurement would not change the verdict
STALLED = 0.02
TASK7_CASES = "single_message,interactive,two_frames_one_write,byte_at_a_time"
TASK8_CASES = "empty_message,single_message,interactive,two_frames_one_write"
MATRIX_TIMEOUT = 240.0
#: the traced exchange of task 7: enough ACKs to count, few enough for a stalled server
TRACED_MESSAGES = 40
#: writes per ACK at most: one per frame; a little room for a short write on a busy host
MAX_WRITES_PER_ACK = 1.1
SEND_CALLS = ("write", "writev", "send", "sendto", "sendmsg")
#: `PID call(FD, ...` -- a whole line, or the first half of one another thread interrupted
TRACED_CALL = re.compile(r"^(?:\[pid\s+)?\d+\]?\s+(?P<call>\w+)\((?P<fd>\d+)?")
TRACE_WAIT = 10.0
ACCEPTED = re.compile(r"^(?:\[pid\s+)?\d+\]?\s+accept4?\(.*\)\s+=\s+(?P<fd>\d+)")


@dataclass
class Bench:
    rt_per_s: float
    p50_us: float
    errors: int
    first_error: str

    def show(self) -> str:
        return f"{self.rt_per_s:.0f} rt/s, p50 {self.p50_us / 1000:.2f} ms"


def measure(port: int, size: int) -> Bench:
    load = loadgen.Load(size=size, messages=20000, seconds=BENCH_SECONDS, idle_timeout=3)
    try:
        result = loadgen.run(port, load)
    except loadgen.LoadgenError as exc:
        return Bench(0.0, 0.0, 1, str(exc)[-160:])
    return Bench(result.rt_per_s, result.p50_us, result.errors, result.first_error)


def bench_pair(work: Path, lang: str, size: int) -> tuple[Bench, Bench]:
    """(reference, workspace) measured back to back, one connection."""
    results = []
    for tree in (REPO, work):
        with procs.TaskServer(procs.server_argv(tree, lang, [])) as server:
            results.append(measure(server.port, size))
    return results[0], results[1]


def compare(work: Path, lang: str, size: int, minimum: float, hint: str) -> str:
    ref, mine = bench_pair(work, lang, size)
    ratio = mine.rt_per_s / ref.rt_per_s if ref.rt_per_s else 0.0
    if STALLED <= ratio < minimum and not mine.errors:  # once more: a busy moment?
        ref, mine = bench_pair(work, lang, size)
        ratio = mine.rt_per_s / ref.rt_per_s if ref.rt_per_s else 0.0
    line = (f"benchmark ({size} B messages, 1 connection): reference {ref.show()}, "
            f"yours {mine.show()}: ratio {ratio:.2f} (needs >= {minimum})")
    if ref.errors:
        raise Fail(f"the reference server failed the benchmark: {ref.first_error}",
                   "this is the lab's fault, not yours: tell your instructor")
    if mine.errors:
        raise Fail(f"your server failed the benchmark: {mine.first_error}", hint, [line])
    if ratio < minimum:
        raise Fail("your server is much slower than the reference", hint, [line])
    return line


def matrix_argv(work: Path, server: str, cases: str, results: Path) -> list[str]:
    return [sys.executable, "-m", "securemsg_lab.matrix", "--backend", "local",
            "--implementations", str(procs.write_entries(work)),
            "-s", procs.work_name(server), "-c", ",".join(procs.lab_names()), "-t", cases,
            "--cipher", "xor,noise", "-j", "2", "--results", str(results)]


def matrix(work: Path, server: str, cases: str) -> str:
    """The cross-language matrix, the lab's clients and both ciphers, against the
    workspace's server. A failure prints the command that runs it again."""
    results = work / "results" / f"matrix-{server}"  # kept: the failed cells' logs
    shutil.rmtree(results, ignore_errors=True)
    argv = matrix_argv(work, server, cases, results)
    result = procs.run(argv, timeout=MATRIX_TIMEOUT, cwd=REPO)
    summary = next((ln for ln in reversed(result.stdout.splitlines()) if "cells passed" in ln),
                   result.output.strip()[-160:])
    clients = " and ".join(procs.lab_names())
    if result.returncode != 0:
        failed = [ln.strip() for ln in result.stdout.splitlines() if ln.startswith("FAILED")
                  or ln.strip().startswith("- ")][:8]
        rerun = f"cd {shlex.quote(str(REPO))} && {shlex.join(argv)}"
        raise Fail(f"matrix: {summary.split(';')[0]}",
                   f"the failed cells' logs are in {results}; run the matrix again with "
                   f"the command above (add -v for every line)",
                   [*failed, f"the command: {rerun}"])
    return (f"matrix ({cases}; reference {clients} clients x your {server} server; "
            f"xor, noise): {summary.split(';')[0]}")


def build(ws: Workspace, lang: str) -> None:
    ws.require_tree(procs.tree_of(lang))
    procs.build(ws.root, lang)
    procs.build(REPO, lang)
    try:
        loadgen.build()
    except loadgen.LoadgenError as exc:
        raise procs.ProcessError(str(exc)) from exc


@dataclass
class WriteCount:
    acks: int
    writes: int
    nodelay: bool

    @property
    def per_ack(self) -> float:
        return self.writes / self.acks if self.acks else 0.0

    def show(self) -> str:
        return (f"{self.writes} writes to the client's socket for {self.acks} ACKs "
                f"({self.per_ack:.2f} per ACK); TCP_NODELAY "
                + ("set" if self.nodelay else "not set"))


def read_trace(path: Path) -> tuple[int, bool]:
    """(data system calls on accepted sockets, whether one of them got TCP_NODELAY)."""
    lines = path.read_text(errors="replace").splitlines()
    accepted = {m["fd"] for m in map(ACCEPTED.match, lines) if m}
    writes, nodelay = 0, False
    for line in lines:
        found = TRACED_CALL.match(line)
        if not found or found["fd"] not in accepted:
            continue
        if found["call"] in SEND_CALLS:
            writes += 1
        elif found["call"] == "setsockopt" and "TCP_NODELAY" in line:
            nodelay = nodelay or ", [1]" in line
    return writes, nodelay


def trace_complete(trace: Path, pid: int, timeout: float = TRACE_WAIT) -> None:
    """Until strace has written the server's exit (its last line), or the deadline."""
    ended = re.compile(rf"^{pid}\s+\+\+\+ (exited with|killed by)", re.MULTILINE)
    deadline = time.monotonic() + timeouts.scaled(timeout)
    while time.monotonic() < deadline:
        if trace.exists() and ended.search(trace.read_text(errors="replace")):
            return
        time.sleep(0.05)


def count_writes(work: Path, lang: str) -> WriteCount:
    """The workspace's server under strace, one loadgen connection of a fixed number of
    messages: how many system calls put its ACKs on the wire. A count, not a timing: the
    same on a loaded machine."""
    strace = shutil.which("strace")
    if strace is None:
        raise Fail("strace is not installed: the check counts your server's writes with it",
                   "install it: make setup (or apt-get install strace)")
    with tempfile.TemporaryDirectory(prefix="handout-") as tmp:
        trace = Path(tmp) / "server.trace"
        calls = ",".join(("accept", "accept4", "setsockopt", *SEND_CALLS))
        # -D: strace runs as a grandchild and the server keeps the launcher's process, so
        # stopping it stops the server (a stopped strace would leave its tracee running)
        argv = [strace, "-D", "-f", "-q", "-e", f"trace={calls}", "-o", str(trace),
                *procs.server_argv(work, lang, [])]
        try:
            with procs.TaskServer(argv) as server:
                load = loadgen.Load(size=64, messages=TRACED_MESSAGES, seconds=30,
                                    idle_timeout=5)
                result = loadgen.run(server.port, load)
            trace_complete(trace, server.proc.popen.pid)
        except procs.ProcessError as exc:
            raise Fail(f"strace could not run your server: {exc}",
                       "strace needs ptrace: in a container, run it with --cap-add "
                       "SYS_PTRACE") from exc
        except loadgen.LoadgenError as exc:
            raise Fail(f"your server failed under strace: {exc}",
                       "run it by hand with strace (HANDOUT.md task 7)") from exc
        writes, nodelay = read_trace(trace)
    return WriteCount(result.round_trips, writes, nodelay)


def check_task7(ws: Workspace) -> str:
    lang = procs.bug_for_task(7).implementation
    build(ws, lang)
    source = ws.root / procs.tree_of(lang)
    hint = ("~40 ms per round trip is a TCP timer, not work. Look at how your workspace's "
            f"server ({source}) puts an ACK on the wire and how it sets up a client's "
            f"socket; `strace -f -e trace=sendto,setsockopt {source}/server 5100` shows both")
    line = compare(ws.root, lang, 64, TASK7_MIN_RATIO, hint)
    count = count_writes(ws.root, lang)
    if count.acks == 0 or count.per_ack > MAX_WRITES_PER_ACK:
        raise Fail(f"your server writes each ACK frame in {count.per_ack:.2f} system calls",
                   "fast now, but PROTOCOL.md section 1 asks for one write per frame "
                   "(prefix and payload in one buffer): two writes still mean two "
                   f"segments per ACK. Look at how {source} sends a frame",
                   [line, f"strace: {count.show()}"])
    return "\n  ".join([line, f"strace: {count.show()}", matrix(ws.root, lang, TASK7_CASES)])


def empty_probe(work: Path, lang: str) -> list[str]:
    """An empty message from each built client, both ciphers, to the workspace's server."""
    clients = procs.built_names()
    lines = []
    with tempfile.TemporaryDirectory(prefix="handout-") as tmp:
        psk = Path(tmp) / "lab.psk"
        psk.write_bytes(os.urandom(32))
        for options in ([], ["--cipher", "noise", "--key-file", str(psk)]):
            with procs.TaskServer(procs.server_argv(work, lang, options)) as server:
                for client_lang in clients:
                    client = procs.run(procs.client_argv(REPO, client_lang, server.port, "",
                                                         [*options, "--idle-timeout", "3"]),
                                       timeout=15)
                    if f"[RECV] {ack_text(0)}" not in client.stdout:
                        cipher = "noise" if options else "xor"
                        raise Fail(f"an empty message ({client_lang} client, {cipher}) got no "
                                   f"ACK: {client.output.strip().splitlines()[-1:]}",
                                   "an empty message is a frame of length 0 (PROTOCOL.md "
                                   "sections 1 and 4). Follow what your server does "
                                   "with each message the session hands it")
            lines.append(f"empty message, {'noise' if options else 'xor'}: ACKed "
                         f"({', '.join(clients)} clients)")
    return lines


def check_task8(ws: Workspace) -> str:
    lang = procs.bug_for_task(8).implementation
    ws.require_tree(procs.tree_of(lang))
    lines = empty_probe(ws.root, lang)
    build(ws, lang)
    hint = "every message, empty or not, gets exactly one ACK"
    lines.append(compare(ws.root, lang, 0, TASK8_MIN_RATIO, hint))
    lines.append(matrix(ws.root, lang, TASK8_CASES))
    return "\n  ".join(lines)
