"""Helpers of the Wireshark dissector tests: tools, tshark runs, pcaps, processes, raw peers.

Programs come from the lab's implementations registry and every process (servers, clients,
tcpdump, tshark) is started by the lab's launcher, securemsg_lab.core.process.
Imported by name: pytest puts this directory (no __init__.py) first on the import path.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
import signal
import socket
import struct
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from noise.connection import NoiseConnection
from securemsg_lab.core import process, registry, timeouts
from securemsg_lab.core.paths import REPO as ROOT
from securemsg_lab.wire import protocol
from securemsg_lab.wire.pcap import TCP_FIN, TCP_RST, PcapError, Segment, parse_segments
from securemsg_lab.wire.protocol import frame

from tests.support import needs

LUA = ROOT / "wireshark" / "securemsg.lua"
LOOPBACK = "127.0.0.1"
PROLOGUE = b"securemsg-noise-v1"
NOISE_NAME = b"Noise_NNpsk0_25519_ChaChaPoly_SHA256"
DEFAULT_KEY = b"MY_SECRET_KEY"


class HarnessError(RuntimeError):
    """A helper process or peer did not behave: the test fails with this text."""


# -- tools ------------------------------------------------------------------------------


def tshark_path() -> str:
    return needs.tool("tshark", "apt-get install tshark; scripts/setup.sh does")


def capture_program() -> str:
    """tcpdump, else dumpcap (installed with tshark). Missing both is always a failure;
    with REQUIRE_DOCKER=1 tcpdump itself must be there."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump:
        return tcpdump
    if needs.required():
        needs.missing("tcpdump is not installed (scripts/setup.sh installs it)")
    dumpcap = shutil.which("dumpcap")
    if dumpcap:
        return dumpcap
    pytest.fail("neither tcpdump nor dumpcap is installed: no way to capture", pytrace=False)
    raise AssertionError("unreachable")


def tshark_version(tshark: str) -> str:
    out = process.run([tshark, "--version"], role="tshark", timeout=timeouts.scaled(60))
    return out.out_lines[0] if out.out_lines else "unknown"


# -- tshark with the dissector ----------------------------------------------------------


@dataclass
class Frame:
    """One securemsg frame as the dissector showed it."""

    packet: int
    stream: int
    src_port: int
    dst_port: int
    segments: int  # TCP segments reassembled into this packet's data (1: none)
    fields: dict[str, str | list[str]]
    experts: list[str]

    def get(self, name: str) -> str | None:
        value = self.fields.get(f"securemsg.{name}")
        return value if isinstance(value, str) or value is None else value[0]

    def number(self, name: str) -> int | None:
        value = self.get(name)
        return None if value is None else int(value)

    def raw(self, name: str) -> bytes | None:
        value = self.get(name)
        return None if value is None else bytes.fromhex(value.replace(":", ""))

    @property
    def direction(self) -> int | None:
        return self.number("direction")


def _collect(tree: object, out: dict[str, str | list[str]], experts: list[str]) -> None:
    """Flatten a securemsg item of tshark's JSON: subtrees (`*_tree`, `_ws.expert`) merged."""
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        if key == "_ws.expert.message":
            experts.extend(value if isinstance(value, list) else [value])
        elif isinstance(value, dict):
            _collect(value, out, experts)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                _collect(item, out, experts)
        else:
            out.setdefault(key, value)


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_tshark_json(text: str) -> list[Frame]:
    frames = []
    for packet in json.loads(text or "[]"):
        layers = packet["_source"]["layers"]
        tcp = layers.get("tcp", {})
        segments = tcp.get("tcp.segments", layers.get("tcp.segments", {}))
        count = int(segments.get("tcp.segment.count", 1)) if isinstance(segments, dict) else 1
        for item in _as_list(layers.get("securemsg")):
            found: dict[str, str | list[str]] = {}
            experts: list[str] = []
            _collect(item, found, experts)
            frames.append(Frame(
                packet=int(layers["frame"]["frame.number"]),
                stream=int(tcp["tcp.stream"]),
                src_port=int(tcp["tcp.srcport"]),
                dst_port=int(tcp["tcp.dstport"]),
                segments=count,
                fields=found,
                experts=experts,
            ))
    return frames


