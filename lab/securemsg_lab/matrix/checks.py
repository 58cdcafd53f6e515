"""Checks of exit codes and log lines against PROTOCOL.md sections 5-8.

A `Checker` collects reasons instead of stopping at the first one, so a failed cell
says everything that was wrong with it. Each reason belongs to one check (`CHECKS`):
a cell's verdict is all of them, the grader weights them apart, so that a missing
shutdown line does not hide (or count as) a wrong ACK.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ..core.process import ProcResult
from ..wire import protocol

Expected = protocol.Expected
MAX_SHOWN = 160
WIRE, PLAINTEXT, LOG, LIFECYCLE = "wire", "plaintext", "log", "lifecycle"
CHECKS = {WIRE: "frames and ACK values", PLAINTEXT: "the plaintext shown",
          LOG: "the log contract: exact lines and errors", LIFECYCLE: "start and shutdown"}


@dataclass
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    #: the checks the case made, each with its reasons (none: that check passed)
    checks: dict[str, list[str]] = field(default_factory=dict)
    #: the run itself broke (aborted, crashed): nothing could be checked
    error: bool = False


@dataclass
class Conn:
    """What one connection to the server should leave in the server's log."""

    messages: list[bytes] = field(default_factory=list)
    peer: str | None = None  # exact PEER when the harness knows it
    handshake: bool = True  # noise: whether the handshake completes
    error: Expected | None = None  # the one [ERROR] line this connection ends with
    evicted: Expected | None = None  # the `Evicted` line before its disconnect (section 9)


def short(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text)} chars)"


def matches(expected: Expected, line: str) -> bool:
    if isinstance(expected, str):
        return line == expected
    return expected.fullmatch(line) is not None


def describe(expected: Expected) -> str:
    return short(expected if isinstance(expected, str) else f"/{expected.pattern}/")


def check_of(line: Expected) -> str:
    """The check a log line belongs to: start/shutdown lines, the plaintext shown, the
    sizes and ACKs a client reports (what went over the wire), or the rest of the log."""
    text = line if isinstance(line, str) else line.pattern.replace("\\", "")
    if text.startswith(("[INFO] Listening on", "[INFO] Cipher:", "[INFO] Shutting down")):
        return LIFECYCLE
    if text.startswith("[RECV] Plaintext"):
        return PLAINTEXT
    if text.startswith(("[RECV] ACK", "[SEND] Encrypted bytes")):
        return WIRE
    return LOG


def error_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("[ERROR]")]


def expected_connection_lines(conn: Conn, cipher: str) -> list[Expected]:
    peer = conn.peer or protocol.PEER
    escaped = re.escape(conn.peer) if conn.peer else protocol.PEER
    lines: list[Expected] = [
        f"[INFO] Client connected: {peer}" if conn.peer
        else re.compile(r"\[INFO\] Client connected: " + escaped)
    ]
    if cipher == "noise" and conn.handshake:
        lines.append(re.compile(r"\[INFO\] Handshake complete: " + escaped))
    for message in conn.messages:
        lines += [protocol.recv_line(message), "[SEND] ACK sent to client"]
    if conn.evicted is not None:
        lines.append(conn.evicted)
    lines.append(re.compile(r"\[INFO\] Client disconnected: " + escaped))
    return lines


