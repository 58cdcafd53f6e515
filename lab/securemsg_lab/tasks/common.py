"""Helpers shared by the checks: reading hex answers, and one raw exchange with a server."""

from __future__ import annotations

import re
import socket
import struct
import time
from pathlib import Path

from . import procs
from .result import Fail
from .workspace import REPO

RAW_TIMEOUT = 5.0
HEX_JUNK = re.compile(r"0x|[\s:,]")


def parse_hex_lines(path: Path) -> list[bytes]:
    """Each non-empty line (after any # comment) is one frame in hex: spaces, colons,
    commas and 0x prefixes are ignored."""
    frames = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        text = HEX_JUNK.sub("", line.split("#", 1)[0])
        if not text:
            continue
        try:
            frames.append(bytes.fromhex(text))
        except ValueError as exc:
            raise Fail(f"{path.name} line {number} is not hex: {line.strip()[:60]!r}",
                       "write bytes as two hex digits each, e.g. 00 00 00 0c 05 3c") from exc
    return frames


def first_difference(got: bytes, want: bytes) -> int:
    """Index of the first byte that differs (the shorter length if one is a prefix)."""
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return i
    return min(len(got), len(want))


def reference_server(options: list[str]) -> procs.Server:
    """The repository's own Python server (needs no build), on loopback."""
    return procs.Server(procs.server_argv(REPO, "python", options))


def recv_frame(sock: socket.socket) -> bytes | None:
    """One whole frame's payload, or None when the server closes first."""
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack_from(">I", data)[0]:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data[4 : 4 + struct.unpack_from(">I", data)[0]]


def raw_exchange(server: procs.Server, wire: bytes) -> bytes | None:
    """Send `wire` as it is, read one reply frame (None: none came), close; then wait for
    the server's disconnect line so that its output is complete."""
    seen = server.output().count("[INFO] Client disconnected: ")
    reply: bytes | None = None
    with socket.create_connection((procs.LOOPBACK, server.port), timeout=RAW_TIMEOUT) as sock:
        try:
            sock.sendall(wire)
            reply = recv_frame(sock)
        except OSError:  # a timeout, or the server refused the frame and reset
            reply = None
    deadline = time.monotonic() + RAW_TIMEOUT
    while time.monotonic() < deadline:
        if server.output().count("[INFO] Client disconnected: ") > seen:
            break
        time.sleep(0.02)
    return reply


def recv_lines(output: str) -> list[str]:
    """The text of every `[RECV] Plaintext: ` line."""
    return [line.split("[RECV] Plaintext: ", 1)[1] for line in output.splitlines()
            if "[RECV] Plaintext: " in line]
