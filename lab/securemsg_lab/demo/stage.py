"""Where the demo's programs run: one core backend (local processes or the Docker lab),
plus what a class is shown.

The `Stage` adds what the steps need beyond the matrix: servers under readable names, the
command line shown for every program (the backend's `display`), captures of one server's
traffic and a man in the middle (the backend's tcpdump and relay). Implementations and
their names come from the registry; everything started is undone by the `Janitor`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core import backend as core
from ..core import registry
from ..core.paths import REPO
from ..core.process import LaunchError, Output
from ..core.registry import Implementation
from ..wire import pcap
from ..wire.mitm import Tamper
from ..wire.protocol import DEFAULT_KEY
from .capture import Capture, FallbackCapture, RelayCapture, TcpdumpCapture
from .procs import DemoError, Janitor, LineLog, RunResult

RUN_TIMEOUT = 40.0  # for a client or a program that runs to its end
DOCKER_RUN_TIMEOUT = 60.0


def server_label(lang: str, cipher: str) -> str:
    """A server's name in the output (and its network alias on Docker)."""
    return f"{lang}-server" if cipher == "xor" else f"{lang}-noise"


def common_options(key: str, cipher: str) -> list[str]:
    """The seed's command lines stay unchanged with the default key and cipher."""
    options = [] if key.encode() == DEFAULT_KEY else ["--key", key]
    return options + (["--cipher", cipher] if cipher != "xor" else [])


@dataclass
class ShownServer:
    """A running server: how lab clients reach it, how this process reaches it, its log."""

    lang: str
    cipher: str
    target: tuple[str, int]  # for the backend's clients
    host_addr: tuple[str, int]  # for raw sockets opened by the demo itself
    log: LineLog
    display: list[str]
    core: core.Server

    @property
    def label(self) -> str:
        return server_label(self.lang, self.cipher)


@dataclass
class TypedClient:
    """A client in interactive mode: one message per line written to its stdin."""

    client: core.Interactive
    log: LineLog
    display: list[str]

    def send(self, line: str, timeout: float = 30.0) -> list[str]:
        mark = self.log.mark()
        self.client.write(line.encode() + b"\n")
        self.log.wait_for(r"^\[RECV\] |^\[ERROR\]", since=mark, timeout=timeout)
        return [entry.text for entry in self.log.settle(mark, quiet=0.1)]

    def close(self, timeout: float = 30.0) -> int:
        result = self.client.close(timeout)
        if result.timed_out or result.exit_code is None:
            raise DemoError(f"the client did not exit within {timeout:.0f} s")
        return result.exit_code


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
    """A client to run: its implementation, the server it talks to, and what it sends.

    message None: an interactive client, one message per line of its stdin;
    key None: the demo's key.
    """

    lang: str
    target: tuple[str, int]
    message: str | None = None
    key: str | None = None
    cipher: str = "xor"


