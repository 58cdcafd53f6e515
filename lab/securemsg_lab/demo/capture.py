"""Recording one server's traffic: tcpdump writing a pcap, or the lab's recording relay,
both run by the backend beside the server.

Either way the result is a list of `pcap.Connection`: both directions reassembled.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

from ..core.backend import Tool
from ..core.process import Output
from ..wire import pcap
from .procs import DemoError, LineLog

if TYPE_CHECKING:
    from .stage import ShownServer, Stage

QUIET = 0.3  # no packet for this long: the last ACKs and FINs are in


def wait_quiet(output: Output, quiet: float = QUIET, timeout: float = 3.0) -> None:
    """Until no byte came for `quiet` seconds, or `timeout`: the last ACKs and FINs are in."""
    deadline = time.monotonic() + timeout
    size, changed = -1, time.monotonic()
    while (now := time.monotonic()) < deadline:
        if len(current := output.snapshot()) != size:
            size, changed = len(current), now
        elif now - changed >= quiet:
            return
        time.sleep(0.05)


class Capture:
    """Capture one server's traffic while the block runs; `connections` afterwards."""

    method = ""
    display: list[str]
    target: tuple[str, int]
    pcap_bytes: bytes = b""
    segments: int = 0
    connections: list[pcap.Connection]
    note = ""

    def __init__(self, stage: Stage, server: ShownServer) -> None:
        self.stage, self.server = stage, server
        self.connections = []
        self.target = server.target

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


class TcpdumpCapture(Capture):
    """tcpdump writing pcap to its stdout, stopped with SIGINT (it flushes on the way out)."""

    method = "tcpdump"

    def start(self) -> None:
        stage = self.stage
        tool = stage.start_tool(lambda: stage.lab.start_tcpdump(stage.cell, self.server.core))
        if tool is None:
            raise DemoError("tcpdump is not installed")
        self.tool: Tool = tool
        self.display = tool.display
        errors = LineLog(tool.errors)
        try:
            errors.wait_for(r"listening on", timeout=15)
        except DemoError as exc:
            tool.interrupt()
            tool.wait(5)
            detail = "; ".join(line.text for line in errors.since(0)) or "no output"
            raise DemoError(f"tcpdump did not start: {detail}") from exc

    def stop(self) -> None:
        wait_quiet(self.tool.output)
        self.tool.interrupt()
        self.tool.wait(15)
        self.pcap_bytes = self.tool.output.snapshot()
        segments = pcap.parse_segments(self.pcap_bytes)
        self.segments = len(segments)
        self.connections = [c for c in pcap.reassemble(segments, self.server.core.raw_port)
                            if c.to_server or c.to_client]


class RelayCapture(Capture):
    """Without tcpdump: the lab's relay in front of the server, recording both streams."""

    method = "relay"

    def start(self) -> None:
        stage = self.stage
        self.tool = stage.start_tool(lambda: stage.lab.start_relay(
            stage.cell, self.server.core, ["--once", "--record"], alias="relay"))
        self.target, self.display = self.tool.target, self.tool.display

    def stop(self) -> None:
        from .stage import relayed_connections

        self.tool.wait(15)
        lines = [line.text for line in self.tool.output.since(0)]
        self.connections = relayed_connections(lines, self.server.target)


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
