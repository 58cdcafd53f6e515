"""A raw-socket peer: the harness talks to a server byte by byte, outside any client program.

The cipher layer (xor or noise) is kept apart from the socket: a codec turns a message
into frame payloads and an ACK frame back into text. Noise uses the independent
`noiseprotocol` package, so a raw-socket cell also checks interoperability.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import protocol

MAX_READ = 1 << 24  # a longer length prefix is garbage, not a frame to wait for


class RawPeerError(ConnectionError):
    """The server did something the raw peer did not expect."""


class XorCodec:
    def __init__(self, key: bytes) -> None:
        self.key = key

    def handshake(self, send: Callable[[bytes], None], recv: Callable[[], bytes]) -> None:
        """Xor has no handshake."""

    def encode(self, message: bytes) -> list[bytes]:
        return [protocol.xor(message, self.key)]

    def decode(self, payloads: list[bytes]) -> bytes | None:
        return protocol.xor(payloads[0], self.key)


class NoiseCodec:
    def __init__(self, psk: bytes) -> None:
        from noise.connection import NoiseConnection  # only noise cells need it

        self.connection = NoiseConnection.from_name(protocol.NOISE_PROTOCOL.encode())
        self.connection.set_psks(psk=psk)
        self.connection.set_prologue(protocol.NOISE_PROLOGUE)
        self.connection.set_as_initiator()
        self.connection.start_handshake()

    def handshake(self, send: Callable[[bytes], None], recv: Callable[[], bytes]) -> None:
        """NNpsk0: -> psk, e  <- e, ee; one frame each way."""
        send(protocol.frame(bytes(self.connection.write_message())))
        self.connection.read_message(recv())

    def encode(self, message: bytes) -> list[bytes]:
        step = protocol.NOISE_CHUNK_DATA
        pieces = [message[i : i + step] for i in range(0, len(message), step)] or [b""]
        markers = [b"\x00"] * (len(pieces) - 1) + [b"\x01"]
        return [self.connection.encrypt(m + p) for m, p in zip(markers, pieces, strict=True)]

    def decode(self, payloads: list[bytes]) -> bytes | None:
        """The message once its last chunk is in, else None."""
        plain = [self.connection.decrypt(p) for p in payloads]
        if plain[-1][:1] != b"\x01":
            return None
        return b"".join(p[1:] for p in plain)


def make_codec(cipher: str, key: bytes) -> XorCodec | NoiseCodec:
    return XorCodec(key) if cipher == "xor" else NoiseCodec(key)


@dataclass
class RawPeer:
    """One TCP connection from the harness to a server."""

    host: str
    port: int
    timeout: float = 5.0
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def local_address(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return protocol.target(host, port)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_slowly(self, data: bytes, pause: float = 0.002) -> None:
        """One byte per segment: TCP_NODELAY plus a pause so the segments stay apart."""
        for index in range(len(data)):
            self.sock.sendall(data[index : index + 1])
            time.sleep(pause)

    def recv_exact(self, count: int) -> bytes:
        return recv_exact(self.sock, count)

    def recv_frame(self) -> bytes:
        return read_frame(self.sock)

    def recv_message(self, codec: XorCodec | NoiseCodec) -> bytes:
        payloads: list[bytes] = []
        while True:
            payloads.append(self.recv_frame())
            message = codec.decode(payloads)
            if message is not None:
                return message

    def closed_by_peer(self, within: float) -> bool:
        """True when the server closes (EOF or reset) within `within` seconds."""
        self.sock.settimeout(within)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(self.timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Behaviour = Callable[[socket.socket], None]


class FakeServer:
    """A one-connection server played by the harness, to drive a client into the error
    paths of PROTOCOL.md section 7 (silence, early close, a malformed ACK)."""

    def __init__(self, bind_host: str, behaviour: Behaviour, timeout: float = 15.0) -> None:
        self.listener = socket.socket(socket.AF_INET6 if ":" in bind_host else socket.AF_INET)
        self.listener.bind((bind_host, 0))
        self.listener.listen(4)
        self.listener.settimeout(timeout)
        self.port: int = self.listener.getsockname()[1]
        self.behaviour = behaviour
        self.timeout = timeout
        self.error: str | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError as error:
            self.error = f"no client connected: {error}"
            return
        with conn:
            conn.settimeout(self.timeout)
            try:
                self.behaviour(conn)
            except OSError as error:
                self.error = f"fake server: {error}"

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(self.timeout)
        self.listener.close()


def read_frame(conn: socket.socket) -> bytes:
    """One whole frame's payload (section 1); RawPeerError if the peer closes first."""
    (length,) = struct.unpack(">I", recv_exact(conn, protocol.HEADER_LEN))
    if length > MAX_READ:
        raise RawPeerError(f"absurd frame length {length}")
    return recv_exact(conn, length)


def recv_exact(conn: socket.socket, count: int) -> bytes:
    """Exactly `count` bytes; RawPeerError (a ConnectionError) if the peer closes first."""
    data = bytearray()
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise RawPeerError(f"peer closed after {len(data)} of {count} bytes")
        data += chunk
    return bytes(data)


def drain(conn: socket.socket) -> None:
    """Read until the client closes (or the timeout)."""
    with contextlib.suppress(OSError):
        while conn.recv(65536):
            pass
