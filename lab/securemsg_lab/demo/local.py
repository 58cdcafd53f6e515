"""The local demo backend: processes on this machine, talking over 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import sys

from ..core.local import LocalBackend as LocalLab
from ..core.registry import Implementation
from ..wire.mitm import MitmProxy, Tamper, relay_command
from .backends import Backend, Mitm, Server
from .capture import Capture, RelayCapture, TcpdumpCapture, tcpdump_command
from .procs import Janitor

LOOPBACK = "127.0.0.1"


class LocalBackend(Backend):
    """Processes on this machine, talking over 127.0.0.1, servers on port 0."""

    name = "local"
    description = "local processes on 127.0.0.1"

    def __init__(self, janitor: Janitor, key: str) -> None:
        super().__init__(LocalLab(), janitor, key)

    def server_options(self) -> list[str]:
        return ["--bind", LOOPBACK]

    def shown(self, impl: Implementation, role: str, args: list[str], *,
              interactive: bool = False, connects: bool = True,
              alias: str | None = None) -> list[str]:
        """The argv as a student types it in the repository: relative paths, python3."""
        def readable(word: str) -> str:
            if word == sys.executable:
                return "python3"
            if os.path.isabs(word) and word.startswith(f"{self.repo}{os.sep}"):  # noqa: PTH117
                return os.path.relpath(word, self.repo)
            return word
        return [readable(word) for word in (*impl.program(role), *args)]

    def refused_target(self, server: Server) -> tuple[str, int]:
        # A bound socket that never listens: connecting to it is refused, and no other
        # process can take the port while we hold it.
        holder = socket.socket()
        holder.bind((LOOPBACK, 0))
        self.janitor.add("refused-port holder", holder.close)
        return (LOOPBACK, holder.getsockname()[1])

    def tcpdump_capture(self, server: Server) -> Capture | None:
        tcpdump = shutil.which("tcpdump")
        if not tcpdump:
            return None
        port = server.host_addr[1]
        argv = tcpdump_command("lo", port, tcpdump)
        display = ["tcpdump", "-i", "lo", "-U", "-w", "-", f"tcp port {port}"]
        return TcpdumpCapture(argv, display, server.target, port, self.janitor)

    def relay_capture(self, server: Server) -> Capture:
        return RelayCapture(server.host_addr)

    def mitm(self, server: Server, tamper: Tamper) -> Mitm:
        lines: list[str] = []
        proxy = MitmProxy(server.host_addr, tamper, (LOOPBACK, 0), lines.append).start()
        self.janitor.add("mitm proxy", proxy.close)
        lines.append(f"[MITM] Listening on {proxy.address[0]}:{proxy.address[1]}")

        def finish() -> None:
            proxy.wait_idle(timeout=10)
            proxy.close()

        display = relay_command(proxy.address, server.host_addr, tamper)
        return Mitm(proxy.address, display, lines, finish)
