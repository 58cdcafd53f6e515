"""Recording one server's traffic: tcpdump writing a pcap, or a recording relay of our own.

Either way the result is a list of `pcap.Connection`: both directions reassembled.
"""

from __future__ import annotations

import signal
import time
from types import TracebackType

from ..wire import pcap
from ..wire.mitm import MitmProxy, Tamper, relay_command
from .procs import DemoError, Janitor, LineLog


def tcpdump_command(interface: str, port: int, program: str = "tcpdump") -> list[str]:
    """tcpdump writing every packet of one TCP port to stdout as pcap, unbuffered."""
    options = ["-p", "-n", "--immediate-mode", "-U", "-s", "0", "-w", "-"]
    return [program, "-i", interface, *options, f"tcp port {port}"]


class Capture:
    """Capture one server's traffic while the block runs; `connections` afterwards."""

    method = ""
    display: list[str]
    target: tuple[str, int]
    pcap_bytes: bytes = b""
    segments: int = 0
    connections: list[pcap.Connection]

    def __enter__(self) -> Capture:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _parse(self, server_port: int) -> None:
        segments = pcap.parse_segments(self.pcap_bytes)
        self.segments = len(segments)
        self.connections = [
            c for c in pcap.reassemble(segments, server_port) if c.to_server or c.to_client
        ]


class TcpdumpCapture(Capture):
    """tcpdump writing pcap to its stdout, stopped with SIGINT (it flushes on the way out)."""

    def __init__(self, argv: list[str], display: list[str], target: tuple[str, int],
                 server_port: int, janitor: Janitor) -> None:
        self.argv, self.display, self.target = argv, display, target
        self.server_port, self.janitor = server_port, janitor
        self.method = "tcpdump"
        self.connections = []

    def start(self) -> None:
        self.proc = self.janitor.spawn(self.argv, "tcpdump", merge=False)
        self.errors = LineLog(self.proc.err)
        try:
            self.errors.wait_for(r"listening on", timeout=15)
        except DemoError as exc:
            self.proc.stop()
            detail = "; ".join(line.text for line in self.errors.since(0)) or "no output"
            raise DemoError(f"tcpdump did not start: {detail}") from exc
        time.sleep(0.2)  # the filter is attached; let the kernel settle

    def stop(self) -> None:
        time.sleep(0.3)  # the last ACKs and FINs
        result = self.proc.stop(signal.SIGINT, timeout=15)
        self.pcap_bytes = result.stdout
        self._parse(self.server_port)


class RelayCapture(Capture):
    """Fallback without tcpdump: a recording relay of our own in front of the server."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream  # the server, as this process reaches it
        self.method = "relay"
        self.connections = []

    def start(self) -> None:
        self.proxy = MitmProxy(self.upstream).start()
        self.target = self.proxy.address
        self.display = relay_command(self.target, self.upstream, Tamper(), "--record")

    def stop(self) -> None:
        self.proxy.wait_idle(timeout=10)
        self.proxy.close()
        self.connections = [
            relayed_connection(r.peer, self.upstream, bytes(r.to_server), bytes(r.to_client))
            for r in self.proxy.connections
        ]


def relayed_connection(
    peer: str, server: tuple[str, int], up: bytes, down: bytes
) -> pcap.Connection:
    host, _, port = peer.rpartition(":")
    return pcap.Connection((host, int(port)), server, up, down, 0.0)


class FallbackCapture(Capture):
    """tcpdump if it starts; otherwise the recording relay."""

    def __init__(self, primary: Capture, fallback: Capture) -> None:
        self.primary, self.fallback = primary, fallback
        self.active: Capture = primary
        self.note = ""

    def start(self) -> None:
        try:
            self.primary.start()
        except DemoError as exc:
            self.note = f"{exc}; using a recording relay instead"
            self.active = self.fallback
            self.fallback.start()

    def stop(self) -> None:
        self.active.stop()

    @property  # type: ignore[override]
    def method(self) -> str:
        return self.active.method

    @property
    def display(self) -> list[str]:  # type: ignore[override]
        return self.active.display

    @property
    def target(self) -> tuple[str, int]:  # type: ignore[override]
        return self.active.target

    @property
    def pcap_bytes(self) -> bytes:  # type: ignore[override]
        return self.active.pcap_bytes

    @property
    def segments(self) -> int:  # type: ignore[override]
        return self.active.segments

    @property
    def connections(self) -> list[pcap.Connection]:  # type: ignore[override]
        return self.active.connections
