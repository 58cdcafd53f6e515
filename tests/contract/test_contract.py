"""The command-line contract, run over both languages (issue 11, item 5).

Each row of invocations.ROWS runs once against the C program and once against
the Python program of its kind. Two kinds of test per row:

- test_both_languages_agree: the same stdout lines, stderr lines and exit
  status, modulo the program's name in the usage text (``server`` /
  ``server.py``, ``client`` / ``client.py``) and the port a server on port 0
  picks. A failure here is drift between the languages.
- test_as_protocol_says: each language on its own gives the row's exit status
  and ``[ERROR]`` line, and after a usage error the usage text (its --help).

test_every_error_line_has_a_row checks that the table covers every
``[ERROR]`` line of PROTOCOL.md section 7 that a command line can produce.

Everything runs on 127.0.0.1 / ::1 against fake peers in this process; the
one name-resolution row runs in an empty network namespace. The programs are
the registry's (lab/securemsg_lab/core/registry.py), started by the lab's launcher
(process.py). Per-run timeout: SECUREMSG_CONTRACT_TIMEOUT seconds (default 10),
times SECUREMSG_TEST_TIMEOUT_SCALE.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from securemsg_lab.core import process, registry, timeouts
from securemsg_lab.core.paths import REPO
from securemsg_lab.wire.protocol import ack_payload, frame, xor
from securemsg_lab.wire.rawsock import RawPeerError, drain, read_frame

from .invocations import ANY, ROWS, Row

TIMEOUT = timeouts.scaled(float(os.environ.get("SECUREMSG_CONTRACT_TIMEOUT", "10")))
#: the two languages of PROTOCOL.md, as the registry knows them
LANGUAGES = tuple(registry.default().reference_names())  # the project's own programs
TIMED_OUT = -1000  # the status of a run killed after TIMEOUT seconds


def program(lang: str, role: str) -> list[str]:
    """The argv prefix of a language's `server` or `client` (from the registry)."""
    return registry.default()[lang].program(role)


def usage_name(lang: str, role: str) -> str:
    """The name a program's usage text calls it: its file name (`server`, `server.py`)."""
    return Path(program(lang, role)[-1]).name


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: list[str]
    stderr: list[str]

    def normalized(self, name: str) -> Outcome:
        """The usage text's program name as PROG, a port-0 server's port as PORT."""
        usage = re.compile(rf"^(\s*(?:[Uu]sage:\s+)?){re.escape(name)}(?= |$)")
        listening = re.compile(r"^(\[INFO\] Listening on .*):\d+$")

        def fix(lines: list[str]) -> list[str]:
            return [listening.sub(r"\1:PORT", usage.sub(r"\1PROG", line)) for line in lines]

        return Outcome(self.status, fix(self.stdout), fix(self.stderr))


# --- fake peers for the client rows -----------------------------------------------------


def _answer(kind: str, key: bytes) -> Callable[[socket.socket], None]:
    """What a peer of ``kind`` does with one accepted connection."""

    def ack(conn: socket.socket) -> None:
        with contextlib.suppress(RawPeerError):  # until the client closes
            while True:
                payload = read_frame(conn)
                conn.sendall(frame(xor(ack_payload(len(payload)), key)))

    def once(conn: socket.socket) -> None:
        try:
            read_frame(conn)
        except RawPeerError:
            return
        if kind == "reset":  # close with an RST instead of a FIN
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif kind == "garbage":
            conn.sendall(frame(xor(b"ACK: Received 3 bytes\x1b[2J", key)))
            drain(conn)  # until the client closes
        elif kind == "huge":
            conn.sendall(b"\x7f\xff\xff\xff")
            drain(conn)

    return ack if kind == "ack" else once


@contextlib.contextmanager
def fake_peer(row: Row) -> Iterator[int | None]:
    """Listen on a loopback port for the row's ``peer``; yield the port."""
    if row.peer is None or row.peer == "run":
        yield None
        return
    family = socket.AF_INET6 if "::1" in row.args else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    stop = threading.Event()
    thread = None
    try:
        sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        if row.peer != "refused":  # bound but not listening: connections are refused
            sock.listen(8)
        if row.peer not in ("refused", "silent"):  # silent: never accepts
            thread = threading.Thread(target=_serve, args=(sock, row, stop), daemon=True)
            thread.start()
        yield sock.getsockname()[1]
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=TIMEOUT)
        sock.close()


