"""What a backend offers the cases: start a server, run a client, run any program.

A backend runs the programs somewhere (local processes, Docker containers); the cases
never know where. Every process a cell runs is recorded in its `Cell` so that the
runner can save all logs, also when the cell fails or times out.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field


class BackendError(Exception):
    """The backend could not do what a case asked (not a finding about the programs)."""


class BackendUnavailable(BackendError):
    """The backend cannot run on this machine (no engine, missing programs)."""


@dataclass
class ProcResult:
    """One finished program run: what the checks read."""

    role: str
    argv: list[str]
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    duration: float
    timed_out: bool = False

    @property
    def out_lines(self) -> list[str]:
        return _lines(self.stdout)

    @property
    def err_lines(self) -> list[str]:
        return _lines(self.stderr)


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="backslashreplace")
    return text.splitlines() if text else []


@dataclass
class Cell:
    """One matrix cell in flight: its id, its deadline and every process it ran."""

    cell_id: str
    timeout: float
    started: float = field(default_factory=time.monotonic)
    records: list[ProcResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-zA-Z0-9_.-]", "-", self.cell_id)

    def remaining(self, want: float) -> float:
        """`want` seconds, cut to what is left of the cell's budget (at least 0.1)."""
        left = self.timeout - (time.monotonic() - self.started)
        return max(0.1, min(want, left))

    def record(self, result: ProcResult) -> ProcResult:
        with self.lock:
            self.records.append(result)
        return result

    def note(self, text: str) -> None:
        with self.lock:
            self.notes.append(text)


class Server(ABC):
    """A running server. `client_host/port` is how client programs reach it;
    `raw_host/port` is how the harness's own sockets reach it."""

    lang: str
    client_host: str
    client_port: int
    raw_host: str
    raw_port: int
    #: the server sees a harness socket under its own local address (no proxy in between)
    raw_peer_exact: bool = True

    @property
    def name_host(self) -> str:
        """A host *name* (not an address) under which clients reach the server."""
        return self.client_host

    @abstractmethod
    def stop(self) -> ProcResult:
        """SIGTERM, wait, and return the server's whole run (recorded in the cell)."""

    @abstractmethod
    def stopped_target(self) -> tuple[str, int]:
        """Where a client finds nothing once this server is stopped."""

    def output_so_far(self) -> bytes:
        return b""


class Backend(ABC):
    name: str
    #: clients in the concurrency case
    concurrent_clients: int = 20

    @abstractmethod
    def prepare(self, langs: list[str]) -> None:
        """Build or check what the languages need; raise BackendUnavailable if impossible."""

    @abstractmethod
    def supports_cipher(self, lang: str, cipher: str) -> bool:
        """Whether both programs of `lang` know `--cipher` (their --help mentions it)."""

    @abstractmethod
    def key_file(self) -> str:
        """Path of the run's 32-byte noise key file, as the programs see it."""

    @abstractmethod
    def key_bytes(self) -> bytes:
        """The 32 bytes of that key file (for the harness's own noise peer)."""

    @abstractmethod
    def start_server(self, cell: Cell, lang: str, options: list[str], *,
                     refuse_after_stop: bool = False) -> Server:
        """Start a server and return once its `Listening on` line is out.

        `refuse_after_stop`: the server's address must stay in place and refuse
        connections after `stop()` (the stopped-server case)."""

    @abstractmethod
    def run_client(
        self,
        cell: Cell,
        lang: str,
        args: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 20.0,
        role: str = "client",
    ) -> ProcResult:
        """Run a client program with these arguments to its end."""

    @abstractmethod
    def run_server_program(
        self, cell: Cell, lang: str, args: list[str], timeout: float = 10.0
    ) -> ProcResult:
        """Run the server program expecting it to exit by itself (bad usage)."""

    @abstractmethod
    def refused_target(self, cell: Cell, lang: str) -> tuple[str, int]:
        """An address where a `lang` client's connect is refused at once."""

    @abstractmethod
    def harness_address(self) -> str:
        """An address of this machine that the harness can listen on and that client
        programs reach (the fake servers of the client error cases)."""

    def finish_cell(self, cell: Cell) -> None:  # noqa: B027 - optional hook
        """Release whatever the cell still holds (called even after a failure)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release everything the backend created."""
