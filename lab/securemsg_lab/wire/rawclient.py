"""Hand-made clients for the error-handling step: they do what the real clients never do."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from .protocol import HEADER_LEN, frame, xor
from .rawsock import RawPeer, read_frame

TIMEOUT = 10.0


@dataclass
class RawOutcome:
    """What a raw client saw: the writes it made and the bytes (if any) that came back."""

    writes: int
    reply: bytes
    closed: bool


def _read_frame(sock: socket.socket) -> tuple[bytes, bool]:
    """One whole frame's payload, or (b"", True) when the server closes first."""
    try:
        return read_frame(sock), False
    except ConnectionError:
        return b"", True


def send_byte_by_byte(
    address: tuple[str, int], message: bytes, key: bytes, delay: float = 0.02
) -> RawOutcome:
    """One frame, written one byte per send() with TCP_NODELAY: the server's reads are short."""
    data = frame(xor(message, key))
    with RawPeer(*address, timeout=TIMEOUT) as peer:
        peer.send_slowly(data, delay)
        payload, closed = _read_frame(peer.sock)
    return RawOutcome(len(data), xor(payload, key) if payload else b"", closed)


def send_oversize_prefix(address: tuple[str, int], length: int) -> RawOutcome:
    """A length prefix far above the limit, and no body: the server must refuse at once."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(length.to_bytes(HEADER_LEN, "big"))
        payload, closed = _read_frame(sock)
    return RawOutcome(1, payload, closed)