def _serve(sock: socket.socket, row: Row, stop: threading.Event) -> None:
    handle = _answer(row.peer or "", row.peer_key)
    sock.settimeout(0.1)
    for _ in range(int(TIMEOUT * 20)):  # bounded: at most TIMEOUT * 2 seconds of waiting
        if stop.is_set():
            return
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        # OSError: the client went away; its side of the story is what is tested
        with conn, contextlib.suppress(OSError):
            conn.settimeout(TIMEOUT)
            handle(conn)


# --- running the programs ---------------------------------------------------------------


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("contract")
    contents = {"keyfile": b"secret\n", "crlf": b"secret\r\n", "empty": b"", "blank": b"\n",
                "psk": bytes(range(1, 33))}
    paths = {}
    for name, data in contents.items():
        (base / name).write_bytes(data)
        paths[name] = str(base / name)
    (base / "dir").mkdir()
    paths["dir"] = str(base / "dir")
    paths["missing"] = str(base / "missing")
    return paths


@pytest.fixture(scope="session")
def busy_port() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield str(sock.getsockname()[1])


def _run(argv: list[str], row: Row, stdin: str) -> Outcome:
    if row.isolated:
        argv = ["unshare", "--net", *argv]
    if row.peer == "run":
        return _run_server(argv, row)
    # program_env: no developer SECUREMSG_KEY, NO_COLOR=1; then the row's variables
    return _outcome(process.run(argv, role=row.program, stdin=stdin.encode(), timeout=TIMEOUT,
                                env=process.program_env(row.env)))


def _outcome(result: process.ProcResult) -> Outcome:
    status = TIMED_OUT if result.timed_out else result.exit_code
    assert status is not None
    return Outcome(status, result.out_lines, result.err_lines)


def _run_server(argv: list[str], row: Row) -> Outcome:
    """Start the server, wait for its Listening line, stop it with SIGTERM."""
    server = process.Process(argv, role="server", env=process.program_env(row.env))
    # both servers install their signal handlers before the Listening line
    if server.out.wait_for(process.LISTENING, timeout=TIMEOUT):
        return _outcome(server.stop(timeout=TIMEOUT))  # SIGTERM; killed if it lingers
    return _outcome(server.wait(timeout=TIMEOUT))  # it exited without listening (or hangs)


