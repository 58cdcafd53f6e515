"""The local backend: the programs as processes on this machine, servers on port 0."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path

from . import timeouts
from .backend import (
    NOISE_KEY_LENGTH,
    RELAY_MODULE,
    TCPDUMP_OPTIONS,
    Backend,
    BackendError,
    BackendUnavailable,
    Cell,
    Interactive,
    Server,
    Tool,
)
from .paths import REPO
from .process import PIPE, LaunchError, Process, ProcResult, run
from .registry import Implementation

LOOPBACK = "127.0.0.1"


class LocalServer(Server):
    def __init__(self, cell: Cell, impl: Implementation, argv: list[str]) -> None:
        self.cell, self.impl, self.argv = cell, impl, argv
        self.process = Process(argv, role="server")
        self.output, self.errors = self.process.out, self.process.err
        self.result: ProcResult | None = None

    def wait_listening(self, timeout: float) -> None:
        try:
            port = self.process.wait_listening(timeout)
        except LaunchError:
            self.stop()
            raise
        self.client_host = self.raw_host = LOOPBACK
        self.client_port = self.raw_port = port

    def _send_sigterm(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> ProcResult:
        if self.result is None:
            self.terminate()
            self.result = self.cell.record(self.process.wait(self.cell.remaining(10.0)))
        return self.result

    def stopped_target(self) -> tuple[str, int]:
        return LOOPBACK, self.client_port

    @property
    def name_host(self) -> str:
        return "localhost"


class LocalInteractive(Interactive):
    def __init__(self, cell: Cell, argv: list[str]) -> None:
        self.cell, self.argv = cell, argv
        self.process = Process(argv, role="client", stdin=PIPE, merge=True, new_session=True)
        self.output = self.process.out

    def write(self, data: bytes) -> None:
        self.process.write(data)

    def close(self, timeout: float) -> ProcResult:
        self.process.close_stdin()
        return self.cell.record(self.process.wait(timeout))


class LocalTool(Tool):
    """tcpdump or the relay as a local process, in a session of its own."""

    def __init__(self, argv: list[str], display: list[str]) -> None:
        self.argv, self.display = argv, display
        self.process = Process(argv, role=Path(argv[0]).name, new_session=True)
        self.output, self.errors = self.process.out, self.process.err

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def wait(self, timeout: float) -> None:
        self.process.wait(timeout)


class LocalBackend(Backend):
    name = "local"
    where = "local"
    description = "local processes on 127.0.0.1"
    concurrent_clients = 50

    def __init__(self) -> None:
        self._prepared: set[str] = set()
        self._lock = threading.Lock()
        self._tmp = Path(tempfile.mkdtemp(prefix="securemsg-lab-"))
        self._key = self._tmp / "noise.psk"
        self._key.write_bytes(os.urandom(NOISE_KEY_LENGTH))
        self._cells: dict[str, list[LocalServer | LocalInteractive | LocalTool]] = {}
        self._held: dict[str, list[socket.socket]] = {}

    def prepare(self, impls: list[Implementation]) -> None:
        with self._lock:
            for impl in impls:
                if impl.name not in self._prepared:
                    self._prepare(impl)
                    self._prepared.add(impl.name)

    @staticmethod
    def _prepare(impl: Implementation) -> None:
        if impl.local_build:
            build = run(list(impl.local_build), role="build", cwd=impl.root, timeout=300)
            if build.exit_code != 0:
                raise BackendUnavailable(f"{impl.name}: {' '.join(impl.local_build)} failed:\n"
                                         + build.stderr.decode(errors="replace")[-2000:])
        for role in ("server", "client"):
            program = impl.program(role, "local")
            for path in (Path(word) for word in program if Path(word).is_absolute()):
                if not path.exists():
                    raise BackendUnavailable(f"{impl.name}: {path} does not exist")

    def key_file(self) -> str:
        return str(self._key)

    def key_bytes(self) -> bytes:
        return self._key.read_bytes()

    def _track(self, cell: Cell, thing: LocalServer | LocalInteractive | LocalTool) -> None:
        with self._lock:
            self._cells.setdefault(cell.cell_id, []).append(thing)

    def start_server(self, cell: Cell, impl: Implementation, options: list[str], *,
                     refuse_after_stop: bool = False, alias: str | None = None) -> Server:
        server = LocalServer(cell, impl, [*self.program(impl, "server"),
                                          *impl.server_args(0, options)])
        self._track(cell, server)
        server.wait_listening(cell.remaining(timeouts.START))
        return server

    def run_client(self, cell: Cell, impl: Implementation, args: list[str], *,
                   stdin: bytes | None = None, timeout: float = 20.0,
                   role: str = "client", merge: bool = False) -> ProcResult:
        return cell.record(run([*self.program(impl, "client"), *args], role=role, stdin=stdin,
                               timeout=cell.remaining(timeout), merge=merge))

    def run_server_program(self, cell: Cell, impl: Implementation, args: list[str],
                           timeout: float = 10.0, merge: bool = False) -> ProcResult:
        return cell.record(run([*self.program(impl, "server"), *args], role="server",
                               timeout=cell.remaining(timeout), merge=merge))

    def open_client(self, cell: Cell, impl: Implementation, args: list[str]) -> Interactive:
        client = LocalInteractive(cell, [*self.program(impl, "client"), *args])
        self._track(cell, client)
        return client

    def refused_target(self, cell: Cell, impl: Implementation) -> tuple[str, int]:
        """A port bound but never listening: connect is refused, nobody else can take it."""
        holder = socket.socket()
        holder.bind((LOOPBACK, 0))
        with self._lock:
            self._held.setdefault(cell.cell_id, []).append(holder)
        return LOOPBACK, holder.getsockname()[1]

    def harness_address(self) -> str:
        return LOOPBACK

    def display(self, impl: Implementation, argv: list[str], *, interactive: bool = False,
                connects: bool = True, alias: str | None = None) -> list[str]:
        """As a student types it in the repository: relative paths, python3."""
        def readable(word: str) -> str:
            if word == sys.executable:
                return "python3"
            if os.path.isabs(word) and word.startswith(f"{REPO}{os.sep}"):  # noqa: PTH117
                return os.path.relpath(word, REPO)
            return word
        return [readable(word) for word in argv]

    def start_tcpdump(self, cell: Cell, server: Server) -> Tool | None:
        program = shutil.which("tcpdump")
        if program is None:
            return None
        filter_ = f"tcp port {server.raw_port}"
        tool = LocalTool([program, "-i", "lo", *TCPDUMP_OPTIONS, filter_],
                         ["tcpdump", "-i", "lo", "-U", "-w", "-", filter_])
        self._track(cell, tool)
        return tool

    def start_relay(self, cell: Cell, server: Server, flags: list[str],
                    alias: str = "relay") -> Tool:
        upstream = f"{server.raw_host}:{server.raw_port}"
        argv = [sys.executable, "-m", RELAY_MODULE, "--listen", f"{LOOPBACK}:0",
                "--upstream", upstream, *flags]
        tool = LocalTool(argv, [])
        self._track(cell, tool)
        found = tool.output.wait_for(r"^\[MITM\] Listening on (.+):(\d+)$",
                                     timeout=cell.remaining(timeouts.START))
        if not found:
            tool.process.stop()
            raise BackendError(f"the relay did not start: {tool.errors.snapshot()[-300:]!r}")
        tool.target = (found[0][1], int(found[0][2]))
        tool.display = ["python3", "-m", RELAY_MODULE, "--listen", f"{LOOPBACK}:{tool.target[1]}",
                        "--upstream", upstream, *flags]
        return tool

    def finish_cell(self, cell: Cell) -> None:
        with self._lock:
            things = self._cells.pop(cell.cell_id, [])
            holders = self._held.pop(cell.cell_id, [])
        for thing in things:
            if isinstance(thing, LocalServer):
                thing.stop()
            else:
                thing.process.stop(timeout=timeouts.scaled(timeouts.STOP))
        for holder in holders:
            holder.close()

    def close(self) -> None:
        with self._lock:
            cells = list(self._cells)
            held = list(self._held)
        for cell_id in {*cells, *held}:
            with contextlib.suppress(Exception):
                self.finish_cell(Cell(cell_id))
        shutil.rmtree(self._tmp, ignore_errors=True)
