"""What a backend offers: start a server, run a client, run any program, somewhere.

A backend runs an implementation's programs somewhere (local processes:
`local.LocalBackend`; containers of its image: `docker.DockerBackend`); the matrix
cases, the demo and the bench never know where. Every program run on behalf of a
`Cell` is recorded in it, so that its logs can be saved also when it fails or hangs.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from . import timeouts
from .process import Output, ProcResult
from .registry import Implementation

NOISE_KEY_LENGTH = 32
#: the lab's own relay (securemsg_lab.wire.mitm), run as a program beside a server
RELAY_MODULE = "securemsg_lab.wire.mitm"
#: tcpdump writing every packet of one TCP port to stdout as pcap, unbuffered
TCPDUMP_OPTIONS = ("-p", "-n", "--immediate-mode", "-U", "-s", "0", "-w", "-")


class BackendError(Exception):
    """The backend could not do what was asked (not a finding about the programs)."""


class BackendUnavailable(BackendError):
    """The backend cannot run on this machine (no engine, programs missing or unbuilt)."""


@dataclass
class Cell:
    """A unit of work (a matrix cell, a demo run): its deadline and every program it ran."""

    cell_id: str
    timeout: float = float("inf")
    started: float = field(default_factory=time.monotonic)
    records: list[ProcResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-zA-Z0-9_.-]", "-", self.cell_id)

    def remaining(self, want: float) -> float:
        """`want` seconds (scaled), cut to what is left of the cell's budget (>= 0.1)."""
        left = self.timeout - (time.monotonic() - self.started)
        return max(0.1, min(timeouts.scaled(want), left))

    def record(self, result: ProcResult) -> ProcResult:
        with self.lock:
            self.records.append(result)
        return result

    def note(self, text: str) -> None:
        with self.lock:
            self.notes.append(text)


class Server(ABC):
    """A running server. `client_host/port`: how client programs reach it;
    `raw_host/port`: how this process's own sockets reach it."""

    impl: Implementation
    argv: list[str]
    output: Output  # stdout as it comes
    errors: Output  # stderr as it comes (the Docker matrix's container servers: empty)
    client_host: str
    client_port: int
    raw_host: str
    raw_port: int
    #: the server sees this process's sockets under their own address (no proxy between)
    raw_peer_exact: bool = True

    @property
    def name_host(self) -> str:
        """A host *name* (not an address) under which clients reach the server."""
        return self.client_host

    def output_so_far(self) -> bytes:
        return self.output.snapshot()

    def wait_lines(self, marker: bytes, count: int, timeout: float) -> bool:
        """Wait until stdout holds `count` lines containing `marker`."""
        return self.output.wait_count(marker, count, timeout)

    _terminated: bool = False

    def terminate(self) -> None:
        """SIGTERM without waiting (the server drains its clients, PROTOCOL.md section 9);
        `stop()` then only waits. Sent once."""
        if not self._terminated:
            self._terminated = True
            self._send_sigterm()

    @abstractmethod
    def _send_sigterm(self) -> None: ...

    @abstractmethod
    def stop(self) -> ProcResult:
        """SIGTERM (unless `terminate()` sent it), wait, and return the server's whole run
        (recorded in its cell)."""

    @abstractmethod
    def stopped_target(self) -> tuple[str, int]:
        """Where a client finds nothing once this server is stopped."""


class Interactive(ABC):
    """A client started without a message: one message per line written to it."""

    argv: list[str]
    output: Output  # stdout and stderr merged, in the order written

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def close(self, timeout: float) -> ProcResult:
        """End of input; wait for the client to exit."""


class Tool(ABC):
    """A helper program run beside a server (tcpdump, the relay): its output as it comes.
    `target`: where clients reach it (the relay), `display`: its command as typed."""

    display: list[str]
    output: Output  # stdout byte for byte (tcpdump: pcap)
    errors: Output
    target: tuple[str, int] = ("", 0)

    @abstractmethod
    def interrupt(self) -> None:
        """SIGINT: tcpdump flushes its last packets on the way out."""

    @abstractmethod
    def wait(self, timeout: float) -> None:
        """Until it has exited (killed after `timeout`) and its output is complete."""