def _fill(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


@functools.cache
def _outcomes(
    index: int, values_key: tuple[tuple[str, str], ...]
) -> tuple[dict[str, Outcome], dict[str, str]]:
    """Both languages' outcomes of ROWS[index] (once per session), and the values
    its placeholders took."""
    row = ROWS[index]
    values = dict(values_key)
    with fake_peer(row) as port:
        if port is not None:
            values["port"] = str(port)
        argv = [_fill(arg, values) for arg in row.args]
        stdin = _fill(row.stdin, values)
        with ThreadPoolExecutor(len(LANGUAGES)) as pool:  # the languages side by side
            runs = {lang: pool.submit(_run, [*program(lang, row.program), *argv], row, stdin)
                    for lang in LANGUAGES}
            results = {lang: run.result() for lang, run in runs.items()}
    return results, values


@pytest.fixture
def outcomes(request: pytest.FixtureRequest, files: dict[str, str], busy_port: str) -> Callable:
    def get(row: Row) -> tuple[dict[str, Outcome], dict[str, str]]:
        if row.isolated and not _can_isolate():
            pytest.skip("needs `unshare --net` (root or CAP_SYS_ADMIN)")
        values = {**files, "busy": busy_port}
        return _outcomes(ROWS.index(row), tuple(sorted(values.items())))

    return get


@functools.cache
def _can_isolate() -> bool:
    if shutil.which("unshare") is None:
        return False
    return process.run(["unshare", "--net", "true"], role="unshare",
                       timeout=TIMEOUT).exit_code == 0


@functools.cache
def _help_text(lang: str, role: str) -> list[str]:
    return process.run([*program(lang, role), "--help"], role=role, timeout=TIMEOUT).out_lines


# --- the tests --------------------------------------------------------------------------

ROW_IDS = [row.name for row in ROWS]


def _show(outcome: Outcome) -> str:
    return (f"exit {outcome.status}\n  stdout: " + "\n          ".join(outcome.stdout)
            + "\n  stderr: " + "\n          ".join(outcome.stderr))


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_both_languages_agree(row: Row, outcomes: Callable) -> None:
    results, _ = outcomes(row)
    normal = {lang: out.normalized(usage_name(lang, row.program))
              for lang, out in results.items()}
    first, *others = LANGUAGES
    for other in others:
        assert normal[first] == normal[other], (
            f"{first}:\n{_show(normal[first])}\n{other}:\n{_show(normal[other])}")


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_as_protocol_says(row: Row, lang: str, outcomes: Callable) -> None:
    results, values = outcomes(row)
    out = results[lang]
    shown = _show(out)
    assert out.status == row.status, shown
    if row.error is None:
        assert out.stderr == [], shown
    elif row.error == ANY:
        assert out.stderr[:1] != [] and out.stderr[0].startswith("[ERROR] "), shown
    else:
        assert out.stderr[:1] == [_fill(row.error, values)], shown
    if row.status == 2:
        assert out.stderr[1:] == _help_text(lang, row.program), "usage text after the error"
    if row.args and row.args[-1] in ("--help", "-h"):
        assert out.stdout == _help_text(lang, row.program) != [], shown
    if row.peer == "run":
        assert out.stdout[0].startswith("[INFO] Listening on "), shown
        assert out.stdout[-1] == "[INFO] Shutting down", shown


# --- coverage of PROTOCOL.md section 7 --------------------------------------------------

# [ERROR] lines of section 7 no command line alone can produce, and why.
NOT_FROM_A_COMMAND_LINE = {
    "[ERROR] <usage problem>": "the generic form; every named usage problem has rows",
    "[ERROR] Send to TARGET failed: <strerror>": "needs a send to fail after connect",
    "[ERROR] Cannot accept a connection: <strerror>": "a rare system failure",
    "[ERROR] Client refused: PEER: <strerror>": "a rare system failure",
    "[ERROR] Cannot derive the key: ...": "a rare system failure",
    "[ERROR] Log output blocked: N lines not written":
        "needs a standard output left unread through a shutdown",
}
PLACEHOLDERS = re.compile(r"<[^>]+>|\.\.\.|\b(?:HOST|TARGET|PATH|ADDR|PORT|N|M|K)\b")


def _section_7_error_lines() -> list[str]:
    text = (REPO / "PROTOCOL.md").read_text(encoding="utf-8")
    section = text[text.index("## 7 Error catalogue"):text.index("## 8 Secure mode")]
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", section)]
    lines = [s if s.startswith("[ERROR]") else f"[ERROR] {s}"
             for s in spans if s.startswith(("[ERROR] ", "Empty key from"))]
    return lines


def _pattern(template: str) -> re.Pattern[str]:
    parts = PLACEHOLDERS.split(template)
    return re.compile(".+".join(re.escape(part) for part in parts) + "$")


def test_every_error_line_has_a_row() -> None:
    errors = [row.error for row in ROWS if row.error not in (None, ANY)]
    missing = []
    for template in _section_7_error_lines():
        if template in NOT_FROM_A_COMMAND_LINE or "PEER" in template:
            continue
        pattern = _pattern(template)
        if not any(pattern.match(error) for error in errors):
            missing.append(template)
    assert missing == [], "PROTOCOL.md section 7 lines without a row in invocations.py"


def test_section_7_is_read() -> None:
    """The coverage test above must see the catalogue, not an empty list."""
    lines = _section_7_error_lines()
    assert "[ERROR] Missing port" in lines
    assert "[ERROR] Empty key from SECUREMSG_KEY" in lines
    assert len(lines) > 20
