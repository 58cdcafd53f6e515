"""A man-in-the-middle TCP proxy: relays a connection and flips bits of one client frame.

The attacker needs no key: XOR-ing the ciphertext with (known XOR wanted) turns the
encryption of the known text into the encryption of the wanted one (`attack.flip_delta`).
It also records both directions, so it doubles as the demo's capture fallback.

Runs in-process (`MitmProxy`) or as a program, e.g. in a container on the lab network:

    python3 -m securemsg_lab.wire.mitm --listen 0.0.0.0:6000 --upstream server:5000 \
        --delta 0000090900
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .attack import apply_delta
from .protocol import HEADER_LEN, frame, split_frames

BUFFER_LIMIT = 16 * 1024 * 1024  # frames above this are relayed untouched, never buffered


@dataclass
class Tamper:
    """Which client frame to alter (0 = the first), where, and with which XOR mask."""

    delta: bytes = b""
    offset: int = 0
    frame_index: int = 0


class FrameTamperer:
    """Sans-io: feed client bytes, get the bytes to forward, with one frame altered."""

    def __init__(self, tamper: Tamper) -> None:
        self.tamper = tamper
        self.buffer = b""
        self.frames_seen = 0
        self.passthrough = not tamper.delta
        self.altered: list[tuple[bytes, bytes]] = []  # (original payload, altered payload)

    def feed(self, data: bytes) -> bytes:
        if self.passthrough:
            return data
        frames, self.buffer = split_frames(self.buffer + data)
        out = b""
        for item in frames:
            payload = item.payload
            if not self.passthrough and self.frames_seen == self.tamper.frame_index:
                altered = apply_delta(payload, self.tamper.delta, self.tamper.offset)
                self.altered.append((payload, altered))
                payload, self.passthrough = altered, True  # one frame only; the rest flows
            self.frames_seen += 1
            out += frame(payload)
        header = self.buffer[:HEADER_LEN]
        if self.passthrough or (len(header) == HEADER_LEN and
                                int.from_bytes(header, "big") > BUFFER_LIMIT):
            self.passthrough = True
            out, self.buffer = out + self.buffer, b""
        return out


def describe_change(original: bytes, altered: bytes) -> str:
    """One log line: which payload bytes the relay changed, from what to what."""
    spots = [i for i, (a, b) in enumerate(zip(original, altered, strict=True)) if a != b]
    if not spots:
        return f"[MITM] Client frame of {len(original)} bytes passed unchanged"
    first, last = spots[0], spots[-1] + 1
    return (
        f"[MITM] Altered client frame ({len(original)} bytes): payload bytes {first}..{last - 1} "
        f"{original[first:last].hex(' ')} -> {altered[first:last].hex(' ')}"
    )


@dataclass
class Relayed:
    """Both directions of one relayed connection, as the proxy saw them (before tampering)."""

    peer: str
    to_server: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    altered: list[tuple[bytes, bytes]] = field(default_factory=list)


def _pump(
    source: socket.socket, sink: socket.socket, record: bytearray, tamperer: FrameTamperer | None
) -> None:
    try:
        while chunk := source.recv(65536):
            record += chunk
            sink.sendall(tamperer.feed(chunk) if tamperer else chunk)
    except OSError:
        pass  # either side went away: end this direction
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class MitmProxy:
    """Listen, relay each connection to `upstream`, alter one client frame per connection."""

    def __init__(
        self,
        upstream: tuple[str, int],
        tamper: Tamper | None = None,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.upstream = upstream
        self.tamper = tamper or Tamper()
        self.listener = socket.create_server(listen)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.connections: list[Relayed] = []
        self.log: Callable[[str], None] = log or (lambda _line: None)
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> MitmProxy:
        self._acceptor.start()
        return self

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, peer = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(client, peer), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay(self, client: socket.socket, peer: tuple[str, int]) -> None:
        relayed = Relayed(f"{peer[0]}:{peer[1]}")
        self.connections.append(relayed)
        tamperer = FrameTamperer(self.tamper)
        try:
            server = socket.create_connection(self.upstream, timeout=10)
        except OSError as exc:
            self.log(f"[MITM] Cannot reach {self.upstream[0]}:{self.upstream[1]}: {exc}")
            client.close()
            return
        server.settimeout(None)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.log(f"[MITM] Relaying {relayed.peer} -> {self.upstream[0]}:{self.upstream[1]}")
        back = threading.Thread(
            target=_pump, args=(server, client, relayed.to_client, None), daemon=True
        )
        back.start()
        try:
            _pump(client, server, relayed.to_server, tamperer)
            back.join(timeout=30)
        finally:
            relayed.altered = tamperer.altered
            for original, altered in tamperer.altered:
                self.log(describe_change(original, altered))
            client.close()
            server.close()

    def wait_idle(self, timeout: float = 10) -> None:
        """Wait for every relayed connection so far to finish."""
        for thread in list(self._threads):
            thread.join(timeout=timeout)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mitm", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, default=("0.0.0.0", 6000))
    parser.add_argument("--upstream", type=_address, required=True)
    parser.add_argument("--delta", default="", help="XOR mask, hex")
    parser.add_argument("--offset", type=int, default=0, help="where in the payload")
    parser.add_argument("--frame-index", type=int, default=0, help="which client frame")
    parser.add_argument("--once", action="store_true", help="exit after one connection")
    parser.add_argument("--record", action="store_true", help="print both streams as JSON")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    tamper = Tamper(bytes.fromhex(args.delta), args.offset, args.frame_index)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started ignored
    proxy = MitmProxy(args.upstream, tamper, args.listen, log).start()
    log(f"[MITM] Listening on {proxy.address[0]}:{proxy.address[1]}")
    try:
        while not (args.once and proxy.connections):
            proxy._closed.wait(0.05)
        proxy.wait_idle(timeout=60)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.close()
    if args.record:
        for relayed in proxy.connections:
            record = {
                "peer": relayed.peer,
                "to_server": relayed.to_server.hex(),
                "to_client": relayed.to_client.hex(),
            }
            print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
