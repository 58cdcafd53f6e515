"""--capture: each cell's traffic as a pcap in its folder, decoded frame by frame.

On the local backend one tcpdump follows loopback for the whole run; at the end each
cell's packets (its ports, within its time span) go to `<cell>/capture.pcap`, decoded
by the lab's own reader (wire.pcap, wire.protocol) into `capture.txt` and, where tshark
is installed, by the project's dissector (wireshark/securemsg.lua) into
`capture.tshark.txt`. The report shows both and links the pcap.
"""

from __future__ import annotations

import shutil
import signal
import socket
import time
from pathlib import Path

from ..core.paths import REPO
from ..core.process import LISTENING, Process, run
from ..wire import pcap, protocol
from .cases import Observation

DISSECTOR = REPO / "wireshark" / "securemsg.lua"
SLACK = 1.0  # seconds around a cell's span: timestamps and clocks differ a little


class CaptureUnavailable(Exception):
    """No tcpdump, or no permission to capture on loopback."""


class RunCapture:
    """tcpdump on loopback, TCP only, written packet by packet (-U) to `path`."""

    def __init__(self, path: Path) -> None:
        if shutil.which("tcpdump") is None:
            raise CaptureUnavailable("--capture needs tcpdump (make setup installs it)")
        self.path = path
        self.process = Process(["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n",
                                "-w", str(path), "tcp"], role="tcpdump")
        if not self.process.err.wait_for("listening on", timeout=10):
            result = self.process.stop()
            raise CaptureUnavailable(f"tcpdump did not start: {' '.join(result.err_lines)}")
        if not self.sync():
            self.process.stop()
            raise CaptureUnavailable("tcpdump captures nothing on loopback")

    def sync(self, timeout: float = 20.0) -> bool:
        """Make a connection of our own and wait until it is in the file: the capture is
        live (at the start), and has written everything before it (at the end: tcpdump
        drops what it has not read when it is stopped)."""
        with socket.create_server(("127.0.0.1", 0)) as marker:
            port = marker.getsockname()[1]
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._seen(port):
                    return True
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        self.sync()
        self.process.stop(signal.SIGINT)

    def _seen(self, port: int) -> bool:
        linktype, records = pcap.read_records(self.path.read_bytes())
        return any(port in (pcap.tcp_ports(linktype, packet) or ()) for _, packet in records)


def ports_of(obs: Observation | None) -> list[int]:
    """The server ports a cell used: its server's `Listening on` line, and the targets
    its clients were given (HOST:PORT text or (host, port))."""
    if obs is None:
        return []
    lines = obs.server.out_lines if obs.server else []
    found = LISTENING.match(lines[0]) if lines else None
    ports = {int(found["port"])} if found else set()
    for target in (obs.facts[key] for key in ("target", "stopped") if key in obs.facts):
        text = str(target[1] if isinstance(target, tuple) else str(target).rsplit(":", 1)[-1])
        if text.isdigit():
            ports.add(int(text))
    return sorted(ports)


def cell_pcap(linktype: int, records: list[tuple[float, bytes]], ports: set[int],
              span: tuple[float, float]) -> bytes:
    """The records of one cell: TCP packets to or from its ports within its span."""
    mine = [(t, packet) for t, packet in records if span[0] - SLACK <= t <= span[1] + SLACK
            and ports & set(pcap.tcp_ports(linktype, packet) or ())]
    return pcap.write(linktype, mine)


def decode(data: bytes, ports: list[int], cipher: str) -> str:
    """Each connection, each frame: direction, length and (xor) the plaintext."""
    lines = []
    server_port = ports[0] if ports else None
    for conn in pcap.reassemble(pcap.parse_segments(data), server_port):
        lines.append(f"connection {pcap.format_endpoint(conn.client)} -> "
                     f"{pcap.format_endpoint(conn.server)}")
        for arrow, stream in (("->", conn.to_server), ("<-", conn.to_client)):
            frames, rest = protocol.split_frames(stream)
            for frame in frames:
                shown = (protocol.escape(protocol.xor(frame.payload, protocol.DEFAULT_KEY))
                         if cipher == "xor" else f"{frame.payload[:16].hex()}... (encrypted)")
                lines.append(f"  {arrow} frame {len(frame.payload):7} bytes: {shown[:200]}")
            if rest:
                lines.append(f"  {arrow} {len(rest)} bytes after the last whole frame")
    return "\n".join(lines) + "\n" if lines else "no traffic captured\n"


def tshark(path: Path, ports: list[int]) -> str | None:
    """The dissector's one line per packet, or None without tshark."""
    if shutil.which("tshark") is None or not DISSECTOR.exists():
        return None
    port_list = ",".join(map(str, ports)) or "5000"
    done = run(["tshark", "-n", "-r", str(path), "-X", f"lua_script:{DISSECTOR}",
                "-o", f"securemsg.ports:{port_list}"], role="tshark", timeout=60)
    return (done.stdout + done.stderr).decode(errors="replace")


def split(run_pcap: Path, cells: list[tuple[Path, list[int], tuple[float, float], str]]) -> int:
    """Write each cell's capture files; the number of cells that got one."""
    linktype, records = pcap.read_records(run_pcap.read_bytes())
    written = 0
    for folder, ports, span, cipher in cells:
        if not ports or not folder.is_dir():
            continue
        data = cell_pcap(linktype, records, set(ports), span)
        (folder / "capture.pcap").write_bytes(data)
        (folder / "capture.txt").write_text(decode(data, ports, cipher))
        text = tshark(folder / "capture.pcap", ports)
        if text is not None:
            (folder / "capture.tshark.txt").write_text(text)
        written += 1
    return written
