"""Hand-made clients for the error-handling step: they do what the real clients never do."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

from securemsg.crypto import xor
from securemsg.framing import encode_frame

from .stream import split_frames

TIMEOUT = 10.0


@dataclass
class RawOutcome:
    """What a raw client saw: the writes it made and the bytes (if any) that came back."""

    writes: int
    reply: bytes
    closed: bool


def _read_frame(sock: socket.socket) -> tuple[bytes, bool]:
    """Read one whole frame, or until the server closes; return (payload, closed)."""
    data = b""
    while True:
        frames, _rest = split_frames(data)
        if frames:
            return frames[0].payload, False
        chunk = sock.recv(65536)
        if not chunk:
            return data, True
        data += chunk


def send_byte_by_byte(
    address: tuple[str, int], message: bytes, key: bytes, delay: float = 0.02
) -> RawOutcome:
    """One frame, written one byte per send() with TCP_NODELAY: the server's reads are short."""
    frame = encode_frame(xor(message, key))
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(frame)):
            sock.sendall(frame[i : i + 1])
            time.sleep(delay)
        payload, closed = _read_frame(sock)
    return RawOutcome(len(frame), xor(payload, key) if payload else b"", closed)


def send_oversize_prefix(address: tuple[str, int], length: int) -> RawOutcome:
    """A length prefix far above the limit, and no body: the server must refuse at once."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(struct.pack(">I", length))
        try:
            payload, closed = _read_frame(sock)
        except ConnectionResetError:
            payload, closed = b"", True
    return RawOutcome(1, payload, closed)
