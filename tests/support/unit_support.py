"""Helpers shared by the in-process server tests (tests/unit, tests/local; the socket ones
by tests/stress too), imported as ``tests.support.unit_support``."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON_DIR = ROOT / "python"
VECTORS = ROOT / "tests" / "vectors"


def load_vectors(name: str) -> list[dict]:
    """The cases of ``tests/vectors/<name>``."""
    return json.loads((VECTORS / name).read_text(encoding="ascii"))["cases"]


class Capture:
    """Two in-memory streams for a Logger, readable while threads write."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.err = io.BytesIO()

    def lines(self) -> list[str]:
        return self.out.getvalue().decode().splitlines()

    def errors(self) -> list[str]:
        return self.err.getvalue().decode().splitlines()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; out={self.lines()} err={self.errors()}")
            time.sleep(0.01)

    def wait_line(self, line: str, count: int = 1, timeout: float = 10.0) -> None:
        self.wait_for(lambda: (self.lines() + self.errors()).count(line) >= count, timeout)


@contextmanager
def running_server(*options: str) -> Iterator[tuple[object, Capture]]:
    """A SecureMsgServer on 127.0.0.1, port 0, serving in a thread."""
    from securemsg.config import parse_server_args, session_factory
    from securemsg.log import Logger
    from securemsg.server import SecureMsgServer

    config = parse_server_args(["--port", "0", "--bind", "127.0.0.1", *options])
    capture = Capture()
    console = Logger(capture.out, capture.err, colour=False)
    server = SecureMsgServer(config, console, session_factory(config))
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server, capture
    finally:
        server.stop()
        thread.join(10)


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def wait_closed(sock: socket.socket) -> bool:
    """True when the peer closed (EOF or reset) within the socket's timeout."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True