def run_tshark(tshark: str, pcap: Path, *options: str) -> list[Frame]:
    """Every securemsg frame of the capture, in order, with the dissector loaded."""
    argv = [tshark, "-n", "-X", f"lua_script:{LUA}", "-r", str(pcap), "-Y", "securemsg",
            "-T", "json", "--no-duplicate-keys", "-J", "frame tcp tcp.segments securemsg", *options]
    proc = process.run(argv, role="tshark", timeout=timeouts.scaled(180))
    stdout, stderr = (data.decode(errors="replace") for data in (proc.stdout, proc.stderr))
    problems = [line for line in proc.err_lines
                if "Lua" in line or "rror" in line or "arning" in line]
    if proc.exit_code != 0 or problems or "Lua Error" in stdout:
        raise AssertionError(f"{argv} exited {proc.exit_code}:\n{stderr}"
                             + ("\nLua Error in the output" if "Lua Error" in stdout else ""))
    return parse_tshark_json(stdout)


def tshark_columns(tshark: str, pcap: Path, *options: str) -> list[tuple[int, str, str]]:
    """(frame number, Protocol column, Info column) of every packet, the dissector loaded."""
    argv = [tshark, "-n", "-X", f"lua_script:{LUA}", "-r", str(pcap), "-T", "fields",
            "-E", "separator=/t", "-e", "frame.number", "-e", "_ws.col.Protocol",
            "-e", "_ws.col.Info", *options]
    proc = process.run(argv, role="tshark", timeout=timeouts.scaled(180))
    if proc.exit_code != 0 or any("Lua" in line for line in proc.err_lines):
        raise AssertionError(f"{argv} exited {proc.exit_code}:\n"
                             + proc.stderr.decode(errors="replace"))
    rows = []
    for line in proc.stdout.decode("utf-8").splitlines():  # strict: the columns are UTF-8
        number, protocol, info = line.split("\t", 2)
        rows.append((int(number), protocol, info))
    return rows


def by_stream(frames: list[Frame]) -> dict[int, list[Frame]]:
    streams: dict[int, list[Frame]] = {}
    for item in frames:
        streams.setdefault(item.stream, []).append(item)
    return streams


# -- synthetic pcaps (Ethernet, IPv4, TCP; checksums are not checked by Wireshark) -------


@dataclass
class SyntheticTcp:
    """One TCP connection written packet by packet into a classic pcap."""

    client_port: int
    server_port: int
    packets: list[bytes] = field(default_factory=list)
    seq: dict[bool, int] = field(default_factory=lambda: {True: 1000, False: 5000})

    def _packet(self, from_client: bool, flags: int, payload: bytes = b"") -> None:
        src, dst = (self.client_port, self.server_port)
        if not from_client:
            src, dst = dst, src
        tcp = struct.pack("!HHIIBBHHH", src, dst, self.seq[from_client],
                          self.seq[not from_client], 5 << 4, flags, 65535, 0, 0)
        total = 20 + len(tcp) + len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        eth = b"\x00" * 12 + b"\x08\x00"
        self.packets.append(eth + ip + tcp + payload)
        self.seq[from_client] = (self.seq[from_client] + len(payload)
                                 + (1 if flags & 0x03 else 0)) & 0xFFFFFFFF

    def open(self) -> SyntheticTcp:
        self._packet(True, 0x02)   # SYN
        self._packet(False, 0x12)  # SYN, ACK
        self._packet(True, 0x10)   # ACK
        return self

    def send(self, from_client: bool, payload: bytes) -> SyntheticTcp:
        self._packet(from_client, 0x18, payload)  # PSH, ACK
        return self

    def close(self, by_client: bool = True) -> SyntheticTcp:
        """FIN from one side, FIN from the other, the last ACK."""
        self._packet(by_client, 0x11)
        self._packet(not by_client, 0x11)
        self._packet(by_client, 0x10)
        return self


