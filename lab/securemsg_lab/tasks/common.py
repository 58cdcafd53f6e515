"""Helpers shared by the checks: reading hex answers, and one raw exchange with a server."""

from __future__ import annotations

import re
from pathlib import Path

from ..core import timeouts
from ..wire.rawsock import RawPeer, RawPeerError
from . import procs
from .result import Fail
from .workspace import REPO

RAW_TIMEOUT = 5.0
HEX_JUNK = re.compile(r"0x|[\s:,]")
DISCONNECTED = re.compile(r"\[INFO\] Client disconnected: ")


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


def reference_server(options: list[str]) -> procs.TaskServer:
    """A reference server that needs no build, on loopback."""
    return procs.TaskServer(procs.server_argv(REPO, procs.no_build_name(), options))


def raw_exchange(server: procs.TaskServer, wire: bytes) -> bytes | None:
    """Send `wire` as it is, read one reply frame (None: none came), close; then wait for
    the server's disconnect line so that its output is complete."""
    mark = server.proc.out.mark()
    reply: bytes | None = None
    with RawPeer(procs.LOOPBACK, server.port, timeout=RAW_TIMEOUT) as peer:
        try:
            peer.send(wire)
            reply = peer.recv_frame()
        except (OSError, RawPeerError):  # a timeout, or the server refused the frame
            reply = None
    server.proc.out.wait_for(DISCONNECTED, since=mark, timeout=timeouts.scaled(RAW_TIMEOUT))
    return reply


def recv_lines(output: str) -> list[str]:
    """The text of every `[RECV] Plaintext: ` line."""
    return [line.split("[RECV] Plaintext: ", 1)[1] for line in output.splitlines()
            if "[RECV] Plaintext: " in line]
