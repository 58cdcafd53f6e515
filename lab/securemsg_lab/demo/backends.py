"""Where the demo's programs run: the lab core's backends, plus what a class is shown.

The demo's `Backend` wraps a core backend (`securemsg_lab.core.local` or `.docker`) and adds
what the steps need beyond the matrix: servers under readable names, the command line
shown for every program, captures of one server's traffic and a man in the middle
(`local.LocalBackend`, `docker.DockerBackend`). Implementations come from the registry;
everything started is registered with the `Janitor`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core import backend as core
from ..core import registry
from ..core.paths import REPO
from ..core.process import LaunchError, Output
from ..core.registry import Implementation
from ..wire.mitm import Tamper
from ..wire.protocol import DEFAULT_KEY
from .capture import Capture, FallbackCapture
from .procs import DemoError, Janitor, LineLog, RunResult

RUN_TIMEOUT = 40.0  # for a client or a program that runs to its end


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
    core: core.Server

    @property
    def label(self) -> str:
        return server_label(self.lang, self.cipher)


@dataclass
class Interactive:
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


class Backend:
    """What the steps need from a place to run programs, on one core backend."""

    name = ""
    description = ""
    capture_method = "auto"  # auto: tcpdump when it starts, else the recording relay
    run_timeout = RUN_TIMEOUT

    def __init__(self, lab: core.Backend, janitor: Janitor, key: str) -> None:
        self.lab, self.janitor, self.key = lab, janitor, key
        self.repo: Path = REPO
        self.cell = core.Cell("demo")
        self.registry = registry.default()
        janitor.add(f"{lab.name} backend", lab.close)  # the first added: runs last

    def impl(self, lang: str) -> Implementation:
        return self.registry[lang]

    def title(self, lang: str) -> str:
        """How the class reads an implementation's name ("C client", "Python server")."""
        return self.registry[lang].display

    # -- what each place adds --------------------------------------------------------------

    def server_options(self) -> list[str]:
        return []

    def alias(self, lang: str, cipher: str) -> str | None:
        return None

    def shown(self, impl: Implementation, role: str, args: list[str], *,
              interactive: bool = False, connects: bool = True,
              alias: str | None = None) -> list[str]:
        """The command line the class is shown for a program (`alias`: a named server)."""
        raise NotImplementedError

    def refused_target(self, server: Server) -> tuple[str, int]:
        raise NotImplementedError

    def tcpdump_capture(self, server: Server) -> Capture | None:
        """tcpdump on the server's traffic; None where tcpdump is not installed."""
        raise NotImplementedError

    def relay_capture(self, server: Server) -> Capture:
        raise NotImplementedError

    def mitm(self, server: Server, tamper: Tamper) -> Mitm:
        raise NotImplementedError

    # -- what the steps use ------------------------------------------------------------------

    def prepare(self, extra: tuple[str, ...] = ()) -> None:
        try:
            names = (*self.registry.reference_names(), *extra)
            self.lab.prepare([self.impl(lang) for lang in names])
        except core.BackendError as exc:
            raise DemoError(str(exc)) from exc

    def start_server(self, lang: str, cipher: str = "xor", key: str | None = None) -> Server:
        impl = self.impl(lang)
        options = [*self.server_options(), *common_options(key or self.key, cipher)]
        try:
            running = self.lab.start_server(self.cell, impl, options,
                                            alias=self.alias(lang, cipher))
        except (core.BackendError, LaunchError) as exc:
            raise DemoError(f"{self.title(lang)} server did not start: {exc}") from exc
        self.janitor.add(server_label(lang, cipher), running.stop)
        alias = self.alias(lang, cipher)
        port = running.client_port if alias else 0
        display = self.shown(impl, "server", impl.server_args(port, options), alias=alias)
        log = Output("log")  # stdout and stderr, in the order they came
        running.output.tee(log)
        running.errors.tee(log)
        return Server(lang, cipher, (running.client_host, running.client_port),
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

    def open_client(self, client: Client) -> Interactive:
        """Start an interactive client (a `client` without a message)."""
        running = self.lab.open_client(self.cell, self.impl(client.lang),
                                       self.client_args(client))
        self.janitor.add(f"{client.lang} client", lambda: _close_quietly(running))
        return Interactive(running, LineLog(running.output), self.client_display(client))

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


def _close_quietly(client: core.Interactive) -> None:
    with contextlib.suppress(Exception):
        client.close(5.0)
