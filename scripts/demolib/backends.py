"""Where the programs run: what both backends offer, and the command lines they share.

Both backends (`local.LocalBackend`, `docker.DockerBackend`) offer the same operations
(start a server, run a client, open an interactive client, capture one server's traffic,
put a man in the middle), so the steps never care which one they drive. Everything
started is registered with the `Janitor`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from securemsg.crypto import DEFAULT_KEY

from demolib.capture import Capture, FallbackCapture
from demolib.procs import DemoError, Janitor, LineLog, RunResult, run

if TYPE_CHECKING:
    from demolib.mitm import Tamper

LANGS = {"c": "C", "py": "Python"}
IMAGES = {"c": "securemsg/c:latest", "py": "securemsg/python:latest"}
START_TIMEOUT = 20.0  # noise mode derives its key with Argon2id at start-up


def server_label(lang: str, cipher: str) -> str:
    """A server's name in the output (and its network alias on Docker)."""
    return f"{lang}-server" if cipher == "xor" else f"{lang}-noise"


def common_options(key: str, cipher: str) -> list[str]:
    """The seed's command lines stay unchanged with the default key and cipher."""
    options = [] if key.encode() == DEFAULT_KEY else ["--key", key]
    return options + (["--cipher", cipher] if cipher != "xor" else [])


@dataclass
class Server:
    """A running server: how lab clients reach it, how this process reaches it, its log."""

    lang: str
    cipher: str
    target: tuple[str, int]  # for the backend's clients
    host_addr: tuple[str, int]  # for raw sockets opened by the demo itself
    log: LineLog
    display: list[str]
    container: str | None = None

    @property
    def label(self) -> str:
        return server_label(self.lang, self.cipher)


@dataclass
class Interactive:
    """A client in interactive mode: one message per line written to its stdin."""

    proc: subprocess.Popen[bytes]
    log: LineLog
    display: list[str]

    def send(self, line: str, timeout: float = 30.0) -> list[str]:
        mark = self.log.mark()
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        self.log.wait_for(r"^\[RECV\] |^\[ERROR\]", since=mark, timeout=timeout)
        return [entry.text for entry in self.log.settle(mark, quiet=0.1)]

    def close(self, timeout: float = 30.0) -> int:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise DemoError(f"the client did not exit within {timeout:.0f} s") from exc


@dataclass
class Mitm:
    """A man in the middle, running: clients connect to `target`; `lines` is its log."""

    target: tuple[str, int]
    display: list[str]
    lines: list[str] = field(default_factory=list)
    finish: Callable[[], None] | None = None  # waits for the relayed connection to end

    def wait(self) -> list[str]:
        if self.finish is not None:
            self.finish()
        return self.lines


@dataclass(frozen=True)
class Client:
    """A client to run: its language, the server it talks to, and what it sends.

    message None: an interactive client, one message per line of its stdin;
    key None: the demo's key.
    """

    lang: str
    target: tuple[str, int]
    message: str | None = None
    key: str | None = None
    cipher: str = "xor"


@dataclass(frozen=True)
class Program:
    """A lab program to run: its language, its role and command line, how it is used."""

    lang: str
    role: str  # "client" or "server"
    argv: list[str]
    interactive: bool = False  # messages are written to its stdin
    connects: bool = True  # False: it stops at its arguments, before any connection


Wrapped = tuple[list[str], list[str]]  # (the argv to run, the argv shown to the class)