def write_pcap(path: Path, connections: list[SyntheticTcp]) -> Path:
    """All packets of the connections, one after another, 1 ms apart."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    usec = 0
    for connection in connections:
        for packet in connection.packets:
            usec += 1000
            out.append(struct.pack("<IIII", 1_700_000_000 + usec // 1_000_000,
                                   usec % 1_000_000, len(packet), len(packet)))
            out.append(packet)
    path.write_bytes(b"".join(out))
    return path


def xor(data: bytes, key: bytes = DEFAULT_KEY) -> bytes:
    return protocol.xor(data, key)


def ack_text(length: int) -> bytes:
    return f"ACK: Received {length} bytes".encode()


# -- processes --------------------------------------------------------------------------


def wait_for(program: process.Process, pattern: str, timeout: float) -> re.Match[str]:
    """The first line of `program`'s stdout matching `pattern`; HarnessError if none came."""
    found = program.out.wait_for(pattern, timeout=timeouts.scaled(timeout))
    if found:
        return found[0]
    seen = [line.text for line in program.out.since(0)]
    raise HarnessError(f"{program.role}: no line matching {pattern!r} within {timeout} s; "
                       f"saw {seen!r} (exit status {program.popen.poll()})")


def server_argv(lang: str, cipher: str, key_file: Path | None) -> list[str]:
    impl = registry.default()[lang]
    keys = ["--key-file", str(key_file)] if key_file else []
    return [*impl.program("server"),
            *impl.server_args(0, ["--cipher", cipher, *keys, "--bind", LOOPBACK])]


def client_argv(lang: str, cipher: str, key_file: Path | None, port: int,
                message: str | None) -> list[str]:
    impl = registry.default()[lang]
    keys = ["--key-file", str(key_file)] if key_file else []
    return [*impl.program("client"),
            *impl.client_args(LOOPBACK, port, message, ["--cipher", cipher, *keys])]


def build(lang: str) -> None:
    """The implementation's local build command (c: make -C c), if it has one."""
    impl = registry.default()[lang]
    if impl.local_build:
        done = process.run(list(impl.local_build), role="build", cwd=impl.root,
                           timeout=timeouts.scaled(600))
        assert done.exit_code == 0, (done.stdout + done.stderr).decode(errors="replace")


@contextlib.contextmanager
def started_server(lang: str, cipher: str, key_file: Path | None) -> Iterator[int]:
    server = process.Process(server_argv(lang, cipher, key_file), role=f"{lang} {cipher} server")
    try:
        port = server.wait_listening(timeouts.scaled(30))
        listening = server.out.wait_for(process.LISTENING, timeout=0)[0]
        if listening["addr"] != LOOPBACK:
            raise HarnessError(f"{server.role}: {listening.string!r}, not on {LOOPBACK}")
        yield port
    finally:
        server.stop(timeout=timeouts.scaled(10))


