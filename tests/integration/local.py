"""The local backend: the programs as processes on 127.0.0.1 (servers on port 0)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import protocol
from .backend import Backend, BackendUnavailable, Cell, ProcResult, Server
from .programs import NOISE_KEY_LENGTH, server_args

REPO = Path(__file__).resolve().parents[2]
#: another tree with the same c/ and python/ layout (an independent implementation) may be
#: tested instead of this repository's programs
ROOT = Path(os.environ.get("SECUREMSG_PROGRAMS_ROOT") or REPO)
LOOPBACK = "127.0.0.1"


def program_prefix(lang: str, role: str) -> list[str]:
    if lang == "c":
        return [str(ROOT / "c" / role)]
    return [sys.executable, str(ROOT / "python" / f"{role}.py")]


def quiet_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SECUREMSG_KEY"}
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Drain:
    """Reads a pipe to its end in a thread, so that a chatty program never blocks."""

    def __init__(self, pipe: object) -> None:
        self.data = bytearray()
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.thread.start()

    def _run(self, pipe: object) -> None:
        fd = pipe.fileno()  # type: ignore[attr-defined]
        while chunk := os.read(fd, 65536):
            with self.changed:
                self.data += chunk
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = pattern.search(self.data.decode("utf-8", "replace"))
                left = deadline - time.monotonic()
                if found or left <= 0 or not self.thread.is_alive():
                    return found
                self.changed.wait(min(left, 0.2))

    def finish(self, timeout: float) -> bytes:
        self.thread.join(timeout)
        with self.changed:
            return bytes(self.data)


class LocalServer(Server):
    def __init__(self, cell: Cell, lang: str, argv: list[str]) -> None:
        self.cell = cell
        self.lang = lang
        self.argv = argv
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=quiet_env(),
        )
        self.out = _Drain(self.process.stdout)
        self.err = _Drain(self.process.stderr)
        self.result: ProcResult | None = None

    def wait_listening(self, timeout: float) -> None:
        found = self.out.wait_for(protocol.LISTENING, timeout)
        if not found:
            self.stop()
            raise BackendUnavailable(f"{self.lang} server printed no 'Listening on' line")
        self.client_host = self.raw_host = LOOPBACK
        self.client_port = self.raw_port = int(found["port"])

    def stop(self) -> ProcResult:
        if self.result is not None:
            return self.result
        timed_out = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.cell.remaining(5.0))
            except subprocess.TimeoutExpired:
                timed_out = True
                self.process.kill()
                self.process.wait()
        self.result = self.cell.record(ProcResult(
            role="server", argv=self.argv, exit_code=None if timed_out else self.process.returncode,
            stdout=self.out.finish(5), stderr=self.err.finish(5),
            duration=time.monotonic() - self.started, timed_out=timed_out,
        ))
        return self.result

    def stopped_target(self) -> tuple[str, int]:
        return LOOPBACK, self.client_port

    @property
    def name_host(self) -> str:
        return "localhost"

    def output_so_far(self) -> bytes:
        with self.out.changed:
            return bytes(self.out.data)


class LocalBackend(Backend):
    name = "local"
    concurrent_clients = 50

    def __init__(self) -> None:
        self._prepared: set[str] = set()
        self._lock = threading.Lock()
        self._help: dict[tuple[str, str], str] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="securemsg-harness-"))
        self._key = self._tmp / "noise.psk"
        self._key.write_bytes(os.urandom(NOISE_KEY_LENGTH))
        self._servers: list[LocalServer] = []
        self._held: dict[str, socket.socket] = {}

    def prepare(self, langs: list[str]) -> None:
        with self._lock:
            for lang in sorted(set(langs) - self._prepared):
                if lang == "c":
                    build = subprocess.run(
                        ["make", "-C", str(ROOT / "c")], capture_output=True, timeout=300,
                        check=False,
                    )
                    if build.returncode != 0:
                        raise BackendUnavailable(
                            "make -C c failed:\n" + build.stderr.decode(errors="replace")[-2000:]
                        )
                for role in ("server", "client"):
                    program = Path(program_prefix(lang, role)[-1])
                    if not program.exists():
                        raise BackendUnavailable(f"{program} does not exist")
                self._prepared.add(lang)

    def _help_text(self, lang: str, role: str) -> str:
        key = (lang, role)
        if key not in self._help:
            try:
                run = subprocess.run(
                    [*program_prefix(lang, role), "--help"], capture_output=True, timeout=20,
                    env=quiet_env(), check=False,
                )
                self._help[key] = (run.stdout + run.stderr).decode(errors="replace")
            except (OSError, subprocess.TimeoutExpired):
                self._help[key] = ""
        return self._help[key]

    def supports_cipher(self, lang: str, cipher: str) -> bool:
        if cipher == "xor":
            return True
        return all("--cipher" in self._help_text(lang, role) for role in ("server", "client"))

    def key_file(self) -> str:
        return str(self._key)

    def key_bytes(self) -> bytes:
        return self._key.read_bytes()

    def start_server(self, cell: Cell, lang: str, options: list[str], *,
                     refuse_after_stop: bool = False) -> Server:
        server = LocalServer(cell, lang, [*program_prefix(lang, "server"),
                                          *server_args(lang, 0, options)])
        with self._lock:
            self._servers.append(server)
        server.wait_listening(cell.remaining(15.0))
        return server

    def _run(self, cell: Cell, role: str, argv: list[str], stdin: bytes | None,
             timeout: float) -> ProcResult:
        started = time.monotonic()
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=quiet_env(),
        )
        timed_out = False
        try:
            out, err = process.communicate(stdin, timeout=cell.remaining(timeout))
        except subprocess.TimeoutExpired:
            timed_out = True
            process.kill()
            out, err = process.communicate()
        return cell.record(ProcResult(
            role=role, argv=argv, exit_code=None if timed_out else process.returncode,
            stdout=out, stderr=err, duration=time.monotonic() - started, timed_out=timed_out,
        ))

    def run_client(self, cell: Cell, lang: str, args: list[str], *, stdin: bytes | None = None,
                   timeout: float = 20.0, role: str = "client") -> ProcResult:
        return self._run(cell, role, [*program_prefix(lang, "client"), *args], stdin, timeout)

    def run_server_program(self, cell: Cell, lang: str, args: list[str],
                           timeout: float = 10.0) -> ProcResult:
        return self._run(cell, "server", [*program_prefix(lang, "server"), *args], None, timeout)

    def refused_target(self, cell: Cell, lang: str) -> tuple[str, int]:
        """A port bound but never listening: connect is refused, and nobody else can take it."""
        holder = socket.socket()
        holder.bind((LOOPBACK, 0))
        with self._lock:
            self._held[cell.cell_id] = holder
        return LOOPBACK, holder.getsockname()[1]

    def harness_address(self) -> str:
        return LOOPBACK

    def finish_cell(self, cell: Cell) -> None:
        with self._lock:
            servers = [s for s in self._servers if s.cell is cell]
            self._servers = [s for s in self._servers if s.cell is not cell]
            holder = self._held.pop(cell.cell_id, None)
        for server in servers:
            server.stop()
        if holder is not None:
            holder.close()

    def close(self) -> None:
        with self._lock:
            servers, self._servers = self._servers, []
            holders, self._held = list(self._held.values()), {}
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
        for holder in holders:
            holder.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