class Backend:
    """What the steps need from a place to run programs, and what both places share.

    A subclass says where the programs are (`prefixes`), how a program runs there
    (`wrap`), how a server starts, and how to capture and to relay its traffic.
    """

    name = ""
    description = ""
    capture_method = "auto"  # auto: tcpdump when it starts, else the recording relay
    prefixes: ClassVar[dict[str, str]] = {}  # language -> where its programs are
    run_timeout = 40.0  # for a client or a program that runs to its end

    def __init__(self, repo: Path, janitor: Janitor, key: str) -> None:
        self.repo, self.janitor, self.key = repo, janitor, key
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.env.pop("SECUREMSG_KEY", None)  # the demo passes its key explicitly

    # -- command lines ---------------------------------------------------------------------

    def executable(self, lang: str, role: str) -> list[str]:
        """The server or client of one language: a C binary or a Python script."""
        path = self.prefixes[lang] + role
        return [path] if lang == "c" else ["python3", f"{path}.py"]

    def server_command(
        self, lang: str, port: str, key: str | None, cipher: str, bind: str | None = None
    ) -> list[str]:
        options = (["--bind", bind] if bind else []) + common_options(key or self.key, cipher)
        if lang == "c":
            return [*self.executable(lang, "server"), *options, port]
        return [*self.executable(lang, "server"), "--port", port, *options]

    def client_program(self, client: Client) -> Program:
        options = common_options(client.key or self.key, client.cipher)
        host, port, message = client.target[0], str(client.target[1]), client.message
        executable = self.executable(client.lang, "client")
        if client.lang == "c":
            text = [message] if message is not None else []
            argv = [*executable, *options, host, port, *text]
        else:
            text = ["--message", message] if message is not None else []
            argv = [*executable, "--host", host, "--port", port, *text, *options]
        return Program(client.lang, "client", argv, interactive=message is None)

    def wrap(self, program: Program) -> Wrapped:
        """How `program` runs here, and how it is shown. Local processes run it as it is."""
        return program.argv, program.argv

    # -- processes ---------------------------------------------------------------------------

    def run(self, argv: list[str], timeout: float, merge: bool = False) -> RunResult:
        return run(argv, timeout=timeout, cwd=self.repo, env=self.env, merge=merge)

    def spawn(
        self, argv: list[str], what: str, stdin: int = subprocess.DEVNULL, merge: bool = True
    ) -> subprocess.Popen[bytes]:
        return self.janitor.spawn(argv, what, stdin, merge, cwd=self.repo, env=self.env)

    # -- what the steps use ------------------------------------------------------------------

    def prepare(self) -> None: ...
    def start_server(self, lang: str, cipher: str = "xor", key: str | None = None) -> Server:
        raise NotImplementedError

    def client_display(self, client: Client) -> list[str]:
        return self.wrap(self.client_program(client))[1]

    def run_client(self, client: Client) -> RunResult:
        """Run a client with a message to its end."""
        return self.run(self.wrap(self.client_program(client))[0], self.run_timeout, merge=True)

    def run_program(self, lang: str, role: str, args: list[str]) -> tuple[list[str], RunResult]:
        """Run a program with arguments it refuses; return how it is shown, and its result."""
        argv = [*self.executable(lang, role), *args]
        wrapped, shown = self.wrap(Program(lang, role, argv, connects=False))
        return shown, self.run(wrapped, self.run_timeout, merge=True)

    def open_client(self, client: Client) -> Interactive:
        """Start an interactive client (a `client` without a message)."""
        argv, shown = self.wrap(self.client_program(client))
        proc = self.spawn(argv, f"{client.lang} client", stdin=subprocess.PIPE)
        return Interactive(proc, LineLog(proc), shown)

    def refused_target(self, server: Server) -> tuple[str, int]:
        raise NotImplementedError

    def capture(self, server: Server) -> Capture:
        """tcpdump, the recording relay, or tcpdump falling back to the relay (--capture)."""
        tcpdump = None if self.capture_method == "relay" else self.tcpdump_capture(server)
        if tcpdump is None and self.capture_method == "tcpdump":
            raise DemoError("tcpdump is not installed")
        if tcpdump is None:
            return self.relay_capture(server)
        if self.capture_method == "tcpdump":
            return tcpdump
        return FallbackCapture(tcpdump, self.relay_capture(server))

    def tcpdump_capture(self, server: Server) -> Capture | None:
        """tcpdump on the server's traffic; None where tcpdump is not installed."""
        raise NotImplementedError

    def relay_capture(self, server: Server) -> Capture:
        raise NotImplementedError

    def mitm(self, server: Server, tamper: Tamper) -> Mitm:
        raise NotImplementedError


def wait_listening(server: Server, what: str) -> Server:
    """Wait for the server's `Listening on` line; learn the real port when it chose one."""
    try:
        line = server.log.wait_for(r"^\[INFO\] Listening on ", timeout=START_TIMEOUT)[0]
    except DemoError as exc:
        detail = " | ".join(entry.text for entry in server.log.since(0)[-3:])
        raise DemoError(f"{what} did not start: {detail or 'no output'}") from exc
    port = int(line.text.rsplit(":", 1)[1])
    if server.host_addr[1] == 0:
        server.host_addr = (server.host_addr[0], port)
        server.target = (server.target[0], port)
    return server
