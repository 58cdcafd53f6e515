"""The Python server in process, fed fuzzed connections: only documented log lines.

Each example is one connection that sends some bytes, then closes its side. The
server must answer every complete frame with one ACK, log exactly the lines of
PROTOCOL.md 6-7 for it, and end it with its disconnect line; no internal error.
"""

from __future__ import annotations

import io
import os
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from securemsg.config import parse_server_args, session_factory
from securemsg.crypto import DEFAULT_KEY, XorCipher
from securemsg.log import Logger, escape
from securemsg.server import SecureMsgServer

from .fuzz_support import mutated, seeds
from .test_fuzz_framing import reference

XOR = XorCipher(DEFAULT_KEY)
ERRORS = re.compile(
    r"\[ERROR\] (Frame too large from \S+: \d+ bytes \(limit \d+\)"
    r"|Truncated frame from \S+: connection closed after \d+ of (4 length|\d+ payload) bytes"
    r"|(Receive from|Send to) \S+ failed: .+)"
)


class Server:
    """One in-process server for the whole module (one per example would be slow)."""

    def __init__(self) -> None:
        config = parse_server_args(["--port", "0", "--bind", "127.0.0.1", "--max-frame", "4096"])
        self.out, self.err = io.BytesIO(), io.BytesIO()
        console = Logger(self.out, self.err, colour=False)
        self.server = SecureMsgServer(config, console, session_factory(config))
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.out_seen = self.err_seen = 0  # lines of earlier connections

    def connection_lines(self, peer: str) -> tuple[list[str], list[str]]:
        """Stdout from ``peer``'s connected line to its disconnected line, and its errors.

        Only lines after the previous connection's count: a later connection may
        get the same local port.
        """
        deadline = time.monotonic() + 10
        last = f"[INFO] Client disconnected: {peer}"
        while last not in (out := self.out.getvalue().decode().splitlines()[self.out_seen :]):
            assert time.monotonic() < deadline, "no disconnect line"
            time.sleep(0.005)
        err = self.err.getvalue().decode().splitlines()[self.err_seen :]
        end = out.index(last) + 1
        self.out_seen += end
        self.err_seen += len(err)
        first = out.index(f"[INFO] Client connected: {peer}")
        return out[first:end], [line for line in err if peer in line]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.server.stop()
    running.thread.join(10)


def one_connection(port: int, data: bytes) -> tuple[str, list[bytes]]:
    """Send ``data``, close our side, read every ACK until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        host, local_port = sock.getsockname()[:2]
        peer = f"{host}:{local_port}"
        received = b""
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server closes at once on a bad length; its ACKs may be lost then
    acks = []
    while len(received) >= 4:
        length = int.from_bytes(received[:4], "big")
        acks.append(XOR.apply(received[4 : 4 + length]))
        received = received[4 + length :]
    return peer, acks


@settings(max_examples=2000 if os.environ.get("SECUREMSG_FUZZ") == "long" else 100)
@given(data=st.one_of(mutated(seeds()), st.binary(max_size=3000)))
def test_every_fuzzed_connection_gets_only_documented_lines(server: Server, data: bytes) -> None:
    peer, acks = one_connection(server.port, data)
    lines, errors = server.connection_lines(peer)
    frames = [frame for frame in reference(data, 4096) if hasattr(frame, "payload")]
    sizes = [len(frame.payload) for frame in frames]
    assert acks == [b"ACK: Received %d bytes" % size for size in sizes][: len(acks)]
    body = lines[1:-1]
    assert body == [line for frame in frames for line in (
        "[RECV] Plaintext: " + escape(XOR.apply(frame.payload)), "[SEND] ACK sent to client")]
    assert len(errors) <= 1 and all(ERRORS.fullmatch(line) for line in errors), errors