class Backend(ABC):
    name: str
    #: where the programs run, in words (the demo says it)
    description: str = ""
    #: clients in the matrix's concurrency case
    concurrent_clients: int = 20
    #: where the programs are, in an implementation's entry ("local" or "docker")
    where: str = "local"

    @abstractmethod
    def prepare(self, impls: list[Implementation]) -> None:
        """Build or check what the implementations need; BackendUnavailable if impossible."""

    @abstractmethod
    def key_file(self) -> str:
        """Path of the run's 32-byte noise key file, as the programs see it."""

    @abstractmethod
    def key_bytes(self) -> bytes:
        """The 32 bytes of that key file (for this process's own noise peer)."""

    def program(self, impl: Implementation, role: str) -> list[str]:
        """The argv prefix of `impl`'s server or client, as this backend runs it."""
        return impl.program(role, self.where)

    @abstractmethod
    def start_server(self, cell: Cell, impl: Implementation, options: list[str], *,
                     refuse_after_stop: bool = False, alias: str | None = None) -> Server:
        """Start a server and return once its `Listening on` line is out.

        `refuse_after_stop`: the server's address must stay in place and refuse
        connections after `stop()` (the stopped-server case). `alias`: a name clients
        reach it by (Docker: a network alias, the server on an endpoint of its own)."""

    @abstractmethod
    def run_client(self, cell: Cell, impl: Implementation, args: list[str], *,
                   stdin: bytes | None = None, timeout: float = 20.0,
                   role: str = "client", merge: bool = False) -> ProcResult:
        """Run a client program with these arguments to its end (`merge`: stderr into
        stdout, in the order written)."""

    @abstractmethod
    def run_server_program(self, cell: Cell, impl: Implementation, args: list[str],
                           timeout: float = 10.0, merge: bool = False) -> ProcResult:
        """Run the server program expecting it to exit by itself (bad usage)."""

    @abstractmethod
    def open_client(self, cell: Cell, impl: Implementation, args: list[str]) -> Interactive:
        """Start a client without a message, for `Interactive.write`."""

    @abstractmethod
    def refused_target(self, cell: Cell, impl: Implementation) -> tuple[str, int]:
        """An address where `impl`'s client is refused at once."""

    @abstractmethod
    def harness_address(self) -> str:
        """An address of this machine this process can listen on and that client
        programs reach (the fake servers of the client error cases)."""

    @abstractmethod
    def display(self, impl: Implementation, argv: list[str], *, interactive: bool = False,
                connects: bool = True, alias: str | None = None) -> list[str]:
        """`argv` (a program prefix and its arguments) as a user would type it here
        (`alias`: a server reached by that name)."""

    @abstractmethod
    def start_tcpdump(self, cell: Cell, server: Server) -> Tool | None:
        """tcpdump on `server`'s port, pcap on its stdout; None where there is no tcpdump."""

    @abstractmethod
    def start_relay(self, cell: Cell, server: Server, flags: list[str],
                    alias: str = "relay") -> Tool:
        """The lab's relay in front of `server` (RELAY_MODULE with `flags`), listening
        (`alias`: the name clients reach it by, where names are used)."""

    def finish_cell(self, cell: Cell) -> None:  # noqa: B027 - optional hook
        """Release whatever the cell still holds (called even after a failure)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release everything the backend created."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_backend(name: str | None = None, *, rebuild: bool = False,
                 **docker_options: str) -> Backend:
    """The one backend factory: `local`, `docker`, or None (Docker when an engine answers or
    REQUIRE_DOCKER=1, else local processes). BackendUnavailable when it cannot run here.
    `docker_options`: the Docker backend's label and network prefix."""
    if name not in (None, "local", "docker"):
        raise ValueError(f"unknown backend {name!r}")
    if name != "local":
        from .docker import engine_answers, required  # the Docker SDK is imported only here

        answers = engine_answers()
        if name == "docker" or required() or answers:
            if not answers:
                raise BackendUnavailable("no Docker engine answers")
            from .docker import DockerBackend

            return DockerBackend(rebuild=rebuild, **docker_options)
    from .local import LocalBackend

    return LocalBackend()