class LoopbackCapture:
    """tcpdump (or dumpcap) on lo writing a pcap of some TCP ports; stopped with SIGINT."""

    def __init__(self, program: str, ports: list[int], path: Path) -> None:
        flt = " or ".join(f"tcp port {port}" for port in ports)
        if Path(program).name == "dumpcap":
            argv = [program, "-i", "lo", "-n", "-F", "pcap", "-f", flt, "-w", str(path)]
        else:  # immediate mode: a SIGINT must not leave packets in the kernel's ring
            argv = [program, "-i", "lo", "-p", "-n", "--immediate-mode", "-U", "-s", "0",
                    "-w", str(path), flt]
        self.path = path
        # merged: tcpdump and dumpcap say they are listening on stderr
        self.process = process.Process(argv, role=Path(program).name, merge=True)

    def start(self) -> None:
        try:
            wait_for(self.process, r"[Ll]istening on|Capturing on", timeout=20)
        except HarnessError:
            self.process.stop(signal.SIGINT, timeout=timeouts.scaled(10))
            raise

    def stop(self) -> None:
        self.wait_ended(timeouts.scaled(10))
        self.process.stop(signal.SIGINT, timeout=timeouts.scaled(15))

    def wait_ended(self, timeout: float) -> bool:
        """Until every connection in the pcap so far has ended: a reset, or both FINs and
        the ACK after them (-U writes each packet as it comes)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                segments = parse_segments(self.path.read_bytes())
            except (OSError, PcapError):
                segments = []  # no header yet, or a record half written
            if segments and all(map(_ended, _by_connection(segments).values())):
                return True
            if time.monotonic() > deadline or not self.process.alive():
                return False
            time.sleep(0.02)


def _by_connection(segments: list[Segment]) -> dict[frozenset, list[Segment]]:
    found: dict[frozenset, list[Segment]] = {}
    for segment in segments:
        found.setdefault(frozenset((segment.src, segment.dst)), []).append(segment)
    return found


def _ended(segments: list[Segment]) -> bool:
    if any(segment.flags & TCP_RST for segment in segments):
        return True
    finished = {segment.src for segment in segments if segment.flags & TCP_FIN}
    return len(finished) == 2 and not segments[-1].flags & TCP_FIN


def run_client(argv: list[str], stdin: bytes | None) -> None:
    proc = process.run(argv, role="client", stdin=stdin, timeout=timeouts.scaled(60))
    if proc.exit_code != 0:
        raise HarnessError(f"{argv[:6]} exited {proc.exit_code}: {proc.stderr[-2000:]!r}")


# -- raw peers: the split and coalesced cases -------------------------------------------


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_in_pieces(sock: socket.socket, data: bytes, cuts: list[int]) -> None:
    """Each piece its own segment: TCP_NODELAY, and the next piece only once the peer has
    acknowledged this one (nothing left in the send queue to coalesce with)."""
    start = 0
    for cut in [*cuts, len(data)]:
        sock.sendall(data[start:cut])
        start = cut
        wait_acked(sock)


def wait_acked(sock: socket.socket, timeout: float = 10.0) -> None:
    """Until the kernel's send queue of `sock` is empty (Linux SIOCOUTQ: bytes not yet
    acknowledged by the peer)."""
    deadline = time.monotonic() + timeouts.scaled(timeout)
    while struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]:
        if time.monotonic() > deadline:
            raise HarnessError("the peer did not acknowledge a piece in time")
        time.sleep(0.001)


def wait_closed(sock: socket.socket, timeout: float = 15) -> None:
    sock.settimeout(timeout)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(4096):
            pass


class NoisePeer:
    """An NNpsk0 initiator from the independent noiseprotocol package."""

    def __init__(self, psk: bytes) -> None:
        self.noise = NoiseConnection.from_name(NOISE_NAME)
        self.noise.set_as_initiator()
        self.noise.set_psks(psk=psk)
        self.noise.set_prologue(PROLOGUE)
        self.noise.start_handshake()

    def message1(self) -> bytes:
        return frame(bytes(self.noise.write_message(b"")))

    def read_message2(self, payload: bytes) -> None:
        if self.noise.read_message(payload) != b"" or not self.noise.handshake_finished:
            raise HarnessError("handshake message 2 did not complete the handshake")

    def chunk(self, data: bytes) -> bytes:
        """One message in one chunk: marker 0x01 (last), then the data."""
        return frame(bytes(self.noise.encrypt(b"\x01" + data)))

    def read_ack(self, payload: bytes) -> bytes:
        plain = bytes(self.noise.decrypt(payload))
        if plain[:1] != b"\x01":
            raise HarnessError(f"ACK chunk with marker {plain[:1]!r}")
        return plain[1:]
