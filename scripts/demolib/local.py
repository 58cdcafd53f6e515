"""The local backend: the programs as processes on this machine, talking over 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
from typing import ClassVar

from demolib.backends import Backend, Mitm, Server, wait_listening
from demolib.capture import Capture, RelayCapture, TcpdumpCapture, tcpdump_command
from demolib.mitm import MitmProxy, Tamper, relay_command
from demolib.procs import LineLog

LOOPBACK = "127.0.0.1"


class LocalBackend(Backend):
    """Processes on this machine, talking over 127.0.0.1, servers on port 0."""

    name = "local"
    description = "local processes on 127.0.0.1"
    prefixes: ClassVar[dict[str, str]] = {"c": "c/", "py": "python/"}

    def prepare(self) -> None:
        if not (self.repo / "c" / "server").exists() or not (self.repo / "c" / "client").exists():
            self.run(["make", "-C", "c"], timeout=300).check("make -C c", last=3)

    def start_server(self, lang: str, cipher: str = "xor", key: str | None = None) -> Server:
        argv = self.server_command(lang, "0", key, cipher, bind=LOOPBACK)
        proc = self.spawn(argv, f"{lang} server")
        any_port = (LOOPBACK, 0)  # learnt from the server's Listening line
        server = Server(lang, cipher, any_port, any_port, LineLog(proc), argv)
        return wait_listening(server, " ".join(argv))

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
        return RelayCapture(server)

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