class Stage:
    """What the steps need from a place to run programs, on one core backend."""

    capture_method = "auto"  # auto: tcpdump when it starts, else the recording relay

    def __init__(self, lab: core.Backend, janitor: Janitor, key: str) -> None:
        self.lab, self.janitor, self.key = lab, janitor, key
        self.name, self.description = lab.name, lab.description
        self.repo = REPO
        self.cell = core.Cell("demo")
        self.registry = registry.default()
        self.run_timeout = DOCKER_RUN_TIMEOUT if lab.where == "docker" else RUN_TIMEOUT
        janitor.add(f"{lab.name} backend", lab.close)  # the first added: runs last

    def impl(self, lang: str) -> Implementation:
        return self.registry[lang]

    def title(self, lang: str) -> str:
        """How the class reads an implementation's name ("C client", "Python server")."""
        return self.registry[lang].display

    def shown(self, impl: Implementation, role: str, args: list[str], **how: bool) -> list[str]:
        return self.lab.display(impl, [*self.lab.program(impl, role), *args], **how)

    def prepare(self, extra: tuple[str, ...] = ()) -> None:
        try:
            names = (*self.registry.reference_names(), *extra)
            self.lab.prepare([self.impl(lang) for lang in names])
        except core.BackendError as exc:
            raise DemoError(str(exc)) from exc

    def start_server(self, lang: str, cipher: str = "xor", key: str | None = None) -> ShownServer:
        impl, alias = self.impl(lang), server_label(lang, cipher)
        options = common_options(key or self.key, cipher)
        if self.lab.where == "local":
            options = ["--bind", "127.0.0.1", *options]
        try:
            running = self.lab.start_server(self.cell, impl, options, alias=alias)
        except (core.BackendError, LaunchError) as exc:
            raise DemoError(f"{self.title(lang)} server did not start: {exc}") from exc
        self.janitor.add(alias, running.stop)
        log = Output("log")  # stdout and stderr, in the order they came
        running.output.tee(log)
        running.errors.tee(log)
        display = self.lab.display(impl, running.argv, alias=alias)
        return ShownServer(lang, cipher, (running.client_host, running.client_port),
                           (running.raw_host, running.raw_port), LineLog(log), display, running)

    def client_args(self, client: Client) -> list[str]:
        options = common_options(client.key or self.key, client.cipher)
        host, port = client.target
        return self.impl(client.lang).client_args(host, port, client.message, options)

    def client_display(self, client: Client) -> list[str]:
        return self.shown(self.impl(client.lang), "client", self.client_args(client),
                          interactive=client.message is None)

    def run_client(self, client: Client) -> RunResult:
        """Run a client with a message to its end."""
        result = self.lab.run_client(self.cell, self.impl(client.lang), self.client_args(client),
                                     timeout=self.run_timeout, merge=True)
        return RunResult.of(result)

    def run_program(self, lang: str, role: str, args: list[str]) -> tuple[list[str], RunResult]:
        """Run a program with arguments it refuses; return how it is shown, and its result."""
        impl = self.impl(lang)
        if role == "server":
            result = self.lab.run_server_program(self.cell, impl, args, self.run_timeout, True)
        else:
            result = self.lab.run_client(self.cell, impl, args, timeout=self.run_timeout,
                                         merge=True)
        return self.shown(impl, role, args, connects=False), RunResult.of(result)

    def open_client(self, client: Client) -> TypedClient:
        """Start an interactive client (a `client` without a message)."""
        running = self.lab.open_client(self.cell, self.impl(client.lang),
                                       self.client_args(client))
        self.janitor.add(f"{client.lang} client", lambda: _close_quietly(running))
        return TypedClient(running, LineLog(running.output), self.client_display(client))

    def refused_target(self, server: ShownServer) -> tuple[str, int]:
        return self.lab.refused_target(self.cell, self.impl(server.lang))

    def start_tool(self, start: Callable[[], core.Tool]) -> core.Tool:
        try:
            return start()
        except core.BackendError as exc:
            raise DemoError(str(exc)) from exc

    def capture(self, server: ShownServer) -> Capture:
        """tcpdump, the recording relay, or tcpdump falling back to the relay (--capture)."""
        relay = RelayCapture(self, server)
        if self.capture_method == "relay":
            return relay
        tcpdump = TcpdumpCapture(self, server)
        return tcpdump if self.capture_method == "tcpdump" else FallbackCapture(tcpdump, relay)

    def mitm(self, server: ShownServer, tamper: Tamper) -> Mitm:
        flags = ["--once", *tamper_flags(tamper)]
        tool = self.start_tool(lambda: self.lab.start_relay(self.cell, server.core, flags,
                                                            alias="mitm"))
        mitm = Mitm(tool.target, tool.display)

        def finish() -> None:
            tool.wait(15)
            mitm.lines[:] = [line.text for line in tool.output.since(0)]

        mitm.finish = finish
        return mitm


def tamper_flags(tamper: Tamper) -> list[str]:
    if not tamper.delta:
        return []
    return ["--delta", tamper.delta.hex(), "--offset", str(tamper.offset),
            "--frame-index", str(tamper.frame_index)]


def relayed_connections(lines: list[str], server: tuple[str, int]) -> list[pcap.Connection]:
    """The relay's --record lines (JSON, one per connection) as connections."""
    found = []
    for line in lines:
        if line.startswith("{"):
            record = json.loads(line)
            host, _, port = record["peer"].rpartition(":")
            found.append(pcap.Connection((host, int(port)), server,
                                         bytes.fromhex(record["to_server"]),
                                         bytes.fromhex(record["to_client"]), 0.0))
    return found


def open_stage(name: str, janitor: Janitor, key: str, extra: tuple[str, ...] = ()) -> Stage:
    """The backend `--backend` names, prepared; "auto" falls back to local processes."""
    if name != "local":
        try:
            stage = Stage(core.open_backend(None if name == "auto" else name,
                                            label="securemsg.demo", prefix="smdemo"),
                          janitor, key)
            stage.prepare(extra)
        except (core.BackendError, DemoError) as exc:
            if name == "docker":
                raise DemoError(f"Docker: {exc}") from exc
            print(f"Docker lab not usable ({exc}); using local processes", file=sys.stderr)
        else:
            return stage
    stage = Stage(core.open_backend("local"), janitor, key)
    stage.prepare(extra)
    return stage


def _close_quietly(client: core.Interactive) -> None:
    with contextlib.suppress(Exception):
        client.close(5.0)