class Checker:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.checks: dict[str, list[str]] = {}

    def ran(self, *checks: str) -> None:
        for check in checks:
            self.checks.setdefault(check, [])

    def fail(self, reason: str, check: str = LOG) -> None:
        self.reasons.append(reason)
        self.checks.setdefault(check, []).append(reason)

    def expect(self, condition: bool, reason: str, check: str = LOG) -> bool:
        self.ran(check)
        if not condition:
            self.fail(reason, check)
        return condition

    def result(self) -> Verdict:
        return Verdict(passed=not self.reasons, reasons=list(self.reasons),
                      checks={name: list(self.checks[name]) for name in CHECKS
                              if name in self.checks})

    # --- generic ------------------------------------------------------------------------

    def exit_code(self, proc: ProcResult, expected: int) -> None:
        if proc.timed_out:
            self.fail(f"{proc.role}: timed out after {proc.duration:.1f} s", LIFECYCLE)
            return
        self.expect(proc.exit_code == expected,
                    f"{proc.role}: exit {proc.exit_code}, expected {expected}", LIFECYCLE)

    def lines_equal(self, role: str, stream: str, got: list[str],
                    expected: list[Expected]) -> None:
        """Line by line up to the first difference; the checks of the lines after it
        were not made (an early wrong line says nothing of a later plaintext)."""
        self.ran(LOG)
        for index, want in enumerate(expected):
            self.ran(check_of(want))
            if index >= len(got):
                self.fail(f"{role} {stream}: missing line {describe(want)!r} "
                          f"(after {len(got)} lines)", check_of(want))
                return
            if not matches(want, got[index]):
                self.fail(f"{role} {stream} line {index + 1}: got {short(got[index])!r}, "
                          f"expected {describe(want)!r}", check_of(want))
                return
        if len(got) > len(expected):
            line = got[len(expected)]
            self.fail(f"{role} {stream}: unexpected line {short(line)!r}", check_of(line))

    def lines_as_multiset(self, role: str, stream: str, got: list[str],
                          expected: list[Expected]) -> None:
        self.ran(LOG, *map(check_of, expected))
        left = list(got)
        for want in expected:
            hit = next((i for i, line in enumerate(left) if matches(want, line)), None)
            if hit is None:
                self.fail(f"{role} {stream}: missing line {describe(want)!r}", check_of(want))
            else:
                left.pop(hit)
        for line in left[:5]:
            self.fail(f"{role} {stream}: unexpected line {short(line)!r}", check_of(line))

    def usage_error(self, proc: ProcResult, problem: Expected | None) -> None:
        """Exit 2, one [ERROR] line naming the problem, then the usage text (§5, §7)."""
        self.exit_code(proc, 2)
        errors = error_lines(proc.err_lines)
        self.expect(len(errors) == 1, f"{proc.role} {proc.argv[-3:]}: {len(errors)} [ERROR] "
                                      f"lines, expected 1: {errors[:3]}")
        lines = proc.err_lines
        if lines and problem is not None:
            self.expect(matches(problem, lines[0]),
                        f"{proc.role} {proc.argv[-3:]}: first stderr line {short(lines[0])!r}, "
                        f"expected {describe(problem)!r}")
        self.expect(any("usage" in line.lower() for line in lines[1:]),
                    f"{proc.role} {proc.argv[-3:]}: no usage text after the [ERROR] line")
        self.expect(not proc.out_lines,
                    f"{proc.role}: usage errors go to stderr, stdout has {proc.out_lines[:2]}")

    # --- server ---------------------------------------------------------------------------

    def server(self, proc: ProcResult, cipher: str, conns: list[Conn], *,
               ordered: bool = True, extra_errors: tuple[Expected, ...] = ()) -> None:
        """The server's whole run: start-up lines, one block per connection, clean shutdown.

        `ordered`: the connections came one after another (the case waited for each
        `Client disconnected` line), so the log must be exactly their blocks in order.
        """
        self.exit_code(proc, 0)
        out = proc.out_lines
        head = protocol.server_head(cipher)
        self.lines_equal("server", "stdout", out[:len(head)], head)
        self.expect(bool(out) and out[-1] == "[INFO] Shutting down",
                    f"server stdout: last line {short(out[-1]) if out else None!r}, "
                    "expected '[INFO] Shutting down'", LIFECYCLE)
        end = -1 if out and out[-1] == "[INFO] Shutting down" else len(out)
        body = out[len(head):end]
        if ordered:
            expected = [line for conn in conns for line in expected_connection_lines(conn, cipher)]
            self.lines_equal("server", "stdout", body, expected)
        else:
            self._server_concurrent(body, cipher, conns)
        errors: list[Expected] = [c.error for c in conns if c.error is not None]
        self.lines_as_multiset("server", "stderr", proc.err_lines, [*errors, *extra_errors])

    def _server_concurrent(self, body: list[str], cipher: str, conns: list[Conn]) -> None:
        self.ran(LOG, PLAINTEXT)
        for line in body:
            if not any(p.fullmatch(line) for p in protocol.SERVER_STDOUT_PATTERNS):
                self.fail(f"server stdout: unknown line {short(line)!r}", check_of(line))
        got_recv = Counter(line for line in body if line.startswith("[RECV] "))
        want_recv = Counter(protocol.recv_line(m) for c in conns for m in c.messages)
        for line in (want_recv - got_recv).elements():
            self.fail(f"server stdout: missing {short(line)!r}", PLAINTEXT)
        for line in (got_recv - want_recv).elements():
            self.fail(f"server stdout: unexpected {short(line)!r}", PLAINTEXT)
        acks = sum(1 for line in body if line == "[SEND] ACK sent to client")
        self.expect(acks == sum(want_recv.values()),
                    f"server: {acks} 'ACK sent' lines for {sum(want_recv.values())} messages")
        connected = Counter(self._peers(body, "[INFO] Client connected: "))
        disconnected = Counter(self._peers(body, "[INFO] Client disconnected: "))
        self.expect(sum(connected.values()) == len(conns),
                    f"server: {sum(connected.values())} 'Client connected' lines, "
                    f"expected {len(conns)}")
        self.expect(connected == disconnected,
                    "server: 'Client connected' and 'Client disconnected' peers differ: "
                    f"{sorted((connected - disconnected) + (disconnected - connected))[:4]}")
        if cipher == "noise":
            done = len(self._peers(body, "[INFO] Handshake complete: "))
            want = sum(1 for c in conns if c.handshake)
            self.expect(done == want, f"server: {done} handshakes, expected {want}")

    @staticmethod
    def _peers(lines: list[str], prefix: str) -> list[str]:
        return [line[len(prefix):] for line in lines if line.startswith(prefix)]

    # --- client ---------------------------------------------------------------------------

    def client(self, proc: ProcResult, cipher: str, target: str, messages: list[bytes], *,
               exit_code: int = 0, error: Expected | None = None,
               handshake: bool = True, stdout_tail: list[Expected] | None = None) -> None:
        """A client's run: per message one SEND and one RECV line (§6), noise lines (§8).

        `stdout_tail`: lines after the acknowledged messages (a failing last exchange).
        """
        self.exit_code(proc, exit_code)
        expected = client_stdout(cipher, target, messages, handshake=handshake)
        self.lines_equal(proc.role, "stdout", proc.out_lines, expected + (stdout_tail or []))
        self.lines_equal(proc.role, "stderr", proc.err_lines, [] if error is None else [error])


def client_stdout(cipher: str, target: str, messages: list[bytes], *,
                  handshake: bool = True) -> list[Expected]:
    expected: list[Expected] = []
    if cipher == "noise":
        expected.append(protocol.cipher_line(cipher))
        if handshake:
            expected.append(f"[INFO] Handshake complete: {target}")
    for message in messages:
        expected += [send_line(message, cipher), f"[RECV] {protocol.ack_text(len(message))}"]
    return expected


def send_line(message: bytes, cipher: str) -> str:
    return f"[SEND] Encrypted bytes: {protocol.wire_bytes(len(message), cipher)} bytes"
